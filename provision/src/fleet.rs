//! The Auto Scaling group over the two AZs, attached to the target group with ELB health
//! checks, so a dead instance is replaced. Pinned to a launch template version number.

use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification, Tag};

use crate::aws::{wait_for, AwsResult};
use crate::context::{Ctx, PLANNED, ROLE_TAG, STACK_TAG};
use crate::graph::Change;
use crate::tags::ec2_filters;

pub fn name(ctx: &Ctx) -> String {
    ctx.name("asg")
}

pub async fn find(ctx: &Ctx) -> anyhow::Result<Option<AutoScalingGroup>> {
    let out = ctx
        .aws
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name(ctx))
        .send()
        .await
        .aws("finding the Auto Scaling group")?;
    Ok(out
        .auto_scaling_groups()
        .first()
        .cloned()
        .filter(|g| tagged(ctx, g)))
}

fn tagged(ctx: &Ctx, g: &AutoScalingGroup) -> bool {
    g.tags()
        .iter()
        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()))
}

fn tag(ctx: &Ctx, key: &str, value: &str) -> Tag {
    Tag::builder()
        .resource_id(name(ctx))
        .resource_type("auto-scaling-group")
        .key(key)
        .value(value)
        .propagate_at_launch(true)
        .build()
}

/// Subnets the instances live in: private behind a NAT gateway, public otherwise.
fn subnets(ctx: &Ctx) -> Vec<String> {
    let o = ctx.out();
    if ctx.config.network.nat_gateway {
        o.private_subnets
    } else {
        o.public_subnets
    }
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let o = ctx.out();
    let lt = ctx.need("the launch template", |o| o.launch_template_id.clone())?;
    let version = ctx.need("the launch template version", |o| o.launch_template_version)?;
    let tg = ctx.need("the target group", |o| o.target_group_arn.clone())?;
    let app = &ctx.config.app;
    let zones = subnets(ctx).join(",");
    let spec = LaunchTemplateSpecification::builder()
        .launch_template_id(&lt)
        .version(version.to_string())
        .build();
    let asg = name(ctx);
    let change = match find(ctx).await? {
        Some(g) => {
            let mut diff = Vec::new();
            if g.min_size() != Some(app.min_size)
                || g.max_size() != Some(app.max_size)
                || g.desired_capacity() != Some(app.desired_capacity)
            {
                diff.push(format!(
                    "size {}/{}/{} -> {}/{}/{} (min/desired/max)",
                    g.min_size().unwrap_or(0),
                    g.desired_capacity().unwrap_or(0),
                    g.max_size().unwrap_or(0),
                    app.min_size,
                    app.desired_capacity,
                    app.max_size
                ));
            }
            let have_version = g
                .launch_template()
                .and_then(|l| l.version())
                .unwrap_or_default()
                .to_string();
            if have_version != version.to_string() && lt != PLANNED {
                diff.push(format!("launch template version {have_version} -> {version} (new instances use it; `provision deploy` replaces running ones)"));
            }
            let mut have_zones: Vec<&str> = g
                .vpc_zone_identifier()
                .unwrap_or_default()
                .split(',')
                .collect();
            let mut want_zones: Vec<&str> = zones.split(',').collect();
            have_zones.sort();
            want_zones.sort();
            if have_zones != want_zones && !zones.contains(PLANNED) {
                diff.push("subnets".into());
            }
            if g.health_check_type() != Some("ELB")
                || g.health_check_grace_period() != Some(app.health_check_grace_secs)
            {
                diff.push("health check".into());
            }
            if diff.is_empty() {
                Change::Unchanged
            } else {
                if !ctx.planning() {
                    ctx.aws
                        .asg
                        .update_auto_scaling_group()
                        .auto_scaling_group_name(&asg)
                        .launch_template(spec)
                        .min_size(app.min_size)
                        .max_size(app.max_size)
                        .desired_capacity(app.desired_capacity)
                        .vpc_zone_identifier(&zones)
                        .health_check_type("ELB")
                        .health_check_grace_period(app.health_check_grace_secs)
                        .send()
                        .await
                        .aws(format!("updating Auto Scaling group {asg}"))?;
                }
                Change::Update(diff.join("; "))
            }
        }
        None if ctx.planning() => Change::Create,
        None => {
            let _ = o;
            ctx.aws
                .asg
                .create_auto_scaling_group()
                .auto_scaling_group_name(&asg)
                .launch_template(spec)
                .min_size(app.min_size)
                .max_size(app.max_size)
                .desired_capacity(app.desired_capacity)
                .vpc_zone_identifier(&zones)
                .target_group_arns(&tg)
                .health_check_type("ELB")
                .health_check_grace_period(app.health_check_grace_secs)
                .tags(tag(ctx, STACK_TAG, ctx.stack()))
                .tags(tag(ctx, ROLE_TAG, "app"))
                .tags(tag(ctx, "Name", &ctx.name("app")))
                .send()
                .await
                .aws(format!("creating Auto Scaling group {asg}"))?;
            ctx.progress("auto-scaling-group", &asg, "created");
            Change::Create
        }
    };
    ctx.set(|o| o.asg = Some(asg.clone()));
    if !ctx.planning() && change.is_change() {
        wait_in_service(ctx).await?;
    }
    Ok(change)
}

/// Wait until the group has its desired number of instances in service.
pub async fn wait_in_service(ctx: &Ctx) -> anyhow::Result<()> {
    let want = ctx.config.app.desired_capacity as usize;
    let asg = name(ctx);
    wait_for(
        &format!("{want} instance(s) of {asg} to be in service"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async {
            let g = find(ctx).await?;
            let n = g
                .map(|g| {
                    g.instances()
                        .iter()
                        .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
                        .count()
                })
                .unwrap_or(0);
            ctx.progress(
                "auto-scaling-group",
                &asg,
                &format!("{n}/{want} instances in service"),
            );
            Ok((n >= want).then_some(()))
        },
    )
    .await
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let asg = name(ctx);
    let mut changed = false;
    if find(ctx).await?.is_some() {
        ctx.aws
            .asg
            .delete_auto_scaling_group()
            .auto_scaling_group_name(&asg)
            .force_delete(true)
            .send()
            .await
            .aws(format!("deleting Auto Scaling group {asg}"))?;
        wait_for(
            &format!("{asg} to be deleted"),
            ctx.timing,
            ctx.timing.wait_timeout,
            || async {
                let out = ctx
                    .aws
                    .asg
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(&asg)
                    .send()
                    .await
                    .aws("checking the Auto Scaling group")?;
                Ok(out.auto_scaling_groups().is_empty().then_some(()))
            },
        )
        .await?;
        ctx.progress("auto-scaling-group", &asg, "deleted");
        changed = true;
    }
    // Instances of the stack that outlived their group (or were launched by hand).
    let ids = live_instances(ctx).await?;
    if !ids.is_empty() {
        ctx.aws
            .ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.clone()))
            .send()
            .await
            .aws("terminating the stack's instances")?;
        wait_for(
            "the stack's instances to terminate",
            ctx.timing,
            ctx.timing.wait_timeout,
            || async { Ok(live_instances(ctx).await?.is_empty().then_some(())) },
        )
        .await?;
        ctx.progress("instances", &ids.join(","), "terminated");
        changed = true;
    }
    Ok(if changed {
        Change::Delete
    } else {
        Change::Absent
    })
}

/// The stack's instances that are not terminated.
pub async fn live_instances(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let out = ctx
        .aws
        .ec2
        .describe_instances()
        .set_filters(Some(ec2_filters(ctx, None)))
        .send()
        .await
        .aws("finding the stack's instances")?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            !matches!(
                i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                Some("terminated") | Some("shutting-down")
            )
        })
        .filter_map(|i| i.instance_id().map(String::from))
        .collect())
}

/// The release an instance booted, from its user-data ("unknown" if it names none).
pub async fn release_of_instance(ctx: &Ctx, id: &str) -> anyhow::Result<String> {
    let out = ctx
        .aws
        .ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .aws(format!("reading the user-data of {id}"))?;
    Ok(out
        .user_data()
        .and_then(|u| u.value())
        .and_then(crate::launch::release_of)
        .unwrap_or_else(|| "unknown".into()))
}
