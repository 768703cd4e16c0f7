//! Image records: one row per uploaded image, always looked up together with its owner.

use sqlx::Row;

use crate::config::DatabaseKind;
use crate::db::Db;
use crate::media::details::Details;

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
    /// When it was moved to the trash (ms since the epoch); `None` while in the gallery.
    pub trashed_at: Option<i64>,
    /// The purge has claimed it: it is being deleted for good and can't be restored.
    pub purging: bool,
    /// From EXIF at upload.
    pub details: Details,
    /// The photo recorded where it was taken...
    pub has_location: bool,
    /// ...and the stored original still does (its owner chose to keep locations).
    pub location_kept: bool,
    /// SHA-256 (hex) of the file as uploaded; `None` for images from before it was kept.
    pub content_hash: Option<String>,
}

/// The columns an upload writes.
const INSERTED: &str = "id, owner_id, storage_key, thumb_key, original_name, content_type, \
                        thumb_content_type, byte_size, width, height, created_at, taken_at, \
                        camera, lens, focal_length, aperture, exposure, iso, has_location, \
                        location_kept, content_hash";
pub(crate) const COLUMNS: &str =
    "id, owner_id, storage_key, thumb_key, original_name, content_type, \
                       thumb_content_type, byte_size, width, height, created_at, trashed_at, \
                       purge_token, taken_at, camera, lens, focal_length, aperture, exposure, \
                       iso, CASE WHEN has_location THEN 1 ELSE 0 END AS has_location, \
                       CASE WHEN location_kept THEN 1 ELSE 0 END AS location_kept, content_hash";
/// In the gallery, not in the trash.
pub(crate) const LIVE: &str = "trashed_at IS NULL";

/// The order of the gallery: by when photos were taken (the upload time for those
/// without a date), or by when they were uploaded. Newest first either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    #[default]
    Taken,
    Uploaded,
}

impl Order {
    /// The value the gallery orders by.
    pub fn key(self) -> &'static str {
        match self {
            Order::Taken => "COALESCE(taken_at, created_at)",
            Order::Uploaded => "created_at",
        }
    }

    /// That value for an image.
    pub fn of(self, img: &Image) -> i64 {
        match self {
            Order::Taken => img.details.taken_at.unwrap_or(img.created_at),
            Order::Uploaded => img.created_at,
        }
    }
}

pub(crate) fn image_from(row: &sqlx::any::AnyRow) -> Result<Image, sqlx::Error> {
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
        trashed_at: row.try_get("trashed_at")?,
        purging: row.try_get::<Option<String>, _>("purge_token")?.is_some(),
        details: Details {
            taken_at: row.try_get("taken_at")?,
            camera: row.try_get("camera")?,
            lens: row.try_get("lens")?,
            focal_length: row.try_get("focal_length")?,
            aperture: row.try_get("aperture")?,
            exposure: row.try_get("exposure")?,
            iso: row.try_get("iso")?,
        },
        has_location: row.try_get::<i64, _>("has_location")? != 0,
        location_kept: row.try_get::<i64, _>("location_kept")? != 0,
        content_hash: row.try_get("content_hash")?,
    })
}

/// Insert several images at once: all rows or none.
pub async fn insert_all(db: &Db, owner_id: i64, images: &[Image]) -> Result<Recorded, sqlx::Error> {
    let mut tx = db.pool()?.begin().await?;
    // The owner's uploads are recorded one at a time, so their quota holds across uploads
    // sent at once: PostgreSQL locks the owner's row (a lock, not an update: no change for
    // the caches); SQLite's first insert takes the database's one write lock.
    if db.kind == DatabaseKind::Postgres {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(owner_id)
            .fetch_optional(&mut *tx)
            .await?;
    }
    for img in images {
        sqlx::query(&format!(
            "INSERT INTO images ({INSERTED}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
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
        .bind(img.details.taken_at)
        .bind(&img.details.camera)
        .bind(&img.details.lens)
        .bind(&img.details.focal_length)
        .bind(&img.details.aperture)
        .bind(&img.details.exposure)
        .bind(img.details.iso)
        .bind(img.has_location)
        .bind(img.location_kept)
        .bind(&img.content_hash)
        .execute(&mut *tx)
        .await?;
    }
    // Read under that lock: every upload recorded before this one counts, and a quota
    // the admin changed meanwhile applies.
    let quota: Option<i64> = sqlx::query("SELECT quota_bytes FROM users WHERE id = $1")
        .bind(owner_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get("quota_bytes"))
        .transpose()?
        .flatten();
    if let Some(quota) = quota {
        let used = usage_in(&mut tx, owner_id).await?;
        if used > quota {
            let adding = images
                .iter()
                .map(|i| i.byte_size)
                .fold(0i64, i64::saturating_add);
            tx.rollback().await?;
            return Ok(Recorded::OverQuota {
                used: used.saturating_sub(adding),
                quota,
            });
        }
    }
    tx.commit().await?;
    Ok(Recorded::Done)
}

/// What recording an upload came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Done,
    /// Nothing recorded: the upload does not fit in the owner's quota, of which `used`
    /// bytes were taken before it.
    OverQuota {
        used: i64,
        quota: i64,
    },
}

/// One page of the owner's images in the gallery (not in the trash), newest first, and how many they have in all: one
/// query (a window count) where there are rows, a count only past the last page.
pub async fn page_for_owner(
    db: &Db,
    owner_id: i64,
    order: Order,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Image>, i64), sqlx::Error> {
    let key = order.key();
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, COUNT(*) OVER () AS total FROM images WHERE owner_id = $1 \
         AND {LIVE} ORDER BY {key} DESC, id DESC LIMIT $2 OFFSET $3"
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

/// The owner's images (gallery or trash, not being deleted for good) whose uploaded bytes
/// had one of these hashes.
pub async fn with_hashes(
    db: &Db,
    owner_id: i64,
    hashes: &[&str],
) -> Result<Vec<Image>, sqlx::Error> {
    let mut found = Vec::new();
    // One small query per hash: uploads hold at most a hundred files.
    for hash in hashes {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM images WHERE owner_id = $1 AND content_hash = $2 \
             AND purge_token IS NULL LIMIT 1"
        ))
        .bind(owner_id)
        .bind(*hash)
        .fetch_all(db.pool()?)
        .await?;
        for row in &rows {
            found.push(image_from(row)?);
        }
    }
    Ok(found)
}

/// Bytes of originals the owner keeps, the trash included (what a quota counts).
pub async fn usage(db: &Db, owner_id: i64) -> Result<i64, sqlx::Error> {
    let mut conn = db.pool()?.acquire().await?;
    usage_in(&mut conn, owner_id).await
}

const USAGE: &str =
    "SELECT CAST(COALESCE(SUM(byte_size), 0) AS BIGINT) AS n FROM images WHERE owner_id = $1";

async fn usage_in(conn: &mut sqlx::AnyConnection, owner_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(USAGE)
        .bind(owner_id)
        .fetch_one(conn)
        .await?
        .try_get("n")
}

/// How many images the owner has in the gallery (not counting the trash).
pub async fn count_for_owner(db: &Db, owner_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM images WHERE owner_id = $1 AND {LIVE}"
    ))
    .bind(owner_id)
    .fetch_one(db.pool()?)
    .await?
    .try_get("n")
}

/// The image if, and only if, it belongs to `owner_id` (in the gallery or in the trash).
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

/// Ids of the images shown before (newer) and after (older) this one in the gallery in
/// `order` (the trash is not browsed this way).
pub async fn neighbours(
    db: &Db,
    img: &Image,
    order: Order,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    let key = order.key();
    let at = order.of(img);
    let newer = sqlx::query(&format!(
        "SELECT id FROM images WHERE owner_id = $1 AND {LIVE} \
         AND ({key} > $2 OR ({key} = $2 AND id > $3)) \
         ORDER BY {key} ASC, id ASC LIMIT 1"
    ))
    .bind(img.owner_id)
    .bind(at)
    .bind(&img.id)
    .fetch_optional(db.pool()?)
    .await?;
    let older = sqlx::query(&format!(
        "SELECT id FROM images WHERE owner_id = $1 AND {LIVE} \
         AND ({key} < $2 OR ({key} = $2 AND id < $3)) \
         ORDER BY {key} DESC, id DESC LIMIT 1"
    ))
    .bind(img.owner_id)
    .bind(at)
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

/// Move an image of the owner's gallery to the trash; false if there is no such image
/// in the gallery (someone else's, missing, or already in the trash).
pub async fn trash(db: &Db, id: &str, owner_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(&format!(
        "UPDATE images SET trashed_at = $3 WHERE id = $1 AND owner_id = $2 AND {LIVE}"
    ))
    .bind(id)
    .bind(owner_id)
    .bind(now)
    .execute(db.pool()?)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Bring an image of the owner's trash back to the gallery; false if it is not in their
/// trash or the purge has claimed it.
pub async fn restore(db: &Db, id: &str, owner_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE images SET trashed_at = NULL WHERE id = $1 AND owner_id = $2 \
         AND trashed_at IS NOT NULL AND purge_token IS NULL",
    )
    .bind(id)
    .bind(owner_id)
    .execute(db.pool()?)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One page of the owner's trash, most recently trashed first, and how many are in it.
pub async fn trash_page(
    db: &Db,
    owner_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Image>, i64), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, COUNT(*) OVER () AS total FROM images WHERE owner_id = $1 \
         AND trashed_at IS NOT NULL ORDER BY trashed_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(owner_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool()?)
    .await?;
    let total = match rows.first() {
        Some(row) => row.try_get("total")?,
        None if offset == 0 => 0,
        None => sqlx::query(
            "SELECT COUNT(*) AS n FROM images WHERE owner_id = $1 AND trashed_at IS NOT NULL",
        )
        .bind(owner_id)
        .fetch_one(db.pool()?)
        .await?
        .try_get("n")?,
    };
    Ok((
        rows.iter().map(image_from).collect::<Result<_, _>>()?,
        total,
    ))
}

/// Claim images of the owner's trash for deleting for good (`id`: that one; `None`: all
/// of them), including ones a purge claimed before (the user asked again: a purge that
/// failed is retried now). Returns what was claimed.
pub async fn claim_owned(
    db: &Db,
    token: &str,
    now: i64,
    owner_id: i64,
    id: Option<&str>,
) -> Result<Vec<Image>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "UPDATE images SET purge_token = $1, purge_claimed_at = $2 \
         WHERE owner_id = $3 AND trashed_at IS NOT NULL AND ($4 IS NULL OR id = $4) \
         RETURNING {COLUMNS}"
    ))
    .bind(token)
    .bind(now)
    .bind(owner_id)
    .bind(id)
    .fetch_all(db.pool()?)
    .await?;
    rows.iter().map(image_from).collect()
}

/// Claim up to `limit` images whose time in the trash is over (trashed before
/// `trashed_before`), and images whose earlier claim is older than `stale_before` (a purge
/// that died midway). The condition is repeated outside the subquery so that of two
/// instances claiming at once, the second skips what the first took (PostgreSQL re-checks
/// the outer condition on a row another transaction just updated; SQLite has one writer).
pub async fn claim_expired(
    db: &Db,
    token: &str,
    now: i64,
    trashed_before: i64,
    stale_before: i64,
    limit: i64,
) -> Result<Vec<Image>, sqlx::Error> {
    let due = "((trashed_at < $3 AND purge_token IS NULL) \
               OR (purge_token IS NOT NULL AND purge_claimed_at < $4))";
    let rows = sqlx::query(&format!(
        "UPDATE images SET purge_token = $1, purge_claimed_at = $2 \
         WHERE id IN (SELECT id FROM images WHERE trashed_at IS NOT NULL AND {due} \
                      ORDER BY trashed_at LIMIT $5) \
         AND trashed_at IS NOT NULL AND {due} RETURNING {COLUMNS}"
    ))
    .bind(token)
    .bind(now)
    .bind(trashed_before)
    .bind(stale_before)
    .bind(limit)
    .fetch_all(db.pool()?)
    .await?;
    rows.iter().map(image_from).collect()
}

/// Delete the row of a purged image, if the claim is still this purge's.
pub async fn delete_claimed(db: &Db, id: &str, token: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM images WHERE id = $1 AND purge_token = $2")
        .bind(id)
        .bind(token)
        .execute(db.pool()?)
        .await?;
    Ok(r.rows_affected() == 1)
}
