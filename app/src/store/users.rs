//! Users: lookup, listing with image counts, create, update and delete.

use sqlx::{AnyConnection, Row};

use crate::db::{now_millis, Db};

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub full_name: String,
    pub is_admin: bool,
    pub session_epoch: i64,
    /// Keep the location in the originals they upload (see `media::location`).
    pub keep_location: bool,
    /// Bytes of originals they may keep, the trash included; `None`: no limit.
    pub quota_bytes: Option<i64>,
    /// An admin has not turned their share links off (`users.sharing_disabled`).
    pub sharing_allowed: bool,
}

#[derive(Debug, Clone)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub full_name: String,
    pub is_admin: bool,
    pub image_count: i64,
    /// Share links that still open (not revoked, not expired).
    pub link_count: i64,
    /// An admin has not turned sharing off.
    pub sharing_allowed: bool,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub full_name: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
}

/// sqlx's `Any` driver can't decode SQLite booleans, so the flags are read as integers
/// on both backends.
const FLAGS: &str = "CASE WHEN is_admin THEN 1 ELSE 0 END AS is_admin, \
                          CASE WHEN keep_location THEN 1 ELSE 0 END AS keep_location, \
                          CASE WHEN sharing_disabled THEN 0 ELSE 1 END AS sharing";
const USER_COLUMNS: &str = "id, username, full_name, session_epoch, quota_bytes";

fn flag(row: &sqlx::any::AnyRow) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>("is_admin")? != 0)
}

fn user_from(row: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        full_name: row.try_get("full_name")?,
        is_admin: flag(row)?,
        session_epoch: row.try_get("session_epoch")?,
        keep_location: row.try_get::<i64, _>("keep_location")? != 0,
        quota_bytes: row.try_get("quota_bytes")?,
        sharing_allowed: row.try_get::<i64, _>("sharing")? != 0,
    })
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, {FLAGS} FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool()?)
    .await?;
    row.as_ref().map(user_from).transpose()
}

pub async fn by_name(db: &Db, username: &str) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, {FLAGS} FROM users WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(db.pool()?)
    .await?;
    row.as_ref().map(user_from).transpose()
}

/// The user and their password hash, for login.
pub async fn credentials(db: &Db, username: &str) -> Result<Option<(User, String)>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, {FLAGS}, password_hash FROM users WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(db.pool()?)
    .await?;
    match row {
        Some(row) => Ok(Some((user_from(&row)?, row.try_get("password_hash")?))),
        None => Ok(None),
    }
}

pub async fn list_with_counts(db: &Db) -> Result<Vec<UserSummary>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.id, u.username, u.full_name, CASE WHEN u.is_admin THEN 1 ELSE 0 END AS is_admin, \
         COUNT(i.id) AS image_count, \
         CASE WHEN u.sharing_disabled THEN 0 ELSE 1 END AS sharing, \
         (SELECT COUNT(*) FROM share_links s WHERE s.owner_id = u.id \
          AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $1)) AS link_count \
         FROM users u LEFT JOIN images i ON i.owner_id = u.id \
         GROUP BY u.id, u.username, u.full_name, u.is_admin, u.sharing_disabled \
         ORDER BY u.username",
    )
    .bind(crate::db::now_millis())
    .fetch_all(db.pool()?)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(UserSummary {
                id: row.try_get("id")?,
                username: row.try_get("username")?,
                full_name: row.try_get("full_name")?,
                is_admin: flag(row)?,
                image_count: row.try_get("image_count")?,
                link_count: row.try_get("link_count")?,
                sharing_allowed: row.try_get::<i64, _>("sharing")? != 0,
            })
        })
        .collect()
}

pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(db.pool()?)
        .await?
        .try_get("n")
}

/// Insert a user; a taken username is a unique violation (see [`super::is_unique_violation`]).
pub async fn insert(db: &Db, user: &NewUser<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (username, full_name, password_hash, is_admin, session_epoch, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5) RETURNING id",
    )
    .bind(user.username)
    .bind(user.full_name)
    .bind(user.password_hash)
    .bind(user.is_admin)
    .bind(now_millis())
    .fetch_one(db.pool()?)
    .await?
    .try_get("id")
}

/// Insert the first admin only if the table is still empty (two instances may race here).
pub async fn insert_if_none(db: &Db, user: &NewUser<'_>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO users (username, full_name, password_hash, is_admin, session_epoch, created_at) \
         SELECT $1, $2, $3, $4, 0, $5 WHERE NOT EXISTS (SELECT 1 FROM users)",
    )
    .bind(user.username)
    .bind(user.full_name)
    .bind(user.password_hash)
    .bind(user.is_admin)
    .bind(now_millis())
    .execute(db.pool()?)
    .await;
    match done {
        Ok(r) => Ok(r.rows_affected() == 1),
        // The other instance won the race on the unique username.
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Done,
    NotFound,
    /// Refused: it would leave the gallery without an admin.
    LastAdmin,
}

/// Update name and role, and the password when given (which also ends the user's sessions).
pub async fn update(
    db: &Db,
    id: i64,
    full_name: &str,
    is_admin: bool,
    new_password_hash: Option<&str>,
) -> Result<Change, sqlx::Error> {
    let mut tx = db.pool()?.begin().await?;
    let Some((was_admin, other_admins)) = lock_admins(&mut tx, id).await? else {
        return Ok(Change::NotFound);
    };
    if was_admin && !is_admin && other_admins == 0 {
        return Ok(Change::LastAdmin);
    }
    let bump: i64 = if new_password_hash.is_some() { 1 } else { 0 };
    sqlx::query(
        "UPDATE users SET full_name = $2, is_admin = $3, \
         password_hash = COALESCE($4, password_hash), session_epoch = session_epoch + $5 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(full_name)
    .bind(is_admin)
    .bind(new_password_hash)
    .bind(bump)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Change::Done)
}

/// A user's own password change: the new hash, and the session epoch bumped (every
/// session of theirs ends); returns the new epoch, for the session that made the change
/// to keep. Only if nothing changed since the request checked them (`epoch`, and
/// `old_hash`, the hash the current password was verified against): otherwise an
/// admin's reset made meanwhile would be undone. `None` if the user is gone or changed.
pub async fn change_own_password(
    db: &Db,
    id: i64,
    epoch: i64,
    old_hash: &str,
    hash: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE users SET password_hash = $2, session_epoch = session_epoch + 1 \
         WHERE id = $1 AND session_epoch = $3 AND password_hash = $4 RETURNING session_epoch",
    )
    .bind(id)
    .bind(hash)
    .bind(epoch)
    .bind(old_hash)
    .fetch_optional(db.pool()?)
    .await?;
    row.map(|r| r.try_get("session_epoch")).transpose()
}

/// "Sign out everywhere": the session epoch bumped (every session of the user is refused
/// from now on, on every instance) and their sessions deleted, in one transaction.
/// False if the user is gone.
pub async fn end_every_session(db: &Db, id: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool()?.begin().await?;
    let bumped = sqlx::query("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(bumped.rows_affected() == 1)
}

/// A user's storage quota in bytes (`None`: no limit); false if the user is gone.
pub async fn set_quota(db: &Db, id: i64, quota: Option<i64>) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE users SET quota_bytes = $2 WHERE id = $1")
        .bind(id)
        .bind(quota)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the locations in this user's future uploads are kept; false if the user is gone.
pub async fn set_keep_location(db: &Db, id: i64, keep: bool) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE users SET keep_location = $2 WHERE id = $1")
        .bind(id)
        .bind(keep)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// A user's own full name; false if the user is gone.
pub async fn set_full_name(db: &Db, id: i64, full_name: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE users SET full_name = $2 WHERE id = $1")
        .bind(id)
        .bind(full_name)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Set a password by username (the CLI's `users passwd`).
pub async fn set_password(db: &Db, username: &str, hash: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET password_hash = $2, session_epoch = session_epoch + 1 WHERE username = $1",
    )
    .bind(username)
    .bind(hash)
    .execute(db.pool()?)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Delete the user and their image rows in one transaction; returns the storage keys
/// (original, thumbnail) of the rows it deleted, so the caller can remove any object it
/// did not know of (an upload that finished meanwhile). The user's row is locked first
/// (see [`lock_admins`]), so on Postgres an upload inserting an image for them waits and
/// then fails its foreign key, and removes its own objects, rather than leaving a row.
pub async fn delete(db: &Db, id: i64) -> Result<(Change, Vec<(String, String)>), sqlx::Error> {
    let mut tx = db.pool()?.begin().await?;
    let Some((is_admin, other_admins)) = lock_admins(&mut tx, id).await? else {
        return Ok((Change::NotFound, Vec::new()));
    };
    if is_admin && other_admins == 0 {
        return Ok((Change::LastAdmin, Vec::new()));
    }
    let rows =
        sqlx::query("DELETE FROM images WHERE owner_id = $1 RETURNING storage_key, thumb_key")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    let keys = rows
        .iter()
        .map(|r| Ok((r.try_get("storage_key")?, r.try_get("thumb_key")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((Change::Done, keys))
}

/// Whether the user exists and is an admin, plus how many *other* admins there are.
/// The no-op write takes row locks on the target and every admin on Postgres (SQLite
/// serialises writers anyway), so two admins can't demote each other at the same moment.
async fn lock_admins(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<(bool, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE users SET session_epoch = session_epoch WHERE is_admin OR id = $1 RETURNING id, CASE WHEN is_admin THEN 1 ELSE 0 END AS is_admin",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut target = None;
    let mut others = 0;
    for row in &rows {
        let row_id: i64 = row.try_get("id")?;
        let admin = flag(row)?;
        if row_id == id {
            target = Some(admin);
        } else if admin {
            others += 1;
        }
    }
    Ok(target.map(|admin| (admin, others)))
}
