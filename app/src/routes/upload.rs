//! `/upload`: one or many images in one submit.

use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::{Stream, StreamExt};
use multer::{Field, Multipart};
use sha2::{Digest, Sha256};

use crate::auth::{csrf, CurrentUser};
use crate::domain::DisplayName;
use crate::error::{AppError, AppResult};
use crate::images::Upload;
use crate::spool::{Spool, Spooled};
use crate::state::AppState;
use crate::templates::{human_size, Nav, Page, UploadPage};

/// More parts than this in one form is abuse, not a photo album.
const MAX_FILES: usize = 100;

/// The request's Content-Length, if it declares one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// An upload whose Content-Length is over the limit is refused before anything is parsed.
/// For a logged-in user, what the client is still sending is read and dropped (bounded in
/// size and time) so the browser shows the 413 page instead of a connection reset; anyone
/// else is sent to the login page at once (nobody can make us read for them).
pub async fn reject_oversize(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.config.limits.max_upload_bytes;
    let Some(len) = declared_length(request.headers()).filter(|len| *len > limit as u64) else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    if let Err(e) = CurrentUser::from_request_parts(&mut parts, &state).await {
        return e.into_response();
    }
    let request = Request::from_parts(parts, body);
    let cap = (limit as u64).saturating_mul(2).saturating_add(8 << 20);
    if len <= cap {
        let mut body = request.into_body().into_data_stream();
        let mut read = 0u64;
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(chunk)) = body.next().await {
                read += chunk.len() as u64;
                if read >= len {
                    break;
                }
            }
        })
        .await;
    }
    AppError::PayloadTooLarge(format!(
        "The upload is larger than the limit of {}.",
        human_size(limit as i64)
    ))
    .into_response()
}

pub async fn form(
    State(state): State<AppState>,
    current: CurrentUser,
) -> AppResult<impl IntoResponse> {
    let token = csrf::token(&current.session).await?;
    Ok(Page::ok(UploadPage {
        nav: Some(Nav::new(&current.user, token.clone())),
        csrf: token,
        max_upload: human_size(state.config.limits.max_upload_bytes as i64),
        max_upload_bytes: state.config.limits.max_upload_bytes,
        max_megapixels: state.config.limits.max_pixels / 1_000_000,
    }))
}

enum ReadError {
    /// The body itself is broken or too large.
    Multipart(multer::Error),
    /// The body is fine so far but its content is refused.
    Refused(AppError),
    /// Writing what arrived to the spool failed: ours, not the client's.
    Spool(std::io::Error),
}

impl From<multer::Error> for ReadError {
    fn from(e: multer::Error) -> Self {
        ReadError::Multipart(e)
    }
}

/// The request body as multipart, parsed by multer directly (axum's `Multipart` is multer
/// over the whole body, with no say in how it is read): at most `limit` bytes in all.
fn multipart(request: Request, limit: usize) -> AppResult<Multipart<'static>> {
    let boundary = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| {
            AppError::BadRequest("The upload is not a multipart/form-data form.".into())
        })?;
    let body = OneChunkAtATime {
        inner: request.into_body().into_data_stream(),
        yielded: false,
    };
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
    Ok(Multipart::with_constraints(body, boundary, constraints))
}

/// A body stream that answers `Pending` (and wakes itself) after each chunk. multer reads
/// its input until `Pending` before it hands out a chunk, so from a fast client it copied
/// the whole socket receive buffer (up to 6 MB) into memory per upload (bench/analysis.md,
/// issue 13): now it holds one chunk at a time, and the spool keeps up.
struct OneChunkAtATime<S> {
    inner: S,
    yielded: bool,
}

impl<S: Stream + Unpin> Stream for OneChunkAtATime<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if self.yielded {
            self.yielded = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = self.inner.poll_next_unpin(cx);
        self.yielded = matches!(next, Poll::Ready(Some(_)));
        next
    }
}

/// A file part written to the spool as it arrives (see `spool`): memory holds one
/// buffer per upload, whatever the size of the file or the number of clients.
/// Its SHA-256 is taken on the way, to find duplicates without reading it again.
async fn receive(
    spool: &Spool,
    field: &mut Field<'static>,
) -> Result<(Spooled, String), ReadError> {
    let mut file = spool.create().await.map_err(ReadError::Spool)?;
    let mut digest = Sha256::new();
    while let Some(chunk) = field.chunk().await? {
        digest.update(&chunk);
        file.write(&chunk).await.map_err(ReadError::Spool)?;
    }
    let hash = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((file.finish().await.map_err(ReadError::Spool)?, hash))
}

/// The CSRF token and the files of an upload form.
async fn read_form(
    multipart: &mut Multipart<'static>,
    spool: &Spool,
) -> Result<(Option<String>, Vec<Upload>), ReadError> {
    let mut token = None;
    let mut uploads = Vec::new();
    let mut parts = 0usize;
    while let Some(mut field) = multipart.next_field().await? {
        parts += 1;
        if parts > MAX_FILES + 1 {
            return Err(ReadError::Refused(AppError::PayloadTooLarge(format!(
                "At most {MAX_FILES} files per upload."
            ))));
        }
        match field.name() {
            Some("csrf") => token = Some(field.text().await?),
            Some("files") => {
                let raw_name = field.file_name().unwrap_or_default().to_string();
                let (file, hash) = receive(spool, &mut field).await?;
                // A file input with nothing chosen still sends an empty, nameless part.
                if raw_name.is_empty() && file.is_empty() {
                    continue;
                }
                let name = DisplayName::parse(&raw_name)
                    .map_err(|e| ReadError::Refused(AppError::BadRequest(e.to_string())))?;
                if file.is_empty() {
                    return Err(ReadError::Refused(AppError::Unprocessable(format!(
                        "{}: the file is empty",
                        name.as_str()
                    ))));
                }
                uploads.push(Upload { name, file, hash });
            }
            _ => {}
        }
    }
    Ok((token, uploads))
}

async fn submit(
    State(state): State<AppState>,
    current: CurrentUser,
    request: Request,
) -> AppResult<crate::images::Ingested> {
    let limit = state.config.limits.max_upload_bytes;
    let mut multipart = multipart(request, limit)?;
    let too_large = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            AppError::PayloadTooLarge(format!(
                "The upload is larger than the limit of {}.",
                human_size(limit as i64)
            ))
        }
        e => AppError::BadRequest(format!("The upload could not be read: {e}")),
    };

    // The body timeout cuts off a body that stalls; this one a body that trickles (a byte
    // now and then would otherwise hold the request, and its buffer, forever).
    let limit_secs = state.config.upload_timeout.as_secs();
    let deadline = tokio::time::Instant::now() + state.config.upload_timeout;
    let read = tokio::time::timeout_at(deadline, read_form(&mut multipart, &state.spool)).await;
    let Ok(read) = read else {
        return Err(AppError::RequestTimeout(format!(
            "The upload took longer than {limit_secs} seconds and was stopped. Try fewer or smaller files."
        )));
    };
    let (token, uploads) = match read {
        Ok(form) => form,
        Err(ReadError::Multipart(e)) => return Err(too_large(e)),
        Err(ReadError::Spool(e)) => {
            return Err(AppError::Internal(
                anyhow::Error::new(e).context("receiving an upload into the spool"),
            ))
        }
        Err(ReadError::Refused(e)) => {
            // Read and drop the rest (bounded by the body limit and the same deadline), so
            // the client receives this answer rather than a reset connection.
            let drain = async {
                while let Ok(Some(mut field)) = multipart.next_field().await {
                    while let Ok(Some(_)) = field.chunk().await {}
                }
            };
            let _ = tokio::time::timeout_at(deadline, drain).await;
            return Err(e);
        }
    };
    csrf::verify(&current.session, token.as_deref().unwrap_or_default()).await?;
    if uploads.is_empty() {
        return Err(AppError::BadRequest(
            "Choose at least one image to upload.".into(),
        ));
    }
    let done = crate::images::ingest(&state, &current.user, uploads).await?;
    tracing::info!(
        user = %current.user.username,
        stored = done.stored.len(),
        duplicates = done.duplicates.len(),
        "uploaded images"
    );
    Ok(done)
}

/// The answer to an upload: the gallery, with what was skipped; or, to a script that
/// sends one file at a time (`Accept: application/json`), what happened to it.
pub async fn answer(
    State(state): State<AppState>,
    current: CurrentUser,
    request: Request,
) -> Response {
    let json = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    match (submit(State(state), current, request).await, json) {
        (Ok(done), true) => axum::Json(done).into_response(),
        (Ok(done), false) => {
            let mut to = format!("/gallery?uploaded={}", done.stored.len());
            if !done.duplicates.is_empty() {
                to.push_str(&format!("&skipped={}", done.duplicates.len()));
            }
            Redirect::to(&to).into_response()
        }
        (Err(e), true) => e.into_json_response(),
        (Err(e), false) => e.into_response(),
    }
}
