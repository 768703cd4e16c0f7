//! The S3 bucket for images and releases: public access blocked, encrypted, TLS only.
//! S3's CreateBucket takes no tags, so the bucket is tagged in the next call; its name is
//! derived from stack, account and region, so an interrupted run finds it again.

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
};

use crate::aws::{code, explain, retry_while, AwsResult};
use crate::context::{Ctx, ROLE_TAG, STACK_TAG};
use crate::graph::Change;
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
        req.send().await.aws(format!("creating bucket {bucket}"))?;
        ctx.progress("bucket", &bucket, "created");
    }
    // Tags first, so an interrupted run leaves a bucket that is recognisably ours.
    let current_tags = if existed {
        tags(ctx, &bucket).await?
    } else {
        Vec::new()
    };
    if !ours(ctx, &current_tags) {
        if existed && !current_tags.is_empty() {
            anyhow::bail!("bucket {bucket} exists with other tags: refusing to adopt it");
        }
        changes.push("tags".to_string());
        if !ctx.planning() {
            let tagging = Tagging::builder()
                .tag_set(Tag::builder().key(STACK_TAG).value(ctx.stack()).build()?)
                .tag_set(Tag::builder().key(ROLE_TAG).value("images").build()?)
                .tag_set(Tag::builder().key("Name").value(&bucket).build()?)
                .build()?;
            ctx.aws
                .s3
                .put_bucket_tagging()
                .bucket(&bucket)
                .tagging(tagging)
                .send()
                .await
                .aws(format!("tagging bucket {bucket}"))?;
        }
    }

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
        || ctx.aws.s3.delete_bucket().bucket(&bucket).send(),
    )
    .await?;
    ctx.progress(
        "bucket",
        &bucket,
        &format!("emptied ({removed} objects and versions) and deleted"),
    );
    Ok(Change::Delete)
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
