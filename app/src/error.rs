//! One error type for every handler; it becomes a plain page with the right status.
//! Server-side failures are logged with their cause; the user never sees internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::media::MediaError;
use crate::storage::StorageError;
use crate::templates::{ErrorPage, Page};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    /// Refused for this user, with why (an admin turned a feature off).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    #[error("login required")]
    LoginRequired { next: String },
    #[error("the form has expired or did not come from this site")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMedia(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("too many attempts")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("starting up or waiting for the database")]
    Unavailable,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("session store: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

/// Errors that mean "the database is not reachable right now" (an outage, a maintenance
/// reboot, a failover), not "this request is wrong": the pool gave up, the connection
/// broke or was refused, or the server is shutting down or overloaded.
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE classes 08 (connection exception), 57 (operator intervention: admin
        // shutdown, cannot connect now), 53 (insufficient resources: too many connections).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c.starts_with("53")),
        _ => false,
    }
}

impl AppError {
    /// An upload's media problem, naming the file it concerns.
    pub fn media(file: &str, err: MediaError) -> Self {
        let msg = format!("{file}: {err}");
        match err {
            MediaError::Unsupported => AppError::UnsupportedMedia(msg),
            MediaError::TooManyPixels { .. } | MediaError::Corrupt(_) => {
                AppError::Unprocessable(msg)
            }
            MediaError::Io(_) => AppError::Internal(anyhow::anyhow!(msg)),
        }
    }
}

impl AppError {
    /// Status, title and the message shown for this error. Internals are logged here
    /// and replaced by a generic message.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            AppError::LoginRequired { .. } => (
                StatusCode::UNAUTHORIZED,
                "Log in",
                "Your session has ended. Log in again.".to_string(),
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is nothing here.".to_string()),
            AppError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Only administrators can open this page.".to_string(),
            ),
            AppError::NotAllowed(m) => (StatusCode::FORBIDDEN, "Not allowed", m.clone()),
            AppError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form has expired or did not come from this site. Go back, reload the page and try again."
                    .to_string(),
            ),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m.clone()),
            AppError::UnsupportedMedia(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported file", m.clone()),
            AppError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "Upload too large", m.clone()),
            AppError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, "Cannot use this image", m.clone()),
            AppError::Conflict(m) => (StatusCode::CONFLICT, "Not possible", m.clone()),
            AppError::RequestTimeout(m) => (StatusCode::REQUEST_TIMEOUT, "Upload too slow", m.clone()),
            AppError::TooManyRequests { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!("Too many failed attempts. Try again in {retry_after_secs} seconds."),
            ),
            AppError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Starting up",
                "The gallery is starting or waiting for its database. Try again in a moment.".to_string(),
            ),
            AppError::Database(e) if crate::store::is_unique_violation(e) => (
                StatusCode::CONFLICT,
                "Already exists",
                "That name is already taken.".to_string(),
            ),
            e if e.is_database_outage() => {
                tracing::warn!(error = %e, "database unavailable: answering 503");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Briefly unavailable",
                    "The gallery cannot reach its database right now (maintenance or a restart). Nothing you did is lost; try again in a few seconds.".to_string(),
                )
            }
            AppError::Database(_) | AppError::Storage(_) | AppError::Session(_) | AppError::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The request failed on our side and nothing was changed that you cannot see. Try again.".to_string(),
                )
            }
        }
    }

    fn is_database_outage(&self) -> bool {
        match self {
            AppError::Database(e) => database_unavailable(e),
            AppError::Session(tower_sessions::session::Error::Store(
                tower_sessions::session_store::Error::Backend(_),
            )) => true,
            _ => false,
        }
    }

    /// The error as JSON (`{"error": message}`) with its status, for scripts (the
    /// uploader that sends one file at a time).
    pub fn into_json_response(self) -> Response {
        let (status, _, message) = self.parts();
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        self.add_headers(response.headers_mut());
        response
    }

    /// What an answer carries besides its page, whichever way it is rendered.
    fn add_headers(&self, headers: &mut axum::http::HeaderMap) {
        match self {
            // The rest of the body is not read: close the connection after answering.
            AppError::RequestTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            AppError::TooManyRequests { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            // The load balancer keeps the instance: it is not the instance that is broken.
            e if e.is_database_outage() => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::LoginRequired { next } = &self {
            let target = format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        let (status, title, message) = self.parts();
        let mut response =
            Page::with_status(status, ErrorPage::new(title, message)).into_response();
        self.add_headers(response.headers_mut());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_carry_the_same_headers_as_pages() {
        for render in [AppError::into_response, AppError::into_json_response] {
            let r = render(AppError::TooManyRequests {
                retry_after_secs: 42,
            });
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(r.headers()[header::RETRY_AFTER], "42");
            let r = render(AppError::Database(sqlx::Error::PoolTimedOut));
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(r.headers()[header::RETRY_AFTER], "5");
            let r = render(AppError::RequestTimeout("slow".into()));
            assert_eq!(r.headers()[header::CONNECTION], "close");
        }
    }
}
