//! Where the server's log lines go: standard error, written by a thread of its own so a
//! request never waits on the terminal or the journal, and, with `--log-group`, CloudWatch
//! Logs (the stack's group, a stream per instance), so they outlive the instance.
//!
//! The path of a line: the tracing formatter writes it into a [`LineWriter`], which hands
//! it (with its time) to a bounded queue without waiting: when the queue is full the line
//! is dropped and counted, never the request held. The writer thread prints it and, when
//! shipping, passes it on to a second bounded queue (same rule), read by a task that sends
//! batches with PutLogEvents every second or as soon as one is full, within PutLogEvents'
//! limits ([`Batcher`]). Dropped lines are reported by a warning once a second. On a
//! graceful stop [`LogHandle::flush`] sends what is queued.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tracing_subscriber::fmt::MakeWriter;

use crate::config::S3Options;

/// PutLogEvents' limits: events per call, bytes per call (each event's UTF-8 bytes plus
/// 26), bytes per event (the same count), and the time one call may span.
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD: usize = 26;
pub const MAX_EVENT_BYTES: usize = 262_144;
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;

/// Lines waiting for the writer thread, and for the shipper.
const QUEUE_LINES: usize = 16_384;
/// How often a partial batch is sent.
const SHIP_EVERY: Duration = Duration::from_secs(1);
/// Attempts at one batch (after the SDK's own retries of throttling and 5xx).
const SHIP_ATTEMPTS: u32 = 4;

/// Where to ship: the log group and this instance's stream in it.
#[derive(Debug, Clone)]
pub struct ShipTo {
    pub group: String,
    pub stream: String,
    pub aws: S3Options,
}

/// One log event as PutLogEvents takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub timestamp_ms: i64,
    pub message: String,
}

enum Msg {
    Line(i64, Vec<u8>),
    Flush(oneshot::Sender<()>),
}

/// Counts of lines dropped because a queue was full (reported, then reset).
#[derive(Default)]
struct Dropped {
    writer: AtomicU64,
    shipper: AtomicU64,
}

/// The `MakeWriter` given to the tracing formatter.
#[derive(Clone)]
pub struct Pipe {
    tx: SyncSender<Msg>,
    dropped: Arc<Dropped>,
}

/// One formatted line, handed to the queue when the formatter is done with it.
pub struct LineWriter<'a> {
    pipe: &'a Pipe,
    buf: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        match self.pipe.tx.try_send(Msg::Line(now_ms(), line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.pipe.dropped.writer.fetch_add(1, Ordering::Relaxed);
            }
            // The writer thread is gone (it never stops on its own): write here.
            Err(TrySendError::Disconnected(Msg::Line(_, line))) => {
                let _ = std::io::stderr().write_all(&line);
            }
            Err(TrySendError::Disconnected(Msg::Flush(_))) => {}
        }
    }
}

impl<'a> MakeWriter<'a> for Pipe {
    type Writer = LineWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            pipe: self,
            buf: Vec::with_capacity(256),
        }
    }
}

/// What `cli` keeps to flush the logs before the process ends.
pub struct LogHandle {
    tx: SyncSender<Msg>,
}

impl LogHandle {
    /// Waits (at most `timeout`) until every line logged so far is written and, when
    /// shipping, sent to CloudWatch.
    pub async fn flush(&self, timeout: Duration) {
        let (ack, done) = oneshot::channel();
        let tx = self.tx.clone();
        let queued = tokio::task::spawn_blocking(move || tx.send(Msg::Flush(ack)).is_ok());
        if matches!(queued.await, Ok(true)) {
            let _ = tokio::time::timeout(timeout, done).await;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The writer for the tracing formatter and its handle. With `ship`, this must run inside
/// the Tokio runtime (the shipper is a task of it).
pub fn start(ship: Option<ShipTo>) -> (Pipe, LogHandle) {
    let (tx, rx) = sync_channel(QUEUE_LINES);
    let dropped = Arc::new(Dropped::default());
    let shipper = ship.map(|to| {
        let (ship_tx, ship_rx) = mpsc::channel(QUEUE_LINES);
        tokio::spawn(ship_forever(to, ship_rx, dropped.clone()));
        ship_tx
    });
    let thread_dropped = dropped.clone();
    let spawned = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_forever(rx, shipper, thread_dropped));
    if let Err(e) = spawned {
        // Without the thread the lines are written where they are made (see Drop).
        let _ = writeln!(std::io::stderr(), "could not start the log writer: {e}");
    }
    (
        Pipe {
            tx: tx.clone(),
            dropped,
        },
        LogHandle { tx },
    )
}

fn write_forever(rx: Receiver<Msg>, shipper: Option<mpsc::Sender<Msg>>, dropped: Arc<Dropped>) {
    let stderr = std::io::stderr();
    while let Ok(first) = rx.recv() {
        let mut out = stderr.lock();
        let mut next = Some(first);
        // Everything already queued goes in one locked run.
        while let Some(msg) = next {
            match msg {
                Msg::Line(at, line) => {
                    let _ = out.write_all(&line);
                    if let Some(ship) = &shipper {
                        if let Err(mpsc::error::TrySendError::Full(_)) =
                            ship.try_send(Msg::Line(at, line))
                        {
                            dropped.shipper.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Msg::Flush(ack) => {
                    let _ = out.flush();
                    match &shipper {
                        // Waiting here is fine: only a stopping server flushes.
                        Some(ship) => {
                            if let Err(mpsc::error::SendError(Msg::Flush(ack))) =
                                ship.blocking_send(Msg::Flush(ack))
                            {
                                let _ = ack.send(());
                            }
                        }
                        None => {
                            let _ = ack.send(());
                        }
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
}

/// Collects events into PutLogEvents batches.
#[derive(Debug, Default)]
pub struct Batcher {
    events: Vec<Event>,
    bytes: usize,
}

impl Batcher {
    /// Adds a line (trailing newline removed, cut to the event limit at a character
    /// boundary; an empty line is skipped). Returns a batch that is ready when adding the
    /// line would break a limit: the line starts the next batch.
    pub fn push(&mut self, timestamp_ms: i64, line: &[u8]) -> Option<Vec<Event>> {
        let message = event_message(line)?;
        let size = message.len() + EVENT_OVERHEAD;
        let spans_too_long = self
            .events
            .iter()
            .map(|e| e.timestamp_ms)
            .min()
            .is_some_and(|first| (timestamp_ms - first).abs() >= MAX_BATCH_SPAN_MS);
        let ready = if self.events.len() >= MAX_BATCH_EVENTS
            || self.bytes + size > MAX_BATCH_BYTES
            || spans_too_long
        {
            Some(self.take())
        } else {
            None
        };
        self.bytes += size;
        self.events.push(Event {
            timestamp_ms,
            message,
        });
        ready
    }

    /// Whether the batch is at its event limit (send it without waiting for the timer).
    pub fn is_full(&self) -> bool {
        self.events.len() >= MAX_BATCH_EVENTS
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events so far, in time order (PutLogEvents refuses any other), leaving it empty.
    pub fn take(&mut self) -> Vec<Event> {
        self.bytes = 0;
        let mut events = std::mem::take(&mut self.events);
        events.sort_by_key(|e| e.timestamp_ms);
        events
    }
}

/// A line as an event's message: UTF-8 (invalid bytes replaced), without its line end,
/// at most `MAX_EVENT_BYTES - EVENT_OVERHEAD` bytes; `None` for an empty line.
pub fn event_message(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return None;
    }
    let limit = MAX_EVENT_BYTES - EVENT_OVERHEAD;
    if text.len() <= limit {
        return Some(text.to_string());
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_string())
}

async fn client(options: &S3Options) -> aws_sdk_cloudwatchlogs::Client {
    let (shared, region) = crate::aws::sdk_config(options).await;
    let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(&shared).region(region);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_cloudwatchlogs::Client::from_conf(builder.build())
}

async fn ship_forever(to: ShipTo, mut rx: mpsc::Receiver<Msg>, dropped: Arc<Dropped>) {
    let client = client(&to.aws).await;
    let mut shipper = Shipper {
        client,
        to,
        stream_made: false,
    };
    let mut batch = Batcher::default();
    let mut tick = tokio::time::interval(SHIP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Line(at, line)) => {
                    if let Some(ready) = batch.push(at, &line) {
                        shipper.send(ready).await;
                    }
                    if batch.is_full() {
                        shipper.send(batch.take()).await;
                    }
                }
                Some(Msg::Flush(ack)) => {
                    if !batch.is_empty() {
                        shipper.send(batch.take()).await;
                    }
                    let _ = ack.send(());
                }
                None => {
                    if !batch.is_empty() {
                        shipper.send(batch.take()).await;
                    }
                    return;
                }
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    shipper.send(batch.take()).await;
                }
                let writer = dropped.writer.swap(0, Ordering::Relaxed);
                let shipped = dropped.shipper.swap(0, Ordering::Relaxed);
                if writer + shipped > 0 {
                    tracing::warn!(
                        dropped_before_writing = writer,
                        dropped_before_shipping = shipped,
                        "log lines dropped: a log queue was full"
                    );
                }
            }
        }
    }
}

struct Shipper {
    client: aws_sdk_cloudwatchlogs::Client,
    to: ShipTo,
    stream_made: bool,
}

impl Shipper {
    /// Creates this instance's stream (one that exists is fine).
    async fn make_stream(&mut self) -> Result<(), String> {
        match self
            .client
            .create_log_stream()
            .log_group_name(&self.to.group)
            .log_stream_name(&self.to.stream)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) => {}
            Err(e) => return Err(aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string()),
        }
        self.stream_made = true;
        Ok(())
    }

    /// Sends one batch, retrying a few times with a growing pause; a batch that still
    /// fails is dropped with a warning (the server's own work comes first).
    async fn send(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let count = events.len();
        let mut input = Vec::with_capacity(count);
        for e in events {
            match aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(e.timestamp_ms)
                .message(e.message)
                .build()
            {
                Ok(event) => input.push(event),
                Err(err) => tracing::warn!(error = %err, "a log event could not be built"),
            }
        }
        let mut pause = Duration::from_millis(500);
        let mut last = String::new();
        for attempt in 1..=SHIP_ATTEMPTS {
            if !self.stream_made {
                if let Err(e) = self.make_stream().await {
                    last = e;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    continue;
                }
            }
            let sent = self
                .client
                .put_log_events()
                .log_group_name(&self.to.group)
                .log_stream_name(&self.to.stream)
                .set_log_events(Some(input.clone()))
                .send()
                .await;
            match sent {
                Ok(out) => {
                    if let Some(rejected) = out.rejected_log_events_info() {
                        tracing::warn!(
                            too_old_end = rejected.too_old_log_event_end_index(),
                            too_new_start = rejected.too_new_log_event_start_index(),
                            expired_end = rejected.expired_log_event_end_index(),
                            "CloudWatch Logs refused some log events (outside its time window)"
                        );
                    }
                    return;
                }
                Err(e) => {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception())
                    {
                        // The stream (or the group) is gone: make the stream again.
                        self.stream_made = false;
                    }
                    last = aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string();
                }
            }
            if attempt < SHIP_ATTEMPTS {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
        tracing::warn!(
            events = count,
            group = %self.to.group,
            stream = %self.to.stream,
            error = %last,
            "log events could not be sent to CloudWatch Logs; dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_at_ten_thousand_events() {
        let mut b = Batcher::default();
        for i in 0..MAX_BATCH_EVENTS {
            assert!(b.push(i as i64, b"x\n").is_none());
        }
        assert!(b.is_full());
        let ready = b
            .push(20_000, b"next\n")
            .expect("the 10,001st starts a new batch");
        assert_eq!(ready.len(), MAX_BATCH_EVENTS);
        assert_eq!(
            b.take(),
            vec![Event {
                timestamp_ms: 20_000,
                message: "next".into()
            }]
        );
    }

    #[test]
    fn a_batch_is_cut_before_a_mebibyte_counting_26_bytes_an_event() {
        let mut b = Batcher::default();
        let line = vec![b'a'; 1000 - EVENT_OVERHEAD];
        // 1,048 events of 1,000 counted bytes fit (1,048,000); the 1,049th does not.
        for i in 0..1048 {
            assert!(b.push(i, &line).is_none(), "event {i}");
        }
        let ready = b.push(2000, &line).expect("over the byte limit");
        assert_eq!(ready.len(), 1048);
        let bytes: usize = ready.iter().map(|e| e.message.len() + EVENT_OVERHEAD).sum();
        assert!(bytes <= MAX_BATCH_BYTES);
        assert_eq!(b.take().len(), 1);
    }

    #[test]
    fn a_long_line_is_cut_to_the_event_limit_at_a_character_boundary() {
        let line = "é".repeat(MAX_EVENT_BYTES); // two bytes each
        let message = event_message(line.as_bytes()).unwrap();
        assert!(message.len() + EVENT_OVERHEAD <= MAX_EVENT_BYTES);
        assert!(message.len() + EVENT_OVERHEAD >= MAX_EVENT_BYTES - 1);
        assert!(message.chars().all(|c| c == 'é'));
        // A maximal event alone fits a batch, and four of them are one batch.
        let mut b = Batcher::default();
        for i in 0..4 {
            assert!(b.push(i, line.as_bytes()).is_none());
        }
        assert!(b.push(5, line.as_bytes()).is_some());
    }

    #[test]
    fn events_leave_in_time_order_and_empty_lines_are_skipped() {
        let mut b = Batcher::default();
        b.push(30, b"c\n");
        b.push(10, b"a\r\n");
        assert!(b.push(20, b"\n").is_none());
        b.push(20, b"b");
        let got: Vec<_> = b
            .take()
            .into_iter()
            .map(|e| (e.timestamp_ms, e.message))
            .collect();
        assert_eq!(
            got,
            vec![(10, "a".into()), (20, "b".into()), (30, "c".into())]
        );
        assert!(b.is_empty());
    }

    #[test]
    fn a_batch_never_spans_a_day() {
        let mut b = Batcher::default();
        b.push(0, b"old");
        let ready = b.push(MAX_BATCH_SPAN_MS, b"new").expect("24 h apart");
        assert_eq!(ready.len(), 1);
        assert_eq!(b.take()[0].message, "new");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, rx) = sync_channel(2);
        let pipe = Pipe {
            tx,
            dropped: Arc::new(Dropped::default()),
        };
        for _ in 0..5 {
            let mut w = pipe.make_writer();
            w.write_all(b"line\n").unwrap();
        }
        assert_eq!(pipe.dropped.writer.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_iter().count(), 2);
    }
}
