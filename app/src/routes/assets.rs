//! Static files compiled into the binary, and the 404 page.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

const CSS: &str = include_str!("../../static/app.css");
const UPLOAD_JS: &str = include_str!("../../static/upload.js");
const VIEWER_JS: &str = include_str!("../../static/viewer.js");
const SELECT_JS: &str = include_str!("../../static/select.js");

pub async fn file(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "upload.js" => (UPLOAD_JS, "text/javascript; charset=utf-8"),
        "viewer.js" => (VIEWER_JS, "text/javascript; charset=utf-8"),
        "select.js" => (SELECT_JS, "text/javascript; charset=utf-8"),
        _ => return AppError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

pub async fn not_found() -> AppError {
    AppError::NotFound
}
