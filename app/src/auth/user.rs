//! Extractors for the logged-in user; a handler that takes one can't run without it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tower_sessions::Session;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::users::{self, User};

/// The session cookie's name (its value is the session's id).
pub const SESSION_COOKIE: &str = "gallery_session";
pub const SESSION_USER: &str = "uid";
/// The user's session epoch at login; a password change bumps it and ends older sessions.
pub const SESSION_EPOCH: &str = "epoch";
/// When the session's expiry was last pushed forward (ms since the epoch).
pub const SESSION_SEEN: &str = "seen";
/// What `/account` shows of a session, written at login: a random public name for it
/// (the session's id is a credential and never appears in a page), the browser's
/// User-Agent, the client's address and the time of the login.
pub const SESSION_HANDLE: &str = "handle";
pub const SESSION_AGENT: &str = "agent";
pub const SESSION_ADDRESS: &str = "addr";
pub const SESSION_SINCE: &str = "since";

/// Push a logged-in session's idle expiry forward. Saving on every request would be a
/// database write per page view, so the record is saved again only once a twelfth of the
/// idle period has passed since the last save: an active user stays logged in, and one
/// who leaves is logged out between 11/12 and 12/12 of the idle period later.
async fn keep_alive(session: &Session, idle: std::time::Duration) -> Result<(), AppError> {
    let now = crate::db::now_millis();
    let seen = session.get::<i64>(SESSION_SEEN).await?.unwrap_or(0);
    if now - seen >= refresh_every(idle) {
        session.insert(SESSION_SEEN, now).await?;
    }
    Ok(())
}

/// How often (ms) a session's idle expiry is pushed forward: a twelfth of the idle period.
pub fn refresh_every(idle: std::time::Duration) -> i64 {
    (idle.as_millis() / 12) as i64
}

/// The logged-in user and their session. Without one: redirect to the login page.
pub struct CurrentUser {
    pub user: User,
    pub session: Session,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !state.health.is_migrated() {
            return Err(AppError::Unavailable);
        }
        let next = match parts.method {
            axum::http::Method::GET => parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            _ => "/".into(),
        };
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, msg)| {
                AppError::Internal(anyhow::anyhow!("session layer missing: {msg}"))
            })?;
        let login = || AppError::LoginRequired { next: next.clone() };
        let Some(id) = session.get::<i64>(SESSION_USER).await? else {
            return Err(login());
        };
        let epoch = session.get::<i64>(SESSION_EPOCH).await?.unwrap_or(-1);
        let user = match state.cache.user(id) {
            Some(user) => Some(user),
            None => {
                let ticket = state.cache.ticket();
                let user = users::by_id(&state.db, id).await?;
                if let Some(u) = &user {
                    state.cache.put_user(ticket, u);
                }
                user
            }
        };
        match user {
            Some(user) if user.session_epoch == epoch => {
                keep_alive(&session, state.config.session_idle).await?;
                Ok(CurrentUser { user, session })
            }
            Some(_) => {
                // Its password was changed: this session is over. It is refused, not
                // deleted: epochs only grow, so it can never match again, and deleting
                // it could race the request that changed the password from this very
                // session (saving the new epoch moments later) and sign it out too.
                Err(login())
            }
            None => {
                // A deleted user: this session is over.
                session.flush().await?;
                Err(login())
            }
        }
    }
}

/// A logged-in admin; anyone else gets 403.
pub struct AdminUser(pub CurrentUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let current = CurrentUser::from_request_parts(parts, state).await?;
        if current.user.is_admin {
            Ok(AdminUser(current))
        } else {
            Err(AppError::Forbidden)
        }
    }
}
