//! The router: every URL of the gallery, and the layers around it.

mod account;
mod admin;
mod albums;
mod assets;
mod auth;
mod bulk;
mod gallery;
mod health;
mod home;
mod images;
mod lane;
mod shared;
mod shares;
mod trash;
mod upload;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::security;
use crate::state::AppState;
use crate::store::sessions::DbSessionStore;

pub use gallery::order_param;
pub use lane::Lane;
pub use shared::RENDITIONS_AT_ONCE;

/// Bodies of ordinary forms are small; only the upload route takes more.
const FORM_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let sessions = SessionManagerLayer::new(
        DbSessionStore::new(state.db.clone()).with_cache(state.cache.clone()),
    )
    .with_name(crate::auth::SESSION_COOKIE)
    .with_http_only(true)
    .with_same_site(SameSite::Lax)
    .with_secure(state.config.secure_cookies())
    .with_expiry(Expiry::OnInactivity(
        time::Duration::try_from(state.config.session_idle).unwrap_or(time::Duration::hours(12)),
    ));

    // The upload's size limit is its multipart parser's (`upload::multipart`), not
    // `DefaultBodyLimit`, which only extractors that read the body whole apply.
    let upload = Router::new()
        .route("/upload", get(upload::form).post(upload::answer))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            upload::reject_oversize,
        ));

    // What a share link's visitor sees (no account): never indexed.
    let shared = Router::new()
        .route("/s/{token}", get(shared::page).post(shared::unlock))
        .route("/s/{token}/i/{id}", get(shared::image))
        .route("/s/{token}/i/{id}/thumb", get(shared::thumbnail))
        .route("/s/{token}/i/{id}/screen", get(shared::screen))
        .route("/s/{token}/i/{id}/original", get(shared::original))
        .layer(axum::middleware::map_response(shared::noindex));

    let pages = Router::new()
        .merge(upload)
        .route("/", get(home::show))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/account", get(account::show))
        .route("/account/name", post(account::set_name))
        .route("/account/password", post(account::set_password))
        .route("/account/privacy", post(account::set_privacy))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/sessions/end-all", post(account::end_all_sessions))
        .route("/gallery", get(gallery::index))
        .route("/images/{id}", get(gallery::show))
        .route("/images/bulk", post(bulk::act))
        .route("/images/{id}/delete", post(gallery::delete))
        .route("/images/{id}/restore", post(gallery::restore))
        .route("/images/{id}/purge", post(gallery::purge))
        .route("/trash", get(trash::index))
        .route("/trash/empty", get(trash::confirm_empty).post(trash::empty))
        .route("/images/{id}/original", get(images::original))
        .route("/images/{id}/download", get(images::download))
        .route("/images/{id}/thumb", get(images::thumbnail))
        .route("/albums", get(albums::index).post(albums::create))
        .route("/albums/{id}", get(albums::show).post(albums::update))
        .route("/albums/{id}/delete", post(albums::delete))
        .route("/albums/{id}/images", post(albums::image))
        .route("/albums/{id}/share", post(shares::album))
        .route("/images/{id}/share", post(shares::image))
        .route("/shares", get(shares::index))
        .route("/shares/{id}/revoke", post(shares::revoke))
        .merge(shared)
        .route("/admin", get(admin::index))
        .route("/admin/users", post(admin::create))
        .route("/admin/users/new", get(admin::new_form))
        .route("/admin/users/{id}", post(admin::update))
        .route("/admin/users/{id}/edit", get(admin::edit_form))
        .route(
            "/admin/users/{id}/delete",
            get(admin::confirm_delete).post(admin::delete),
        )
        .layer(sessions);

    Router::new()
        .merge(pages)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/static/{file}", get(assets::file))
        .fallback(assets::not_found)
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        // A body that stalls (slowloris on the body) fails instead of holding a task.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.config.body_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cache::scope,
        ))
        // The span names the path with a share link's token blanked: tokens are secrets
        // and never reach a log.
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %crate::sharing::redacted(request.uri().path()),
                )
            },
        ))
        .with_state(state)
}
