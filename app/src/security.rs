//! Security headers on every response: CSP, no framing, no sniffing, no referrer, and
//! `no-store` on pages so the back button shows nothing private after logout.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub fn content_security_policy(image_origin: Option<&str>) -> String {
    let img = match image_origin {
        Some(origin) => format!("img-src 'self' {origin}"),
        None => "img-src 'self'".to_string(),
    };
    format!(
        "default-src 'none'; {img}; style-src 'self'; script-src 'self'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

pub async fn headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    apply(&state, response.headers_mut());
    response
}

/// The headers every response gets (also `routes::Lane`'s, which answers before the
/// router).
pub fn apply(state: &AppState, h: &mut HeaderMap) {
    if let Some(csp) = &state.csp {
        h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    if state.config.secure_cookies() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
