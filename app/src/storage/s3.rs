//! Images in an S3 bucket; browsers fetch bytes through short-lived presigned URLs.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::{Delivery, ObjectKey, Reader, Storage, StorageError};
use crate::config::S3Options;

/// Presigned URLs are signed for a fixed window so that the same image gets the same URL
/// for a while and the browser cache works; each URL stays valid for at least `MIN_VALID`.
const SIGN_WINDOW: u64 = 600;
const MIN_VALID: u64 = 300;

/// Presigned URLs held for the current signing window at most: beyond this many the
/// memory starts again from empty (each is ~600 bytes).
const SIGNED_HELD: usize = 20_000;
/// A held URL is handed out for this long, then signed again: with the same credentials
/// that gives the same URL, and after the instance role's credentials rotate it gives one
/// they still sign (a URL dies with the credentials that signed it).
const SIGNED_REUSE: Duration = Duration::from_secs(60);

pub struct S3Storage {
    client: Client,
    bucket: String,
    prefix: String,
    origin: Option<String>,
    /// URLs signed in the current window, by key and content type: the same request in
    /// the same window signs to the same URL, so it is signed once (SigV4 is an HMAC
    /// chain and a credentials lookup per URL: the bulk of a redirect's cost).
    signed: std::sync::Mutex<Signed>,
}

#[derive(Default)]
struct Signed {
    window: u64,
    urls: std::collections::HashMap<(String, String), (String, std::time::Instant)>,
}

impl S3Storage {
    pub async fn connect(bucket: String, prefix: String, options: &S3Options) -> Self {
        let (shared, region) = crate::aws::sdk_config(options).await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared).region(region);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        let mut storage = S3Storage {
            client: Client::from_conf(builder.build()),
            bucket,
            prefix,
            origin: None,
            signed: std::sync::Mutex::new(Signed::default()),
        };
        // The CSP must allow exactly the host presigned URLs point at; presigning is
        // local, so ask the SDK rather than guess its endpoint rules.
        let fallback = format!(
            "https://{}.s3.{}.amazonaws.com",
            storage.bucket,
            region_name(&storage.client)
        );
        storage.origin = Some(storage.presigned_origin().await.unwrap_or(fallback));
        storage
    }

    async fn presigned_origin(&self) -> Option<String> {
        let config = PresigningConfig::expires_in(Duration::from_secs(60)).ok()?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}origin-probe", self.prefix))
            .presigned(config)
            .await
            .ok()?;
        let url = url::Url::parse(request.uri()).ok()?;
        Some(url.origin().ascii_serialization())
    }

    async fn put_stream(
        &self,
        key: &ObjectKey,
        body: ByteStream,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_type(content_type)
            .cache_control("private, max-age=31536000, immutable")
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        Ok(())
    }

    fn signed_lock(&self) -> std::sync::MutexGuard<'_, Signed> {
        // A panic while holding it leaves a map that is merely incomplete.
        self.signed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn full_key(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }
}

impl Signed {
    fn get(&self, window: u64, held: &(String, String)) -> Option<String> {
        if self.window != window {
            return None;
        }
        let (url, signed) = self.urls.get(held)?;
        (signed.elapsed() < SIGNED_REUSE).then(|| url.clone())
    }

    fn put(&mut self, window: u64, held: (String, String), url: String) {
        if self.window != window || self.urls.len() >= SIGNED_HELD {
            self.window = window;
            self.urls.clear();
        }
        self.urls.insert(held, (url, std::time::Instant::now()));
    }
}

fn region_name(client: &Client) -> String {
    client
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into())
}

fn describe(err: impl std::error::Error) -> StorageError {
    StorageError::Other(aws_sdk_s3::error::DisplayErrorContext(err).to_string())
}

impl S3Storage {
    /// A presigned GET valid from `start` (seconds since the epoch) for `expires_in`
    /// seconds, answering with `content_type` (and `disposition`, when given).
    async fn presign(
        &self,
        key: &ObjectKey,
        content_type: &str,
        disposition: Option<&str>,
        cache_control: Option<&str>,
        start: u64,
        expires_in: u64,
    ) -> Result<String, StorageError> {
        let presign = PresigningConfig::builder()
            .start_time(UNIX_EPOCH + Duration::from_secs(start))
            .expires_in(Duration::from_secs(expires_in))
            .build()
            .map_err(describe)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .response_content_type(content_type)
            .set_response_content_disposition(disposition.map(str::to_string))
            .set_response_cache_control(cache_control.map(str::to_string))
            .presigned(presign)
            .await
            .map_err(describe)?;
        Ok(request.uri().to_string())
    }
}

impl S3Storage {
    /// A redirect signed for this request alone, valid for about a minute from now (from
    /// a minute before, so a clock a little ahead of S3's doesn't make it "not yet valid").
    async fn sign_now(
        &self,
        key: &ObjectKey,
        content_type: &str,
        disposition: Option<&str>,
        cache_control: Option<&str>,
    ) -> Result<Delivery, StorageError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let url = self
            .presign(
                key,
                content_type,
                disposition,
                cache_control,
                now.saturating_sub(60),
                120,
            )
            .await?;
        Ok(Delivery::Redirect {
            url,
            max_age: Duration::ZERO,
        })
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(
        &self,
        key: &ObjectKey,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.put_stream(key, ByteStream::from(body), content_type)
            .await
    }

    async fn put_file(
        &self,
        key: &ObjectKey,
        file: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        // Streamed from the file (and read again if the SDK retries), never held whole.
        let body = ByteStream::from_path(file).await.map_err(describe)?;
        self.put_stream(key, body, content_type).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        // S3 answers 204 for a missing key too, so retries are safe.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(describe)?;
        Ok(())
    }

    async fn deliver(&self, key: &ObjectKey, content_type: &str) -> Result<Delivery, StorageError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let window_start = now - now % SIGN_WINDOW;
        let expires_in = SIGN_WINDOW + MIN_VALID;
        let valid_for = (window_start + expires_in).saturating_sub(now);
        let max_age = Duration::from_secs(valid_for.saturating_sub(60));
        let held = (key.as_str().to_string(), content_type.to_string());
        if let Some(url) = self.signed_lock().get(window_start, &held) {
            return Ok(Delivery::Redirect { url, max_age });
        }
        let url = self
            .presign(key, content_type, None, None, window_start, expires_in)
            .await?;
        self.signed_lock().put(window_start, held, url.clone());
        Ok(Delivery::Redirect { url, max_age })
    }

    async fn deliver_attachment(
        &self,
        key: &ObjectKey,
        content_type: &str,
        disposition: &str,
    ) -> Result<Delivery, StorageError> {
        // Downloads are rare: signed each time.
        self.sign_now(key, content_type, Some(disposition), None)
            .await
    }

    async fn deliver_briefly(
        &self,
        key: &ObjectKey,
        content_type: &str,
    ) -> Result<Delivery, StorageError> {
        // Never the owner's cached URL; S3 tells the browser to keep nothing.
        self.sign_now(key, content_type, None, Some("private, no-store"))
            .await
    }

    async fn read(&self, key: &ObjectKey) -> Result<Reader, StorageError> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match got {
            Ok(out) => Ok(Box::new(out.body.into_async_read())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(StorageError::NotFound(key.as_str().to_string()))
            }
            Err(e) => Err(describe(e)),
        }
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(describe)?;
        Ok(())
    }

    fn foreign_origin(&self) -> Option<String> {
        self.origin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_url_is_reused_within_its_window_for_a_minute_at_most() {
        let mut signed = Signed::default();
        let held = ("alice/a.thumb.jpg".to_string(), "image/jpeg".to_string());
        signed.put(600, held.clone(), "https://signed/1".into());
        assert_eq!(signed.get(600, &held).as_deref(), Some("https://signed/1"));
        // Another content type is another URL.
        let other = (held.0.clone(), "image/png".to_string());
        assert_eq!(signed.get(600, &other), None);
        // The next window signs anew, and forgets the last one's URLs.
        assert_eq!(signed.get(1200, &held), None);
        signed.put(1200, other.clone(), "https://signed/2".into());
        assert_eq!(signed.urls.len(), 1);
        // Held longer than SIGNED_REUSE: signed again (new credentials may sign it).
        let old = std::time::Instant::now()
            .checked_sub(SIGNED_REUSE + Duration::from_secs(1))
            .expect("a minute ago");
        signed
            .urls
            .insert(held.clone(), ("https://signed/3".into(), old));
        assert_eq!(signed.get(1200, &held), None);
    }
}
