//! The database pool (Postgres or SQLite through sqlx's `Any` driver) and its migrations.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use crate::config::{DatabaseKind, DatabaseUrl};

/// The pool, once its address is known: at once for a URL, later for a secret that gets
/// its host when RDS is ready. Until then every query fails as "unavailable" (503).
#[derive(Clone, Debug)]
pub struct Db {
    pool: Arc<OnceLock<AnyPool>>,
    pub kind: DatabaseKind,
}

impl Db {
    /// A database whose address comes later (see [`Db::install`]).
    pub fn pending(kind: DatabaseKind) -> Db {
        Db {
            pool: Arc::new(OnceLock::new()),
            kind,
        }
    }

    pub fn pool(&self) -> Result<&AnyPool, sqlx::Error> {
        self.pool.get().ok_or(sqlx::Error::PoolTimedOut)
    }

    pub fn is_connected(&self) -> bool {
        self.pool.get().is_some()
    }

    /// Build the pool without connecting, so the server can start (and answer `/healthz`)
    /// before the database is reachable.
    pub fn connect_lazy(url: &DatabaseUrl) -> Result<Db, sqlx::Error> {
        let db = Db::pending(url.kind.clone());
        db.install(url)?;
        Ok(db)
    }

    /// Set the address of a pending database (a second call changes nothing).
    pub fn install(&self, url: &DatabaseUrl) -> Result<(), sqlx::Error> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.sqlite_path() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
        }
        let sqlite = url.kind == DatabaseKind::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers proceed during a write; foreign keys are per connection.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy(&url.url)?;
        let _ = self.pool.set(pool);
        Ok(())
    }

    /// Apply pending migrations. On Postgres sqlx holds an advisory lock meanwhile, so
    /// instances starting together apply each migration once.
    ///
    /// A database may hold migrations this release does not know: a newer release
    /// applied them (it is still rolling out, or was rolled back). Migrations are
    /// additive (`provision deploy` checks), so this release runs on that schema; only a
    /// known migration changed since it was applied is refused.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let mut migrator = match self.kind {
            DatabaseKind::Postgres => sqlx::migrate!("./migrations/postgres"),
            DatabaseKind::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        };
        migrator.set_ignore_missing(true);
        migrator.run(self.pool()?).await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(self.pool()?)
            .await
            .map(|_| ())
    }
}

/// Milliseconds since the Unix epoch: timestamps are stored as plain integers on both backends.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// This release's PostgreSQL migrations (what runs on AWS), for `gallery migrations`.
pub fn migrations_json() -> Result<String, serde_json::Error> {
    let all: Vec<serde_json::Value> = sqlx::migrate!("./migrations/postgres")
        .iter()
        .map(|m| {
            serde_json::json!({
                "version": m.version,
                "description": m.description,
                "sql": m.sql,
            })
        })
        .collect();
    serde_json::to_string_pretty(&all)
}
