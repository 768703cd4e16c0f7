//! Login throttling per username and per client address: after `max_failures` failed
//! attempts on one username (or four times that from one address, which may be a whole
//! office behind NAT) in the window, further attempts get 429 until the window ends.

use std::net::IpAddr;

use crate::db::{now_millis, Db};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::throttle;

fn keys(username: &str, client: IpAddr) -> [String; 2] {
    [format!("user:{username}"), format!("ip:{client}")]
}

fn window_ms(state: &AppState) -> i64 {
    state.config.throttle.window.as_millis() as i64
}

/// Refuse with 429 (and Retry-After) while either key is locked out.
pub async fn check(state: &AppState, username: &str, client: IpAddr) -> AppResult<()> {
    let per_user = i64::from(state.config.throttle.max_failures);
    for (key, max) in keys(username, client)
        .into_iter()
        .zip([per_user, per_user * 4])
    {
        if let Some((failures, until)) =
            throttle::current(&state.db, &key, window_ms(state)).await?
        {
            if failures >= max {
                let secs = ((until - now_millis()).max(1000) + 999) / 1000;
                return Err(AppError::TooManyRequests {
                    retry_after_secs: secs as u64,
                });
            }
        }
    }
    Ok(())
}

pub async fn record_failure(state: &AppState, username: &str, client: IpAddr) -> AppResult<()> {
    for key in keys(username, client) {
        throttle::record_failure(&state.db, &key, window_ms(state)).await?;
    }
    Ok(())
}

/// A successful login clears the username's counter (not the address's: one good
/// password must not reset a spray across many accounts).
pub async fn record_success(db: &Db, username: &str) -> AppResult<()> {
    throttle::clear(db, &format!("user:{username}")).await?;
    Ok(())
}
