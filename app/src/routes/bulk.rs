//! `POST /images/bulk`: several images at once (a selection of the grid or the trash):
//! move to the trash, restore, or download as one ZIP. Every id must be one of the user's
//! images, or nothing is done (404).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::{csrf, CurrentUser};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{albums, images};
use crate::templates::{AlbumChoosePage, Nav, Page};

/// The most images one request acts on (a page of the grid is at most 500).
const MAX_SELECTED: usize = 1000;
/// Up to this many trashed at once, the next page offers an undo (their ids in its URL).
const UNDO_AT_MOST: usize = 100;

struct BulkForm {
    csrf: String,
    action: String,
    ids: Vec<String>,
    back: Option<String>,
    /// For "album": the album's id, or `new` (then `new_title` names it).
    album: Option<String>,
    new_title: String,
}

/// The form, by hand: it repeats `ids`, which serde's form decoding can't gather.
fn parse(body: &[u8]) -> AppResult<BulkForm> {
    let mut form = BulkForm {
        csrf: String::new(),
        action: String::new(),
        ids: Vec::new(),
        back: None,
        album: None,
        new_title: String::new(),
    };
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "csrf" => form.csrf = v.into_owned(),
            "action" => form.action = v.into_owned(),
            "ids" if !v.is_empty() => form.ids.push(v.into_owned()),
            "back" => form.back = Some(v.into_owned()),
            "album" => form.album = Some(v.into_owned()),
            "new_title" => form.new_title = v.into_owned(),
            _ => {}
        }
    }
    form.ids.sort();
    form.ids.dedup();
    Ok(form)
}

pub async fn act(
    State(state): State<AppState>,
    current: CurrentUser,
    body: Bytes,
) -> AppResult<Response> {
    let form = parse(&body)?;
    csrf::verify(&current.session, &form.csrf).await?;
    if form.ids.is_empty() {
        return Err(AppError::BadRequest(
            "Select at least one image first.".into(),
        ));
    }
    if form.ids.len() > MAX_SELECTED {
        return Err(AppError::BadRequest(format!(
            "At most {MAX_SELECTED} images at once."
        )));
    }
    // Owner checks first, for all of them: another user's id (or a made-up one) anywhere
    // in the selection means nothing is done.
    let mut selected = Vec::with_capacity(form.ids.len());
    for id in &form.ids {
        let img = images::owned(&state.db, id, current.user.id)
            .await?
            .ok_or(AppError::NotFound)?;
        selected.push(std::sync::Arc::new(img));
    }
    match form.action.as_str() {
        "trash" => {
            for img in &selected {
                crate::trash::trash(&state, &current.user, &img.id).await?;
            }
            // The next page offers to undo it, naming the images in its URL: for up to
            // a page of them (a longer URL would not pass every proxy).
            let ids: Vec<&str> = match selected.len() {
                n if n > UNDO_AT_MOST => Vec::new(),
                _ => selected.iter().map(|i| i.id.as_str()).collect(),
            };
            let to = super::gallery::after_trash(form.back.as_deref(), &ids);
            Ok(Redirect::to(&to).into_response())
        }
        "restore" => {
            for img in &selected {
                crate::trash::restore(&state, &current.user, &img.id).await?;
            }
            let back = form
                .back
                .as_deref()
                .filter(|b| !b.is_empty())
                .map(|b| crate::domain::safe_next(Some(b)))
                .unwrap_or_else(|| "/gallery".to_string());
            Ok(Redirect::to(&back).into_response())
        }
        "zip" => {
            // A few at a time per instance; the next waits its turn (up to a while).
            let permit = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                state.zips.clone().acquire_owned(),
            )
            .await
            .map_err(|_| {
                AppError::Conflict(
                    "Other downloads are being prepared on this server; try again in a moment."
                        .into(),
                )
            })?
            .map_err(|e| AppError::Internal(e.into()))?;
            let name = format!(
                "attachment; filename=\"gallery-{}-{}-images.zip\"",
                time::OffsetDateTime::now_utc().date(),
                selected.len()
            );
            let disposition =
                HeaderValue::from_str(&name).map_err(|e| AppError::Internal(e.into()))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/zip"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                crate::archive::zip_of(state.clone(), selected, permit),
            )
                .into_response())
        }
        "album" => {
            // In the order they were taken (or uploaded), as an album of an outing reads.
            selected.sort_by_key(|i| (i.details.taken_at.unwrap_or(i.created_at), i.id.clone()));
            let ids: Vec<String> = selected.iter().map(|i| i.id.clone()).collect();
            to_album(
                &state,
                &current,
                form.album.as_deref(),
                &form.new_title,
                ids,
            )
            .await
        }
        other => Err(AppError::BadRequest(format!(
            "`{other}` is not something to do with a selection: trash, restore, zip or album."
        ))),
    }
}

/// Add the (checked) images to an album: the chosen one, or a new one; without a choice,
/// the page that asks which.
async fn to_album(
    state: &AppState,
    current: &CurrentUser,
    album: Option<&str>,
    new_title: &str,
    ids: Vec<String>,
) -> AppResult<Response> {
    let album = match album {
        None | Some("") => {
            let token = csrf::token(&current.session).await?;
            return Ok(Page::ok(AlbumChoosePage {
                nav: Some(Nav::new(&current.user, token.clone())),
                csrf: token,
                ids,
                albums: albums::titles(&state.db, current.user.id).await?,
            })
            .into_response());
        }
        Some("new") => {
            let title = super::albums::title(new_title)?;
            let id = albums::create(&state.db, current.user.id, &title, "").await?;
            albums::owned(&state.db, &id, current.user.id).await?
        }
        Some(id) => albums::owned(&state.db, id, current.user.id).await?,
    }
    .ok_or(AppError::NotFound)?;
    let added = albums::add(&state.db, &album, &ids).await?;
    Ok(Redirect::to(&format!("/albums/{}?added={added}", album.id)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_ids_are_gathered_once() {
        let f = parse(b"csrf=t&action=zip&ids=b&ids=a&ids=b&ids=&back=%2Ftrash").unwrap();
        assert_eq!(f.ids, vec!["a", "b"]);
        assert_eq!((f.csrf.as_str(), f.action.as_str()), ("t", "zip"));
        assert_eq!(f.back.as_deref(), Some("/trash"));
    }
}
