//! Login throttling per username and per client address: after `max_failures` failed
//! attempts on one username (or four times that from one address, which may be a whole
//! office behind NAT) in the window, further attempts get 429 until the window ends.
//!
//! An attempt is counted *before* its password is checked, in one atomic statement, so
//! attempts sent in parallel can't all slip past the limit while the (slow) hash runs;
//! a refused attempt and a successful one are taken back afterwards.

use std::net::IpAddr;

use crate::db::now_millis;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::throttle;

/// An attempt counted against a username and a client address.
pub struct Attempt {
    user_key: String,
    client_key: String,
}

fn window_ms(state: &AppState) -> i64 {
    state.config.throttle.window.as_millis() as i64
}

/// Count the attempt; refuse with 429 (and Retry-After) when either counter is over its
/// limit, in which case the attempt is not counted (only checked passwords count).
pub async fn begin(state: &AppState, username: &str, client: IpAddr) -> AppResult<Attempt> {
    let attempt = Attempt {
        user_key: format!("user:{username}"),
        client_key: format!("ip:{client}"),
    };
    let per_user = i64::from(state.config.throttle.max_failures);
    let window = window_ms(state);
    let (user_count, user_until) =
        throttle::count_attempt(&state.db, &attempt.user_key, window).await?;
    let (client_count, client_until) =
        match throttle::count_attempt(&state.db, &attempt.client_key, window).await {
            Ok(counted) => counted,
            Err(e) => {
                // Don't leave the username charged for an attempt that never ran.
                let _ = throttle::uncount_attempt(&state.db, &attempt.user_key).await;
                return Err(e.into());
            }
        };
    let mut until = None;
    if user_count > per_user {
        until = Some(user_until);
    }
    if client_count > per_user * 4 {
        until = Some(until.map_or(client_until, |u: i64| u.max(client_until)));
    }
    if let Some(until) = until {
        throttle::uncount_attempt(&state.db, &attempt.user_key).await?;
        throttle::uncount_attempt(&state.db, &attempt.client_key).await?;
        let secs = ((until - now_millis()).max(1000) + 999) / 1000;
        return Err(AppError::TooManyRequests {
            retry_after_secs: secs as u64,
        });
    }
    Ok(attempt)
}

/// The password was right: clear the username's counter, and take this attempt back from
/// the address's (not the whole counter: one good password must not reset a spray across
/// many accounts).
pub async fn succeeded(state: &AppState, attempt: Attempt) -> AppResult<()> {
    throttle::clear(&state.db, &attempt.user_key).await?;
    throttle::uncount_attempt(&state.db, &attempt.client_key).await?;
    Ok(())
}
