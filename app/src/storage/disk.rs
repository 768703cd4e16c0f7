//! Images in a folder on local disk; bytes are streamed by this server.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::{Delivery, ObjectKey, Storage, StorageError};

/// Files up to this size are read whole in one blocking call.
const SMALL_FILE: u64 = 1 << 20;

enum Opened {
    Small(Vec<u8>),
    Large(std::fs::File, u64),
}

pub struct DiskStorage {
    root: PathBuf,
}

impl DiskStorage {
    pub async fn open(root: PathBuf) -> Result<Self, StorageError> {
        tokio::fs::create_dir_all(&root).await?;
        Ok(DiskStorage { root })
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
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
        // Write beside the target and rename, so a crash never leaves half a file under the key.
        let tmp = path.with_extension(format!("tmp-{}", Uuid::new_v4()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(&body).await?;
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        Ok(result?)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
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
            Ok(Opened::Small(buf)) => Ok(Delivery::Stream {
                len: buf.len() as u64,
                body: Body::from(buf),
            }),
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
