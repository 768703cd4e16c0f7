//! Sessions in the database, so every instance behind the load balancer shares them.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::auth::{
    SESSION_ADDRESS, SESSION_AGENT, SESSION_EPOCH, SESSION_HANDLE, SESSION_SEEN, SESSION_SINCE,
    SESSION_USER,
};
use crate::cache::Cache;
use crate::db::Db;

#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
    /// Reads of sessions answered from memory when the cache allows it.
    cache: Option<Arc<Cache>>,
}

impl std::fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSessionStore")
            .field("cached", &self.cache.is_some())
            .finish()
    }
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        DbSessionStore { db, cache: None }
    }

    pub fn with_cache(self, cache: Arc<Cache>) -> Self {
        DbSessionStore {
            cache: Some(cache),
            ..self
        }
    }

    /// Remove expired sessions; run periodically.
    pub async fn delete_expired(&self) -> Result<u64, sqlx::Error> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(OffsetDateTime::now_utc().unix_timestamp())
            .execute(self.db.pool()?)
            .await?;
        Ok(r.rows_affected())
    }
}

/// After the database was restored (`restore` names the restore, from the secret
/// `provision` writes): end every session, once per restore however many instances boot
/// on it. Returns how many sessions this call ended (0 when an earlier boot did it).
pub async fn end_all_after_restore(db: &Db, restore: &str) -> Result<u64, sqlx::Error> {
    let mut tx = db.pool()?.begin().await?;
    // The restore first: a boot that finds it recorded touches no session (concurrent
    // boots wait on its key, not on every session row).
    let recorded = sqlx::query(
        "INSERT INTO restores (id, sessions_ended, at) VALUES ($1, 0, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(restore)
    .bind(OffsetDateTime::now_utc().unix_timestamp())
    .execute(&mut *tx)
    .await?;
    if recorded.rows_affected() == 0 {
        // Ended before: sessions made since are live ones, keep them.
        tx.rollback().await?;
        return Ok(0);
    }
    let ended = sqlx::query("DELETE FROM sessions")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("UPDATE restores SET sessions_ended = $1 WHERE id = $2")
        .bind(ended as i64)
        .bind(restore)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ended)
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn encode(record: &Record) -> Result<String, session_store::Error> {
    serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))
}

/// Whose session a record is (its `uid`), kept in a column so a user's sessions can be
/// listed.
fn owner(record: &Record) -> Option<i64> {
    record.data.get(SESSION_USER).and_then(|v| v.as_i64())
}

/// A signed-in session as `/account` lists it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's id: a credential, for the server's use only.
    pub id: String,
    /// Its public name (see `auth::SESSION_HANDLE`); `None` for a session made before
    /// handles existed.
    pub handle: Option<String>,
    pub agent: Option<String>,
    pub address: Option<String>,
    /// Signed in at, and last pushed forward at (ms since the epoch).
    pub since: Option<i64>,
    pub seen: Option<i64>,
    /// The user's session epoch it was made in: one older than the user's is over.
    pub epoch: Option<i64>,
}

/// The user's live sessions (not expired, and of their current epoch: a password change
/// ended the older ones), most recently seen first.
pub async fn for_user(db: &Db, user_id: i64, epoch: i64) -> Result<Vec<SessionInfo>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, data FROM sessions WHERE user_id = $1 AND expires_at > $2")
        .bind(user_id)
        .bind(OffsetDateTime::now_utc().unix_timestamp())
        .fetch_all(db.pool()?)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let data: String = row.try_get("data")?;
        // A record that doesn't parse is not listed (and can't be loaded either).
        let Ok(data) = serde_json::from_str::<serde_json::Value>(&data) else {
            continue;
        };
        let text = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let number = |k: &str| data.get(k).and_then(|v| v.as_i64());
        out.push(SessionInfo {
            id: row.try_get("id")?,
            handle: text(SESSION_HANDLE),
            agent: text(SESSION_AGENT),
            address: text(SESSION_ADDRESS),
            since: number(SESSION_SINCE),
            seen: number(SESSION_SEEN),
            epoch: number(SESSION_EPOCH),
        });
    }
    out.retain(|s| s.epoch == Some(epoch));
    out.sort_by_key(|s| std::cmp::Reverse(s.seen.or(s.since)));
    Ok(out)
}

/// End one of the user's sessions; false if it is not theirs (or gone already).
pub async fn delete_for_user(db: &Db, user_id: i64, id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = encode(record)?;
        // Ids are 128 random bits; on the astronomically unlikely clash, draw again.
        loop {
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, data, expires_at, user_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(record.expiry_date.unix_timestamp())
            .bind(owner(record))
            .execute(self.db.pool().map_err(backend)?)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    /// Update an existing session only. New and cycled ids go through `create`; a session
    /// deleted meanwhile (logout in another tab, the sweeper) stays deleted rather than
    /// being brought back by a request that loaded it just before.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        sqlx::query("UPDATE sessions SET data = $2, expires_at = $3, user_id = $4 WHERE id = $1")
            .bind(record.id.to_string())
            .bind(encode(record)?)
            .bind(record.expiry_date.unix_timestamp())
            .bind(owner(record))
            .execute(self.db.pool().map_err(backend)?)
            .await
            .map_err(backend)?;
        if let Some(cache) = &self.cache {
            cache.saved_session(record);
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let key = id.to_string();
        if let Some(record) = self.cache.as_ref().and_then(|c| c.session(&key)) {
            return Ok(Some(record));
        }
        let ticket = self.cache.as_ref().map(|c| c.ticket());
        let row =
            sqlx::query("SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
                .bind(id.to_string())
                .bind(OffsetDateTime::now_utc().unix_timestamp())
                .fetch_optional(self.db.pool().map_err(backend)?)
                .await
                .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data: String = row.try_get("data").map_err(backend)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(backend)?;
        let record = Record {
            id: *id,
            data: serde_json::from_str(&data)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: OffsetDateTime::from_unix_timestamp(expires_at).map_err(backend)?,
        };
        if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
            cache.put_session(ticket, &record);
        }
        Ok(Some(record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        if let Some(cache) = &self.cache {
            cache.forget_session(&id.to_string());
        }
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(self.db.pool().map_err(backend)?)
            .await
            .map_err(backend)?;
        if let Some(cache) = &self.cache {
            // Again: a read that began between the first forget and the delete.
            cache.forget_session(&id.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseUrl;
    use std::collections::HashMap;

    async fn store() -> (tempfile::TempDir, DbSessionStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let db = Db::connect_lazy(&DatabaseUrl::parse(&url).expect("url")).expect("pool");
        db.migrate().await.expect("migrations");
        (dir, DbSessionStore::new(db))
    }

    fn record() -> Record {
        Record {
            id: Id::default(),
            data: HashMap::from([("user".to_string(), serde_json::json!(1))]),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
        }
    }

    #[tokio::test]
    async fn saving_a_deleted_session_does_not_bring_it_back() {
        let (_dir, store) = store().await;
        let mut r = record();
        store.create(&mut r).await.expect("create");
        assert!(store.load(&r.id).await.expect("load").is_some());

        // A request loaded the session, then a logout elsewhere deleted it; the request's
        // keep-alive save comes last.
        store.delete(&r.id).await.expect("delete");
        store.save(&r).await.expect("save");
        assert!(store.load(&r.id).await.expect("load").is_none());
    }

    #[tokio::test]
    async fn saving_updates_data_and_expiry() {
        let (_dir, store) = store().await;
        let mut r = record();
        store.create(&mut r).await.expect("create");
        r.data.insert("k".into(), serde_json::json!("v"));
        r.expiry_date += time::Duration::hours(1);
        store.save(&r).await.expect("save");
        let loaded = store.load(&r.id).await.expect("load").expect("still there");
        assert_eq!(loaded.data, r.data);
        assert_eq!(
            loaded.expiry_date.unix_timestamp(),
            r.expiry_date.unix_timestamp()
        );
    }
}
