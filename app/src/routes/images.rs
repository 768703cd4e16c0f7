//! Image bytes: owner-checked, typed, never sniffed, cached privately for a long time
//! (keys never change). From S3 a redirect to a presigned URL; from disk a stream.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::{Delivery, ObjectKey, StorageError};
use crate::store::images::Image;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Original,
    Thumbnail,
    /// The original, to be saved under the name it was uploaded with.
    Download,
}

pub async fn download(
    state: State<AppState>,
    current: CurrentUser,
    id: Path<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    serve(state, current, id, headers, Variant::Download).await
}

/// `attachment` with the file's name: an ASCII stand-in for old clients, and the name
/// itself percent-encoded as UTF-8 (RFC 6266, RFC 8187).
pub(super) fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

pub async fn original(
    state: State<AppState>,
    current: CurrentUser,
    id: Path<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    serve(state, current, id, headers, Variant::Original).await
}

/// A thumbnail (the grid's every image, so the busiest request there is) answered wholly
/// from memory, for [`super::Lane`]: when the session, its user and the image are all
/// held (`Cache::signed_in_image`). `None` for anything else, which takes the router
/// (the session layer and [`thumbnail`], which decide and fill the cache).
pub(super) async fn from_memory(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    if !state.health.is_migrated() {
        return None;
    }
    let id = path.strip_prefix("/images/")?.strip_suffix("/thumb")?;
    // Anything percent-encoded (or a second path segment) is the router's to decode.
    if id.contains(['%', '/']) {
        return None;
    }
    let session = session_cookie(headers)?;
    let refresh = crate::auth::refresh_every(state.config.session_idle);
    let img = state.cache.signed_in_image(session, id, refresh)?;
    answer(state, &img, headers, Variant::Thumbnail).await.ok()
}

/// The session cookie's value, when the request carries exactly one (the session layer
/// decides every other case).
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        for pair in value.to_str().ok()?.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if name == crate::auth::SESSION_COOKIE {
                if found.is_some() {
                    return None;
                }
                found = Some(value);
            }
        }
    }
    found
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
    answer(&state, &img, &headers, variant).await
}

/// The owner's image (already owner-checked) as `variant`.
async fn answer(
    state: &AppState,
    img: &Image,
    headers: &HeaderMap,
    variant: Variant,
) -> AppResult<Response> {
    let (key, content_type, tag) = match variant {
        Variant::Original | Variant::Download => (&img.storage_key, &img.content_type, "o"),
        Variant::Thumbnail => (&img.thumb_key, &img.thumb_content_type, "t"),
    };
    let disposition = (variant == Variant::Download).then(|| attachment(&img.original_name));
    let etag = format!("\"{}-{}\"", img.id, tag);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| AppError::Internal(e.into()))?;
    let cache = HeaderValue::from_static("private, max-age=31536000, immutable");

    if disposition.is_none() && not_modified(headers, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    let key = ObjectKey::stored(key)?;
    respond(
        state,
        &key,
        content_type,
        etag_value,
        Caching::Owner,
        disposition,
    )
    .await
}

/// Whether the browser's copy (`If-None-Match`) is this one.
pub(super) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// How long a browser keeps what it was sent.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Caching {
    /// The owner's own images: for a year (keys never change).
    Owner,
    /// Through a share link: asked again each time (a revoked link stops at once), and
    /// a redirect not kept at all.
    Shared,
}

/// The object's bytes: streamed from here, or a redirect to a presigned URL (S3);
/// `disposition` to be saved as a file.
pub(super) async fn respond(
    state: &AppState,
    key: &ObjectKey,
    content_type: &str,
    etag: HeaderValue,
    caching: Caching,
    disposition: Option<String>,
) -> AppResult<Response> {
    let delivered = match (&disposition, caching) {
        (None, Caching::Owner) => state.storage.deliver(key, content_type).await,
        (None, Caching::Shared) => state.storage.deliver_briefly(key, content_type).await,
        (Some(d), _) => state.storage.deliver_attachment(key, content_type, d).await,
    };
    let delivery = match delivered {
        Ok(d) => d,
        Err(StorageError::NotFound(_)) => return Err(AppError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let content_type =
        HeaderValue::from_str(content_type).map_err(|e| AppError::Internal(e.into()))?;
    match delivery {
        Delivery::Stream { body, len } => {
            let cache = match caching {
                Caching::Owner => "private, max-age=31536000, immutable",
                Caching::Shared => "private, no-cache",
            };
            let mut response = (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CONTENT_LENGTH, HeaderValue::from(len)),
                    (header::ETAG, etag),
                    (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
                ],
                body,
            )
                .into_response();
            if let Some(d) = disposition {
                response.headers_mut().insert(
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&d).map_err(|e| AppError::Internal(e.into()))?,
                );
            }
            Ok(response)
        }
        Delivery::Redirect { url, max_age } => {
            let location = HeaderValue::from_str(&url).map_err(|e| AppError::Internal(e.into()))?;
            let cache = match caching {
                Caching::Owner => format!("private, max-age={}", max_age.as_secs()),
                Caching::Shared => "no-store".to_string(),
            };
            let cache = HeaderValue::from_str(&cache).map_err(|e| AppError::Internal(e.into()))?;
            Ok((
                StatusCode::FOUND,
                [(header::LOCATION, location), (header::CACHE_CONTROL, cache)],
            )
                .into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{attachment, session_cookie};
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn only_a_single_session_cookie_is_read_outside_the_session_layer() {
        let cookies = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::COOKIE, HeaderValue::from_static(v));
            }
            h
        };
        let h = cookies(&["a=1; gallery_session=abc; gallery_sync=1"]);
        assert_eq!(session_cookie(&h), Some("abc"));
        let h = cookies(&["a=1", "gallery_session=abc"]);
        assert_eq!(session_cookie(&h), Some("abc"));
        let h = cookies(&["gallery_session=abc; gallery_session=def"]);
        assert_eq!(session_cookie(&h), None, "two: the session layer decides");
        let h = cookies(&["gallery_sessions=abc; xgallery_session=def"]);
        assert_eq!(session_cookie(&h), None);
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn a_download_keeps_its_name_however_it_is_spelled() {
        assert_eq!(
            attachment("beach.jpg"),
            "attachment; filename=\"beach.jpg\"; filename*=UTF-8''beach.jpg"
        );
        assert_eq!(
            attachment("Été \"2024\".jpg"),
            "attachment; filename=\"_t_ _2024_.jpg\"; filename*=UTF-8''%C3%89t%C3%A9%20%222024%22.jpg"
        );
    }
}
