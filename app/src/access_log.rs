//! The request id and the access log: every response carries an `x-request-id` (the
//! client's own if it sent a sane one, else a new random one), and, unless
//! `--access-log false`, one log line per request names it with the method, the path
//! (a share link's token blanked, as in the request span), the status and the latency.
//! Nothing else of the request is logged: no query string, no header, no cookie.
//!
//! The line is written through the non-blocking writer of `logship`: a request never
//! waits on standard error, the journal or CloudWatch.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use tower::Service;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client; a longer or odder one is replaced.
const MAX_CLIENT_ID: usize = 64;

/// The log target of the access lines (`RUST_LOG=gallery::access=off` also silences them).
pub const TARGET: &str = "gallery::access";

/// A new request id: a random UUID (v4), from the thread's RNG (no system call per
/// request).
pub fn new_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Whether a client's `x-request-id` is kept: up to 64 of `A-Z a-z 0-9 - _ . :`, so an id
/// in a log line is never a vehicle for anything else.
pub fn acceptable_client_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_CLIENT_ID
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The service every connection is served by: the request id (a client's kept if
/// [`acceptable_client_id`], else a new one; set on the request and returned in the
/// response), then the access line (unless `access_log` is off or `RUST_LOG` filters it
/// out), around `inner` (`routes::Lane` around the router). Once per request, outside the
/// lane, so a thumbnail answered from memory is logged like any other request; one plain
/// service rather than a stack of middleware, as every request pays for it.
pub fn around<S>(access_log: bool, inner: S) -> Around<S> {
    Around { access_log, inner }
}

#[derive(Clone)]
pub struct Around<S> {
    access_log: bool,
    inner: S,
}

/// What the access line says of a request, taken before it is handed on.
struct Seen {
    started: Instant,
    method: Method,
    path: String,
}

impl<S, B> Service<Request<B>> for Around<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut request = request.map(Body::new);
        let id = match request.headers().get(&REQUEST_ID) {
            Some(v) if acceptable_client_id(v) => v.clone(),
            _ => {
                let v = new_id();
                request.headers_mut().insert(REQUEST_ID, v.clone());
                v
            }
        };
        let seen = (self.access_log && tracing::enabled!(target: TARGET, tracing::Level::INFO))
            .then(|| Seen {
                started: Instant::now(),
                method: request.method().clone(),
                path: crate::sharing::redacted(request.uri().path()).into_owned(),
            });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let Ok(mut response) = answer.await;
            if let Some(seen) = seen {
                // Logged when the response's head is ready (the latency does not count
                // streaming the body).
                let latency_ms = seen.started.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(
                    target: TARGET,
                    request_id = %id.to_str().unwrap_or("-"),
                    method = %seen.method,
                    path = %seen.path,
                    status = response.status().as_u16(),
                    latency_ms = (latency_ms * 1000.0).round() / 1000.0,
                    "request"
                );
            }
            response.headers_mut().entry(REQUEST_ID).or_insert(id);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_plain_and_short() {
        for ok in ["abc", "0f3c-11aa", "1-67891233-abcdef", "a.b_c:d"] {
            assert!(acceptable_client_id(&HeaderValue::from_static(ok)), "{ok}");
        }
        let long = "a".repeat(MAX_CLIENT_ID + 1);
        for bad in ["", "a b", "a\"b", "{\"x\":1}", "a/b", long.as_str()] {
            assert!(
                !acceptable_client_id(&HeaderValue::from_str(bad).unwrap()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn made_ids_are_distinct_uuids() {
        let (a, b) = (new_id(), new_id());
        let a = a.to_str().unwrap().to_owned();
        assert_ne!(a, b.to_str().unwrap());
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 4);
    }
}
