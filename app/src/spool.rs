//! Where an upload's files are received before they are checked and stored: each file
//! part is written to a file of its own as it arrives, so the server's memory holds a
//! buffer per upload in flight, not the upload (8 x 20 MB uploads held 305 MiB when
//! bodies were read into memory; docs/BENCHMARKS.md). The files are decoded from there
//! under the CPU permit and stored from there (a rename on disk, a streamed PUT to S3).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::TempPath;
use tokio::io::{AsyncWriteExt, BufWriter};

/// Bytes gathered before each write to the file: one trip to the blocking pool per this
/// much, whatever size the body's chunks arrive in.
const WRITE_BUFFER: usize = 64 << 10;

/// Files older than this at start-up were left by a process that died mid-upload (every
/// upload's deadline is far shorter); younger ones may be another live process's.
const STALE: Duration = Duration::from_secs(24 * 3600);

const PREFIX: &str = "upload-";

/// The folder uploads are received in.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Create the folder (private to this user) and remove what a dead process left.
    pub async fn open(dir: PathBuf) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(&dir).await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).await?;
        }
        let spool = Spool { dir };
        let removed = spool.remove_stale(STALE).await?;
        if removed > 0 {
            tracing::info!(removed, dir = %spool.dir.display(), "removed files of interrupted uploads");
        }
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty file to receive one part into. It is removed when the result is
    /// dropped, whether the upload is stored, refused or cut off.
    pub async fn create(&self) -> std::io::Result<Receiving> {
        let dir = self.dir.clone();
        let named = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new().prefix(PREFIX).tempfile_in(dir)
        })
        .await
        .map_err(std::io::Error::other)??;
        let (file, path) = named.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        // tokio copies each write into a buffer of its own, by default up to 2 MiB.
        file.set_max_buf_size(WRITE_BUFFER);
        Ok(Receiving {
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            path,
            len: 0,
        })
    }

    /// Remove our files whose last write is older than `age`; how many were removed.
    async fn remove_stale(&self, age: Duration) -> std::io::Result<usize> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let cutoff = SystemTime::now() - age;
            let mut removed = 0;
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let ours = entry.file_name().to_string_lossy().starts_with(PREFIX);
                let modified = entry.metadata().and_then(|m| m.modified());
                if ours && modified.is_ok_and(|m| m < cutoff) {
                    // Another process may have removed it first.
                    if std::fs::remove_file(entry.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// A part being received.
pub struct Receiving {
    file: BufWriter<tokio::fs::File>,
    path: TempPath,
    len: u64,
}

impl Receiving {
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk).await?;
        self.len += chunk.len() as u64;
        Ok(())
    }

    /// All of it is written (to the page cache: the store that keeps it makes it durable).
    pub async fn finish(mut self) -> std::io::Result<Spooled> {
        self.file.flush().await?;
        Ok(Spooled {
            path: self.path,
            len: self.len,
        })
    }
}

/// A received file, removed when dropped (unless the disk store has renamed it away).
#[derive(Debug)]
pub struct Spooled {
    path: TempPath,
    len: u64,
}

impl Spooled {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_received_file_holds_its_bytes_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().join("spool")).await.unwrap();
        let mut receiving = spool.create().await.unwrap();
        let chunk = vec![7u8; 100_000];
        for _ in 0..5 {
            receiving.write(&chunk).await.unwrap();
        }
        let spooled = receiving.finish().await.unwrap();
        assert_eq!(spooled.len(), 500_000);
        assert_eq!(std::fs::read(spooled.path()).unwrap().len(), 500_000);
        let path = spooled.path().to_path_buf();
        drop(spooled);
        assert!(!path.exists());

        // A part cut off midway leaves nothing either.
        let mut receiving = spool.create().await.unwrap();
        receiving.write(&chunk).await.unwrap();
        drop(receiving);
        assert_eq!(std::fs::read_dir(spool.dir()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn only_old_files_of_ours_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        std::fs::create_dir_all(&spool_dir).unwrap();
        let old = spool_dir.join("upload-old");
        let young = spool_dir.join("upload-young");
        let other = spool_dir.join("notes.txt");
        for path in [&old, &young, &other] {
            std::fs::write(path, b"x").unwrap();
        }
        let two_days_ago = SystemTime::now() - Duration::from_secs(48 * 3600);
        for path in [&old, &other] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(two_days_ago)
                .unwrap();
        }
        let spool = Spool::open(spool_dir).await.unwrap();
        assert!(!old.exists());
        assert!(young.exists() && other.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(spool.dir()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }
}
