//! CSRF: a random token per session, put in every form and checked on every POST.

use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::error::{AppError, AppResult};

const KEY: &str = "csrf";

/// The session's token, created on first use.
pub async fn token(session: &Session) -> AppResult<String> {
    if let Some(t) = session.get::<String>(KEY).await? {
        return Ok(t);
    }
    let t = fresh();
    session.insert(KEY, &t).await?;
    Ok(t)
}

/// Replace the token (at login, together with the session id).
pub async fn rotate(session: &Session) -> AppResult<String> {
    let t = fresh();
    session.insert(KEY, &t).await?;
    Ok(t)
}

pub async fn verify(session: &Session, submitted: &str) -> AppResult<()> {
    let expected = session.get::<String>(KEY).await?.ok_or(AppError::Csrf)?;
    if !submitted.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) {
        Ok(())
    } else {
        Err(AppError::Csrf)
    }
}

fn fresh() -> String {
    random_token()
}

/// 256 random bits, URL-safe: a token nobody can guess.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
