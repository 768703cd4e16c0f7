//! Login-attempt counters, kept in the database so the limit holds across instances.

use sqlx::Row;

use crate::db::{now_millis, Db};

/// Count one attempt for `key` in a fixed window of `window_ms`, in one atomic statement;
/// returns the attempts counted in the window so far (this one included) and when the
/// window ends (ms since the epoch).
pub async fn count_attempt(db: &Db, key: &str, window_ms: i64) -> Result<(i64, i64), sqlx::Error> {
    let now = now_millis();
    let row = sqlx::query(
        "INSERT INTO login_throttle (key, failures, window_start) VALUES ($1, 1, $2) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.window_start <= $3 THEN 1 ELSE login_throttle.failures + 1 END, \
           window_start = CASE WHEN login_throttle.window_start <= $3 THEN $2 ELSE login_throttle.window_start END \
         RETURNING failures, window_start",
    )
    .bind(key)
    .bind(now)
    .bind(now - window_ms)
    .fetch_one(db.pool()?)
    .await?;
    let failures: i64 = row.try_get("failures")?;
    let start: i64 = row.try_get("window_start")?;
    Ok((failures, start + window_ms))
}

/// Take back one attempt counted by [`count_attempt`] (one that was refused unverified,
/// or one that succeeded).
pub async fn uncount_attempt(db: &Db, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE login_throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0",
    )
    .bind(key)
    .execute(db.pool()?)
    .await?;
    Ok(())
}

pub async fn clear(db: &Db, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(db.pool()?)
        .await?;
    Ok(())
}

/// Forget counters whose window ended more than `window_ms` ago; run periodically, so a
/// spray of made-up usernames doesn't leave rows behind forever.
pub async fn delete_expired(db: &Db, window_ms: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM login_throttle WHERE window_start <= $1")
        .bind(now_millis() - window_ms)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected())
}

/// Attempts counted for `key` in its current window (0 when its window is over).
pub async fn counted(db: &Db, key: &str, window_ms: i64) -> Result<i64, sqlx::Error> {
    let row =
        sqlx::query("SELECT failures FROM login_throttle WHERE key = $1 AND window_start > $2")
            .bind(key)
            .bind(now_millis() - window_ms)
            .fetch_optional(db.pool()?)
            .await?;
    match row {
        Some(r) => r.try_get("failures"),
        None => Ok(0),
    }
}
