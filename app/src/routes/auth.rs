//! `/login` and `/logout`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use crate::auth::{
    csrf, password, throttle, CurrentUser, SESSION_ADDRESS, SESSION_AGENT, SESSION_EPOCH,
    SESSION_HANDLE, SESSION_SEEN, SESSION_SINCE, SESSION_USER,
};
use crate::domain::{safe_next, Username};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::users;
use crate::templates::{LoginPage, Page};

/// How long a session that never logged in is kept: long enough to fill in the login
/// form, short enough that visitors who only look at it don't pile up rows.
const ANONYMOUS_SESSION: time::Duration = time::Duration::minutes(30);

/// The login form's token lives in a session (so does a share link's password form); for
/// a visitor who is not logged in, make that session short-lived.
pub(super) async fn login_token(state: &AppState, session: &Session) -> AppResult<String> {
    if session.get::<i64>(SESSION_USER).await?.is_none() {
        let idle = time::Duration::try_from(state.config.session_idle).unwrap_or(ANONYMOUS_SESSION);
        session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(
            idle.min(ANONYMOUS_SESSION),
        )));
    }
    csrf::token(session).await
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    // Sessions live in the database: say so plainly instead of failing on the session save.
    if !state.health.is_migrated() {
        return Err(AppError::Unavailable);
    }
    Ok(Page::ok(LoginPage {
        nav: None,
        csrf: login_token(&state, &session).await?,
        next: safe_next(q.next.as_deref()),
        username: String::new(),
        error: None,
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    if !state.health.is_migrated() {
        return Err(AppError::Unavailable);
    }
    csrf::verify(&session, &form.csrf).await?;
    let client = client_address(&state, peer, &headers);
    // An invalid name is just an unknown user: same message, same work.
    let name = Username::parse(&form.username)
        .map(|u| u.as_str().to_string())
        .unwrap_or_else(|_| form.username.trim().to_ascii_lowercase());
    let attempt = throttle::begin(&state, &name, client).await?;

    let found = users::credentials(&state.db, &name).await?;
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let password = form.password;
    let ok = state
        .blocking(move || password::verify(&password, hash.as_deref()))
        .await?;
    let next = safe_next(form.next.as_deref());

    let Some(user) = user.filter(|_| ok) else {
        let page = LoginPage {
            nav: None,
            csrf: login_token(&state, &session).await?,
            next,
            username: form.username,
            error: Some("Invalid username or password.".into()),
        };
        return Ok(Page::with_status(StatusCode::UNAUTHORIZED, page).into_response());
    };

    throttle::succeeded(&state, attempt).await?;
    // A new id at login, so a session id planted before login is worthless after it.
    session.cycle_id().await?;
    session.insert(SESSION_USER, user.id).await?;
    session.insert(SESSION_EPOCH, user.session_epoch).await?;
    let now = crate::db::now_millis();
    session.insert(SESSION_SEEN, now).await?;
    session.insert(SESSION_SINCE, now).await?;
    session.insert(SESSION_HANDLE, csrf::random_token()).await?;
    session.insert(SESSION_ADDRESS, client.to_string()).await?;
    if let Some(agent) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        session
            .insert(SESSION_AGENT, agent.chars().take(300).collect::<String>())
            .await?;
    }
    csrf::rotate(&session).await?;
    tracing::info!(user = %user.username, "logged in");
    Ok(Redirect::to(&next).into_response())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(current: CurrentUser, Form(form): Form<CsrfForm>) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    // Deletes the record from the store, not just the cookie.
    current.session.flush().await?;
    // Images are cached privately for a year (their URLs never change): on a shared
    // computer the next person must not find the last user's photos in the cache.
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        "clear-site-data",
        axum::http::HeaderValue::from_static("\"cache\""),
    );
    Ok(response)
}

/// The client's address: the peer, or behind a trusted proxy the hop it appended last.
pub(super) fn client_address(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if state.config.behind_proxy {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
    }
    peer.ip()
}
