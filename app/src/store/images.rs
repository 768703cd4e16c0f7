//! Image records: one row per uploaded image, always looked up together with its owner.

use sqlx::Row;

use crate::db::Db;

#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub owner_id: i64,
    pub storage_key: String,
    pub thumb_key: String,
    pub original_name: String,
    pub content_type: String,
    pub thumb_content_type: String,
    pub byte_size: i64,
    pub width: i64,
    pub height: i64,
    pub created_at: i64,
}

const COLUMNS: &str = "id, owner_id, storage_key, thumb_key, original_name, content_type, \
                       thumb_content_type, byte_size, width, height, created_at";

fn image_from(row: &sqlx::any::AnyRow) -> Result<Image, sqlx::Error> {
    Ok(Image {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        storage_key: row.try_get("storage_key")?,
        thumb_key: row.try_get("thumb_key")?,
        original_name: row.try_get("original_name")?,
        content_type: row.try_get("content_type")?,
        thumb_content_type: row.try_get("thumb_content_type")?,
        byte_size: row.try_get("byte_size")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Insert several images at once: all rows or none.
pub async fn insert_all(db: &Db, images: &[Image]) -> Result<(), sqlx::Error> {
    let mut tx = db.pool()?.begin().await?;
    for img in images {
        sqlx::query(&format!(
            "INSERT INTO images ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&img.id)
        .bind(img.owner_id)
        .bind(&img.storage_key)
        .bind(&img.thumb_key)
        .bind(&img.original_name)
        .bind(&img.content_type)
        .bind(&img.thumb_content_type)
        .bind(img.byte_size)
        .bind(img.width)
        .bind(img.height)
        .bind(img.created_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// One page of the owner's images, newest first, and how many they have in all: one
/// query (a window count) where there are rows, a count only past the last page.
pub async fn page_for_owner(
    db: &Db,
    owner_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Image>, i64), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, COUNT(*) OVER () AS total FROM images WHERE owner_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(owner_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool()?)
    .await?;
    let total = match rows.first() {
        Some(row) => row.try_get("total")?,
        None if offset == 0 => 0,
        None => count_for_owner(db, owner_id).await?,
    };
    Ok((
        rows.iter().map(image_from).collect::<Result<_, _>>()?,
        total,
    ))
}

pub async fn count_for_owner(db: &Db, owner_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM images WHERE owner_id = $1")
        .bind(owner_id)
        .fetch_one(db.pool()?)
        .await?
        .try_get("n")
}

/// The image if, and only if, it belongs to `owner_id`.
pub async fn owned(db: &Db, id: &str, owner_id: i64) -> Result<Option<Image>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM images WHERE id = $1 AND owner_id = $2"
    ))
    .bind(id)
    .bind(owner_id)
    .fetch_optional(db.pool()?)
    .await?;
    row.as_ref().map(image_from).transpose()
}

/// Ids of the images shown before (newer) and after (older) this one in the gallery.
pub async fn neighbours(
    db: &Db,
    img: &Image,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    let newer = sqlx::query(
        "SELECT id FROM images WHERE owner_id = $1 \
         AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
         ORDER BY created_at ASC, id ASC LIMIT 1",
    )
    .bind(img.owner_id)
    .bind(img.created_at)
    .bind(&img.id)
    .fetch_optional(db.pool()?)
    .await?;
    let older = sqlx::query(
        "SELECT id FROM images WHERE owner_id = $1 \
         AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(img.owner_id)
    .bind(img.created_at)
    .bind(&img.id)
    .fetch_optional(db.pool()?)
    .await?;
    Ok((
        newer.map(|r| r.try_get("id")).transpose()?,
        older.map(|r| r.try_get("id")).transpose()?,
    ))
}

/// Storage keys of every image of the owner (original and thumbnail).
pub async fn keys_for_owner(db: &Db, owner_id: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT storage_key, thumb_key FROM images WHERE owner_id = $1")
        .bind(owner_id)
        .fetch_all(db.pool()?)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("storage_key")?, r.try_get("thumb_key")?)))
        .collect()
}

pub async fn delete_owned(db: &Db, id: &str, owner_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM images WHERE id = $1 AND owner_id = $2")
        .bind(id)
        .bind(owner_id)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}
