//! Release artifacts: the gallery binary instances boot, built for Amazon Linux 2023 by
//! `scripts/release` (or given with `--artifact`), named by content and uploaded to
//! `s3://<bucket>/releases/<version>/gallery` beside `gallery.sha256`, which boot checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use crate::engine::context::Ctx;
use crate::engine::errors::{code, AwsResult};

pub const PREFIX: &str = "releases/";

/// A release binary on this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub path: PathBuf,
    pub version: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Hash the binary and name its release: `v<gallery version>-<first 12 hex of sha256>`,
/// so the same binary is the same release and a different one never overwrites it.
pub fn inspect(path: &Path) -> anyhow::Result<Artifact> {
    let data = std::fs::read(path)
        .with_context(|| format!("--artifact {}: cannot read it", path.display()))?;
    if !data.starts_with(b"\x7fELF") {
        bail!(
            "--artifact {}: not a Linux executable (ELF); build one with scripts/release",
            path.display()
        );
    }
    let sha256 = hex(&Sha256::digest(&data));
    let version = match gallery_version(path) {
        Some(v) => format!("v{v}-{}", &sha256[..12]),
        None => format!("sha-{}", &sha256[..12]),
    };
    Ok(Artifact {
        path: path.to_path_buf(),
        version,
        sha256,
        bytes: data.len() as u64,
    })
}

/// `gallery --version` prints `gallery X.Y.Z`; a binary that cannot run here has none.
fn gallery_version(path: &Path) -> Option<String> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let v = text.trim().strip_prefix("gallery ")?;
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        .then(|| v.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Build the release with `scripts/release` (zig + cargo-zigbuild, glibc 2.34).
pub async fn build() -> anyhow::Result<PathBuf> {
    let script = Path::new("scripts/release");
    if !script.exists() {
        bail!(
            "no release to deploy: pass --artifact PATH, or run provision from the repository's root so scripts/release can build one"
        );
    }
    eprintln!("building the gallery release for Amazon Linux 2023 (scripts/release)...");
    let out = tokio::process::Command::new(script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("running scripts/release")?;
    if !out.status.success() {
        bail!(
            "scripts/release failed ({}); see its output above",
            out.status
        );
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(path))
}

fn key(version: &str, file: &str) -> String {
    format!("{PREFIX}{version}/{file}")
}

/// Upload the binary, then its checksum (the checksum's presence marks a complete upload).
/// An existing release with the same checksum is left alone.
pub async fn upload(ctx: &Ctx, bucket: &str, a: &Artifact) -> anyhow::Result<bool> {
    let s3 = &ctx.aws.s3;
    let sum_key = key(&a.version, "gallery.sha256");
    match s3.get_object().bucket(bucket).key(&sum_key).send().await {
        Ok(out) => {
            let body = out
                .body
                .collect()
                .await
                .context("reading a release checksum")?;
            if String::from_utf8_lossy(&body.into_bytes()).starts_with(&a.sha256) {
                return Ok(false);
            }
        }
        Err(e) if matches!(code(&e).as_deref(), Some("NoSuchKey") | Some("NotFound")) => {}
        Err(e) => {
            return Err(crate::engine::errors::explain(
                "reading a release checksum",
                e,
            ))
        }
    }
    ctx.progress(
        "release",
        &a.version,
        &format!("uploading {} MB", a.bytes / 1_000_000),
    );
    let body = ByteStream::from_path(&a.path)
        .await
        .with_context(|| format!("reading {}", a.path.display()))?;
    s3.put_object()
        .bucket(bucket)
        .key(key(&a.version, "gallery"))
        .body(body)
        .content_type("application/octet-stream")
        .send()
        .await
        .aws(format!("uploading release {}", a.version))?;
    s3.put_object()
        .bucket(bucket)
        .key(&sum_key)
        .body(ByteStream::from(
            format!("{}  gallery\n", a.sha256).into_bytes(),
        ))
        .content_type("text/plain")
        .send()
        .await
        .aws(format!("uploading release {}'s checksum", a.version))?;
    ctx.progress("release", &a.version, "uploaded");
    Ok(true)
}

/// Releases in the bucket with a complete upload, oldest first (by upload time).
pub async fn list(ctx: &Ctx, bucket: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let mut found = Vec::new();
    let mut pages = ctx
        .aws
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(PREFIX)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws("listing releases")?;
        for o in page.contents() {
            let Some(k) = o.key() else { continue };
            if let Some(version) = k
                .strip_prefix(PREFIX)
                .and_then(|r| r.strip_suffix("/gallery.sha256"))
            {
                let when = o.last_modified().map(|t| t.secs()).unwrap_or(0);
                found.push((version.to_string(), when));
            }
        }
    }
    found.sort_by_key(|(v, t)| (*t, v.clone()));
    Ok(found)
}
