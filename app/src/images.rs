//! Taking in an upload: check, thumbnail, store, record, ordered so storage and database
//! never disagree in a way the user can't see or retry. (Deleting: `trash`.)

use std::io::{BufReader, Seek};

use bytes::Bytes;
use uuid::Uuid;

use crate::db::now_millis;
use crate::domain::{DisplayName, Username};
use crate::error::{AppError, AppResult};
use crate::media;
use crate::spool::Spooled;
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::store::images::{self, Image};
use crate::store::users::User;

/// One file from an upload form, as received.
pub struct Upload {
    pub name: DisplayName,
    pub file: Spooled,
}

/// A received file, checked: its thumbnail, details, and what became of its location.
struct Checked {
    processed: media::Processed,
    details: media::details::Details,
    has_location: bool,
    location_kept: bool,
}

/// How much of a received file the decoders read at a time.
const READ_BUFFER: usize = 64 << 10;

/// Check every file, then store them all, then record them all: a bad file anywhere
/// means nothing is stored; a storage or database failure removes what was written.
pub async fn ingest(
    state: &AppState,
    owner: &User,
    uploads: Vec<Upload>,
) -> AppResult<Vec<String>> {
    let username = Username::parse(&owner.username).map_err(|e| AppError::Internal(e.into()))?;
    let max_pixels = state.config.limits.max_pixels;

    let keep_location = owner.keep_location;

    let mut checked = Vec::with_capacity(uploads.len());
    for upload in uploads {
        let path = upload.file.path().to_path_buf();
        let processed = state
            .blocking(move || -> Result<Checked, media::MediaError> {
                let file = std::fs::File::open(&path)?;
                let mut input = BufReader::with_capacity(READ_BUFFER, file);
                let processed = media::process(&mut input, max_pixels)?;
                input.rewind()?;
                let details = media::details::read(&mut input);
                drop(input);
                // Unless its owner keeps locations, the original is stored without one.
                let has_location =
                    media::location::scan_file(&path, processed.kind, !keep_location)?;
                Ok(Checked {
                    processed,
                    details,
                    has_location,
                    location_kept: has_location && keep_location,
                })
            })
            .await?
            .map_err(|e| AppError::media(upload.name.as_str(), e))?;
        checked.push((upload, processed));
    }

    // Storing and recording run as a task of their own: if the client goes away now,
    // the request's future is dropped, and with it any cleanup it would have done; the
    // task finishes either way (every object recorded, or every object removed).
    let owner_id = owner.id;
    tokio::spawn(store_all(state.clone(), owner_id, username, checked))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
}

async fn store_all(
    state: AppState,
    owner_id: i64,
    username: Username,
    checked: Vec<(Upload, Checked)>,
) -> AppResult<Vec<String>> {
    let now = now_millis();
    let mut written: Vec<ObjectKey> = Vec::new();
    let mut rows = Vec::with_capacity(checked.len());
    let result: AppResult<()> = async {
        for (upload, checked) in checked {
            let processed = checked.processed;
            let id = Uuid::new_v4();
            let key = ObjectKey::original(&username, id, processed.kind.ext());
            let thumb_key = ObjectKey::thumbnail(&username, id, processed.thumb_kind.ext());
            let size = i64::try_from(upload.file.len()).unwrap_or(i64::MAX);
            // Noted before the write: a store that fails after its object landed (a
            // lost answer, a failed folder sync) must still be cleaned up.
            written.push(key.clone());
            state
                .storage
                .put_file(&key, upload.file.path(), processed.kind.mime())
                .await?;
            written.push(thumb_key.clone());
            state
                .storage
                .put(
                    &thumb_key,
                    Bytes::from(processed.thumb),
                    processed.thumb_kind.mime(),
                )
                .await?;
            rows.push(Image {
                id: id.to_string(),
                owner_id,
                storage_key: key.as_str().to_string(),
                thumb_key: thumb_key.as_str().to_string(),
                original_name: upload.name.as_str().to_string(),
                content_type: processed.kind.mime().to_string(),
                thumb_content_type: processed.thumb_kind.mime().to_string(),
                byte_size: size,
                width: i64::from(processed.width),
                height: i64::from(processed.height),
                created_at: now,
                trashed_at: None,
                purging: false,
                details: checked.details,
                has_location: checked.has_location,
                location_kept: checked.location_kept,
            });
        }
        images::insert_all(&state.db, &rows).await?;
        Ok(())
    }
    .await;

    if let Err(e) = result {
        for key in &written {
            if let Err(cleanup) = state.storage.delete(key).await {
                tracing::error!(key = key.as_str(), error = %cleanup, "could not remove object of a failed upload");
            }
        }
        return Err(e);
    }
    Ok(rows.into_iter().map(|r| r.id).collect())
}
