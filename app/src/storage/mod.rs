//! Where image bytes live: a folder on disk or an S3 bucket, behind one trait.

mod disk;
mod s3;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;
use uuid::Uuid;

pub use disk::DiskStorage;
pub use s3::S3Storage;

use crate::config::{DataConfig, StorageUrl};
use crate::domain::Username;

/// A storage key. Built only from a validated username and a fresh uuid, or read back
/// from our own database, so it can never climb out of its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// `<username>/<uuid>.<ext>`
    pub fn original(owner: &Username, id: Uuid, ext: &str) -> Self {
        ObjectKey(format!("{owner}/{id}.{ext}"))
    }

    /// `<username>/<uuid>.thumb.<ext>`, beside the original.
    pub fn thumbnail(owner: &Username, id: Uuid, ext: &str) -> Self {
        ObjectKey(format!("{owner}/{id}.thumb.{ext}"))
    }

    /// A key we stored earlier; refuses anything that could escape the storage root.
    pub fn stored(raw: &str) -> Result<Self, StorageError> {
        let ok = !raw.is_empty()
            && !raw.starts_with('/')
            && !raw.contains('\\')
            && raw
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if ok {
            Ok(ObjectKey(raw.to_string()))
        } else {
            Err(StorageError::Other(format!(
                "refusing malformed storage key {raw:?}"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The screen-sized rendition kept beside this thumbnail: `<username>/<uuid>.screen.<ext>`
    /// (only the file's name changes: a username may hold `.thumb.` too).
    pub fn screen(&self) -> Result<Self, StorageError> {
        let (folder, name) = self.0.rsplit_once('/').unwrap_or(("", self.0.as_str()));
        match name.split_once(".thumb.") {
            Some((stem, ext)) if !stem.is_empty() => Ok(ObjectKey(match folder {
                "" => format!("{stem}.screen.{ext}"),
                f => format!("{f}/{stem}.screen.{ext}"),
            })),
            _ => Err(StorageError::Other(format!(
                "{:?} is not a thumbnail's key",
                self.0
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage: {0}")]
    Other(String),
}

/// An object being read.
pub type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// How the bytes of an object reach the browser.
pub enum Delivery {
    /// Stream these bytes from this server.
    Stream { body: Body, len: u64 },
    /// Send the browser elsewhere (a presigned URL), valid for about `max_age`.
    Redirect { url: String, max_age: Duration },
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Store the object whole or not at all.
    async fn put(
        &self,
        key: &ObjectKey,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError>;

    /// Store the file at `file` (a received upload) under `key`, whole or not at all,
    /// without reading it into memory. The file may be moved away by this (disk storage
    /// renames it into place); the caller removes it if it is still there.
    async fn put_file(
        &self,
        key: &ObjectKey,
        file: &Path,
        content_type: &str,
    ) -> Result<(), StorageError>;

    /// Remove the object; removing a missing object succeeds (retries are safe).
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError>;

    async fn deliver(&self, key: &ObjectKey, content_type: &str) -> Result<Delivery, StorageError>;

    /// Like `deliver`, to be saved as a file: `disposition` is the Content-Disposition
    /// the browser must get. A redirect must carry it (S3 answers with it); a stream gets
    /// it from the route, which is what this default is for.
    async fn deliver_attachment(
        &self,
        key: &ObjectKey,
        content_type: &str,
        disposition: &str,
    ) -> Result<Delivery, StorageError> {
        let _ = disposition;
        self.deliver(key, content_type).await
    }

    /// Like `deliver`, for someone else than the owner (a share link's visitor): a
    /// redirect is signed for this request alone and valid about a minute, and the
    /// browser is told not to keep the bytes, so a revoked link stops soon after.
    async fn deliver_briefly(
        &self,
        key: &ObjectKey,
        content_type: &str,
    ) -> Result<Delivery, StorageError> {
        self.deliver(key, content_type).await
    }

    /// The object's bytes as they are read (for a ZIP of several images).
    async fn read(&self, key: &ObjectKey) -> Result<Reader, StorageError>;

    /// Is the storage reachable and writable? Used by readiness.
    async fn check(&self) -> Result<(), StorageError>;

    /// The origin images are served from when it is not our own (for the CSP).
    fn foreign_origin(&self) -> Option<String>;
}

pub async fn connect(config: &DataConfig) -> Result<Arc<dyn Storage>, StorageError> {
    match &config.storage {
        StorageUrl::Disk(dir) => Ok(Arc::new(DiskStorage::open(dir.clone()).await?)),
        StorageUrl::S3 { bucket, prefix } => Ok(Arc::new(
            S3Storage::connect(bucket.clone(), prefix.clone(), &config.s3).await,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_cannot_escape() {
        for bad in ["../x", "a/../../b", "/etc/passwd", "a//b", "a\\b", ""] {
            assert!(ObjectKey::stored(bad).is_err(), "{bad}");
        }
        assert!(ObjectKey::stored("alice/0b7c.thumb.jpg").is_ok());
    }

    #[test]
    fn a_rendition_sits_beside_its_thumbnail_whatever_the_username() {
        let key = |k: &str| ObjectKey::stored(k).unwrap();
        assert_eq!(
            key("alice/0b7c.thumb.jpg").screen().unwrap().as_str(),
            "alice/0b7c.screen.jpg"
        );
        assert_eq!(
            key("ann.thumb.x/0b7c.thumb.png").screen().unwrap().as_str(),
            "ann.thumb.x/0b7c.screen.png"
        );
        assert!(
            key("alice/0b7c.jpg").screen().is_err(),
            "an original has none"
        );
    }
}
