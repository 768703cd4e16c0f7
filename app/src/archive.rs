//! Several images as one ZIP, streamed while it is written: memory holds a buffer, not
//! the archive, however many photos it has. The zip crate writes it (stored, not
//! compressed: photos are compressed already) on the blocking pool; each original is read
//! from storage as it goes in.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::io::SyncIoBridge;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::store::images::Image;

/// How much of the archive is handed to the response at a time.
const CHUNK: usize = 64 << 10;
/// ZIP downloads one instance writes at once (each holds a blocking thread); more wait.
pub const AT_ONCE: usize = 4;
/// A client that reads nothing of its download for this long is given up on.
const STALLED: std::time::Duration = std::time::Duration::from_secs(60);

/// The ZIP of `images` (their originals, under the names they were uploaded with), as a
/// response body. A failure midway ends the body with an error, so the browser reports a
/// failed download rather than saving a truncated archive as if it were whole.
pub fn zip_of(state: AppState, images: Vec<Arc<Image>>, permit: OwnedSemaphorePermit) -> Body {
    // `Ok(None)` marks the end: a channel that closes without it (a panic, a lost task)
    // ends the body with an error, never as if the archive were whole.
    let (tx, rx) = mpsc::channel::<std::io::Result<Option<Bytes>>>(4);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // Held until the archive is written: at most `AT_ONCE` ZIPs per instance.
        let _permit = permit;
        let out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
            handle: handle.clone(),
        };
        let end = match write_zip(&handle, &state, &images, out) {
            Ok(()) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "a ZIP download stopped");
                Err(std::io::Error::other(e))
            }
        };
        // Bounded like every other send: a client that stopped reading is given up on.
        let _ = handle.block_on(tokio::time::timeout(STALLED, tx.send(end)));
    });
    Body::from_stream(futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Ok(Some(chunk))) => Some((Ok(chunk), Some(rx))),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some((Err(e), None)),
            None => Some((
                Err(std::io::Error::other("the archive was cut short")),
                None,
            )),
        }
    }))
}

fn write_zip(
    handle: &tokio::runtime::Handle,
    state: &AppState,
    images: &[Arc<Image>],
    out: ChannelWriter,
) -> anyhow::Result<()> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let mut names = HashSet::new();
    for img in images {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(img.byte_size > i64::from(u32::MAX))
            .last_modified_time(zip_time(img.details.taken_at.unwrap_or(img.created_at)));
        zip.start_file(unique_name(&mut names, &img.original_name), options)?;
        let key = ObjectKey::stored(&img.storage_key)?;
        let reader = handle.block_on(state.storage.read(&key))?;
        let mut reader = SyncIoBridge::new_with_handle(reader, handle.clone());
        std::io::copy(&mut reader, &mut zip)?;
    }
    let mut out = zip.finish()?.into_inner();
    out.flush()?;
    Ok(())
}

/// A file name not yet in the archive: "beach.jpg", then "beach (2).jpg".
fn unique_name(taken: &mut HashSet<String>, name: &str) -> String {
    let mut candidate = name.to_string();
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{stem} ({n}){ext}");
        n += 1;
    }
    candidate
}

/// A time (ms since the epoch, read as UTC) as a ZIP entry's date; 1980 if out of range.
fn zip_time(millis: i64) -> zip::DateTime {
    time::OffsetDateTime::from_unix_timestamp(millis / 1000)
        .ok()
        .and_then(|t| {
            zip::DateTime::from_date_and_time(
                u16::try_from(t.year()).ok()?,
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
            .ok()
        })
        .unwrap_or_default()
}

/// What the zip crate writes, handed to the response a chunk at a time; a client that
/// went away stops the writing (the send fails).
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Option<Bytes>>>,
    buf: Vec<u8>,
    handle: tokio::runtime::Handle,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let sent = self
            .handle
            .block_on(tokio::time::timeout(STALLED, self.tx.send(Ok(Some(chunk)))));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_an_archive_are_unique() {
        let mut taken = HashSet::new();
        assert_eq!(unique_name(&mut taken, "beach.jpg"), "beach.jpg");
        assert_eq!(unique_name(&mut taken, "beach.jpg"), "beach (2).jpg");
        assert_eq!(unique_name(&mut taken, "beach.jpg"), "beach (3).jpg");
        assert_eq!(unique_name(&mut taken, "notes"), "notes");
        assert_eq!(unique_name(&mut taken, "notes"), "notes (2)");
        assert_eq!(unique_name(&mut taken, ".hidden"), ".hidden");
        assert_eq!(unique_name(&mut taken, ".hidden"), ".hidden (2)");
    }

    #[test]
    fn entry_times_are_the_photos_own() {
        let t = zip_time(1_720_981_925_000); // 2024-07-14 18:32:05
        assert_eq!((t.year(), t.month(), t.day()), (2024, 7, 14));
        assert_eq!((t.hour(), t.minute(), t.second()), (18, 32, 4)); // 2-second steps
        assert_eq!(zip_time(0), zip::DateTime::default());
    }
}
