//! The instance role and profile, least privilege: read-write on this stack's images,
//! read-only on its releases, its two secrets; nothing else. IAM is global, so the names
//! carry the region: the same stack name in two regions gets two roles.

use crate::aws::{code, explain, retry_while, AwsResult};
use crate::context::{Ctx, PLANNED, STACK_TAG};
use crate::graph::Change;
use crate::templates;

pub fn role_name(ctx: &Ctx) -> String {
    ctx.name(&format!("{}-app", ctx.aws.region))
}

/// The inline policy the role must have.
pub fn app_policy(
    bucket: &str,
    db_secret: &str,
    admin_secret: &str,
) -> anyhow::Result<serde_json::Value> {
    templates::policy(
        templates::APP_POLICY,
        &[
            ("bucket", bucket),
            ("db_secret_arn", db_secret),
            ("admin_secret_arn", admin_secret),
        ],
    )
}

fn tagged(ctx: &Ctx, tags: &[aws_sdk_iam::types::Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == STACK_TAG && t.value() == ctx.stack())
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let name = role_name(ctx);
    let o = ctx.out();
    let bucket = ctx.need("the bucket", |o| o.bucket.clone())?;
    let db_secret = o.db_secret_arn.clone().unwrap_or_else(|| PLANNED.into());
    let admin_secret = o.admin_secret_arn.clone().unwrap_or_else(|| PLANNED.into());
    let want = app_policy(&bucket, &db_secret, &admin_secret)?;
    let mut changes = Vec::new();

    let role = match ctx.aws.iam.get_role().role_name(&name).send().await {
        Ok(out) => out.role().cloned(),
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => None,
        Err(e) => return Err(explain(format!("finding role {name}"), e)),
    };
    let existed = role.is_some();
    let role_arn = match role {
        Some(r) => {
            if !tagged(ctx, r.tags()) {
                anyhow::bail!(
                    "IAM role {name} exists but is not tagged for this stack: refusing to use it"
                );
            }
            r.arn().to_string()
        }
        None if ctx.planning() => PLANNED.into(),
        None => {
            let out = ctx
                .aws
                .iam
                .create_role()
                .role_name(&name)
                .description(format!("gallery {}: app instances", ctx.stack()))
                .assume_role_policy_document(templates::ASSUME_ROLE)
                .set_tags(Some(crate::tags::iam_tags(ctx, "app")?))
                .send()
                .await
                .aws(format!("creating role {name}"))?;
            ctx.progress("iam-role", &name, "created");
            out.role().map(|r| r.arn().to_string()).unwrap_or_default()
        }
    };
    ctx.set(|o| o.role_arn = Some(role_arn));

    let have = if existed {
        match ctx
            .aws
            .iam
            .get_role_policy()
            .role_name(&name)
            .policy_name(&name)
            .send()
            .await
        {
            Ok(out) => urlencoding::decode(out.policy_document())
                .ok()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok()),
            Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => None,
            Err(e) => return Err(explain(format!("reading the policy of role {name}"), e)),
        }
    } else {
        None
    };
    if have.as_ref() != Some(&want) {
        changes.push("policy".to_string());
        if !ctx.planning() {
            ctx.aws
                .iam
                .put_role_policy()
                .role_name(&name)
                .policy_name(&name)
                .policy_document(want.to_string())
                .send()
                .await
                .aws(format!("setting the policy of role {name}"))?;
        }
    }

    let profile = match ctx
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(&name)
        .send()
        .await
    {
        Ok(out) => out.instance_profile().cloned(),
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => None,
        Err(e) => return Err(explain(format!("finding instance profile {name}"), e)),
    };
    let (profile_arn, has_role) = match profile {
        Some(p) => (
            p.arn().to_string(),
            p.roles().iter().any(|r| r.role_name() == name),
        ),
        None if ctx.planning() => {
            changes.push("instance profile".into());
            (PLANNED.to_string(), true)
        }
        None => {
            let out = ctx
                .aws
                .iam
                .create_instance_profile()
                .instance_profile_name(&name)
                .set_tags(Some(crate::tags::iam_tags(ctx, "app")?))
                .send()
                .await
                .aws(format!("creating instance profile {name}"))?;
            ctx.progress("instance-profile", &name, "created");
            changes.push("instance profile".into());
            (
                out.instance_profile()
                    .map(|p| p.arn().to_string())
                    .unwrap_or_default(),
                false,
            )
        }
    };
    if !has_role {
        if !changes.contains(&"instance profile".to_string()) {
            changes.push("role in profile".into());
        }
        if !ctx.planning() {
            ctx.aws
                .iam
                .add_role_to_instance_profile()
                .instance_profile_name(&name)
                .role_name(&name)
                .send()
                .await
                .aws(format!("adding role {name} to its instance profile"))?;
        }
    }
    ctx.set(|o| o.instance_profile_arn = Some(profile_arn));
    Ok(if !existed {
        Change::Create
    } else if changes.is_empty() {
        Change::Unchanged
    } else {
        Change::Update(changes.join("; "))
    })
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let name = role_name(ctx);
    let mut any = false;
    match ctx
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(&name)
        .send()
        .await
    {
        Ok(out) => {
            if let Some(p) = out.instance_profile() {
                if tagged(ctx, p.tags()) {
                    for r in p.roles() {
                        ctx.aws
                            .iam
                            .remove_role_from_instance_profile()
                            .instance_profile_name(&name)
                            .role_name(r.role_name())
                            .send()
                            .await
                            .aws(format!("removing role from instance profile {name}"))?;
                    }
                    ctx.aws
                        .iam
                        .delete_instance_profile()
                        .instance_profile_name(&name)
                        .send()
                        .await
                        .aws(format!("deleting instance profile {name}"))?;
                    ctx.progress("instance-profile", &name, "deleted");
                    any = true;
                }
            }
        }
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {}
        Err(e) => return Err(explain(format!("finding instance profile {name}"), e)),
    }
    match ctx.aws.iam.get_role().role_name(&name).send().await {
        Ok(out) => {
            if out.role().is_some_and(|r| tagged(ctx, r.tags())) {
                let policies = ctx
                    .aws
                    .iam
                    .list_role_policies()
                    .role_name(&name)
                    .send()
                    .await
                    .aws(format!("listing policies of role {name}"))?;
                for p in policies.policy_names() {
                    ctx.aws
                        .iam
                        .delete_role_policy()
                        .role_name(&name)
                        .policy_name(p)
                        .send()
                        .await
                        .aws(format!("deleting policy {p} of role {name}"))?;
                }
                retry_while(
                    &format!("deleting role {name}"),
                    &["DeleteConflict"],
                    ctx.timing,
                    || ctx.aws.iam.delete_role().role_name(&name).send(),
                )
                .await?;
                ctx.progress("iam-role", &name, "deleted");
                any = true;
            }
        }
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {}
        Err(e) => return Err(explain(format!("finding role {name}"), e)),
    }
    Ok(if any { Change::Delete } else { Change::Absent })
}
