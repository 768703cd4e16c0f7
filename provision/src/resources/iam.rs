//! The instance role and profile, least privilege: read-write on this stack's images,
//! read-only on its releases, its two secrets, writing its own log streams, and what the SSM agent needs for Run
//! Command (`provision exec`); nothing else. IAM is global, so the names carry the
//! region: the same stack name in two regions gets two roles.

use crate::engine::context::{Ctx, PLANNED, STACK_TAG};
use crate::engine::errors::{already, code, explain, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{retry_while, until_visible};
use crate::resources::scan::{found, Found};
use crate::templates;

pub fn role_name(ctx: &Ctx) -> String {
    ctx.name(&format!("{}-app", ctx.aws.region))
}

/// The inline policy the role must have (`templates/app-policy.json`).
///
/// Its `SsmAgentRunCommand` statement is the part of AmazonSSMManagedInstanceCore that Run
/// Command needs: the agent registers and pings (ssm:UpdateInstanceInformation) and takes
/// its commands and sends their results over ec2messages or, newer agents, the
/// ssmmessages control channel. Left out: State Manager, Inventory, Patch Manager and
/// Parameter Store (ssm:ListAssociations, PutInventory, GetDocument, GetParameter, ...).
/// `Resource` is `*` because the ssmmessages and ec2messages actions support no
/// resource-level permissions, and the agent calls UpdateInstanceInformation for the
/// instance it runs on (whose id the policy, shared by the group, cannot name).
pub fn app_policy(
    bucket: &str,
    db_secret: &str,
    admin_secret: &str,
    log_group_arn: &str,
) -> anyhow::Result<serde_json::Value> {
    templates::policy(
        templates::APP_POLICY,
        &[
            ("bucket", bucket),
            ("db_secret_arn", db_secret),
            ("admin_secret_arn", admin_secret),
            ("log_group_arn", log_group_arn),
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
    // The stack's log group (`logs`): the instances create their own streams in it.
    let log_group = crate::resources::logs::group_arn(
        &ctx.aws.region,
        &o.account,
        &crate::resources::logs::group_name(ctx),
    );
    let want = app_policy(&bucket, &db_secret, &admin_secret, &log_group)?;
    let mut changes = Vec::new();

    let role = match ctx.aws.iam.get_role().role_name(&name).send().await {
        Ok(out) => out.role().cloned(),
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => None,
        Err(e) => return Err(explain(format!("finding role {name}"), e)),
    };
    let mut existed = role.is_some();
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
        None => create_role(ctx, &name).await?,
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
            let put = || {
                ctx.aws
                    .iam
                    .put_role_policy()
                    .role_name(&name)
                    .policy_name(&name)
                    .policy_document(want.to_string())
                    .send()
            };
            let what = format!("setting the policy of role {name}");
            match put().await {
                Ok(_) => {}
                // GetRole lags deletes: the role it showed is gone (a `down` moments ago).
                Err(e) if existed && code(&e).as_deref() == Some("NoSuchEntity") => {
                    ctx.progress(
                        "iam-role",
                        &name,
                        "listed but gone (deleted moments ago): creating it",
                    );
                    let arn = create_role(ctx, &name).await?;
                    ctx.set(|o| o.role_arn = Some(arn));
                    existed = false;
                    until_visible(&what, &["NoSuchEntity"], ctx.timing, put).await?;
                }
                // A role created moments ago may not be known to every IAM endpoint yet.
                Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {
                    until_visible(&what, &["NoSuchEntity"], ctx.timing, put).await?;
                }
                Err(e) => return Err(explain(what, e)),
            }
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
            let arn = create_profile(ctx, &name).await?;
            changes.push("instance profile".into());
            (arn, false)
        }
    };
    if !has_role {
        if !changes.contains(&"instance profile".to_string()) {
            changes.push("role in profile".into());
        }
        if !ctx.planning() {
            // A profile holds one role: LimitExceeded means it holds it already (this call,
            // its first answer lost).
            until_visible(
                &format!("adding role {name} to its instance profile"),
                &["NoSuchEntity"],
                ctx.timing,
                || async {
                    already(
                        ctx.aws
                            .iam
                            .add_role_to_instance_profile()
                            .instance_profile_name(&name)
                            .role_name(&name)
                            .send()
                            .await,
                        &["LimitExceeded"],
                    )
                },
            )
            .await?;
            // LimitExceeded only says the profile holds *a* role: it must be this one.
            let holds = ctx
                .aws
                .iam
                .get_instance_profile()
                .instance_profile_name(&name)
                .send()
                .await
                .aws(format!("reading instance profile {name}"))?
                .instance_profile()
                .is_some_and(|p| p.roles().iter().any(|r| r.role_name() == name));
            if !holds {
                anyhow::bail!("instance profile {name} holds another role than {name}: remove it from the profile, then run `provision up` again");
            }
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

async fn create_role(ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    let made = ctx
        .aws
        .iam
        .create_role()
        .role_name(name)
        .description(format!("gallery {}: app instances", ctx.stack()))
        .assume_role_policy_document(templates::ASSUME_ROLE)
        .set_tags(Some(crate::engine::tags::iam_tags(ctx, "app")?))
        .send()
        .await
        .aws_unless(format!("creating role {name}"), &["EntityAlreadyExists"])?;
    let arn = match made {
        Some(out) => out.role().map(|r| r.arn().to_string()).unwrap_or_default(),
        // Made by this call, its answer lost: read it back.
        None => {
            let out = ctx
                .aws
                .iam
                .get_role()
                .role_name(name)
                .send()
                .await
                .aws(format!("reading role {name}"))?;
            match out.role() {
                Some(r) if tagged(ctx, r.tags()) => r.arn().to_string(),
                _ => anyhow::bail!(
                    "IAM role {name} exists but is not tagged for this stack: refusing to use it"
                ),
            }
        }
    };
    ctx.progress("iam-role", name, "created");
    Ok(arn)
}

async fn create_profile(ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    let made = ctx
        .aws
        .iam
        .create_instance_profile()
        .instance_profile_name(name)
        .set_tags(Some(crate::engine::tags::iam_tags(ctx, "app")?))
        .send()
        .await
        .aws_unless(
            format!("creating instance profile {name}"),
            &["EntityAlreadyExists"],
        )?;
    let arn = match made {
        Some(out) => out
            .instance_profile()
            .map(|p| p.arn().to_string())
            .unwrap_or_default(),
        // Made by this call, its answer lost: read it back, ours only.
        None => {
            let out = until_visible(
                &format!("reading instance profile {name}"),
                &["NoSuchEntity"],
                ctx.timing,
                || {
                    ctx.aws
                        .iam
                        .get_instance_profile()
                        .instance_profile_name(name)
                        .send()
                },
            )
            .await?;
            match out.instance_profile() {
                Some(p) if tagged(ctx, p.tags()) => p.arn().to_string(),
                _ => anyhow::bail!(
                    "instance profile {name} exists but is not tagged for this stack: refusing to use it"
                ),
            }
        }
    };
    ctx.progress("instance-profile", name, "created");
    Ok(arn)
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
                            .aws_unless(
                                format!("removing role from instance profile {name}"),
                                &["NoSuchEntity"],
                            )?;
                    }
                    ctx.aws
                        .iam
                        .delete_instance_profile()
                        .instance_profile_name(&name)
                        .send()
                        .await
                        .aws_unless(
                            format!("deleting instance profile {name}"),
                            &["NoSuchEntity"],
                        )?;
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
                    .aws_unless(
                        format!("listing policies of role {name}"),
                        &["NoSuchEntity"],
                    )?;
                let names = policies
                    .map(|p| p.policy_names().to_vec())
                    .unwrap_or_default();
                for p in &names {
                    ctx.aws
                        .iam
                        .delete_role_policy()
                        .role_name(&name)
                        .policy_name(p)
                        .send()
                        .await
                        .aws_unless(
                            format!("deleting policy {p} of role {name}"),
                            &["NoSuchEntity"],
                        )?;
                }
                retry_while(
                    &format!("deleting role {name}"),
                    &["DeleteConflict"],
                    ctx.timing,
                    || async {
                        already(
                            ctx.aws.iam.delete_role().role_name(&name).send().await,
                            &["NoSuchEntity"],
                        )
                    },
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

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let mut all = Vec::new();
    // Not found is "gone"; any other error (no permission, say) must not read as "gone".
    let role = role_name(ctx);
    match ctx.aws.iam.get_role().role_name(&role).send().await {
        Ok(out) => {
            if out.role().is_some_and(|r| {
                r.tags()
                    .iter()
                    .any(|t| t.key() == STACK_TAG && t.value() == ctx.stack())
            }) {
                all.push(found("iam-role", role.clone(), "present"));
            }
        }
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {}
        Err(e) => return Err(explain(format!("scanning IAM role {role}"), e)),
    }
    match ctx
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(&role)
        .send()
        .await
    {
        Ok(out) => {
            if out.instance_profile().is_some() {
                all.push(found("instance-profile", role, "present"));
            }
        }
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {}
        Err(e) => return Err(explain(format!("scanning instance profile {role}"), e)),
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the SSM agent needs for Run Command, and only that.
    pub const SSM_AGENT: [&str; 11] = [
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
        "ec2messages:AcknowledgeMessage",
        "ec2messages:DeleteMessage",
        "ec2messages:FailMessage",
        "ec2messages:GetEndpoint",
        "ec2messages:GetMessages",
        "ec2messages:SendReply",
    ];

    #[test]
    fn the_role_gets_the_ssm_agents_run_command_actions_and_no_wildcard_action() {
        let doc = app_policy("b", "arn:db", "arn:admin", "arn:group").unwrap();
        let statements = doc["Statement"].as_array().unwrap();
        let actions = |st: &serde_json::Value| -> Vec<String> {
            match &st["Action"] {
                serde_json::Value::String(a) => vec![a.clone()],
                serde_json::Value::Array(a) => {
                    a.iter().map(|v| v.as_str().unwrap().to_string()).collect()
                }
                other => panic!("action {other}"),
            }
        };
        let ssm: Vec<&serde_json::Value> = statements
            .iter()
            .filter(|st| {
                actions(st)
                    .iter()
                    .any(|a| a.starts_with("ssm") || a.starts_with("ec2messages"))
            })
            .collect();
        assert_eq!(ssm.len(), 1, "one statement for the agent: {ssm:?}");
        assert_eq!(actions(ssm[0]), SSM_AGENT.to_vec());
        assert_eq!(ssm[0]["Effect"], "Allow");
        assert!(ssm[0].get("Condition").is_none());
        for st in statements {
            for a in actions(st) {
                assert!(!a.contains('*'), "wildcard action: {a}");
            }
            // Only the agent's statement is on "*": its actions take no resource ARN.
            if st["Resource"] == "*" {
                assert_eq!(st["Sid"], "SsmAgentRunCommand", "{st}");
            }
        }
        // Nothing to send commands, read parameters or open sessions elsewhere.
        let all = doc.to_string();
        for broader in [
            "ssm:SendCommand",
            "ssm:GetParameter",
            "ssm:StartSession",
            "ssm:ListAssociations",
            "ssm:GetDocument",
            "ssm:PutInventory",
        ] {
            assert!(!all.contains(broader), "{broader} granted");
        }
    }

    #[test]
    fn the_role_may_only_make_streams_and_put_events_in_the_stacks_log_group() {
        let group = "arn:aws:logs:us-east-1:123456789012:log-group:/gallery/photos";
        let doc = app_policy("b", "arn:db", "arn:admin", group).unwrap();
        let logs: Vec<&serde_json::Value> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|st| st["Action"].to_string().contains("logs:"))
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(
            logs[0]["Action"],
            serde_json::json!(["logs:CreateLogStream", "logs:PutLogEvents"])
        );
        assert_eq!(
            logs[0]["Resource"],
            serde_json::json!([group, format!("{group}:log-stream:*")])
        );
        // Nothing to read, delete or reconfigure logs, nor to make groups.
        let all = doc.to_string();
        for broader in [
            "logs:CreateLogGroup",
            "logs:DeleteLogGroup",
            "logs:FilterLogEvents",
            "logs:GetLogEvents",
            "logs:PutRetentionPolicy",
            "logs:*",
        ] {
            assert!(!all.contains(broader), "{broader} granted");
        }
    }

    #[test]
    fn the_role_gets_no_certificate_or_dns_action() {
        // balancer.domain's certificate and records are the operator's to make: an
        // instance can neither issue a certificate nor point the domain elsewhere.
        let all = app_policy("b", "arn:db", "arn:admin", "arn:group")
            .unwrap()
            .to_string();
        for service in ["\"acm:", "\"route53:", "\"route53domains:"] {
            assert!(!all.contains(service), "{service} granted: {all}");
        }
    }
}
