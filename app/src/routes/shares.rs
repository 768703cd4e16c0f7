//! Making and revoking share links: "Share" on an album or an image, `/shares` (every link
//! of the user), "Revoke". What a link's visitor sees: `routes::shared`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::auth::{csrf, password, CurrentUser};
use crate::db::now_millis;
use crate::domain::safe_next;
use crate::error::{AppError, AppResult};
use crate::sharing;
use crate::state::AppState;
use crate::store::images;
use crate::store::shares::{self, NewLink};
use crate::templates::{human_time, LinkRow, Nav, Page, ShareCreatedPage, SharesPage};

/// A share password's longest (argon2 hashes any length; a form field needs a bound).
const PASSWORD_MAX: usize = 200;

#[derive(Deserialize)]
pub struct ShareForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    expires_days: String,
    /// A ticked checkbox sends it; an unticked one sends nothing.
    allow_download: Option<String>,
}

/// What is being shared.
enum Target<'a> {
    Album(&'a str),
    Image(&'a str),
}

pub async fn album(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ShareForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    let album = super::albums::owned(&state, &id, current.user.id).await?;
    let back = format!("/albums/{}", album.id);
    create(
        &state,
        &current,
        &headers,
        form,
        Target::Album(&album.id),
        &album.title,
        &back,
    )
    .await
}

pub async fn image(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ShareForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    // Only an image in the gallery: one in the trash is shown to no one.
    let img = images::owned(&state.db, &id, current.user.id)
        .await?
        .filter(|i| i.trashed_at.is_none() && !i.purging)
        .ok_or(AppError::NotFound)?;
    let back = format!("/images/{}", img.id);
    create(
        &state,
        &current,
        &headers,
        form,
        Target::Image(&img.id),
        &img.original_name,
        &back,
    )
    .await
}

async fn create(
    state: &AppState,
    current: &CurrentUser,
    headers: &HeaderMap,
    form: ShareForm,
    target: Target<'_>,
    target_name: &str,
    back: &str,
) -> AppResult<Response> {
    if !shares::sharing_allowed(&state.db, current.user.id).await? {
        return Err(AppError::NotAllowed(
            "Sharing: an administrator has turned sharing off for your account.".into(),
        ));
    }
    let expires_at = sharing::expiry(&form.expires_days)?;
    if form.password.chars().count() > PASSWORD_MAX {
        return Err(AppError::BadRequest(format!(
            "Password: at most {PASSWORD_MAX} characters."
        )));
    }
    let password_hash = match form.password.as_str() {
        "" => None,
        given => {
            let given = given.to_string();
            Some(state.blocking(move || password::hash(&given)).await??)
        }
    };
    let (token, token_hash) = sharing::new_token();
    let (album_id, image_id) = match target {
        Target::Album(id) => (Some(id), None),
        Target::Image(id) => (None, Some(id)),
    };
    let allow_download = form.allow_download.is_some();
    shares::create(
        &state.db,
        &NewLink {
            owner_id: current.user.id,
            album_id,
            image_id,
            token_hash: &token_hash,
            password_hash: password_hash.as_deref(),
            expires_at,
            allow_download,
        },
    )
    .await?;
    tracing::info!(user = %current.user.username, "share link created");
    let csrf_token = csrf::token(&current.session).await?;
    Ok(Page::ok(ShareCreatedPage {
        nav: Some(Nav::new(&current.user, csrf_token)),
        url: format!("{}/s/{token}", origin(state, headers)),
        target: target_name.to_string(),
        back: back.to_string(),
        password: password_hash.is_some(),
        expires: expires_at.map(human_time).unwrap_or_default(),
        download: allow_download,
    })
    .into_response())
}

/// Where the gallery is reached: its public URL when configured, else the address this
/// request came to (the owner's own request, shown back only to them).
fn origin(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.as_str().trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| state.config.bind.to_string());
    format!("http://{host}")
}

pub async fn index(State(state): State<AppState>, current: CurrentUser) -> AppResult<Response> {
    let now = now_millis();
    let links = shares::for_owner(&state.db, current.user.id, None, None)
        .await?
        .iter()
        .map(|l| LinkRow::from(l, now))
        .collect();
    let token = csrf::token(&current.session).await?;
    Ok(Page::ok(SharesPage {
        nav: Some(Nav::new(&current.user, token.clone())),
        csrf: token,
        links,
        back: "/shares".to_string(),
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    /// Where to go afterwards (a local path), `/shares` by default.
    back: Option<String>,
}

/// Revoke a link: it stops opening at once, on every instance (links are looked up on
/// every request, never cached).
pub async fn revoke(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    if !shares::revoke(&state.db, &id, current.user.id).await? {
        return Err(AppError::NotFound);
    }
    tracing::info!(user = %current.user.username, link = %id, "share link revoked");
    let back = match form.back.as_deref() {
        Some(b) if !b.is_empty() => safe_next(Some(b)),
        _ => "/shares".to_string(),
    };
    Ok(Redirect::to(&back).into_response())
}
