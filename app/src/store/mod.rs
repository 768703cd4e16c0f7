//! Repository functions: every SQL statement lives here, written once for both backends
//! (numbered `$n` parameters work on Postgres and SQLite alike).

pub mod albums;
pub mod changes;
pub mod images;
pub mod renditions;
pub mod sessions;
pub mod shares;
pub mod throttle;
pub mod users;

/// Whether an error is a unique-key violation (a taken username, say).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
