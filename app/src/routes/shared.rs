//! `/s/<token>`: what a share link's visitor sees, without an account. An album's grid
//! and viewer, or one image; nothing else of the owner's is reachable from here. Images
//! are renditions made here (no EXIF, no location, whatever the owner's setting) and
//! thumbnails (made at upload from pixels alone); the original only if the link allows
//! it, without its location. Every failure is the same 404 (`sharing`).

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use super::images::{attachment, not_modified, respond, Caching};
use crate::auth::csrf;
use crate::error::{AppError, AppResult};
use crate::media::{self, location, Kind, SCREEN_EDGE};
use crate::sharing;
use crate::spool::Spooled;
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::store::images::{self, Image};
use crate::store::shares::{self, ShareLink};
use crate::store::{albums, renditions};
use crate::templates::{fit, ImageView, Page, SharedImagePage, SharedPage, SharedPasswordPage};

/// Every answer under `/s/` asks search engines to keep away.
pub async fn noindex(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow, noarchive"),
    );
    response
}

fn client(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    super::auth::client_address(state, peer, headers)
}

fn base(token: &str) -> String {
    format!("/s/{token}")
}

/// The link's landing page: the album's grid, or the shared image; its password form
/// first when it has one this visitor has not given.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let link = sharing::open(&state, &token, client(&state, peer, &headers)).await?;
    if !sharing::unlocked(&session, &link).await? {
        return Ok(Page::ok(SharedPasswordPage {
            nav: None,
            base: base(&token),
            csrf: super::auth::login_token(&state, &session).await?,
        })
        .into_response());
    }
    match (&link.album_id, &link.image_id) {
        (Some(album_id), _) => {
            let album = albums::by_id(&state.db, album_id)
                .await?
                .filter(|a| a.owner_id == link.owner_id)
                .ok_or(AppError::NotFound)?;
            let list = albums::images(&state.db, &album.id).await?;
            shares::visited(&state.db, &link.id).await?;
            Ok(Page::ok(SharedPage {
                nav: None,
                base: base(&token),
                title: album.title,
                description: album.description,
                images: list.iter().map(ImageView::from).collect(),
            })
            .into_response())
        }
        (None, Some(image_id)) => {
            let img = single(&state, &link, image_id).await?;
            shares::visited(&state.db, &link.id).await?;
            Ok(image_page(&token, &link, &img, None).into_response())
        }
        (None, None) => Err(AppError::NotFound),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// The password form: right, and this visitor's session opens the link from now on;
/// wrong, the same 404 as a link that does not exist.
pub async fn unlock(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    csrf::verify(&session, &form.csrf).await?;
    let client = client(&state, peer, &headers);
    sharing::unlock(&state, &session, &token, client, form.password).await?;
    Ok(Redirect::to(&base(&token)).into_response())
}

/// The link's image `id`, if the link shows it now (in the gallery, not the trash).
async fn single(state: &AppState, link: &ShareLink, id: &str) -> AppResult<Image> {
    if link.image_id.as_deref() != Some(id) {
        return Err(AppError::NotFound);
    }
    images::owned(&state.db, id, link.owner_id)
        .await?
        .filter(|i| i.trashed_at.is_none() && !i.purging)
        .ok_or(AppError::NotFound)
}

/// An image a link shows, as the routes under `/s/<token>/i/<id>` are asked for it: the
/// link opened and unlocked, and the image one it shows now; anything else the same 404.
pub struct Shown {
    link: ShareLink,
    img: Image,
    token: String,
    headers: HeaderMap,
}

impl FromRequestParts<AppState> for Shown {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let Path((token, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound)?;
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, msg)| {
                AppError::Internal(anyhow::anyhow!("session layer missing: {msg}"))
            })?;
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("no peer address: {e}")))?;
        let headers = parts.headers.clone();
        let client = client(state, peer, &headers);
        let link = sharing::open_unlocked(state, &session, &token, client).await?;
        let img = match &link.album_id {
            Some(album_id) => albums::image_in(&state.db, album_id, &id)
                .await?
                .filter(|i| i.owner_id == link.owner_id)
                .ok_or(AppError::NotFound)?,
            None => single(state, &link, &id).await?,
        };
        Ok(Shown {
            link,
            img,
            token,
            headers,
        })
    }
}

fn image_page(
    token: &str,
    link: &ShareLink,
    img: &Image,
    neighbours: Option<(Option<String>, Option<String>)>,
) -> Page<SharedImagePage> {
    let (width, height) = fit(img.width, img.height, i64::from(SCREEN_EDGE));
    let in_album = neighbours.is_some();
    let (newer, older) = neighbours.unwrap_or_default();
    Page::ok(SharedImagePage {
        nav: None,
        base: base(token),
        image: ImageView::from(img),
        width,
        height,
        newer,
        older,
        in_album,
        download: link.allow_download,
    })
}

/// One image of the link, in the viewer.
pub async fn image(State(state): State<AppState>, shown: Shown) -> AppResult<Response> {
    let Shown {
        link, img, token, ..
    } = shown;
    let neighbours = match &link.album_id {
        Some(album_id) => {
            let list = albums::images(&state.db, album_id).await?;
            let at = list.iter().position(|i| i.id == img.id);
            let before = at
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| list.get(i))
                .map(|i| i.id.clone());
            let after = at.and_then(|i| list.get(i + 1)).map(|i| i.id.clone());
            Some((before, after))
        }
        None => None,
    };
    Ok(image_page(&token, &link, &img, neighbours).into_response())
}

fn etag(img: &Image, tag: &str) -> AppResult<(String, HeaderValue)> {
    let etag = format!("\"{}-{tag}\"", img.id);
    let value = HeaderValue::from_str(&etag).map_err(|e| AppError::Internal(e.into()))?;
    Ok((etag, value))
}

fn unchanged(value: HeaderValue) -> Response {
    (
        StatusCode::NOT_MODIFIED,
        [
            (header::ETAG, value),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            ),
        ],
    )
        .into_response()
}

/// The thumbnail, as the owner's grid has it: encoded at upload from pixels alone.
pub async fn thumbnail(State(state): State<AppState>, shown: Shown) -> AppResult<Response> {
    let Shown { img, headers, .. } = shown;
    let (tag, value) = etag(&img, "t")?;
    if not_modified(&headers, &tag) {
        return Ok(unchanged(value));
    }
    let key = ObjectKey::stored(&img.thumb_key)?;
    respond(
        &state,
        &key,
        &img.thumb_content_type,
        value,
        Caching::Shared,
        None,
    )
    .await
}

/// The original, read from storage into a spool file of its own (removed when dropped).
async fn copy_of_original(state: &AppState, img: &Image) -> AppResult<Spooled> {
    use tokio::io::AsyncReadExt as _;
    let key = ObjectKey::stored(&img.storage_key)?;
    let mut reader = match state.storage.read(&key).await {
        Ok(r) => r,
        Err(crate::storage::StorageError::NotFound(_)) => return Err(AppError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let mut file = state.spool.create().await.map_err(anyhow::Error::from)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(crate::storage::StorageError::from)?;
        if n == 0 {
            break;
        }
        file.write(&buf[..n]).await.map_err(anyhow::Error::from)?;
    }
    Ok(file.finish().await.map_err(anyhow::Error::from)?)
}

/// Renditions (and location-free copies of originals) made at once on an instance; the
/// next waits its turn, for a while.
pub const RENDITIONS_AT_ONCE: usize = 2;

/// A turn to read a whole original, or a clear "busy" after 30 s of waiting.
async fn turn(state: &AppState) -> AppResult<tokio::sync::OwnedSemaphorePermit> {
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        state.renditions.clone().acquire_owned(),
    )
    .await
    .map_err(|_| {
        AppError::Conflict(
            "This server is busy preparing other photos; try again in a moment.".into(),
        )
    })?
    .map_err(|e| AppError::Internal(e.into()))
}

/// The image for a screen (long edge at most `SCREEN_EDGE`), decoded and encoded again:
/// no byte of the original's metadata is in it. Made the first time it is asked for and
/// kept beside the thumbnail, then served like it (a presigned URL on S3).
pub async fn screen(State(state): State<AppState>, shown: Shown) -> AppResult<Response> {
    let Shown { img, headers, .. } = shown;
    let (tag, value) = etag(&img, "s")?;
    if not_modified(&headers, &tag) {
        return Ok(unchanged(value));
    }
    let key = ObjectKey::stored(&img.thumb_key)?.screen()?;
    let content_type = match renditions::ready(&state.db, &img.id).await? {
        Some(t) => t,
        None => make_screen(&state, &img, &key).await?,
    };
    match respond(
        &state,
        &key,
        &content_type,
        value.clone(),
        Caching::Shared,
        None,
    )
    .await
    {
        // Recorded but not in storage (a storage restored from before it was made):
        // made again, once.
        Err(AppError::NotFound) => {
            renditions::forget(&state.db, &img.id).await?;
            let content_type = make_screen(&state, &img, &key).await?;
            respond(&state, &key, &content_type, value, Caching::Shared, None).await
        }
        other => other,
    }
}

async fn make_screen(state: &AppState, img: &Image, key: &ObjectKey) -> AppResult<String> {
    let _turn = turn(state).await?;
    // Made by another request while this one waited.
    if let Some(t) = renditions::ready(&state.db, &img.id).await? {
        return Ok(t);
    }
    let copy = copy_of_original(state, img).await?;
    let max_pixels = state.config.limits.max_pixels;
    let processed = state
        .blocking(move || -> Result<media::Processed, media::MediaError> {
            let file = std::fs::File::open(copy.path())?;
            let made = media::process_to(std::io::BufReader::new(file), max_pixels, SCREEN_EDGE);
            drop(copy);
            made
        })
        .await?
        .map_err(|e| {
            AppError::Internal(anyhow::anyhow!("a screen rendition of {}: {e}", img.id))
        })?;
    let content_type = processed.thumb_kind.mime();
    state
        .storage
        .put(key, processed.thumb.into(), content_type)
        .await?;
    // Deleted for good (or claimed by the purge) while it was being made: the purge may
    // have removed the rendition before it was stored, so it is removed here.
    let live = images::owned(&state.db, &img.id, img.owner_id)
        .await?
        .is_some_and(|i| !i.purging);
    if !live {
        state.storage.delete(key).await?;
        return Err(AppError::NotFound);
    }
    renditions::record(&state.db, &img.id, content_type).await?;
    Ok(content_type.to_string())
}

/// The original, if the link allows it: without its location (stripped at upload, or
/// now from a copy when its owner keeps locations).
pub async fn original(State(state): State<AppState>, shown: Shown) -> AppResult<Response> {
    let Shown { link, img, .. } = shown;
    if !link.allow_download {
        return Err(AppError::NotFound);
    }
    let disposition = attachment(&img.original_name);
    let (_, value) = etag(&img, "o")?;
    if !img.location_kept {
        let key = ObjectKey::stored(&img.storage_key)?;
        return respond(
            &state,
            &key,
            &img.content_type,
            value,
            Caching::Shared,
            Some(disposition),
        )
        .await;
    }
    let turn = turn(&state).await?;
    let copy = copy_of_original(&state, &img).await?;
    let copy = state
        .blocking(move || -> std::io::Result<Spooled> {
            let mut head = [0u8; 32];
            let n = std::io::Read::read(&mut std::fs::File::open(copy.path())?, &mut head)?;
            let kind = Kind::sniff(&head[..n])
                .ok_or_else(|| std::io::Error::other("not an image we know"))?;
            location::scan_file(copy.path(), kind, true)?;
            Ok(copy)
        })
        .await?
        .map_err(anyhow::Error::from)?;
    let file = tokio::fs::File::open(copy.path())
        .await
        .map_err(anyhow::Error::from)?;
    let len = file.metadata().await.map_err(anyhow::Error::from)?.len();
    // The open file is read to its end even after its name is gone.
    drop(copy);
    drop(turn);
    let content_type =
        HeaderValue::from_str(&img.content_type).map_err(|e| AppError::Internal(e.into()))?;
    let disposition =
        HeaderValue::from_str(&disposition).map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}
