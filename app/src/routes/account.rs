//! `/account`: a user's own name, password and sessions (see each one, end any of them,
//! or all at once).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::auth::{csrf, password, throttle, CurrentUser, SESSION_EPOCH};
use crate::domain::{describe_agent, FullName, Password};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{sessions, users};
use crate::templates::{human_size, human_time, AccountPage, Nav, Page, SessionView};

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(done): Query<Done>,
) -> AppResult<Response> {
    let notice = match done.done.as_deref() {
        Some("password") => Some("Password changed. Your other sessions have been signed out."),
        Some("name") => Some("Name saved."),
        Some("ended") => Some("That session has been signed out."),
        Some("privacy") => Some("Location setting saved."),
        _ => None,
    };
    page(&state, &current, StatusCode::OK, notice, None).await
}

async fn page(
    state: &AppState,
    current: &CurrentUser,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> AppResult<Response> {
    let token = csrf::token(&current.session).await?;
    let used = crate::store::images::usage(&state.db, current.user.id).await?;
    let usage = match current.user.quota_bytes {
        Some(quota) => format!("{} of {}", human_size(used), human_size(quota)),
        None => human_size(used),
    };
    let this = current.session.id().map(|id| id.to_string());
    let sessions = sessions::for_user(&state.db, current.user.id, current.user.session_epoch)
        .await?
        .into_iter()
        .map(|s| SessionView {
            current: this.as_deref() == Some(s.id.as_str()),
            device: describe_agent(s.agent.as_deref()),
            address: s.address.unwrap_or_else(|| "unknown".into()),
            since: s.since.map(human_time).unwrap_or_else(|| "unknown".into()),
            seen: s
                .seen
                .or(s.since)
                .map(human_time)
                .unwrap_or_else(|| "unknown".into()),
            handle: s.handle,
        })
        .collect();
    Ok(Page::with_status(
        status,
        AccountPage {
            nav: Some(Nav::new(&current.user, token.clone())),
            csrf: token,
            username: current.user.username.clone(),
            full_name: current.user.full_name.clone(),
            keep_location: current.user.keep_location,
            usage,
            notice: notice.map(str::to_string),
            error,
            sessions,
        },
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    full_name: String,
}

pub async fn set_name(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<NameForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    let name = match FullName::parse(&form.full_name) {
        Ok(name) => name,
        Err(e) => {
            return page(
                &state,
                &current,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(e.0),
            )
            .await
        }
    };
    if !users::set_full_name(&state.db, current.user.id, name.as_str()).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to("/account?done=name").into_response())
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

/// The current password is checked (throttled as a login is, so a borrowed session
/// can't guess it), then every session of the user ends but this one.
pub async fn set_password(
    State(state): State<AppState>,
    current: CurrentUser,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    let refuse = |message: String| {
        page(
            &state,
            &current,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(message),
        )
    };
    let new = match Password::parse(&form.new) {
        Ok(new) => new,
        Err(e) => return refuse(e.0).await,
    };
    if form.new != form.confirm {
        return refuse("The new password and its confirmation differ.".into()).await;
    }

    let client = super::auth::client_address(&state, peer, &headers);
    let attempt = throttle::begin(&state, &current.user.username, client).await?;
    let stored = users::credentials(&state.db, &current.user.username)
        .await?
        .map(|(_, hash)| hash);
    let given = form.current;
    let checked = stored.clone();
    let ok = state
        .blocking(move || password::verify(&given, checked.as_deref()))
        .await?;
    let Some(stored) = stored.filter(|_| ok) else {
        let message = "The current password is not right.".to_string();
        return page(&state, &current, StatusCode::FORBIDDEN, None, Some(message)).await;
    };
    throttle::succeeded(&state, attempt).await?;

    let hash = state
        .blocking(move || password::hash(new.expose()))
        .await??;
    let changed = users::change_own_password(
        &state.db,
        current.user.id,
        current.user.session_epoch,
        &stored,
        &hash,
    )
    .await?;
    let Some(epoch) = changed else {
        // Changed meanwhile (an admin's reset, another change, a deletion): that change
        // stands, and it has ended this session.
        current.session.flush().await?;
        return Err(AppError::LoginRequired {
            next: "/account".into(),
        });
    };
    // This session moves to the new epoch; every other one is left on the old and ends.
    current.session.insert(SESSION_EPOCH, epoch).await?;
    csrf::rotate(&current.session).await?;
    tracing::info!(user = %current.user.username, "changed their password");
    Ok(Redirect::to("/account?done=password").into_response())
}

#[derive(Deserialize)]
pub struct EndForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    session: String,
}

/// Sign out one of the user's sessions, named by its public handle. Another user's
/// handle (or a made-up one) is a 404.
pub async fn end_session(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<EndForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    let found = sessions::for_user(&state.db, current.user.id, current.user.session_epoch)
        .await?
        .into_iter()
        .find(|s| !form.session.is_empty() && s.handle.as_deref() == Some(form.session.as_str()))
        .ok_or(AppError::NotFound)?;
    let this = current.session.id().map(|id| id.to_string());
    if this.as_deref() == Some(found.id.as_str()) {
        // This very session: a logout.
        current.session.flush().await?;
        return Ok(Redirect::to("/login").into_response());
    }
    if !sessions::delete_for_user(&state.db, current.user.id, &found.id).await? {
        return Err(AppError::NotFound);
    }
    tracing::info!(user = %current.user.username, "signed out one of their sessions");
    Ok(Redirect::to("/account?done=ended").into_response())
}

#[derive(Deserialize)]
pub struct EndAllForm {
    #[serde(default)]
    csrf: String,
}

/// "Sign out everywhere": every session of the user ends, this one included, on every
/// instance (the epoch moves on, so even a session this instance holds in memory is
/// refused at once).
pub async fn end_all_sessions(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<EndAllForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    users::end_every_session(&state.db, current.user.id).await?;
    current.session.flush().await?;
    tracing::info!(user = %current.user.username, "signed out everywhere");
    Ok(Redirect::to("/login").into_response())
}

#[derive(Deserialize)]
pub struct PrivacyForm {
    #[serde(default)]
    csrf: String,
    /// A checkbox: present ("on") when ticked.
    keep_location: Option<String>,
}

/// Whether the originals of this user's next uploads keep where they were taken.
pub async fn set_privacy(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<PrivacyForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    let keep = form.keep_location.is_some();
    if !users::set_keep_location(&state.db, current.user.id, keep).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to("/account?done=privacy").into_response())
}
