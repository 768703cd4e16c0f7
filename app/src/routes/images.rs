//! Image bytes: owner-checked, typed, never sniffed, cached privately for a long time
//! (keys never change). From S3 a redirect to a presigned URL; from disk a stream.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::{Delivery, ObjectKey, StorageError};

#[derive(Clone, Copy)]
enum Variant {
    Original,
    Thumbnail,
}

pub async fn original(
    state: State<AppState>,
    current: CurrentUser,
    id: Path<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    serve(state, current, id, headers, Variant::Original).await
}

pub async fn thumbnail(
    state: State<AppState>,
    current: CurrentUser,
    id: Path<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    serve(state, current, id, headers, Variant::Thumbnail).await
}

async fn serve(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    variant: Variant,
) -> AppResult<Response> {
    let img = state
        .cache
        .owned_image(&state.db, &id, current.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    let (key, content_type, tag) = match variant {
        Variant::Original => (&img.storage_key, &img.content_type, "o"),
        Variant::Thumbnail => (&img.thumb_key, &img.thumb_content_type, "t"),
    };
    let etag = format!("\"{}-{}\"", img.id, tag);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| AppError::Internal(e.into()))?;
    let cache = HeaderValue::from_static("private, max-age=31536000, immutable");

    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }

    let delivery = match state
        .storage
        .deliver(&ObjectKey::stored(key)?, content_type)
        .await
    {
        Ok(d) => d,
        Err(StorageError::NotFound(_)) => return Err(AppError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let content_type =
        HeaderValue::from_str(content_type).map_err(|e| AppError::Internal(e.into()))?;
    match delivery {
        Delivery::Stream { body, len } => Ok((
            [
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_LENGTH, HeaderValue::from(len)),
                (header::ETAG, etag_value),
                (header::CACHE_CONTROL, cache),
            ],
            body,
        )
            .into_response()),
        Delivery::Redirect { url, max_age } => {
            let location = HeaderValue::from_str(&url).map_err(|e| AppError::Internal(e.into()))?;
            let cache = HeaderValue::from_str(&format!("private, max-age={}", max_age.as_secs()))
                .map_err(|e| AppError::Internal(e.into()))?;
            Ok((
                StatusCode::FOUND,
                [(header::LOCATION, location), (header::CACHE_CONTROL, cache)],
            )
                .into_response())
        }
    }
}
