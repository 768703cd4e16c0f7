//! Failed-login counters, kept in the database so the limit holds across instances.

use sqlx::Row;

use crate::db::{now_millis, Db};

/// Count one failure for `key` in a fixed window of `window_ms`; returns the failures so far.
pub async fn record_failure(db: &Db, key: &str, window_ms: i64) -> Result<i64, sqlx::Error> {
    let now = now_millis();
    sqlx::query(
        "INSERT INTO login_throttle (key, failures, window_start) VALUES ($1, 1, $2) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.window_start <= $3 THEN 1 ELSE login_throttle.failures + 1 END, \
           window_start = CASE WHEN login_throttle.window_start <= $3 THEN $2 ELSE login_throttle.window_start END \
         RETURNING failures",
    )
    .bind(key)
    .bind(now)
    .bind(now - window_ms)
    .fetch_one(db.pool()?)
    .await?
    .try_get("failures")
}

/// Failures in the current window and when it ends (ms since epoch), if any.
pub async fn current(
    db: &Db,
    key: &str,
    window_ms: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT failures, window_start FROM login_throttle WHERE key = $1 AND window_start > $2",
    )
    .bind(key)
    .bind(now_millis() - window_ms)
    .fetch_optional(db.pool()?)
    .await?;
    match row {
        Some(r) => {
            let failures: i64 = r.try_get("failures")?;
            let start: i64 = r.try_get("window_start")?;
            Ok(Some((failures, start + window_ms)))
        }
        None => Ok(None),
    }
}

pub async fn clear(db: &Db, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(db.pool()?)
        .await?;
    Ok(())
}
