//! Share links: an album or one image, opened by whoever has the link. Only the token's
//! SHA-256 is stored; a link is looked up by it on every request (no cache), so a
//! revocation, an expiry or an admin's "no sharing" holds at once on every instance.

use sqlx::Row;

use crate::db::{now_millis, Db};

#[derive(Debug, Clone)]
pub struct ShareLink {
    pub id: String,
    pub owner_id: i64,
    pub album_id: Option<String>,
    pub image_id: Option<String>,
    pub password_hash: Option<String>,
    pub expires_at: Option<i64>,
    pub allow_download: bool,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub visits: i64,
    pub last_used_at: Option<i64>,
    /// What it shares, as its owner reads it: the album's title or the image's name.
    pub target: String,
}

pub struct NewLink<'a> {
    pub owner_id: i64,
    pub album_id: Option<&'a str>,
    pub image_id: Option<&'a str>,
    pub token_hash: &'a str,
    pub password_hash: Option<&'a str>,
    pub expires_at: Option<i64>,
    pub allow_download: bool,
}

const LINK_COLUMNS: &str = "share_links.id, share_links.owner_id, share_links.album_id, \
     share_links.image_id, share_links.password_hash, share_links.expires_at, \
     CASE WHEN share_links.allow_download THEN 1 ELSE 0 END AS allow_download, \
     share_links.created_at, share_links.revoked_at, share_links.visits, \
     share_links.last_used_at, COALESCE(albums.title, images.original_name, '') AS target";
const LINK_JOINS: &str = "share_links LEFT JOIN albums ON albums.id = share_links.album_id \
     LEFT JOIN images ON images.id = share_links.image_id";

fn link_from(row: &sqlx::any::AnyRow) -> Result<ShareLink, sqlx::Error> {
    Ok(ShareLink {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        album_id: row.try_get("album_id")?,
        image_id: row.try_get("image_id")?,
        password_hash: row.try_get("password_hash")?,
        expires_at: row.try_get("expires_at")?,
        allow_download: row.try_get::<i64, _>("allow_download")? != 0,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        visits: row.try_get("visits")?,
        last_used_at: row.try_get("last_used_at")?,
        target: row.try_get("target")?,
    })
}

pub async fn create(db: &Db, link: &NewLink<'_>) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO share_links (id, owner_id, album_id, image_id, token_hash, password_hash, \
         expires_at, allow_download, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(link.owner_id)
    .bind(link.album_id)
    .bind(link.image_id)
    .bind(link.token_hash)
    .bind(link.password_hash)
    .bind(link.expires_at)
    .bind(link.allow_download)
    .bind(now_millis())
    .execute(db.pool()?)
    .await?;
    Ok(id)
}

/// The link with this token hash, if it works now: not revoked, not expired, its owner
/// allowed to share. Anything else is `None`, all alike.
pub async fn usable(db: &Db, token_hash: &str) -> Result<Option<ShareLink>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM {LINK_JOINS} JOIN users ON users.id = share_links.owner_id \
         WHERE share_links.token_hash = $1 AND share_links.revoked_at IS NULL \
         AND (share_links.expires_at IS NULL OR share_links.expires_at > $2) \
         AND NOT users.sharing_disabled"
    ))
    .bind(token_hash)
    .bind(now_millis())
    .fetch_optional(db.pool()?)
    .await?;
    row.as_ref().map(link_from).transpose()
}

/// Count a visit of the link's page.
pub async fn visited(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE share_links SET visits = visits + 1, last_used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_millis())
        .execute(db.pool()?)
        .await?;
    Ok(())
}

/// The owner's links (revoked ones too, marked), newest first; of one album or image when
/// given.
pub async fn for_owner(
    db: &Db,
    owner_id: i64,
    album_id: Option<&str>,
    image_id: Option<&str>,
) -> Result<Vec<ShareLink>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM {LINK_JOINS} WHERE share_links.owner_id = $1 \
         AND ($2 IS NULL OR share_links.album_id = $2) \
         AND ($3 IS NULL OR share_links.image_id = $3) \
         ORDER BY share_links.created_at DESC, share_links.id DESC"
    ))
    .bind(owner_id)
    .bind(album_id)
    .bind(image_id)
    .fetch_all(db.pool()?)
    .await?;
    rows.iter().map(link_from).collect()
}

/// Revoke one of the owner's links; false if it is not theirs (or already revoked).
pub async fn revoke(db: &Db, id: &str, owner_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE share_links SET revoked_at = $3 WHERE id = $1 AND owner_id = $2 \
         AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(owner_id)
    .bind(now_millis())
    .execute(db.pool()?)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the user may share (an admin can stop it).
pub async fn sharing_allowed(db: &Db, user_id: i64) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT CASE WHEN sharing_disabled THEN 1 ELSE 0 END AS off FROM users WHERE id = $1",
    )
    .bind(user_id)
    .fetch_optional(db.pool()?)
    .await?;
    Ok(match row {
        Some(r) => r.try_get::<i64, _>("off")? == 0,
        None => false,
    })
}

pub async fn set_sharing_allowed(
    db: &Db,
    user_id: i64,
    allowed: bool,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE users SET sharing_disabled = $2 WHERE id = $1")
        .bind(user_id)
        .bind(!allowed)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}
