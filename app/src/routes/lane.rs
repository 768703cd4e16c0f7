//! The thumbnail's lane, in front of the router: a page of the grid asks for 60 of them,
//! so they are most of the gallery's requests. A signed-in owner's thumbnail that is all
//! in memory (`images::from_memory`) is answered here, with the security headers every
//! response gets, without the router's layers; every other request, and any thumbnail
//! not wholly in memory, goes to the router untouched.
//!
//! What the router's layers would have done to such a request, the lane does itself:
//! `cache::scope` lets a `GET`/`HEAD` read from memory unless its browser just wrote
//! (the `gallery_sync` cookie), and `security::headers` adds the headers. The others
//! (the trace span, the body's limit and timeout) concern requests with a body or are
//! not recorded at the default level.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{Method, Request};
use axum::response::Response;
use futures_util::future::Either;
use tower::Service;

use crate::state::AppState;

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The lane around the router's service (see the module's documentation).
#[derive(Clone)]
pub struct Lane<S> {
    state: AppState,
    inner: S,
}

impl<S> Lane<S> {
    pub fn new(state: AppState, inner: S) -> Self {
        Lane { state, inner }
    }
}

/// Whether the request is a thumbnail's `GET`/`HEAD` that may read from memory.
fn wanted<B>(request: &Request<B>) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && request.uri().path().starts_with("/images/")
        && request.uri().path().ends_with("/thumb")
        && !crate::cache::has_sync_cookie(request.headers())
}

impl<S, B> Service<Request<B>> for Lane<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Answer, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !wanted(&request) {
            return Either::Right(self.inner.call(request));
        }
        let state = self.state.clone();
        // The service made ready is the one to call; a clone stays for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Left(Box::pin(async move {
            let (parts, body) = request.into_parts();
            let answered = crate::cache::reading(super::images::from_memory(
                &state,
                parts.uri.path(),
                &parts.headers,
            ))
            .await;
            match answered {
                Some(mut response) => {
                    crate::security::apply(&state, response.headers_mut());
                    Ok(response)
                }
                None => inner.call(Request::from_parts(parts, body)).await,
            }
        }))
    }
}
