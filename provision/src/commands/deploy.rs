//! `deploy` and `rollback`: put a release on a running stack with no downtime. A new
//! launch template version (pinned by number) names the release; the Auto Scaling group
//! is pointed at it; then, batch by batch, new instances are started and must become
//! healthy in the target group (bounded wait, each target's state and reason printed)
//! before as many old ones are deregistered, drained and terminated. Capacity never drops
//! below the desired count. A batch that does not become healthy in time returns the group
//! to the previous version, removes the new instances and fails, saying why.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use base64::Engine;

use crate::engine::context::Ctx;
use crate::engine::errors::AwsResult;
use crate::engine::retry::wait_for;
use crate::release;
use crate::resources::balancer;
use crate::resources::fleet;
use crate::resources::launch;

/// What to roll out.
#[derive(Debug, Clone)]
pub enum Target {
    /// A binary on this machine: uploaded as a new release.
    Artifact(release::Artifact),
    /// A release already in the bucket (a rollback).
    Release(String),
    /// The release before the one running now.
    Previous,
    /// The release running now, on new instances (`restore`: every instance boots again
    /// on the restored data).
    Running,
}

#[derive(Debug, Clone, Copy)]
pub struct Rolling {
    pub batch: usize,
    /// How long a batch may take to become healthy before the deploy is rolled back.
    pub healthy_timeout: Duration,
}

pub struct Report {
    pub release: String,
    pub version: i64,
    pub replaced: usize,
    pub elapsed: Duration,
}

/// Find the stack (read-only), then roll `target` out under the stack's lock.
pub async fn run(
    planner: &Ctx,
    applier: &Ctx,
    target: Target,
    how: Rolling,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let outcome = crate::commands::up::plan(planner).await?;
    let drift: Vec<String> = outcome
        .changes
        .iter()
        .filter(|(n, c)| {
            c.is_change()
                && !matches!(
                    n,
                    crate::engine::graph::Node::LaunchTemplate
                        | crate::engine::graph::Node::AutoScalingGroup
                )
        })
        .map(|(n, c)| format!("{} ({})", n.label(), c.describe(true)))
        .collect();
    if !drift.is_empty() {
        bail!(
            "the stack does not match config.toml ({}): run `provision up` first, then deploy",
            drift.join(", ")
        );
    }
    let found = planner.out();
    applier.set(|o| *o = found.clone());
    let guard = crate::engine::lock::acquire(applier, "deploy").await?;
    let result = rolled(applier, target, how).await;
    guard.stop().await;
    crate::engine::lock::release(applier).await?;
    let (release, version, replaced) = result?;
    Ok(Report {
        release,
        version,
        replaced,
        elapsed: started.elapsed(),
    })
}

/// The roll itself, for a caller holding the stack's lock with the stack's ids found:
/// (release, launch template version, instances replaced).
pub async fn rolled(
    applier: &Ctx,
    target: Target,
    how: Rolling,
) -> anyhow::Result<(String, i64, usize)> {
    // Auto Scaling must not rebalance zones or act on alarms behind the roll's back: its
    // own launches and terminations would be taken for the roll's. Resumed on every way
    // out (a run that dies leaves them suspended, and the next `up` resumes them).
    match fleet::suspend(applier, &fleet::INTERFERING).await {
        Ok(()) => {
            let rolled = roll(applier, target, how).await;
            let resumed = fleet::resume(applier, &fleet::INTERFERING).await;
            // Rolled out or rolled back, the group then settles (AZRebalance, on again,
            // evens out the zones): the command returns on a steady stack.
            let settled = match &resumed {
                Ok(()) => settled(applier, how.healthy_timeout).await,
                Err(_) => Ok(()),
            };
            match (rolled, resumed, settled) {
                (Ok(r), Ok(()), Ok(())) => Ok(r),
                (Ok(_), Err(e), _) => Err(e.context(
                    "the release is out, but resuming the group's processes failed: run `provision up`",
                )),
                (Ok(_), Ok(()), Err(e)) => Err(e.context("the release is out, but the group did not settle")),
                (Err(e), _, Err(s)) => Err(e.context(format!("and after it the group did not settle: {s:#}"))),
                (Err(e), _, _) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

async fn roll(ctx: &Ctx, target: Target, how: Rolling) -> anyhow::Result<(String, i64, usize)> {
    let asg = fleet::find(ctx)
        .await?
        .context("the stack has no Auto Scaling group: run `provision up` first")?;
    let max = ctx.config.app.max_size;
    // With a scaling policy the roll keeps the count the policy chose (its alarms are
    // suspended meanwhile, with AlarmNotification); without one, config.toml's.
    let desired = crate::ops_config::wanted(&ctx.config, asg.desired_capacity());
    if asg.desired_capacity() != Some(desired) || asg.max_size() != Some(max) {
        // An interrupted deploy leaves the group a batch larger: converge before rolling.
        // (With a policy, a batch left within max_size reads as the policy's count: the
        // policy, resumed, brings it back to what the load needs.)
        let expected = if ctx.config.scaling.enabled {
            format!(
                "the scaling policy keeps it between app.min_size = {} and app.max_size = {max}",
                ctx.config.app.min_size
            )
        } else {
            format!("config.toml says app.desired_capacity = {desired} (app.max_size = {max})")
        };
        bail!(
            "the Auto Scaling group wants {} instance(s) (max {}) but {expected}, perhaps after an interrupted deploy: run `provision up` to converge it, then deploy again",
            asg.desired_capacity().unwrap_or_default(),
            asg.max_size().unwrap_or_default()
        );
    }
    let old_version: i64 = asg
        .launch_template()
        .and_then(|l| l.version())
        .and_then(|v| v.parse().ok())
        .context("the Auto Scaling group is not pinned to a launch template version")?;
    let current = launch::find(ctx)
        .await?
        .context("the stack has no launch template")?;
    let bucket = ctx.need("the bucket", |o| o.bucket.clone())?;
    let running = release_of_version(ctx, &current.id, old_version).await?;

    let again = matches!(target, Target::Running);
    let release = match target {
        Target::Artifact(a) => {
            release::upload(ctx, &bucket, &a).await?;
            a.version
        }
        Target::Release(r) => {
            check_release_exists(ctx, &bucket, &r).await?;
            r
        }
        Target::Previous => previous_release(ctx, &current.id, &running).await?,
        Target::Running => running.clone(),
    };
    if release == running && !again {
        ctx.progress("deploy", &release, "already running: nothing to do");
        return Ok((release, old_version, 0));
    }
    ctx.progress(
        "deploy",
        &release,
        &if again {
            "booting it again on new instances".to_string()
        } else {
            format!("replacing {running}")
        },
    );
    launch::ensure_release(ctx, Some(current.clone()), &release).await?;
    let new_version = ctx.need("the launch template version", |o| o.launch_template_version)?;
    set_version(ctx, &current.id, new_version).await?;

    let old: Vec<String> = in_service(ctx).await?;
    let batch = how.batch.max(1);
    let need_max = desired + i32::try_from(batch).unwrap_or(i32::MAX);
    if need_max > max {
        set_sizes(ctx, None, Some(need_max)).await?;
    }
    let mut known: BTreeSet<String> = old.iter().cloned().collect();
    // New instances that have replaced old ones so far.
    let mut placed: Vec<String> = Vec::new();
    let mut remaining = old.clone();
    while !remaining.is_empty() {
        let n = batch.min(remaining.len());
        if let Err(why) = replace(
            ctx,
            &mut remaining,
            n,
            desired,
            &mut known,
            &mut placed,
            how.healthy_timeout,
        )
        .await
        {
            let fresh = strangers(ctx, &known).await.unwrap_or_default();
            let evidence = explain_unhealthy(ctx, &fresh).await;
            ctx.progress("deploy", &release, "rolling back");
            // Every step of the rollback is tried even when one before it failed; what
            // failed is reported with the reason the deploy stopped.
            let mut trouble: Vec<String> = Vec::new();
            if let Err(e) = set_version(ctx, &current.id, old_version).await {
                trouble.push(format!(
                    "pointing the group back at version {old_version}: {e:#}"
                ));
            }
            if let Err(e) = remove_strangers(ctx, &known, desired).await {
                trouble.push(format!("removing the new instances: {e:#}"));
            }
            // Batches already replaced run the new release: put the old one back on
            // them the same way, so the whole group runs one release again.
            let mut restored = String::new();
            if !placed.is_empty() {
                let mut back = Vec::new();
                let result = restore(
                    ctx,
                    &placed,
                    batch,
                    desired,
                    &mut known,
                    &mut back,
                    how.healthy_timeout,
                )
                .await;
                match result {
                    Ok(()) => {
                        restored = format!(
                            " The {} instance(s) already replaced were rolled back to {running}.",
                            placed.len()
                        )
                    }
                    Err(e) => trouble.push(format!(
                        "putting {running} back on the {} instance(s) already replaced: {e:#} (run `provision rollback --to {running}`)",
                        placed.len()
                    )),
                }
            }
            if need_max > max {
                if let Err(e) = set_sizes(ctx, None, Some(max)).await {
                    trouble.push(format!("restoring the group's max size {max}: {e:#}"));
                }
            }
            if trouble.is_empty() {
                bail!(
                    "release {release} did not become healthy ({why:#}); the group is back on launch template version {old_version} ({running}) and the new instances are gone.{restored}\n{evidence}"
                );
            }
            bail!(
                "release {release} did not become healthy ({why:#}), and rolling back to launch template version {old_version} ({running}) did not finish:\n  - {}\n{restored}\n{evidence}",
                trouble.join("\n  - ")
            );
        }
    }
    if need_max > max {
        set_sizes(ctx, None, Some(max)).await?;
    }
    Ok((release, new_version, placed.len()))
}

/// One batch: start `n` new instances, wait until they are healthy targets, then retire
/// `n` of the `remaining` old ones, each from the zone a new one started in, so the zones
/// stay balanced (an unbalanced group is what AZRebalance acts on once resumed). The new
/// instances join `placed` before any victim is retired, so a failure while retiring
/// still knows which instances run the new release.
async fn replace(
    ctx: &Ctx,
    remaining: &mut Vec<String>,
    n: usize,
    desired: i32,
    known: &mut BTreeSet<String>,
    placed: &mut Vec<String>,
    timeout: Duration,
) -> anyhow::Result<()> {
    set_sizes(ctx, Some(desired + i32::try_from(n).unwrap_or(0)), None).await?;
    let fresh = wait_new_healthy(ctx, known, n, timeout).await?;
    known.extend(fresh.iter().cloned());
    placed.extend(fresh.iter().cloned());
    let zones = zones_of(ctx).await?;
    let victims = same_zones(&fresh, remaining, &zones, n);
    remaining.retain(|r| !victims.contains(r));
    for id in &victims {
        retire(ctx, id).await?;
    }
    // A victim Auto Scaling had replaced already (it died, or turned unhealthy) left the
    // group without lowering its count: the batch ends where it began.
    set_sizes(ctx, Some(desired), None).await?;
    Ok(())
}

/// Wait until the group is what config.toml says again: the desired number of instances
/// in service and healthy, none coming or going, the zones even within one. Auto Scaling
/// places launches itself, so a roll can leave one zone a batch ahead; AZRebalance, on
/// again, then launches in the short zone and (after it serves) retires one in the long,
/// which this waits out so the stack is settled when the command returns.
async fn settled(ctx: &Ctx, timeout: Duration) -> anyhow::Result<()> {
    let shown = std::sync::Mutex::new(String::new());
    wait_for(
        "the group's healthy instances, evenly over the zones",
        ctx.timing,
        timeout,
        || async {
            let g = fleet::find(ctx)
                .await?
                .context("the Auto Scaling group disappeared")?;
            // With a scaling policy (acting again once resumed): what the group wants now.
            let desired =
                usize::try_from(crate::ops_config::wanted(&ctx.config, g.desired_capacity()))
                    .unwrap_or(0);
            // Every zone of the group, an empty one too.
            let mut per_zone: std::collections::BTreeMap<String, usize> = g
                .availability_zones()
                .iter()
                .map(|z| (z.clone(), 0))
                .collect();
            let mut moving = 0;
            for i in g.instances() {
                match i.lifecycle_state().map(|s| s.as_str()) {
                    Some("InService") => {
                        *per_zone
                            .entry(i.availability_zone().unwrap_or_default().to_string())
                            .or_default() += 1
                    }
                    _ => moving += 1,
                }
            }
            let serving: usize = per_zone.values().sum();
            let spread =
                per_zone.values().max().unwrap_or(&0) - per_zone.values().min().unwrap_or(&0);
            let healthy = balancer::target_health(ctx)
                .await?
                .iter()
                .filter(|t| t.1 == "healthy")
                .count();
            let now = format!(
                "{serving} in service {per_zone:?}, {moving} coming or going, {healthy} healthy"
            );
            if let Ok(mut last) = shown.lock() {
                if *last != now {
                    ctx.progress("auto-scaling-group", &fleet::name(ctx), &now);
                    *last = now;
                }
            }
            Ok(
                (serving == desired && moving == 0 && spread <= 1 && healthy == desired)
                    .then_some(()),
            )
        },
    )
    .await
}

/// The group's instances and their zones.
async fn zones_of(ctx: &Ctx) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let g = fleet::find(ctx)
        .await?
        .context("the Auto Scaling group disappeared")?;
    Ok(g.instances()
        .iter()
        .filter_map(|i| {
            Some((
                i.instance_id()?.to_string(),
                i.availability_zone()?.to_string(),
            ))
        })
        .collect())
}

/// `n` of `pool` to retire for `fresh`: for each new instance one from its zone where
/// there is one, the rest from the zones holding the most old instances.
fn same_zones(
    fresh: &[String],
    pool: &[String],
    zones: &std::collections::HashMap<String, String>,
    n: usize,
) -> Vec<String> {
    let mut left: Vec<String> = pool.to_vec();
    let mut picked = Vec::new();
    for f in fresh.iter().take(n) {
        let zone = zones.get(f);
        if let Some(i) = left
            .iter()
            .position(|o| zone.is_some() && zones.get(o) == zone)
        {
            picked.push(left.remove(i));
        }
    }
    while picked.len() < n && !left.is_empty() {
        let mut count: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for o in &left {
            *count
                .entry(zones.get(o).map(String::as_str).unwrap_or(""))
                .or_default() += 1;
        }
        let fullest = left
            .iter()
            .enumerate()
            .max_by_key(|(i, o)| {
                (
                    count[zones.get(*o).map(String::as_str).unwrap_or("")],
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(i, _)| i)
            .unwrap_or(0);
        picked.push(left.remove(fullest));
    }
    picked
}

/// Replace `placed` (instances of a release that failed later in the roll) with instances
/// of the version the group is back on, batch by batch; the replacements join `back`.
async fn restore(
    ctx: &Ctx,
    placed: &[String],
    batch: usize,
    desired: i32,
    known: &mut BTreeSet<String>,
    back: &mut Vec<String>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut remaining = placed.to_vec();
    while !remaining.is_empty() {
        let n = batch.min(remaining.len());
        if let Err(e) = replace(ctx, &mut remaining, n, desired, known, back, timeout).await {
            remove_strangers(ctx, known, desired).await?;
            return Err(e);
        }
    }
    Ok(())
}

/// Terminate the instances a failed batch started (each one lowering the desired count),
/// until the group holds none and wants `desired` again. One that died meanwhile has
/// already left the group without lowering the count, and its replacement is on its way:
/// that one is terminated when it appears. If the group still wants more after a few
/// polls without a stranger (a batch failed while retiring its old instances, so known
/// instances exceed `desired`), the count is set back and the group terminates the surplus
/// by its own policy; the rollback's `restore` then replaces whatever runs the new release.
async fn remove_strangers(ctx: &Ctx, known: &BTreeSet<String>, desired: i32) -> anyhow::Result<()> {
    let deadline = Instant::now() + ctx.timing.wait_timeout;
    // Polls in a row that saw no stranger: after a few, whatever still raises the wanted
    // count is not a launch in flight.
    let mut quiet = 0;
    loop {
        let group = fleet::find(ctx)
            .await?
            .context("the Auto Scaling group disappeared")?;
        let left: Vec<String> = live_instances(&group)
            .into_iter()
            .filter(|i| !known.contains(i))
            .collect();
        let wants = group.desired_capacity().unwrap_or(desired);
        quiet = if left.is_empty() { quiet + 1 } else { 0 };
        if left.is_empty() && (wants <= desired || quiet >= 3) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the group still has instances of the failed batch ({}) and wants {wants} instances, not {desired}",
                left.join(", ")
            );
        }
        for id in &left {
            terminate(ctx, id).await?;
        }
        tokio::time::sleep(ctx.timing.poll).await;
    }
    set_sizes(ctx, Some(desired), None).await
}

/// The group's instances not in `known`: the ones a failed batch started.
async fn strangers(ctx: &Ctx, known: &BTreeSet<String>) -> anyhow::Result<Vec<String>> {
    Ok(in_service(ctx)
        .await?
        .into_iter()
        .filter(|i| !known.contains(i))
        .collect())
}

/// The release a launch template version boots.
pub async fn release_of_version(ctx: &Ctx, template: &str, version: i64) -> anyhow::Result<String> {
    let out = ctx
        .aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(template)
        .versions(version.to_string())
        .send()
        .await
        .aws(format!("reading launch template version {version}"))?;
    Ok(out
        .launch_template_versions()
        .first()
        .and_then(|v| v.launch_template_data())
        .and_then(|d| d.user_data())
        .and_then(launch::release_of)
        .unwrap_or_else(|| "none".into()))
}

/// The newest release older than `running` among the template's versions.
async fn previous_release(ctx: &Ctx, template: &str, running: &str) -> anyhow::Result<String> {
    let out = ctx
        .aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(template)
        .send()
        .await
        .aws("reading the launch template's versions")?;
    let mut versions: Vec<(i64, String)> = out
        .launch_template_versions()
        .iter()
        .filter_map(|v| {
            let r = v
                .launch_template_data()
                .and_then(|d| d.user_data())
                .and_then(launch::release_of)?;
            Some((v.version_number()?, r))
        })
        .collect();
    versions.sort();
    let at = versions
        .iter()
        .rposition(|(_, r)| r == running)
        .unwrap_or(versions.len());
    versions[..at]
        .iter()
        .rev()
        .map(|(_, r)| r.clone())
        .find(|r| r != running && r != "none")
        .context("no earlier release to roll back to (pass --to VERSION)")
}

async fn check_release_exists(ctx: &Ctx, bucket: &str, release: &str) -> anyhow::Result<()> {
    let known = release::list(ctx, bucket).await?;
    if known.iter().any(|(v, _)| v == release) {
        return Ok(());
    }
    let names: Vec<&str> = known.iter().map(|(v, _)| v.as_str()).collect();
    bail!(
        "release {release} is not in s3://{bucket}/{}: known releases are {}",
        release::PREFIX,
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )
}

async fn set_version(ctx: &Ctx, template: &str, version: i64) -> anyhow::Result<()> {
    let asg = fleet::name(ctx);
    ctx.aws
        .asg
        .update_auto_scaling_group()
        .auto_scaling_group_name(&asg)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(template)
                .version(version.to_string())
                .build(),
        )
        .send()
        .await
        .aws(format!(
            "pointing {asg} at launch template version {version}"
        ))?;
    // The default version is the one `up` converges on: keep it the group's.
    launch::set_default(ctx, template, version).await?;
    ctx.progress(
        "auto-scaling-group",
        &asg,
        &format!("launch template version {version}"),
    );
    Ok(())
}

async fn set_sizes(ctx: &Ctx, desired: Option<i32>, max: Option<i32>) -> anyhow::Result<()> {
    let asg = fleet::name(ctx);
    ctx.aws
        .asg
        .update_auto_scaling_group()
        .auto_scaling_group_name(&asg)
        .set_desired_capacity(desired)
        .set_max_size(max)
        .send()
        .await
        .aws(format!("resizing {asg}"))?;
    if let Some(d) = desired {
        ctx.progress("auto-scaling-group", &asg, &format!("desired {d}"));
    }
    Ok(())
}

/// The group's instances that are pending or in service.
async fn in_service(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let g = fleet::find(ctx)
        .await?
        .context("the Auto Scaling group disappeared")?;
    Ok(live_instances(&g))
}

fn live_instances(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Vec<String> {
    g.instances()
        .iter()
        .filter(|i| {
            matches!(
                i.lifecycle_state().map(|s| s.as_str()),
                Some("InService") | Some("Pending")
            )
        })
        .filter_map(|i| i.instance_id().map(String::from))
        .collect()
}

/// Wait until `n` instances not in `known` are healthy targets; print every change of a
/// target's state with its reason.
async fn wait_new_healthy(
    ctx: &Ctx,
    known: &BTreeSet<String>,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let last = std::sync::Mutex::new(Vec::<(String, String, String)>::new());
    wait_for(
        &format!("{n} new instance(s) to become healthy"),
        ctx.timing,
        timeout,
        || async {
            let mut health = balancer::target_health(ctx).await?;
            health.sort();
            if let Ok(mut seen) = last.lock() {
                for t in health.iter().filter(|t| !seen.contains(t)) {
                    let reason = if t.2.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", t.2)
                    };
                    ctx.progress("target", &t.0, &format!("{}{reason}", t.1));
                }
                *seen = health.clone();
            }
            let fresh: Vec<String> = health
                .iter()
                .filter(|t| t.1 == "healthy" && !known.contains(&t.0))
                .map(|t| t.0.clone())
                .collect();
            Ok((fresh.len() >= n).then_some(fresh))
        },
    )
    .await
}

/// Deregister an old instance, wait until its connections have drained, then terminate
/// it and lower the group's desired capacity with it.
async fn retire(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let tg = ctx.need("the target group", |o| o.target_group_arn.clone())?;
    ctx.aws
        .elb
        .deregister_targets()
        .target_group_arn(&tg)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(id)
                .build(),
        )
        .send()
        .await
        // Not registered (any more): the instance died, or a first answer was lost.
        .aws_unless(format!("deregistering {id}"), &["InvalidTarget"])?;
    ctx.progress("target", id, "deregistered: draining");
    let drain = Duration::from_secs(
        u64::try_from(ctx.config.balancer.deregistration_delay_secs).unwrap_or(300),
    );
    wait_for(
        &format!("{id} to drain"),
        ctx.timing,
        drain + Duration::from_secs(120),
        || async {
            let health = balancer::target_health(ctx).await?;
            Ok((!health.iter().any(|t| t.0 == id)).then_some(()))
        },
    )
    .await?;
    terminate(ctx, id).await
}

async fn terminate(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    match ctx
        .aws
        .asg
        .terminate_instance_in_auto_scaling_group()
        .instance_id(id)
        .should_decrement_desired_capacity(true)
        .send()
        .await
    {
        Ok(_) => ctx.progress("instance", id, "terminated"),
        // Already out of the group (the group replaced a dead instance meanwhile): gone.
        Err(e)
            if crate::engine::errors::code(&e).as_deref() == Some("ValidationError")
                && format!("{}", aws_sdk_autoscaling::error::DisplayErrorContext(&e))
                    .contains("not found") =>
        {
            ctx.progress("instance", id, "already gone from the group");
        }
        Err(e) => {
            return Err(crate::engine::errors::explain(
                format!("terminating {id}"),
                e,
            ))
        }
    }
    Ok(())
}

/// Why new instances are not healthy: each one's target state and reason, the last
/// lines of its console (boot output and the service's log), where EC2 has them, and the
/// last lines the gallery shipped to CloudWatch Logs, where it did.
async fn explain_unhealthy(ctx: &Ctx, ids: &[String]) -> String {
    let health = balancer::target_health(ctx).await.unwrap_or_default();
    let mut out = String::new();
    for id in ids {
        let state = health
            .iter()
            .find(|t| &t.0 == id)
            .map(|t| format!("{} ({})", t.1, t.2))
            .unwrap_or_else(|| "not registered".into());
        out.push_str(&format!("instance {id}: target {state}\n"));
        if let Ok(c) = ctx
            .aws
            .ec2
            .get_console_output()
            .instance_id(id)
            .latest(true)
            .send()
            .await
        {
            let text = c
                .output()
                .and_then(|o| base64::engine::general_purpose::STANDARD.decode(o).ok())
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(&format!("  | {l}\n"));
            }
        }
        // What the gallery itself logged (CloudWatch Logs, its instance's stream), if any.
        if let Ok(lines) = crate::commands::logs::last_lines(ctx, id, 15).await {
            if !lines.is_empty() {
                out.push_str(&format!(
                    "  its last log lines (provision logs --instance {id}):\n"
                ));
                for l in lines {
                    out.push_str(&format!("  > {l}\n"));
                }
            }
        }
    }
    out
}
