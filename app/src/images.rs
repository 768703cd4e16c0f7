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
use crate::templates::human_size;

/// One file from an upload form, as received.
pub struct Upload {
    pub name: DisplayName,
    pub file: Spooled,
    /// SHA-256 (hex) of the file as received.
    pub hash: String,
}

/// A file of an upload that was not stored: its owner has the same bytes already.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Duplicate {
    /// The name it was uploaded with.
    pub name: String,
    /// The image it repeats (the first of the upload, when a file came twice in one).
    pub of: String,
    /// That image was in the trash, and is back in the gallery now.
    pub in_trash: bool,
}

/// What an upload did: the ids of the images stored, and the duplicates skipped.
#[derive(Debug, Default, serde::Serialize)]
pub struct Ingested {
    pub stored: Vec<String>,
    pub duplicates: Vec<Duplicate>,
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
pub async fn ingest(state: &AppState, owner: &User, uploads: Vec<Upload>) -> AppResult<Ingested> {
    let username = Username::parse(&owner.username).map_err(|e| AppError::Internal(e.into()))?;
    let max_pixels = state.config.limits.max_pixels;
    let keep_location = owner.keep_location;

    let (uploads, duplicates) = skip_duplicates(state, owner, uploads).await?;
    if uploads.is_empty() {
        return Ok(Ingested {
            stored: Vec::new(),
            duplicates,
        });
    }
    check_quota(state, owner, &uploads).await?;

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
    let names: Vec<String> = checked
        .iter()
        .map(|(u, _)| u.name.as_str().to_string())
        .collect();
    let stored = tokio::spawn(store_all(state.clone(), owner_id, username, checked))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    match stored {
        Ok(stored) => Ok(Ingested { stored, duplicates }),
        // The same photo, recorded by another upload since this one was checked (the
        // page sends several at once): nothing of this one was kept.
        Err(AppError::Database(e)) if crate::store::is_unique_violation(&e) => {
            match names.as_slice() {
                [name] => {
                    let mut duplicates = duplicates;
                    duplicates.push(Duplicate {
                        name: name.clone(),
                        of: "a copy uploaded at the same moment".into(),
                        in_trash: false,
                    });
                    Ok(Ingested {
                        stored: Vec::new(),
                        duplicates,
                    })
                }
                _ => Err(AppError::Conflict(
                    "A photo of this upload was uploaded at the same moment by another one, \
                     so nothing of this upload was kept. Upload it again: the photos you \
                     have already will be skipped."
                        .into(),
                )),
            }
        }
        Err(e) => Err(e),
    }
}

/// Files whose bytes the owner has already, or that came twice in this upload, are set
/// apart: reported, not stored. A copy in the trash is restored instead.
async fn skip_duplicates(
    state: &AppState,
    owner: &User,
    uploads: Vec<Upload>,
) -> AppResult<(Vec<Upload>, Vec<Duplicate>)> {
    let hashes: Vec<&str> = uploads.iter().map(|u| u.hash.as_str()).collect();
    let mut known = images::with_hashes(&state.db, owner.id, &hashes).await?;
    let mut kept: Vec<Upload> = Vec::with_capacity(uploads.len());
    let mut duplicates = Vec::new();
    for upload in uploads {
        let mut earlier = None;
        if let Some(img) = known
            .iter_mut()
            .find(|img| img.content_hash.as_deref() == Some(upload.hash.as_str()))
        {
            // A copy in the trash comes back instead: skipping the upload while the trash
            // purges the copy would lose the photo. If the purge took the copy meanwhile,
            // this upload is stored as new.
            let in_trash = img.trashed_at.is_some();
            if !in_trash || images::restore(&state.db, &img.id, owner.id).await? {
                earlier = Some((img.original_name.clone(), in_trash));
                img.trashed_at = None; // back: a second copy in this upload repeats it
            }
        }
        let earlier = earlier.or_else(|| {
            kept.iter()
                .find(|u| u.hash == upload.hash)
                .map(|u| (u.name.as_str().to_string(), false))
        });
        match earlier {
            Some((of, in_trash)) => duplicates.push(Duplicate {
                name: upload.name.as_str().to_string(),
                of,
                in_trash,
            }),
            None => kept.push(upload),
        }
    }
    Ok((kept, duplicates))
}

/// Refuse an upload that would take the owner past their quota (the trash counts), saying
/// how much is left. Checked again when the upload is recorded (`images::insert_all`), where
/// uploads sent at the same time are taken one after another.
async fn check_quota(state: &AppState, owner: &User, uploads: &[Upload]) -> AppResult<()> {
    let Some(quota) = owner.quota_bytes else {
        return Ok(());
    };
    let used = images::usage(&state.db, owner.id).await?;
    let adding: i64 = uploads
        .iter()
        .map(|u| i64::try_from(u.file.len()).unwrap_or(i64::MAX))
        .fold(0i64, i64::saturating_add);
    if used.saturating_add(adding) <= quota {
        return Ok(());
    }
    Err(over_quota(adding, used, quota))
}

/// The refusal of an upload of `adding` bytes when `used` of `quota` are taken.
fn over_quota(adding: i64, used: i64, quota: i64) -> AppError {
    let left = (quota - used).max(0);
    AppError::PayloadTooLarge(format!(
        "This upload needs {}, and {} is left of your {} of storage (the trash counts too: \
         emptying it frees space).",
        human_size(adding),
        human_size(left),
        human_size(quota)
    ))
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
                content_hash: Some(upload.hash.clone()),
                has_location: checked.has_location,
                location_kept: checked.location_kept,
            });
        }
        match images::insert_all(&state.db, owner_id, &rows).await? {
            images::Recorded::Done => Ok(()),
            // Another upload sent at the same time took the room this one was checked for.
            images::Recorded::OverQuota { used, quota } => {
                let adding = rows
                    .iter()
                    .map(|r| r.byte_size)
                    .fold(0i64, i64::saturating_add);
                Err(over_quota(adding, used, quota))
            }
        }
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
