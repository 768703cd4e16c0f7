//! The request id and the access log: every response carries an `x-request-id` (the
//! client's own if it sent a sane one, else a new random one), and, unless
//! `--access-log false`, one log line per request names it with the method, the path
//! (a share link's token blanked, as in the request span), the status and the latency.
//! Nothing else of the request is logged: no query string, no header, no cookie.
//!
//! The line is written through the non-blocking writer of `logship`: a request never
//! waits on standard error, the journal or CloudWatch.

use std::convert::Infallible;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tower::Service;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client; a longer or odder one is replaced.
const MAX_CLIENT_ID: usize = 64;

/// The log target of the access lines (`RUST_LOG=gallery::access=off` also silences them).
pub const TARGET: &str = "gallery::access";

/// A random UUID (v4) per request, from the thread's RNG (no system call per request).
#[derive(Clone, Copy, Default)]
pub struct MakeRandomId;

impl MakeRequestId for MakeRandomId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let value = HeaderValue::from_str(&id.hyphenated().to_string()).ok()?;
        Some(RequestId::new(value))
    }
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

/// Drops a client's request id that `acceptable_client_id` refuses (a new one is made).
pub async fn screen_client_id(mut request: Request, next: Next) -> Response {
    if let Some(value) = request.headers().get(&REQUEST_ID) {
        if !acceptable_client_id(value) {
            request.headers_mut().remove(&REQUEST_ID);
        }
    }
    next.run(request).await
}

/// The service every connection is served by: the request id (a client's screened, else
/// a new one; returned in the response), then the access line (unless `access_log` is
/// off), around `inner` (`routes::Lane` around the router). Once per request, outside
/// the lane, so a thumbnail answered from memory is logged like any other request.
pub fn around<S>(
    access_log: bool,
    inner: S,
) -> impl Service<
    axum::http::Request<hyper::body::Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    tower::ServiceBuilder::new()
        .map_request(|r: axum::http::Request<hyper::body::Incoming>| r.map(Body::new))
        .layer(axum::middleware::from_fn(screen_client_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRandomId))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .option_layer(access_log.then(|| axum::middleware::from_fn(record)))
        .service(inner)
}

/// The access line: logged when the response's head is ready (the latency does not
/// count streaming the body).
pub async fn record(request: Request, next: Next) -> Response {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        // Filtered out (`RUST_LOG`): nothing to gather.
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().clone();
    let path = crate::sharing::redacted(request.uri().path()).into_owned();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: TARGET,
        request_id = %id,
        method = %method,
        path = %path,
        status,
        latency_ms = (latency_ms * 1000.0).round() / 1000.0,
        "request"
    );
    response
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
        let request = axum::http::Request::new(());
        let mut make = MakeRandomId;
        let a = make.make_request_id(&request).unwrap();
        let b = make.make_request_id(&request).unwrap();
        let a = a.header_value().to_str().unwrap().to_owned();
        assert_ne!(a, b.header_value().to_str().unwrap());
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 4);
    }
}
