//! Which images have their screen-sized rendition stored (see `routes::shared`).

use sqlx::Row;

use crate::db::{now_millis, Db};

/// The stored rendition's content type, if it has been made.
pub async fn ready(db: &Db, image_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT content_type FROM screen_renditions WHERE image_id = $1")
        .bind(image_id)
        .fetch_optional(db.pool()?)
        .await?;
    row.map(|r| r.try_get("content_type")).transpose()
}

/// The rendition is to be made again (its object is missing).
pub async fn forget(db: &Db, image_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM screen_renditions WHERE image_id = $1")
        .bind(image_id)
        .execute(db.pool()?)
        .await?;
    Ok(())
}

/// The rendition is stored (made twice at once: the first record stands).
pub async fn record(db: &Db, image_id: &str, content_type: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO screen_renditions (image_id, content_type, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (image_id) DO NOTHING",
    )
    .bind(image_id)
    .bind(content_type)
    .bind(now_millis())
    .execute(db.pool()?)
    .await?;
    Ok(())
}
