//! Images in a folder on local disk; bytes are streamed by this server.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::{Delivery, ObjectKey, Reader, Storage, StorageError};

/// Files up to this size are read whole in one blocking call.
const SMALL_FILE: u64 = 1 << 20;

/// Files up to this size (every thumbnail) are also kept in memory once read...
const HELD_FILE: usize = 256 << 10;
/// ...up to this many bytes in all (then the memory starts again from empty).
const HELD_BYTES: usize = 64 << 20;

enum Opened {
    Small(Vec<u8>),
    Large(std::fs::File, u64),
}

pub struct DiskStorage {
    root: PathBuf,
    /// Small files already read, by key. A key is never written twice (each is a new
    /// UUID), so what is held is never stale; a deleted key is dropped. Requests reach it
    /// only after the owner check.
    held: std::sync::Mutex<Held>,
}

#[derive(Default)]
struct Held {
    files: std::collections::HashMap<String, Bytes>,
    bytes: usize,
}

impl DiskStorage {
    pub async fn open(root: PathBuf) -> Result<Self, StorageError> {
        tokio::fs::create_dir_all(&root).await?;
        Ok(DiskStorage {
            root,
            held: std::sync::Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // A panic while holding it leaves a map that is merely incomplete.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hold(&self, key: &ObjectKey, bytes: &Bytes) {
        if bytes.len() > HELD_FILE {
            return;
        }
        let mut held = self.held();
        if held.bytes + bytes.len() > HELD_BYTES {
            *held = Held::default();
        }
        held.bytes += bytes.len();
        if let Some(old) = held.files.insert(key.as_str().to_string(), bytes.clone()) {
            held.bytes -= old.len();
        }
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Write `path` through a file beside it (written by `fill`, then synced) renamed into
/// place, so a crash never leaves half a file under the key; the folder is synced after.
async fn place<F, Fut>(path: &Path, fill: F) -> Result<(), StorageError>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let tmp = path.with_extension(format!("tmp-{}", Uuid::new_v4()));
    let result = async {
        fill(tmp.clone()).await?;
        tokio::fs::File::open(&tmp).await?.sync_all().await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result?;
    sync_parent(path).await
}

/// Make a rename into `path`'s folder durable: until the folder itself is synced, a power
/// loss can forget the new name while the database row that points at it is committed.
async fn sync_parent(path: &Path) -> Result<(), StorageError> {
    let Some(dir) = path.parent().map(Path::to_path_buf) else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(|e| StorageError::Other(format!("syncing a folder: {e}")))??;
    Ok(())
}

#[async_trait]
impl Storage for DiskStorage {
    async fn put(
        &self,
        key: &ObjectKey,
        body: Bytes,
        _content_type: &str,
    ) -> Result<(), StorageError> {
        let path = self.path(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        place(&path, |tmp| async move {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(&body).await?;
            // tokio writes in the background: wait for it before the sync.
            file.flush().await
        })
        .await
    }

    async fn put_file(
        &self,
        key: &ObjectKey,
        file: &Path,
        _content_type: &str,
    ) -> Result<(), StorageError> {
        let path = self.path(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Durable before it appears under its key, as `put` makes it.
        let source = file.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::File::open(source)?.sync_all())
            .await
            .map_err(|e| StorageError::Other(format!("syncing {}: {e}", key.as_str())))??;
        // The spool is in the storage folder by default: a rename, atomic and free.
        if tokio::fs::rename(file, &path).await.is_ok() {
            return sync_parent(&path).await;
        }
        // Elsewhere (another file system): a copy.
        let source = file.to_path_buf();
        place(&path, |tmp| async move {
            tokio::fs::copy(source, tmp).await.map(|_| ())
        })
        .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        {
            let mut held = self.held();
            if let Some(old) = held.files.remove(key.as_str()) {
                held.bytes -= old.len();
            }
        }
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn deliver(
        &self,
        key: &ObjectKey,
        _content_type: &str,
    ) -> Result<Delivery, StorageError> {
        // A small file (every thumbnail) is read in one trip to the blocking pool instead
        // of one per open, stat and read (docs/BENCHMARKS.md, part 2); larger ones stream.
        if let Some(bytes) = self.held().files.get(key.as_str()).cloned() {
            return Ok(Delivery::Stream {
                len: bytes.len() as u64,
                body: Body::from(bytes),
            });
        }
        let path = self.path(key);
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<Opened> {
            use std::io::Read;
            let mut file = std::fs::File::open(&path)?;
            let len = file.metadata()?.len();
            if len > SMALL_FILE {
                return Ok(Opened::Large(file, len));
            }
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut buf)?;
            Ok(Opened::Small(buf))
        })
        .await
        .map_err(|e| StorageError::Other(format!("reading {}: {e}", key.as_str())))?;
        match opened {
            Ok(Opened::Small(buf)) => {
                let bytes = Bytes::from(buf);
                self.hold(key, &bytes);
                Ok(Delivery::Stream {
                    len: bytes.len() as u64,
                    body: Body::from(bytes),
                })
            }
            Ok(Opened::Large(file, len)) => Ok(Delivery::Stream {
                body: Body::from_stream(ReaderStream::with_capacity(
                    tokio::fs::File::from_std(file),
                    64 * 1024,
                )),
                len,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StorageError::NotFound(key.as_str().to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, key: &ObjectKey) -> Result<Reader, StorageError> {
        match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => Ok(Box::new(tokio::io::BufReader::with_capacity(
                64 << 10,
                file,
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StorageError::NotFound(key.as_str().to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn check(&self) -> Result<(), StorageError> {
        let meta = tokio::fs::metadata(&self.root).await?;
        if meta.is_dir() && !meta.permissions().readonly() {
            Ok(())
        } else {
            Err(StorageError::Other(format!(
                "{} is not a writable directory",
                self.root.display()
            )))
        }
    }

    fn foreign_origin(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(d: Delivery) -> Vec<u8> {
        match d {
            Delivery::Stream { body, .. } => axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("body")
                .to_vec(),
            Delivery::Redirect { .. } => panic!("disk storage streams"),
        }
    }

    #[tokio::test]
    async fn a_held_small_file_is_served_from_memory_until_it_is_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = DiskStorage::open(dir.path().to_path_buf())
            .await
            .expect("open");
        let key =
            ObjectKey::stored("alice/0b5f7a4e-2a0c-4c7e-9d59-0c3f1c0e8a11.thumb.jpg").expect("key");
        storage
            .put(&key, Bytes::from_static(b"thumbnail"), "image/jpeg")
            .await
            .expect("put");
        let first = storage.deliver(&key, "image/jpeg").await.expect("deliver");
        assert_eq!(body_of(first).await, b"thumbnail");
        // Held now: served even though the file is gone from under it...
        std::fs::remove_file(dir.path().join(key.as_str())).expect("remove");
        let again = storage.deliver(&key, "image/jpeg").await.expect("held");
        assert_eq!(body_of(again).await, b"thumbnail");
        // ...but a delete through the storage forgets it.
        storage.delete(&key).await.expect("delete");
        assert!(matches!(
            storage.deliver(&key, "image/jpeg").await,
            Err(StorageError::NotFound(_))
        ));
        assert_eq!(storage.held().bytes, 0);
    }

    #[tokio::test]
    async fn a_received_file_in_the_storage_folder_is_moved_into_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = DiskStorage::open(dir.path().join("images"))
            .await
            .expect("open");
        let key = ObjectKey::stored("alice/0b5f7a4e-2a0c-4c7e-9d59-0c3f1c0e8a11.png").expect("key");
        // In the storage folder (the default spool): renamed.
        let spooled = dir.path().join("images").join("upload-1");
        std::fs::write(&spooled, b"original").expect("write");
        storage
            .put_file(&key, &spooled, "image/png")
            .await
            .expect("put_file");
        assert!(!spooled.exists());
        assert_eq!(
            std::fs::read(dir.path().join("images").join(key.as_str())).expect("stored"),
            b"original"
        );

        // A missing source is an error and leaves nothing under the key.
        let other =
            ObjectKey::stored("alice/1b5f7a4e-2a0c-4c7e-9d59-0c3f1c0e8a11.png").expect("key");
        assert!(storage
            .put_file(&other, &dir.path().join("nothing"), "image/png")
            .await
            .is_err());
        assert!(!dir.path().join("images").join(other.as_str()).exists());
    }
}
