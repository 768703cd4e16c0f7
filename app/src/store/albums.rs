//! Albums: a user's own collections of their images, in an order they choose. An image
//! can be in several; deleting an album keeps its images.

use sqlx::Row;

use crate::db::{now_millis, Db};
use crate::store::images::{image_from, Image, COLUMNS, LIVE};

#[derive(Debug, Clone)]
pub struct Album {
    pub id: String,
    pub owner_id: i64,
    pub title: String,
    pub description: String,
    pub cover_id: Option<String>,
    pub created_at: i64,
}

/// An album as listed: how many images it shows, and the one that stands for it.
#[derive(Debug, Clone)]
pub struct AlbumSummary {
    pub album: Album,
    pub count: i64,
    pub cover: Option<String>,
}

const ALBUM_COLUMNS: &str = "id, owner_id, title, description, cover_id, created_at";

fn album_from(row: &sqlx::any::AnyRow) -> Result<Album, sqlx::Error> {
    Ok(Album {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        cover_id: row.try_get("cover_id")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The images of an album shown to anyone: in the gallery (not the trash), in order.
fn live_members() -> String {
    format!(
        "SELECT {COLUMNS}, album_images.position AS position FROM album_images \
         JOIN images ON images.id = album_images.image_id \
         WHERE album_images.album_id = $1 AND {LIVE} AND images.purge_token IS NULL"
    )
}

pub async fn create(
    db: &Db,
    owner_id: i64,
    title: &str,
    description: &str,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO albums (id, owner_id, title, description, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(owner_id)
    .bind(title)
    .bind(description)
    .bind(now_millis())
    .execute(db.pool()?)
    .await?;
    Ok(id)
}

/// The album if, and only if, it belongs to `owner_id`.
pub async fn owned(db: &Db, id: &str, owner_id: i64) -> Result<Option<Album>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ALBUM_COLUMNS} FROM albums WHERE id = $1 AND owner_id = $2"
    ))
    .bind(id)
    .bind(owner_id)
    .fetch_optional(db.pool()?)
    .await?;
    row.as_ref().map(album_from).transpose()
}

/// Any album by id (for a share link, whose owner is checked with the link).
pub async fn by_id(db: &Db, id: &str) -> Result<Option<Album>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {ALBUM_COLUMNS} FROM albums WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool()?)
        .await?;
    row.as_ref().map(album_from).transpose()
}

/// The owner's albums, newest first, each with its count of images in the gallery and its
/// cover (the chosen one while it is in the gallery, else the first).
pub async fn list_for_owner(db: &Db, owner_id: i64) -> Result<Vec<AlbumSummary>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {ALBUM_COLUMNS} FROM albums WHERE owner_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(owner_id)
    .fetch_all(db.pool()?)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let album = album_from(row)?;
        let images = images(db, &album.id).await?;
        let cover = cover_of(&album, &images);
        out.push(AlbumSummary {
            count: images.len() as i64,
            cover,
            album,
        });
    }
    Ok(out)
}

/// The album's cover among its images: the chosen one if it is there, else the first.
pub fn cover_of(album: &Album, images: &[Image]) -> Option<String> {
    album
        .cover_id
        .as_ref()
        .filter(|c| images.iter().any(|i| &i.id == *c))
        .cloned()
        .or_else(|| images.first().map(|i| i.id.clone()))
}

/// The album's images in the gallery (not the trash), in the album's order.
pub async fn images(db: &Db, album_id: &str) -> Result<Vec<Image>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "{} ORDER BY album_images.position ASC, images.id ASC",
        live_members()
    ))
    .bind(album_id)
    .fetch_all(db.pool()?)
    .await?;
    rows.iter().map(image_from).collect()
}

/// One image of the album, if it is in it and in the gallery.
pub async fn image_in(
    db: &Db,
    album_id: &str,
    image_id: &str,
) -> Result<Option<Image>, sqlx::Error> {
    let row = sqlx::query(&format!("{} AND images.id = $2", live_members()))
        .bind(album_id)
        .bind(image_id)
        .fetch_optional(db.pool()?)
        .await?;
    row.as_ref().map(image_from).transpose()
}

pub async fn update(
    db: &Db,
    id: &str,
    owner_id: i64,
    title: &str,
    description: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE albums SET title = $3, description = $4 WHERE id = $1 AND owner_id = $2",
    )
    .bind(id)
    .bind(owner_id)
    .bind(title)
    .bind(description)
    .execute(db.pool()?)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Delete the album (its links go with it); its images stay in the gallery.
pub async fn delete(db: &Db, id: &str, owner_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM albums WHERE id = $1 AND owner_id = $2")
        .bind(id)
        .bind(owner_id)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Take the album for a change of its order: its row locked on PostgreSQL, the write lock
/// taken at once on SQLite (a read first would have to upgrade, and could fail busy), so
/// two changes of one album's order run one after the other.
async fn lock(conn: &mut sqlx::AnyConnection, album_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE albums SET title = title WHERE id = $1")
        .bind(album_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Add images to the end of the album, in the order given; images already in it stay
/// where they are. Only the album owner's own images are added (the caller checks them;
/// the statement checks again). Returns how many were added.
pub async fn add(db: &Db, album: &Album, image_ids: &[String]) -> Result<u64, sqlx::Error> {
    let mut tx = db.pool()?.begin().await?;
    lock(&mut tx, &album.id).await?;
    let mut added = 0;
    for image_id in image_ids {
        let r = sqlx::query(
            "INSERT INTO album_images (album_id, image_id, position) \
             SELECT $1, id, (SELECT COALESCE(MAX(position), 0) FROM album_images \
             WHERE album_id = $1) + 1 FROM images WHERE id = $2 AND owner_id = $3 \
             ON CONFLICT (album_id, image_id) DO NOTHING",
        )
        .bind(&album.id)
        .bind(image_id)
        .bind(album.owner_id)
        .execute(&mut *tx)
        .await?;
        added += r.rows_affected();
    }
    tx.commit().await?;
    Ok(added)
}

pub async fn remove(db: &Db, album: &Album, image_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM album_images WHERE album_id = $1 AND image_id = $2")
        .bind(&album.id)
        .bind(image_id)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Move an image one place earlier (`by` = -1) or later (+1) among the album's images in
/// the gallery: it swaps places with its neighbour there. Every member (those in the
/// trash too) is renumbered 1..n in the new order, so a photo restored from the trash
/// comes back where it was.
pub async fn shift(db: &Db, album: &Album, image_id: &str, by: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool()?.begin().await?;
    lock(&mut tx, &album.id).await?;
    let live: Vec<String> = sqlx::query(&format!(
        "{} ORDER BY album_images.position ASC, images.id ASC",
        live_members()
    ))
    .bind(&album.id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<_, _>>()?;
    let Some(at) = live.iter().position(|id| id == image_id) else {
        return Ok(false);
    };
    let Some(other) = at.checked_add_signed(by as isize).and_then(|j| live.get(j)) else {
        return Ok(true); // already first (or last)
    };
    let mut all: Vec<String> = sqlx::query(
        "SELECT image_id FROM album_images WHERE album_id = $1 ORDER BY position, image_id",
    )
    .bind(&album.id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| r.try_get("image_id"))
    .collect::<Result<_, _>>()?;
    let (Some(a), Some(b)) = (
        all.iter().position(|id| id == image_id),
        all.iter().position(|id| id == other),
    ) else {
        return Ok(false);
    };
    all.swap(a, b);
    for (n, id) in all.iter().enumerate() {
        sqlx::query("UPDATE album_images SET position = $3 WHERE album_id = $1 AND image_id = $2")
            .bind(&album.id)
            .bind(id)
            .bind(n as i64 + 1)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Make an image of the album its cover.
pub async fn set_cover(db: &Db, album: &Album, image_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE albums SET cover_id = $2 WHERE id = $1 AND EXISTS \
         (SELECT 1 FROM album_images WHERE album_id = $1 AND image_id = $2)",
    )
    .bind(&album.id)
    .bind(image_id)
    .execute(db.pool()?)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The owner's albums that hold this image (for the viewer's "in albums").
pub async fn holding(db: &Db, owner_id: i64, image_id: &str) -> Result<Vec<Album>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT albums.id, albums.owner_id, albums.title, albums.description, albums.cover_id, \
         albums.created_at FROM albums JOIN album_images ON album_images.album_id = albums.id \
         WHERE albums.owner_id = $1 AND album_images.image_id = $2 ORDER BY albums.title",
    )
    .bind(owner_id)
    .bind(image_id)
    .fetch_all(db.pool()?)
    .await?;
    rows.iter().map(album_from).collect()
}

/// The owner's albums as (id, title), by title.
pub async fn titles(db: &Db, owner_id: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, title FROM albums WHERE owner_id = $1 ORDER BY title, id")
        .bind(owner_id)
        .fetch_all(db.pool()?)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("title")?)))
        .collect()
}
