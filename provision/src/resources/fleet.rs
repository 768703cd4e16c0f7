//! The Auto Scaling group over the two AZs, attached to the target group with ELB health
//! checks, so a dead instance is replaced. Pinned to a launch template version number.

use crate::resources::scan::{found, Found};
use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::Filter;

use crate::engine::context::{Ctx, PLANNED, ROLE_TAG, STACK_TAG};
use crate::engine::errors::{already, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{retry_while, until_visible_if, wait_for};
use crate::engine::tags::ec2_filters;

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
            ctx.set(|o| {
                o.running.instances = u32::try_from(g.desired_capacity().unwrap_or(0)).unwrap_or(0);
                o.running.max_instances = u32::try_from(g.max_size().unwrap_or(0)).unwrap_or(0);
            });
            let mut diff = Vec::new();
            // With a scaling policy the policy owns the desired capacity (within min/max).
            let set_desired = crate::ops_config::desired_to_set(
                ctx.config.scaling.enabled,
                g.desired_capacity(),
                app.min_size,
                app.max_size,
                app.desired_capacity,
            );
            if g.min_size() != Some(app.min_size)
                || g.max_size() != Some(app.max_size)
                || set_desired.is_some()
            {
                diff.push(format!(
                    "size {}/{}/{} -> {}/{}/{} (min/desired/max)",
                    g.min_size().unwrap_or(0),
                    g.desired_capacity().unwrap_or(0),
                    g.max_size().unwrap_or(0),
                    app.min_size,
                    set_desired.unwrap_or(g.desired_capacity().unwrap_or(0)),
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
            // Left suspended by a deploy that died: the group must balance again. (Other
            // processes an operator suspended by hand are theirs.)
            let suspended: Vec<String> = g
                .suspended_processes()
                .iter()
                .filter_map(|p| p.process_name().map(String::from))
                .filter(|p| INTERFERING.contains(&p.as_str()))
                .collect();
            if !suspended.is_empty() {
                diff.push(format!("resume {}", suspended.join(", ")));
                if !ctx.planning() {
                    resume(ctx, &suspended).await?;
                }
            }
            if diff.is_empty() {
                Change::Unchanged
            } else {
                let only_resumed = diff.len() == 1 && diff[0].starts_with("resume ");
                if !ctx.planning() && !only_resumed && !ctx.config.scaling.enabled {
                    // A policy turned off goes before the count is set back: while it
                    // lives, its alarm in ALARM acts again every minute (Auto Scaling
                    // actions repeat, unlike notifications) and would undo the count
                    // this sets and the wait below expects.
                    crate::resources::scaling::delete(ctx).await?;
                }
                if !ctx.planning() && !only_resumed {
                    until_visible_if(
                        &format!("updating Auto Scaling group {asg}"),
                        ctx.timing,
                        not_yet_visible,
                        || {
                            ctx.aws
                                .asg
                                .update_auto_scaling_group()
                                .auto_scaling_group_name(&asg)
                                .launch_template(spec.clone())
                                .min_size(app.min_size)
                                .max_size(app.max_size)
                                .set_desired_capacity(set_desired)
                                .vpc_zone_identifier(&zones)
                                .health_check_type("ELB")
                                .health_check_grace_period(app.health_check_grace_secs)
                                .send()
                        },
                    )
                    .await?;
                }
                Change::Update(diff.join("; "))
            }
        }
        None if ctx.planning() => Change::Create,
        None => {
            let _ = o;
            // The instance profile made moments ago reaches Auto Scaling last ("Invalid IAM
            // Instance Profile"); a group of this name already was made by this call, its
            // answer lost.
            until_visible_if(
                &format!("creating Auto Scaling group {asg}"),
                ctx.timing,
                not_yet_visible,
                || async {
                    already(
                        ctx.aws
                            .asg
                            .create_auto_scaling_group()
                            .auto_scaling_group_name(&asg)
                            .launch_template(spec.clone())
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
                            .await,
                        &["AlreadyExists"],
                    )
                },
            )
            .await?;
            // AlreadyExists: made by this call, its answer lost, if it is ours.
            if find(ctx).await?.is_none() {
                anyhow::bail!(
                    "Auto Scaling group {asg} exists but is not tagged for this stack (or is being deleted): remove it, or wait, and run `provision up` again"
                );
            }
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

/// What Auto Scaling says about a subnet, template or instance profile made moments ago.
fn not_yet_visible(code: &str, msg: &str) -> bool {
    code == "ValidationError"
        && (msg.contains("Invalid IAM Instance Profile")
            || msg.contains("does not exist")
            || msg.contains("not found"))
}

/// The processes a controlled replacement suspends: Auto Scaling would otherwise rebalance
/// the zones behind its back (launching and terminating instances of its own choosing) and
/// act on alarms.
pub const INTERFERING: [&str; 3] = ["AZRebalance", "AlarmNotification", "ScheduledActions"];

pub async fn suspend(ctx: &Ctx, processes: &[&str]) -> anyhow::Result<()> {
    let asg = name(ctx);
    ctx.aws
        .asg
        .suspend_processes()
        .auto_scaling_group_name(&asg)
        .set_scaling_processes(Some(processes.iter().map(|p| p.to_string()).collect()))
        .send()
        .await
        .aws(format!("suspending {} of {asg}", processes.join(", ")))?;
    ctx.progress(
        "auto-scaling-group",
        &asg,
        &format!("suspended {}", processes.join(", ")),
    );
    Ok(())
}

pub async fn resume(ctx: &Ctx, processes: &[impl AsRef<str>]) -> anyhow::Result<()> {
    let asg = name(ctx);
    let names: Vec<String> = processes.iter().map(|p| p.as_ref().to_string()).collect();
    ctx.aws
        .asg
        .resume_processes()
        .auto_scaling_group_name(&asg)
        .set_scaling_processes(Some(names.clone()))
        .send()
        .await
        .aws(format!("resuming {} of {asg}", names.join(", ")))?;
    ctx.progress(
        "auto-scaling-group",
        &asg,
        &format!("resumed {}", names.join(", ")),
    );
    Ok(())
}

/// Wait until the group has its desired number of instances in service.
pub async fn wait_in_service(ctx: &Ctx) -> anyhow::Result<()> {
    let asg = name(ctx);
    let what = if ctx.config.scaling.enabled {
        format!("the instances {asg} wants to be in service")
    } else {
        format!(
            "{} instance(s) of {asg} to be in service",
            ctx.config.app.desired_capacity
        )
    };
    wait_for(&what, ctx.timing, ctx.timing.wait_timeout, || async {
        let g = find(ctx).await?;
        // With a scaling policy: what the group wants now.
        let want = usize::try_from(crate::ops_config::wanted(
            &ctx.config,
            g.as_ref().and_then(|g| g.desired_capacity()),
        ))
        .unwrap_or(0);
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
    })
    .await
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let asg = name(ctx);
    let mut changed = false;
    if find(ctx).await?.is_some() {
        retry_while(
            &format!("deleting Auto Scaling group {asg}"),
            &["ScalingActivityInProgress", "ResourceInUse"],
            ctx.timing,
            || async {
                match ctx
                    .aws
                    .asg
                    .delete_auto_scaling_group()
                    .auto_scaling_group_name(&asg)
                    .force_delete(true)
                    .send()
                    .await
                {
                    // Gone already: this call deleted it, its first answer lost.
                    Err(e)
                        if crate::engine::errors::message(&e)
                            .is_some_and(|m| m.contains("not found")) =>
                    {
                        Ok(None)
                    }
                    r => r.map(Some),
                }
            },
        )
        .await?;
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
        .and_then(crate::resources::launch::release_of)
        .unwrap_or_else(|| "unknown".into()))
}

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let mut all = Vec::new();
    let ec2 = &ctx.aws.ec2;
    let f = || Some(ec2_filters(ctx, None));
    let instances = ec2
        .describe_instances()
        .set_filters(f())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .aws("scanning instances")?;
    for i in instances.reservations().iter().flat_map(|r| r.instances()) {
        all.push(found(
            "instance",
            i.instance_id().unwrap_or_default(),
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str())
                .unwrap_or_default(),
        ));
    }

    if let Some(g) = find(ctx).await? {
        all.push(found(
            "auto-scaling-group",
            g.auto_scaling_group_name().unwrap_or_default(),
            format!("{} instances", g.instances().len()),
        ));
    }
    Ok(all)
}
