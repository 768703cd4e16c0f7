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

/// A spool file older than this, and older than twice the upload deadline, is left from a
/// process that died mid-upload: no live request can still be using it.
const STALE_AT_LEAST: Duration = Duration::from_secs(3600);

const PREFIX: &str = "upload-";

/// The folder uploads are received in.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Files whose last write is older than this are leftovers (see [`Spool::sweep`]).
    stale_after: Duration,
}

impl Spool {
    /// Create the folder, private to this user, or check that an existing one is: a real
    /// folder (not a link), owned by this user, that no one else can open. Another
    /// user's folder could swap a file between its check and its storing. Then remove
    /// what a dead process left. `upload_timeout` is how long a request may receive.
    pub async fn open(dir: PathBuf, upload_timeout: Duration) -> std::io::Result<Self> {
        let checked = dir.clone();
        tokio::task::spawn_blocking(move || prepare(&checked))
            .await
            .map_err(std::io::Error::other)??;
        let spool = Spool {
            dir,
            stale_after: STALE_AT_LEAST.max(upload_timeout.saturating_mul(2)),
        };
        spool.sweep().await;
        Ok(spool)
    }

    /// Remove the files of uploads that can no longer be in flight (at start, and now
    /// and then while running: a crashed process restarts at once, before its files age).
    pub async fn sweep(&self) {
        match self.remove_stale(self.stale_after).await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(removed, dir = %self.dir.display(), "removed files of interrupted uploads")
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "could not sweep the upload spool")
            }
        }
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
            let Some(cutoff) = SystemTime::now().checked_sub(age) else {
                return Ok(0);
            };
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

fn prepare(dir: &Path) -> std::io::Result<()> {
    let refuse = |why: String| std::io::Error::other(format!("{}: {why}", dir.display()));
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(refuse("not a folder (a link or a file)".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // A file we create is ours: its owner is this process's user.
        let me = tempfile::tempfile_in(dir)?.metadata()?.uid();
        if meta.uid() != me {
            return Err(refuse(
                "belongs to another user; give a folder of this user's own".into(),
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(refuse(format!(
                "other users can open it (mode {:o}); give a folder only this user can open (chmod 700)",
                meta.mode() & 0o777
            )));
        }
    }
    Ok(())
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
        let spool = Spool::open(dir.path().join("spool"), Duration::from_secs(300))
            .await
            .unwrap();
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
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&spool_dir).unwrap();
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
        let spool = Spool::open(spool_dir, Duration::from_secs(300))
            .await
            .unwrap();
        assert!(!old.exists());
        assert!(young.exists() && other.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(spool.dir()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_folder_others_can_open_or_a_link_is_refused_and_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let open_to_all = dir.path().join("shared");
        std::fs::create_dir(&open_to_all).unwrap();
        std::fs::set_permissions(&open_to_all, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Spool::open(open_to_all.clone(), Duration::from_secs(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("shared") && err.contains("mode 777"), "{err}");
        // Not changed behind the operator's back.
        let mode = std::fs::metadata(&open_to_all)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o777);

        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        let err = Spool::open(link, Duration::from_secs(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a folder"), "{err}");
    }
}
