//! Building the application (bind, connect, route) apart from running it, so tests can
//! start the real server on port 0; and the drain-then-stop shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::accounts;
use crate::config::{Config, DatabaseKind, DatabaseSource};
use crate::db::Db;
use crate::routes;
use crate::spool::Spool;
use crate::state::{AppState, Health, Shared};
use crate::storage::Storage;
use crate::store::sessions::DbSessionStore;

/// The most hyper buffers per HTTP/1 connection (at least 8 KiB plus headers).
const READ_BUFFER_MAX: usize = 64 << 10;

/// Malloc arenas for the whole process: glibc gives each thread that allocates its own
/// arena (up to 8 per core), and each keeps what was freed in it, so the blocking
/// threads that decode uploads and write them to the spool held ~40 MiB more at 32
/// concurrent uploads than at 8 (docs/BENCHMARKS.md, part 5). Two arenas cost nothing
/// measurable on the request path. An explicit `MALLOC_ARENA_MAX` in the environment
/// wins.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before other threads.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Bind the socket and connect lazily: the server answers `/healthz` at once and
    /// becomes ready once the database is reachable and migrated.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let storage = crate::storage::connect(&config.data)
            .await
            .context("opening --storage (GALLERY_STORAGE)")?;
        Self::build_with_storage(config, storage).await
    }

    /// [`Application::build`] with the given storage in place of the configured one (tests
    /// wrap the real storage to make it fail on purpose).
    pub async fn build_with_storage(
        config: Config,
        storage: Arc<dyn Storage>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding --bind (GALLERY_BIND) {}", config.bind))?;
        let db = match &config.data.database {
            DatabaseSource::Url(url) => {
                Db::connect_lazy(url).context("opening --database-url (GALLERY_DATABASE_URL)")?
            }
            DatabaseSource::Secret(_) => Db::pending(DatabaseKind::Postgres),
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let csp = crate::security::content_security_policy(storage.foreign_origin().as_deref());
        let spool = Spool::open(config.spool_dir.clone(), config.upload_timeout)
            .await
            .with_context(|| {
                format!(
                    "opening --spool-dir (GALLERY_SPOOL_DIR) {}",
                    config.spool_dir.display()
                )
            })?;
        let state = AppState::new(Shared {
            db,
            storage,
            spool: Arc::new(spool),
            config: Arc::new(config),
            health: Arc::new(Health::default()),
            cache: Arc::new(crate::cache::Cache::default()),
            csp: axum::http::HeaderValue::from_str(&csp).ok(),
            cpu: Arc::new(Semaphore::new(cores)),
            zips: Arc::new(Semaphore::new(crate::archive::AT_ONCE)),
            renditions: Arc::new(Semaphore::new(crate::routes::RENDITIONS_AT_ONCE)),
            cores: Arc::new(
                crate::cores::Cores::start().context("starting the per-core runtimes")?,
            ),
        });
        tokio::spawn(prepare_database(state.clone()));
        tokio::spawn(sweep(state.clone()));
        tokio::spawn(crate::trash::purge_forever(state.clone()));
        let router = routes::router(state.clone());
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serve until `shutdown` resolves; then report not-ready, keep serving for the drain
    /// period so the load balancer stops sending, and finish in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let health = self.state.health.clone();
        let config = self.state.config.clone();
        let stop = async move {
            shutdown.await;
            health.start_draining();
            tracing::info!(
                drain_secs = config.drain.as_secs(),
                "shutting down: not ready, draining"
            );
            tokio::time::sleep(config.drain).await;
            tracing::info!("drain over: finishing in-flight requests");
        };
        serve(
            self.listener,
            self.router,
            &self.state,
            self.state.config.header_timeout,
            stop,
        )
        .await
    }
}

/// The accept loop: hyper with a header-read timeout (axum's `serve` has none, which
/// leaves slowloris clients holding connections forever) and graceful shutdown.
async fn serve(
    listener: TcpListener,
    router: Router,
    state: &AppState,
    header_timeout: Duration,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::Service;

    let mut make = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // hyper's read buffer grows to ~400 KiB on a connection that streams a body (an
        // upload): per client, that is most of what an upload in flight holds.
        .max_buf_size(READ_BUFFER_MAX);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(app) = make.call(peer).await;
                let app = crate::routes::Lane::new(state.clone(), app);
                let service = TowerToHyperService::new(crate::access_log::around(
                    state.config.access_log,
                    app,
                ));
                // The connection moves to one core's runtime and stays there.
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "handing a connection to a core failed");
                        continue;
                    }
                };
                let builder = builder.clone();
                let watcher = graceful.watcher();
                state.cores.next().spawn(async move {
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "taking a connection on a core failed");
                            return;
                        }
                    };
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(connection).await;
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    // In-flight requests finish; idle keep-alive connections are closed.
    if tokio::time::timeout(Duration::from_secs(60), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open 60 s after shutdown began");
    }
    Ok(())
}

/// Migrate and create the first admin, retrying until the database answers.
async fn prepare_database(state: AppState) {
    let mut delay = Duration::from_millis(250);
    loop {
        match try_prepare(&state).await {
            Ok(()) => {
                state.health.set_migrated();
                tracing::info!("database ready");
                tokio::spawn(state.cache.clone().follow(state.db.clone()));
                return;
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "waiting for the database"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn try_prepare(state: &AppState) -> anyhow::Result<()> {
    let data = &state.config.data;
    let mut restored = None;
    if let DatabaseSource::Secret(arn) = &data.database {
        // Read on every try (not only the first): a try that failed after connecting
        // must still end the sessions of a restored database on the next.
        let found = crate::aws_secrets::database(&data.aws, arn, data.database_ca.as_deref())
            .await?
            .with_context(|| {
                format!(
                    "secret {arn} names no database host yet (the database is still being created)"
                )
            })?;
        if !state.db.is_connected() {
            state
                .db
                .install(&found.url)
                .context("opening the database named in the secret")?;
        }
        restored = found.restored;
    }
    state.db.migrate().await.context("applying migrations")?;
    if let Some(restore) = &restored {
        // A restored database holds the snapshot's sessions: end them, once per restore.
        let ended = crate::store::sessions::end_all_after_restore(&state.db, restore)
            .await
            .context("ending the sessions of the restored database")?;
        if ended > 0 {
            tracing::info!(restore = %restore, sessions = ended, "the database was restored: its sessions are ended");
        }
    }
    let mut first = state.config.first_admin.clone();
    if let Some(arn) = &first.secret_arn {
        first.password = Some(crate::aws_secrets::admin_password(&data.aws, arn).await?);
    }
    if let Some(password) = accounts::ensure_first_admin(&state.db, &first).await? {
        // Shown once, on the terminal only: never through the log pipeline.
        println!(
            "\nCreated the first admin. Log in as `{}` with password: {}\n(Shown once. Change it on the admin page.)\n",
            state.config.first_admin.username,
            password.expose()
        );
    }
    Ok(())
}

/// Every ten minutes: forget expired sessions and login counters whose window is over.
async fn sweep(state: AppState) {
    let store = DbSessionStore::new(state.db.clone());
    let window_ms = state.config.throttle.window.as_millis() as i64;
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(e) = store.delete_expired().await {
            tracing::debug!(error = %e, "could not delete expired sessions yet");
        }
        if let Err(e) = crate::store::throttle::delete_expired(&state.db, window_ms).await {
            tracing::debug!(error = %e, "could not delete old login counters yet");
        }
        state.spool.sweep().await;
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
