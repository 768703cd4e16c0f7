//! The CloudWatch Logs group of the stack, `/gallery/<stack>`: each instance's gallery
//! ships its log lines to a stream named by its instance id (the app's `logship`), so
//! they outlive the instance; `provision logs` reads them. Created with the retention of
//! `logs.retention_days` and the stack's tags; a changed retention is converged. `down`
//! deletes it, or keeps it when it keeps the data.

use aws_sdk_cloudwatchlogs::types::LogGroup;

use crate::engine::context::{Ctx, ROLE_TAG, STACK_TAG};
use crate::engine::errors::{code, explain, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::until_visible;
use crate::resources::scan::{found, Found};

pub const ROLE: &str = "app-logs";

/// The group's name (log groups are regional, as stacks are).
pub fn group_name(ctx: &Ctx) -> String {
    format!("/gallery/{}", ctx.stack())
}

/// The group's ARN as IAM names it (without DescribeLogGroups' trailing `:*`).
pub fn group_arn(region: &str, account: &str, group: &str) -> String {
    format!("arn:aws:logs:{region}:{account}:log-group:{group}")
}

/// The group, by exact name (DescribeLogGroups matches a prefix, page by page).
pub async fn find(ctx: &Ctx) -> anyhow::Result<Option<LogGroup>> {
    let name = group_name(ctx);
    let mut token = None;
    loop {
        let page = ctx
            .aws
            .logs
            .describe_log_groups()
            .log_group_name_prefix(&name)
            .set_next_token(token)
            .send()
            .await
            .aws(format!("finding log group {name}"))?;
        if let Some(g) = page
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name.as_str()))
        {
            return Ok(Some(g.clone()));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(None),
        }
    }
}

fn arn_of(ctx: &Ctx, group: &LogGroup) -> String {
    group
        .arn()
        .map(|a| a.trim_end_matches(":*").to_string())
        .unwrap_or_else(|| group_arn(&ctx.aws.region, &ctx.out().account, &group_name(ctx)))
}

/// Whether the group carries this stack's tag.
async fn ours(ctx: &Ctx, group: &LogGroup) -> anyhow::Result<bool> {
    let arn = arn_of(ctx, group);
    let tags = ctx
        .aws
        .logs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .aws(format!("reading the tags of log group {}", group_name(ctx)))?;
    Ok(tags
        .tags()
        .is_some_and(|t| t.get(STACK_TAG).map(String::as_str) == Some(ctx.stack())))
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let name = group_name(ctx);
    let want = ctx.config.logs.retention_days;
    let Some(group) = find(ctx).await? else {
        if ctx.planning() {
            return Ok(Change::Create);
        }
        // A lost answer's retry finds it made: that is this call's group.
        ctx.aws
            .logs
            .create_log_group()
            .log_group_name(&name)
            .tags(STACK_TAG, ctx.stack())
            .tags(ROLE_TAG, ROLE)
            .tags("Name", ctx.name(ROLE))
            .send()
            .await
            .aws_unless(
                format!("creating log group {name}"),
                &["ResourceAlreadyExistsException"],
            )?;
        set_retention(ctx, want).await?;
        return Ok(Change::Create);
    };
    if !ours(ctx, &group).await? {
        anyhow::bail!(
            "log group {name} exists but is not tagged for this stack ({STACK_TAG}={}): refusing to use it",
            ctx.stack()
        );
    }
    let have = group.retention_in_days();
    // What runs, as billed (a group that never expires is priced at ten years).
    let billed = u32::try_from(have.unwrap_or(3653)).ok();
    ctx.set(|o| o.running.log_retention_days = billed);
    if have == Some(want) {
        return Ok(Change::Unchanged);
    }
    let was = have.map_or("never expire".to_string(), |d| format!("{d} days"));
    if !ctx.planning() {
        set_retention(ctx, want).await?;
    }
    Ok(Change::Update(format!("retention {was} -> {want} days")))
}

async fn set_retention(ctx: &Ctx, days: i32) -> anyhow::Result<()> {
    let name = group_name(ctx);
    // A group created moments ago may not be known everywhere yet.
    until_visible(
        &format!("setting the retention of log group {name}"),
        &["ResourceNotFoundException"],
        ctx.timing,
        || {
            ctx.aws
                .logs
                .put_retention_policy()
                .log_group_name(&name)
                .retention_in_days(days)
                .send()
        },
    )
    .await?;
    Ok(())
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let name = group_name(ctx);
    let Some(group) = find(ctx).await? else {
        return Ok(Change::Absent);
    };
    if !ours(ctx, &group).await? {
        ctx.progress("log-group", &name, "not tagged for this stack: left alone");
        return Ok(Change::Absent);
    }
    match ctx
        .aws
        .logs
        .delete_log_group()
        .log_group_name(&name)
        .send()
        .await
    {
        Ok(_) => Ok(Change::Delete),
        // Gone already: by this call, its first answer lost.
        Err(e) if code(&e).as_deref() == Some("ResourceNotFoundException") => Ok(Change::Absent),
        Err(e) => Err(explain(format!("deleting log group {name}"), e)),
    }
}

/// `down` keeping the data keeps the logs too (they are its record of what happened).
pub async fn keep(ctx: &Ctx) -> anyhow::Result<Change> {
    let Some(group) = find(ctx).await? else {
        return Ok(Change::Absent);
    };
    if !ours(ctx, &group).await? {
        return Ok(Change::Absent);
    }
    Ok(Change::Note(format!(
        "kept with the data: the app's logs ({})",
        retention_text(group.retention_in_days())
    )))
}

fn retention_text(days: Option<i32>) -> String {
    days.map_or("never expire".into(), |d| format!("{d} days' retention"))
}

pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let Some(group) = find(ctx).await? else {
        return Ok(Vec::new());
    };
    if !ours(ctx, &group).await? {
        return Ok(Vec::new());
    }
    Ok(vec![found(
        "log-group",
        group_name(ctx),
        format!(
            "{}, {} bytes stored",
            retention_text(group.retention_in_days()),
            group.stored_bytes().unwrap_or(0)
        ),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arn_names_the_group_as_iam_does() {
        assert_eq!(
            group_arn("eu-west-1", "123456789012", "/gallery/photos"),
            "arn:aws:logs:eu-west-1:123456789012:log-group:/gallery/photos"
        );
    }
}
