//! The S3 bucket for images and releases: public access blocked, encrypted, TLS only,
//! versioned (a deleted or overwritten image stays recoverable as a noncurrent version
//! for `database.snapshot_retention_days`, then a lifecycle rule prunes it).
//! S3's CreateBucket takes no tags, so the bucket is tagged in the next call; its name is
//! derived from stack, account and region, so an interrupted run finds it again.
//! `down` keeping the data tags it as retained; the `up` that adopts it drops that tag.

use crate::resources::scan::{found, Found};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CreateBucketConfiguration, Delete, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};

use crate::engine::context::{Ctx, RETAINED_TAG, ROLE_TAG, STACK_TAG};
use crate::engine::errors::{already, code, explain, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{retry_while, until_visible_if};
use crate::templates;

pub fn name(ctx: &Ctx) -> String {
    let o = ctx.out();
    format!("{}-images-{}-{}", ctx.stack(), o.account, ctx.aws.region)
}

pub fn policy(bucket: &str) -> anyhow::Result<serde_json::Value> {
    templates::policy(templates::BUCKET_POLICY, &[("bucket", bucket)])
}

async fn exists(ctx: &Ctx, bucket: &str) -> anyhow::Result<bool> {
    match ctx.aws.s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(false),
        Err(e) => Err(explain(format!("checking bucket {bucket}"), e)),
    }
}

async fn tags(ctx: &Ctx, bucket: &str) -> anyhow::Result<Vec<Tag>> {
    match ctx.aws.s3.get_bucket_tagging().bucket(bucket).send().await {
        Ok(out) => Ok(out.tag_set().to_vec()),
        Err(e) if code(&e).as_deref() == Some("NoSuchTagSet") => Ok(Vec::new()),
        Err(e) => Err(explain(format!("reading tags of bucket {bucket}"), e)),
    }
}

fn ours(ctx: &Ctx, tags: &[Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == STACK_TAG && t.value() == ctx.stack())
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let bucket = name(ctx);
    ctx.set(|o| o.bucket = Some(bucket.clone()));
    let mut changes = Vec::new();
    let existed = exists(ctx, &bucket).await?;
    ctx.set(|o| o.running.bucket = existed);
    if !existed {
        if ctx.planning() {
            return Ok(Change::Create);
        }
        let mut req = ctx.aws.s3.create_bucket().bucket(&bucket);
        if ctx.aws.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(ctx.aws.region.as_str()))
                    .build(),
            );
        }
        // A name deleted moments ago (a `down` just before) answers OperationAborted for a
        // while; retried, bounded. Ours already: made by this call, its answer lost.
        until_visible_if(
            &format!("creating bucket {bucket}"),
            ctx.timing,
            |code, _| code == "OperationAborted",
            || async { already(req.clone().send().await, &["BucketAlreadyOwnedByYou"]) },
        )
        .await?;
        ctx.progress("bucket", &bucket, "created");
    }
    // Tags first, so an interrupted run leaves a bucket that is recognisably ours.
    let current_tags = if existed {
        tags(ctx, &bucket).await?
    } else {
        Vec::new()
    };
    let retained = current_tags.iter().any(|t| t.key() == RETAINED_TAG);
    if !ours(ctx, &current_tags) || retained {
        if existed && !current_tags.is_empty() && !ours(ctx, &current_tags) {
            anyhow::bail!("bucket {bucket} exists with other tags: refusing to adopt it");
        }
        changes.push(if retained {
            "adopt the bucket kept by `down`".to_string()
        } else {
            "tags".to_string()
        });
        if !ctx.planning() {
            put_tags(ctx, &bucket, None).await?;
        }
    }

    versioning(ctx, &bucket, existed, &mut changes).await?;
    lifecycle(ctx, &bucket, existed, &mut changes).await?;

    let blocked = if existed {
        match ctx
            .aws
            .s3
            .get_public_access_block()
            .bucket(&bucket)
            .send()
            .await
        {
            Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
                c.block_public_acls() == Some(true)
                    && c.ignore_public_acls() == Some(true)
                    && c.block_public_policy() == Some(true)
                    && c.restrict_public_buckets() == Some(true)
            }),
            Err(e) if code(&e).as_deref() == Some("NoSuchPublicAccessBlockConfiguration") => false,
            Err(e) => {
                return Err(explain(
                    format!("reading public access block of {bucket}"),
                    e,
                ))
            }
        }
    } else {
        false
    };
    if !blocked {
        changes.push("block public access".into());
        if !ctx.planning() {
            ctx.aws
                .s3
                .put_public_access_block()
                .bucket(&bucket)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(true)
                        .restrict_public_buckets(true)
                        .build(),
                )
                .send()
                .await
                .aws(format!("blocking public access to {bucket}"))?;
        }
    }

    let encrypted = if existed {
        match ctx
            .aws
            .s3
            .get_bucket_encryption()
            .bucket(&bucket)
            .send()
            .await
        {
            Ok(out) => out
                .server_side_encryption_configuration()
                .is_some_and(|c| !c.rules().is_empty()),
            Err(e)
                if code(&e).as_deref()
                    == Some("ServerSideEncryptionConfigurationNotFoundError") =>
            {
                false
            }
            Err(e) => return Err(explain(format!("reading encryption of {bucket}"), e)),
        }
    } else {
        false
    };
    if !encrypted {
        changes.push("default encryption".into());
        if !ctx.planning() {
            let config = ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::Aes256)
                                .build()?,
                        )
                        .build(),
                )
                .build()?;
            ctx.aws
                .s3
                .put_bucket_encryption()
                .bucket(&bucket)
                .server_side_encryption_configuration(config)
                .send()
                .await
                .aws(format!("encrypting {bucket}"))?;
        }
    }

    let want = policy(&bucket)?;
    let have = if existed {
        match ctx.aws.s3.get_bucket_policy().bucket(&bucket).send().await {
            Ok(out) => out
                .policy()
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()),
            Err(e) if code(&e).as_deref() == Some("NoSuchBucketPolicy") => None,
            Err(e) => return Err(explain(format!("reading the policy of {bucket}"), e)),
        }
    } else {
        None
    };
    if have.as_ref() != Some(&want) {
        changes.push("TLS-only policy".into());
        if !ctx.planning() {
            ctx.aws
                .s3
                .put_bucket_policy()
                .bucket(&bucket)
                .policy(want.to_string())
                .send()
                .await
                .aws(format!("setting the TLS-only policy of {bucket}"))?;
        }
    }
    Ok(if !existed {
        Change::Create
    } else if changes.is_empty() {
        Change::Unchanged
    } else {
        Change::Update(changes.join("; "))
    })
}

/// The stack's tags, and the retained-data tag when `retained_since` is given. Tags
/// of others (cost allocation, say) stay: S3 replaces the whole set, so they are read
/// and written back.
async fn put_tags(ctx: &Ctx, bucket: &str, retained_since: Option<&str>) -> anyhow::Result<()> {
    let mut tagging = Tagging::builder()
        .tag_set(Tag::builder().key(STACK_TAG).value(ctx.stack()).build()?)
        .tag_set(Tag::builder().key(ROLE_TAG).value("images").build()?)
        .tag_set(Tag::builder().key("Name").value(bucket).build()?);
    if let Some(since) = retained_since {
        tagging = tagging.tag_set(Tag::builder().key(RETAINED_TAG).value(since).build()?);
    }
    for t in tags(ctx, bucket).await? {
        if !t.key().starts_with("gallery:") && t.key() != "Name" {
            tagging = tagging.tag_set(t);
        }
    }
    ctx.aws
        .s3
        .put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging.build()?)
        .send()
        .await
        .aws(format!("tagging bucket {bucket}"))?;
    Ok(())
}

/// Versioning on: a delete or an overwrite (by the app, a bug, or a hand) keeps the
/// previous bytes as a noncurrent version. S3 can suspend versioning but never turn it
/// off, so this is one-way.
async fn versioning(
    ctx: &Ctx,
    bucket: &str,
    existed: bool,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let on = existed
        && ctx
            .aws
            .s3
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .aws(format!("reading versioning of {bucket}"))?
            .status()
            == Some(&BucketVersioningStatus::Enabled);
    if on {
        return Ok(());
    }
    changes.push("versioning".into());
    if !ctx.planning() {
        ctx.aws
            .s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .aws(format!("turning on versioning of {bucket}"))?;
    }
    Ok(())
}

const LIFECYCLE_RULE: &str = "gallery-retention";

/// The one lifecycle rule: noncurrent versions go `snapshot_retention_days` after they
/// stopped being current, delete markers with nothing behind them go, and unfinished
/// multipart uploads go after a day.
fn lifecycle_rule(days: i32) -> anyhow::Result<LifecycleRule> {
    Ok(LifecycleRule::builder()
        .id(LIFECYCLE_RULE)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(days)
                .build(),
        )
        .expiration(
            LifecycleExpiration::builder()
                .expired_object_delete_marker(true)
                .build(),
        )
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(1)
                .build(),
        )
        .build()?)
}

fn rule_matches(rule: &LifecycleRule, days: i32) -> bool {
    rule.id() == Some(LIFECYCLE_RULE)
        && rule.status() == &ExpirationStatus::Enabled
        && rule
            .noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days())
            == Some(days)
        && rule
            .expiration()
            .and_then(|e| e.expired_object_delete_marker())
            == Some(true)
        && rule
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation())
            == Some(1)
}

async fn lifecycle(
    ctx: &Ctx,
    bucket: &str,
    existed: bool,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let days = ctx.config.database.snapshot_retention_days;
    let have = if existed {
        match ctx
            .aws
            .s3
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out.rules().to_vec(),
            Err(e) if code(&e).as_deref() == Some("NoSuchLifecycleConfiguration") => Vec::new(),
            Err(e) => return Err(explain(format!("reading the lifecycle of {bucket}"), e)),
        }
    } else {
        Vec::new()
    };
    if have.iter().any(|r| rule_matches(r, days)) {
        return Ok(());
    }
    changes.push(format!("prune replaced images after {days} days"));
    if !ctx.planning() {
        // Rules of others stay (S3 replaces the whole configuration).
        let mut rules: Vec<LifecycleRule> = have
            .into_iter()
            .filter(|r| r.id() != Some(LIFECYCLE_RULE))
            .collect();
        rules.push(lifecycle_rule(days)?);
        ctx.aws
            .s3
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules))
                    .build()?,
            )
            .send()
            .await
            .aws(format!("setting the lifecycle of {bucket}"))?;
    }
    Ok(())
}

/// Empty the bucket (every version and delete marker), then delete it.
pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let bucket = name(ctx);
    if !exists(ctx, &bucket).await? {
        return Ok(Change::Absent);
    }
    let tags = tags(ctx, &bucket).await?;
    if !ours(ctx, &tags) {
        // S3 creates a bucket untagged and `up` tags it in its next call: a run killed in
        // between leaves this stack's bucket (the name holds our account and region)
        // without tags. Empty, it is that bucket; with objects, it may be someone's data.
        let empty = tags.is_empty() && is_empty(ctx, &bucket).await?;
        if !empty {
            ctx.progress("bucket", &bucket, "not tagged for this stack: left alone");
            return Ok(Change::Absent);
        }
        ctx.progress(
            "bucket",
            &bucket,
            "untagged and empty (an interrupted up): deleting",
        );
    }
    let mut removed = 0usize;
    loop {
        let page = ctx
            .aws
            .s3
            .list_object_versions()
            .bucket(&bucket)
            .max_keys(1000)
            .send()
            .await
            .aws(format!("listing objects in {bucket}"))?;
        let mut ids = Vec::new();
        for v in page.versions() {
            ids.push(
                ObjectIdentifier::builder()
                    .key(v.key().unwrap_or_default())
                    .set_version_id(v.version_id().map(String::from))
                    .build()?,
            );
        }
        for m in page.delete_markers() {
            ids.push(
                ObjectIdentifier::builder()
                    .key(m.key().unwrap_or_default())
                    .set_version_id(m.version_id().map(String::from))
                    .build()?,
            );
        }
        if ids.is_empty() {
            break;
        }
        removed += ids.len();
        let out = ctx
            .aws
            .s3
            .delete_objects()
            .bucket(&bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(ids))
                    .quiet(true)
                    .build()?,
            )
            .send()
            .await
            .aws(format!("emptying bucket {bucket}"))?;
        // An object that can't be deleted would be listed again on every pass: stop.
        if let Some(e) = out.errors().first() {
            anyhow::bail!(
                "emptying bucket {bucket}: {} could not be deleted ({}: {}); {} more failed",
                e.key().unwrap_or_default(),
                e.code().unwrap_or("error"),
                e.message().unwrap_or_default(),
                out.errors().len() - 1
            );
        }
    }
    retry_while(
        &format!("deleting bucket {bucket}"),
        &["BucketNotEmpty"],
        ctx.timing,
        || async {
            already(
                ctx.aws.s3.delete_bucket().bucket(&bucket).send().await,
                &["NoSuchBucket"],
            )
        },
    )
    .await?;
    ctx.progress(
        "bucket",
        &bucket,
        &format!("emptied ({removed} objects and versions) and deleted"),
    );
    Ok(Change::Delete)
}

/// What the bucket holds: the gallery's images (originals, not their thumbnails), how
/// many users they belong to, and the bytes of everything (releases included, and the
/// noncurrent versions S3 bills as well).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub images: u64,
    pub owners: usize,
    pub bytes: u64,
    /// Of `bytes`, those of deleted or replaced objects (kept until the lifecycle rule
    /// prunes them).
    pub noncurrent_bytes: u64,
}

/// None when the bucket is not there.
pub async fn usage(ctx: &Ctx) -> anyhow::Result<Option<Usage>> {
    let bucket = name(ctx);
    if !exists(ctx, &bucket).await? {
        return Ok(None);
    }
    let mut usage = Usage::default();
    let mut owners = std::collections::BTreeSet::new();
    let (versions, _) = history(ctx, &bucket, None).await?;
    for o in &versions {
        let key = o.key().unwrap_or_default();
        let size = o.size().unwrap_or(0).max(0) as u64;
        usage.bytes += size;
        if o.is_latest() != Some(true) {
            usage.noncurrent_bytes += size;
            continue;
        }
        // `[prefix/]<owner>/<id>.<ext>` beside `<owner>/<id>.thumb.<ext>` (app/src/storage).
        let mut parts = key.rsplitn(3, '/');
        if let (Some(file), Some(owner)) = (parts.next(), parts.next()) {
            if !key.starts_with(crate::release::PREFIX) && !file.contains(".thumb.") {
                usage.images += 1;
                owners.insert(owner.to_string());
            }
        }
    }
    usage.owners = owners.len();
    Ok(Some(usage))
}

/// `down` keeping the data: the bucket stays as it is, every image and release in it.
pub async fn keep(ctx: &Ctx) -> anyhow::Result<Change> {
    let bucket = name(ctx);
    if !exists(ctx, &bucket).await? {
        return Ok(Change::Absent);
    }
    if !ours(ctx, &tags(ctx, &bucket).await?) {
        // Not data of this stack: what `delete` does with it (an interrupted up's empty
        // untagged bucket goes, anything else is left alone).
        return delete(ctx).await;
    }
    let Some(u) = usage(ctx).await? else {
        return Ok(Change::Absent);
    };
    let since =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    put_tags(ctx, &bucket, Some(&since)).await?;
    ctx.progress("bucket", &bucket, "kept, tagged as retained data");
    Ok(Change::Note(format!(
        "kept: {} image(s) of {} user(s), {} in all",
        u.images,
        u.owners,
        crate::engine::context::bytes_text(u.bytes)
    )))
}

/// Every version and delete marker in the bucket (under `prefix`), every page.
async fn history(
    ctx: &Ctx,
    bucket: &str,
    prefix: Option<&str>,
) -> anyhow::Result<(
    Vec<aws_sdk_s3::types::ObjectVersion>,
    Vec<aws_sdk_s3::types::DeleteMarkerEntry>,
)> {
    let (mut versions, mut markers) = (Vec::new(), Vec::new());
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = ctx
            .aws
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_prefix(prefix.map(String::from))
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .aws(format!("listing the versions in {bucket}"))?;
        versions.extend(page.versions().iter().cloned());
        markers.extend(page.delete_markers().iter().cloned());
        if page.is_truncated() != Some(true) {
            return Ok((versions, markers));
        }
        key_marker = page.next_key_marker().map(String::from);
        version_marker = page.next_version_id_marker().map(String::from);
    }
}

/// What `revert_images_to` did, counted in images (an original with its thumbnail).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reverted {
    /// Images deleted or overwritten since, current again as they were.
    pub brought_back: usize,
    /// Images added since, hidden (a delete marker: still there as a version, until the
    /// lifecycle rule prunes it).
    pub hidden: usize,
}

/// An original, not a thumbnail: `<owner>/<id>.thumb.<ext>` beside `<owner>/<id>.<ext>`
/// (app/src/storage).
fn is_original(key: &str) -> bool {
    !key.rsplit('/')
        .next()
        .unwrap_or_default()
        .contains(".thumb.")
}

/// One entry of a key's history: a version (with its ETag) or a delete marker (none).
struct Entry {
    version: String,
    at: f64,
    latest: bool,
    etag: Option<String>,
}

/// What the key should be made current again, if anything, to read as it did at `at`.
enum Fix {
    Copy(String),
    Hide,
}

fn fix(history: &[Entry], at: f64) -> Option<Fix> {
    let current = history.iter().find(|e| e.latest);
    let then = history
        .iter()
        .filter(|e| e.at <= at)
        .max_by(|a, b| a.at.total_cmp(&b.at));
    match (then, current) {
        // It existed then: current must hold the same bytes (a copy has the same ETag).
        (Some(t @ Entry { etag: Some(_), .. }), c) => (c.and_then(|c| c.etag.as_ref())
            != t.etag.as_ref())
        .then(|| Fix::Copy(t.version.clone())),
        // It did not exist then (never, or deleted): hide it if it shows now.
        (_, Some(Entry { etag: Some(_), .. })) => Some(Fix::Hide),
        _ => None,
    }
}

/// `restore`: the images (everything under `images/`; releases are left alone) as they
/// were at `at` (Unix seconds): an object deleted or overwritten since is made current
/// again from its version of then, one added since is hidden. Versions are only added,
/// never removed, so repeating it changes nothing more.
pub async fn revert_images_to(ctx: &Ctx, at: i64) -> anyhow::Result<Reverted> {
    let bucket = name(ctx);
    let mut keys: std::collections::BTreeMap<String, Vec<Entry>> = Default::default();
    let (versions, markers) = history(ctx, &bucket, Some("images/")).await?;
    for v in &versions {
        keys.entry(v.key().unwrap_or_default().to_string())
            .or_default()
            .push(Entry {
                version: v.version_id().unwrap_or("null").to_string(),
                at: v.last_modified().map_or(0.0, |t| t.as_secs_f64()),
                latest: v.is_latest() == Some(true),
                etag: Some(v.e_tag().unwrap_or_default().to_string()),
            });
    }
    for m in &markers {
        keys.entry(m.key().unwrap_or_default().to_string())
            .or_default()
            .push(Entry {
                version: m.version_id().unwrap_or("null").to_string(),
                at: m.last_modified().map_or(0.0, |t| t.as_secs_f64()),
                latest: m.is_latest() == Some(true),
                etag: None,
            });
    }
    let mut done = Reverted::default();
    for (key, history) in &keys {
        match fix(history, at as f64) {
            Some(Fix::Copy(version)) => {
                ctx.aws
                    .s3
                    .copy_object()
                    .bucket(&bucket)
                    .key(key)
                    .copy_source(format!(
                        "{bucket}/{}?versionId={}",
                        urlencoding::encode(key),
                        urlencoding::encode(&version)
                    ))
                    .send()
                    .await
                    .aws(format!("bringing back {key} as it was"))?;
                done.brought_back += usize::from(is_original(key));
            }
            Some(Fix::Hide) => {
                ctx.aws
                    .s3
                    .delete_object()
                    .bucket(&bucket)
                    .key(key)
                    .send()
                    .await
                    .aws(format!("hiding {key}, added since"))?;
                done.hidden += usize::from(is_original(key));
            }
            None => {}
        }
    }
    ctx.progress(
        "bucket",
        &bucket,
        &format!(
            "images as they were: {} brought back, {} added since hidden",
            done.brought_back, done.hidden
        ),
    );
    Ok(done)
}

/// Whether the bucket holds no object, version or delete marker.
async fn is_empty(ctx: &Ctx, bucket: &str) -> anyhow::Result<bool> {
    let page = ctx
        .aws
        .s3
        .list_object_versions()
        .bucket(bucket)
        .max_keys(1)
        .send()
        .await
        .aws(format!("listing objects in {bucket}"))?;
    Ok(page.versions().is_empty() && page.delete_markers().is_empty())
}

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    // By its exact name: ListBuckets lags deletes (and needs s3:ListAllMyBuckets).
    let name = name(ctx);
    Ok(if exists(ctx, &name).await? {
        vec![found("bucket", name, "present")]
    } else {
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::{fix, Entry, Fix};

    fn v(version: &str, at: f64, latest: bool, etag: &str) -> Entry {
        Entry {
            version: version.into(),
            at,
            latest,
            etag: Some(etag.into()),
        }
    }

    fn marker(at: f64, latest: bool) -> Entry {
        Entry {
            version: "m".into(),
            at,
            latest,
            etag: None,
        }
    }

    #[test]
    fn each_key_is_made_to_read_as_it_did_then() {
        // Unchanged since: nothing to do.
        assert!(fix(&[v("a", 10.0, true, "e1")], 20.0).is_none());
        // Deleted since: its version of then comes back.
        let deleted = [v("a", 10.0, false, "e1"), marker(30.0, true)];
        assert!(matches!(fix(&deleted, 20.0), Some(Fix::Copy(x)) if x == "a"));
        // Overwritten since: the old bytes come back.
        let overwritten = [v("a", 10.0, false, "e1"), v("b", 30.0, true, "e2")];
        assert!(matches!(fix(&overwritten, 20.0), Some(Fix::Copy(x)) if x == "a"));
        // Brought back before (a copy, same ETag, made after then): done.
        let again = [
            v("a", 10.0, false, "e1"),
            marker(30.0, false),
            v("c", 40.0, true, "e1"),
        ];
        assert!(fix(&again, 20.0).is_none());
        // Added since: hidden; hidden before: done.
        assert!(matches!(
            fix(&[v("a", 30.0, true, "e1")], 20.0),
            Some(Fix::Hide)
        ));
        assert!(fix(&[v("a", 30.0, false, "e1"), marker(40.0, true)], 20.0).is_none());
        // Deleted before then and still deleted: nothing.
        assert!(fix(&[v("a", 5.0, false, "e1"), marker(10.0, true)], 20.0).is_none());
    }
}
