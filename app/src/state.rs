//! The one state every handler gets: database, storage, settings, health and the CPU gate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cache::Cache;
use crate::config::Config;
use crate::cores::Cores;
use crate::db::Db;
use crate::spool::Spool;
use crate::storage::Storage;

/// What every handler gets. It is cloned for every request, by each extractor and
/// middleware that takes state, so it is one `Arc`: cloning its fields one by one was
/// about a tenth of the gallery page's CPU in a profile (eight reference counts, on cache
/// lines both cores write; bench/analysis.md, issue 13).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    pub db: Db,
    pub storage: Arc<dyn Storage>,
    /// Where uploads are received before they are checked and stored.
    pub spool: Arc<Spool>,
    pub config: Arc<Config>,
    pub health: Arc<Health>,
    /// Sessions, users and images held in memory for reads (see `cache`).
    pub cache: Arc<Cache>,
    /// The Content-Security-Policy header, built once.
    pub csp: Option<axum::http::HeaderValue>,
    /// Bounds CPU-heavy work (argon2, decoding) so a burst of uploads can't starve the server.
    pub cpu: Arc<Semaphore>,
    /// Bounds the ZIP downloads written at once (each holds a blocking thread).
    pub zips: Arc<Semaphore>,
    /// Share-link work that reads a whole original (a screen rendition, an original's
    /// location-free copy): a few at a time (`routes::shared`).
    pub renditions: Arc<Semaphore>,
    /// The runtimes that serve connections, one per core (`cores`). Held here so they
    /// stop only once nothing can use what they made (pooled connections, timers).
    pub cores: Arc<Cores>,
}

/// Readiness: false until migrations ran; false again once draining after SIGTERM.
#[derive(Default, Debug)]
pub struct Health {
    migrated: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn set_migrated(&self) {
        self.migrated.store(true, Ordering::SeqCst);
    }
    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::SeqCst)
    }
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

impl AppState {
    /// Run CPU-bound work off the async runtime, at most one job per core at a time.
    pub async fn blocking<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self.cpu.acquire().await?;
        Ok(tokio::task::spawn_blocking(f).await?)
    }
}
