//! Share links, as their visitors meet them: a random token (256 bits, base64url) that is
//! stored only as its SHA-256, an optional password, an optional expiry. Every way a link
//! can fail (unknown, expired, revoked, sharing stopped by an admin, a wrong password)
//! answers the same 404; failures are counted per client, and a client over the limit is
//! refused before its token is even looked up.

use std::net::IpAddr;

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use crate::auth::password;
use crate::db::now_millis;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::shares::{self, ShareLink};
use crate::store::throttle;

/// The session key holding the ids of the links whose password this visitor gave.
const UNLOCKED: &str = "shares_unlocked";

/// A new link's token and the hash that is stored.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shape every token has: anything else is not looked up.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn client_key(client: IpAddr) -> String {
    format!("share:{client}")
}

fn window_ms(state: &AppState) -> i64 {
    state.config.throttle.window.as_millis() as i64
}

/// Failures a client may have in a window before it is refused: as many as a whole office
/// behind one address gets for logins.
fn limit(state: &AppState) -> i64 {
    i64::from(state.config.throttle.max_failures) * 4
}

/// Refuse a client that has failed too often (429 with Retry-After).
async fn check_client(state: &AppState, client: IpAddr) -> AppResult<()> {
    let failures = throttle::counted(&state.db, &client_key(client), window_ms(state)).await?;
    if failures >= limit(state) {
        return Err(AppError::TooManyRequests {
            retry_after_secs: state.config.throttle.window.as_secs().max(1),
        });
    }
    Ok(())
}

/// Count a failure against the client; the answer is the same 404 whatever failed.
async fn failed(state: &AppState, client: IpAddr) -> AppError {
    if let Err(e) = throttle::count_attempt(&state.db, &client_key(client), window_ms(state)).await
    {
        return e.into();
    }
    AppError::NotFound
}

/// The link this token opens, if it works now (the password aside). For the link's own
/// page: a token that opens nothing counts as a failed guess.
pub async fn open(state: &AppState, token: &str, client: IpAddr) -> AppResult<ShareLink> {
    check_client(state, client).await?;
    match lookup(state, token).await? {
        Some(link) => Ok(link),
        None => Err(failed(state, client).await),
    }
}

async fn lookup(state: &AppState, token: &str) -> AppResult<Option<ShareLink>> {
    if !well_formed(token) {
        return Ok(None);
    }
    Ok(shares::usable(&state.db, &hash_token(token)).await?)
}

/// Whether this visitor may see the link's contents: it has no password, or they gave it.
pub async fn unlocked(session: &Session, link: &ShareLink) -> AppResult<bool> {
    if link.password_hash.is_none() {
        return Ok(true);
    }
    let ids: Vec<String> = session.get(UNLOCKED).await?.unwrap_or_default();
    Ok(ids.contains(&link.id))
}

/// The link, opened and unlocked, for the images behind it; anything else is the same
/// 404. Not counted as guesses (a page left open after its link was revoked asks for
/// dozens of images; an image's id is a random uuid, so these answers tell a guesser
/// nothing), but a client over the limit is refused here too.
pub async fn open_unlocked(
    state: &AppState,
    session: &Session,
    token: &str,
    client: IpAddr,
) -> AppResult<ShareLink> {
    check_client(state, client).await?;
    match lookup(state, token).await? {
        Some(link) if unlocked(session, &link).await? => Ok(link),
        _ => Err(AppError::NotFound),
    }
}

/// Count a password attempt against the client and the link *before* it is checked, in
/// one atomic statement each (as logins are), so attempts sent at once can't all slip
/// past the limit while argon2 runs; over either limit: 429, the attempt not counted.
async fn begin_attempt(state: &AppState, keys: &[(String, i64)]) -> AppResult<()> {
    let mut counted: Vec<&str> = Vec::new();
    let mut over = None;
    for (key, limit) in keys {
        let (n, until) = match throttle::count_attempt(&state.db, key, window_ms(state)).await {
            Ok(c) => c,
            Err(e) => {
                for k in &counted {
                    let _ = throttle::uncount_attempt(&state.db, k).await;
                }
                return Err(e.into());
            }
        };
        counted.push(key);
        if n > *limit {
            over = Some(over.map_or(until, |u: i64| u.max(until)));
        }
    }
    if let Some(until) = over {
        for k in &counted {
            throttle::uncount_attempt(&state.db, k).await?;
        }
        let secs = ((until - now_millis()).max(1000) + 999) / 1000;
        return Err(AppError::TooManyRequests {
            retry_after_secs: secs as u64,
        });
    }
    Ok(())
}

/// Check a password for the token's link; right: this visitor's session (under a new
/// id) remembers it. Wrong, or no such link: the same 404, after the same work (one
/// argon2 verification). Attempts are limited per client and per link.
pub async fn unlock(
    state: &AppState,
    session: &Session,
    token: &str,
    client: IpAddr,
    given: String,
) -> AppResult<()> {
    check_client(state, client).await?;
    let link = lookup(state, token).await?;
    // A link's own limit is ten clients' worth: one address alone (whose own limit is
    // reached first) can't lock its family out; guessing from many addresses is bounded.
    let mut keys = vec![(client_key(client), limit(state))];
    if let Some(link) = &link {
        keys.push((format!("share-link:{}", link.id), limit(state) * 10));
    }
    begin_attempt(state, &keys).await?;
    let stored = link.as_ref().and_then(|l| l.password_hash.clone());
    let right = state
        .blocking(move || password::verify(&given, stored.as_deref()))
        .await
        .map_err(AppError::Internal)?;
    match link {
        Some(link) if right => {
            for (k, _) in &keys {
                throttle::uncount_attempt(&state.db, k).await?;
            }
            let mut ids: Vec<String> = session.get(UNLOCKED).await?.unwrap_or_default();
            if !ids.contains(&link.id) {
                ids.push(link.id);
                // A visitor who opens many links keeps only the latest few.
                if ids.len() > 20 {
                    ids.remove(0);
                }
            }
            // A session id planted before the password was given is worthless after it.
            session.cycle_id().await?;
            session.insert(UNLOCKED, ids).await?;
            crate::auth::csrf::rotate(session).await?;
            Ok(())
        }
        _ => Err(AppError::NotFound),
    }
}

/// A request path fit for a log: a share link's token replaced by `…` (the query, which
/// holds nothing secret here, is not part of it).
pub fn redacted(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/s/") {
        Some(rest) => {
            let after = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/s/…{after}").into()
        }
        None => path.into(),
    }
}

/// When a link of `days` days made now ends; `days` as typed in the form (empty: never).
pub fn expiry(days: &str) -> AppResult<Option<i64>> {
    let days = days.trim();
    if days.is_empty() {
        return Ok(None);
    }
    match days.parse::<i64>() {
        Ok(n) if (1..=3650).contains(&n) => Ok(Some(now_millis() + n * 86_400_000)),
        _ => Err(AppError::BadRequest(format!(
            "Expires after: `{days}` is not a number of days from 1 to 3650 (leave it empty for a link that does not expire)."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_only_as_a_hash() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert!(well_formed(&a) && well_formed(&b), "{a}");
        assert_eq!(ha, hash_token(&a));
        assert_eq!(ha.len(), 64);
        assert!(!ha.contains(&a));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}!", &a[..42])));
    }

    #[test]
    fn a_logged_path_has_no_token() {
        let (token, _) = new_token();
        let path = format!("/s/{token}/i/abc/thumb");
        assert_eq!(redacted(&path), "/s/…/i/abc/thumb");
        assert_eq!(redacted(&format!("/s/{token}")), "/s/…");
        assert_eq!(redacted("/gallery"), "/gallery");
    }

    #[test]
    fn expiry_is_whole_days_or_never() {
        assert_eq!(expiry("").unwrap(), None);
        assert!(expiry("7").unwrap().unwrap() > now_millis());
        for bad in ["0", "-1", "soon", "3651", "1.5"] {
            assert!(expiry(bad).is_err(), "{bad}");
        }
    }
}
