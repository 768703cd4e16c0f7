//! The change feed (table `changes`, filled by triggers): what the caches of every
//! instance read to learn what another writer changed.

use sqlx::Row;

use crate::config::DatabaseKind;
use crate::db::Db;

/// One row of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: i64,
    pub scope: String,
    pub user_id: Option<i64>,
    /// The database's clock at the change, in milliseconds since the Unix epoch.
    pub at: i64,
}

/// The database's clock in milliseconds, as the triggers stamp `at`.
fn now_sql(kind: &DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Postgres => "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT",
        DatabaseKind::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

/// Every change of the last `window_ms` by the database's clock. A transaction commits
/// after its rows got their `at`, so rows can appear out of order: readers look at the
/// whole window each time and skip the ids they have seen.
pub async fn recent(db: &Db, window_ms: i64) -> Result<Vec<Change>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT id, scope, user_id, at FROM changes WHERE at > {} - $1 ORDER BY id",
        now_sql(&db.kind)
    ))
    .bind(window_ms)
    .fetch_all(db.pool()?)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Change {
                id: r.try_get("id")?,
                scope: r.try_get("scope")?,
                user_id: r.try_get("user_id")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

/// Forget changes older than `age_ms`; any instance may do it, at any time.
pub async fn prune(db: &Db, age_ms: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(&format!(
        "DELETE FROM changes WHERE at < {} - $1",
        now_sql(&db.kind)
    ))
    .bind(age_ms)
    .execute(db.pool()?)
    .await?;
    Ok(r.rows_affected())
}
