//! One single-threaded runtime per core for the connections (as nginx runs one worker
//! process per core): a connection's requests are served on the thread that accepted it
//! from the listener's hand-off, so they never wait for a thread to be woken or stolen
//! from (docs/BENCHMARKS.md: the scheduler was ~30% of the request path's samples).
//! Background work (the change feed, sweeps, the first migration) stays on the main
//! runtime.
//!
//! What a request opens on a core (a pooled PostgreSQL connection, an S3 connection, a
//! timer) stays registered with that core's runtime wherever it is used later: its I/O is
//! noticed when that core's thread next polls for events (when idle, or every 61 tasks).
//! No request blocks a core's thread (CPU work goes to `spawn_blocking` under the CPU
//! semaphore), so that wait stays short; and the runtimes live as long as the app state
//! (`state::Shared::cores`), so nothing outlives the runtime it was made on.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub struct Cores {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropped with `Cores`: each core's runtime stops (its tasks are dropped).
    _stops: Vec<oneshot::Sender<()>>,
}

impl Cores {
    pub fn start() -> std::io::Result<Cores> {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for i in 0..n {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("gallery-core-{i}"))
                .spawn(move || {
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(Cores {
            handles,
            next: AtomicUsize::new(0),
            _stops: stops,
        })
    }

    /// The runtime of the next connection, in turn.
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}
