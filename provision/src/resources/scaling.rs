//! The group's target-tracking scaling policy (`[scaling]`): requests per instance
//! through the load balancer (ALBRequestCountPerTarget, labelled by the load balancer's
//! and target group's ARNs) or the group's average CPU, held at `scaling.target_value`
//! between `app.min_size` and `app.max_size`. Policies carry no tags: this one belongs to
//! the stack's tagged group and goes by a name derived from the stack. AWS makes the
//! policy's own CloudWatch alarms (`TargetTracking-<group>-...`) and removes them with it.

use aws_sdk_autoscaling::types::{
    MetricType, PredefinedMetricSpecification, ScalingPolicy, TargetTrackingConfiguration,
};

use crate::engine::context::{Ctx, PLANNED};
use crate::engine::errors::AwsResult;
use crate::engine::graph::Change;
use crate::engine::retry::until_visible_if;
use crate::ops_config::{metric_type, resource_label};
use crate::resources::fleet;
use crate::resources::scan::{found, Found};

pub fn name(ctx: &Ctx) -> String {
    ctx.name("target-tracking")
}

/// The policy of the stack's group, if it has one.
pub async fn find(ctx: &Ctx) -> anyhow::Result<Option<ScalingPolicy>> {
    let out = match ctx
        .aws
        .asg
        .describe_policies()
        .auto_scaling_group_name(fleet::name(ctx))
        .policy_names(name(ctx))
        .send()
        .await
    {
        // No group (yet, or any more): no policy.
        Err(e)
            if crate::engine::errors::message(&e)
                .is_some_and(|m| m.contains("not found") || m.contains("does not exist")) =>
        {
            return Ok(None)
        }
        r => r.aws("finding the scaling policy")?,
    };
    Ok(out
        .scaling_policies()
        .iter()
        .find(|p| p.policy_name() == Some(name(ctx).as_str()))
        .cloned())
}

/// What the policy should be: (metric type, resource label, target).
fn wanted(ctx: &Ctx) -> anyhow::Result<(MetricType, Option<String>, f64)> {
    let s = &ctx.config.scaling;
    let kind = metric_type(&s.metric).unwrap_or("ALBRequestCountPerTarget");
    let label = if kind == "ALBRequestCountPerTarget" {
        let lb = ctx.need("the load balancer", |o| o.load_balancer_arn.clone())?;
        let tg = ctx.need("the target group", |o| o.target_group_arn.clone())?;
        match resource_label(&lb, &tg) {
            Some(label) => Some(label),
            None if ctx.planning() => Some(PLANNED.to_string()),
            None => anyhow::bail!(
                "the load balancer {lb} or target group {tg} is not an application load balancer's: no request count to scale on (scaling.metric = \"requests\")"
            ),
        }
    } else {
        None
    };
    Ok((MetricType::from(kind), label, s.target()))
}

/// Seconds a new instance's metrics are left out: until it can pass its health checks.
fn warmup(ctx: &Ctx) -> i32 {
    ctx.config.app.health_check_grace_secs.max(0)
}

/// How the policy found differs from the one wanted (empty: it matches).
fn differences(
    have: &ScalingPolicy,
    kind: &MetricType,
    label: &Option<String>,
    target: f64,
    warmup: i32,
) -> Vec<String> {
    let mut diff = Vec::new();
    if have.estimated_instance_warmup() != Some(warmup) {
        diff.push(format!(
            "instance warmup {} -> {warmup} s (app.health_check_grace_secs)",
            have.estimated_instance_warmup().unwrap_or(0)
        ));
    }
    let t = have.target_tracking_configuration();
    let spec = t.and_then(|t| t.predefined_metric_specification());
    if have.policy_type() != Some("TargetTrackingScaling") {
        diff.push(format!(
            "type {} -> TargetTrackingScaling",
            have.policy_type().unwrap_or("?")
        ));
    }
    if spec.and_then(|s| s.predefined_metric_type()) != Some(kind) {
        diff.push(format!(
            "metric {} -> {}",
            spec.and_then(|s| s.predefined_metric_type())
                .map(|m| m.as_str())
                .unwrap_or("?"),
            kind.as_str()
        ));
    }
    let have_label = spec.and_then(|s| s.resource_label()).map(String::from);
    if have_label != *label && label.as_deref() != Some(PLANNED) {
        diff.push("the load balancer it counts requests of".into());
    }
    let have_target = t.and_then(|t| t.target_value()).unwrap_or(0.0);
    if (have_target - target).abs() > 1e-9 {
        diff.push(format!("target {have_target} -> {target}"));
    }
    if t.and_then(|t| t.disable_scale_in()) == Some(true) {
        diff.push("scale-in on".into());
    }
    diff
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let have = find(ctx).await?;
    if have.is_some() {
        // AWS's own two alarms of the policy (scale out, scale in) are billed too.
        ctx.set(|o| o.running.alarms += crate::cost::POLICY_ALARMS);
    }
    if !ctx.config.scaling.enabled {
        return match have {
            None => Ok(Change::Absent),
            Some(_) if ctx.planning() => Ok(Change::Delete),
            Some(_) => delete(ctx).await,
        };
    }
    let (kind, label, target) = wanted(ctx)?;
    let change = match &have {
        Some(p) => {
            let diff = differences(p, &kind, &label, target, warmup(ctx));
            if diff.is_empty() {
                return Ok(Change::Unchanged);
            }
            Change::Update(diff.join("; "))
        }
        None => Change::Create,
    };
    if ctx.planning() {
        return Ok(change);
    }
    let spec = PredefinedMetricSpecification::builder()
        .predefined_metric_type(kind)
        .set_resource_label(label)
        .build();
    let config = TargetTrackingConfiguration::builder()
        .predefined_metric_specification(spec)
        .target_value(target)
        .disable_scale_in(false)
        .build();
    // PutScalingPolicy creates or replaces: a repeat after a lost answer is harmless. A
    // group made moments ago may not be known to it yet.
    until_visible_if(
        &format!("putting the scaling policy {}", name(ctx)),
        ctx.timing,
        |code, msg| {
            code == "ValidationError"
                && (msg.contains("not found") || msg.contains("does not exist"))
        },
        || {
            ctx.aws
                .asg
                .put_scaling_policy()
                .auto_scaling_group_name(fleet::name(ctx))
                .policy_name(name(ctx))
                .policy_type("TargetTrackingScaling")
                .estimated_instance_warmup(warmup(ctx))
                .target_tracking_configuration(config.clone())
                .send()
        },
    )
    .await?;
    ctx.progress(
        "scaling-policy",
        &name(ctx),
        &format!(
            "{} held at {target} between {} and {} instances",
            ctx.config.scaling.metric, ctx.config.app.min_size, ctx.config.app.max_size
        ),
    );
    Ok(change)
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    if find(ctx).await?.is_none() {
        return Ok(Change::Absent);
    }
    let deleted = ctx
        .aws
        .asg
        .delete_policy()
        .auto_scaling_group_name(fleet::name(ctx))
        .policy_name(name(ctx))
        .send()
        .await;
    match deleted {
        // Gone already (this call's first answer lost, or the group went with it).
        Err(e)
            if crate::engine::errors::message(&e)
                .is_some_and(|m| m.contains("not found") || m.contains("does not exist")) => {}
        r => {
            r.aws(format!("deleting the scaling policy {}", name(ctx)))?;
        }
    }
    ctx.progress("scaling-policy", &name(ctx), "deleted");
    Ok(Change::Delete)
}

/// One line for `status`: what the policy holds, or None without one.
pub fn describe(p: &ScalingPolicy) -> String {
    let t = p.target_tracking_configuration();
    let metric = t
        .and_then(|t| t.predefined_metric_specification())
        .and_then(|s| s.predefined_metric_type())
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| p.policy_type().unwrap_or("?").to_string());
    let target = t.and_then(|t| t.target_value()).unwrap_or(0.0);
    format!("{metric} held at {target}")
}

pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    Ok(find(ctx)
        .await?
        .map(|p| vec![found("scaling-policy", name(ctx), describe(&p))])
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(kind: &str, label: Option<&str>, target: f64) -> ScalingPolicy {
        ScalingPolicy::builder()
            .policy_name("g-target-tracking")
            .estimated_instance_warmup(300)
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(
                TargetTrackingConfiguration::builder()
                    .predefined_metric_specification(
                        PredefinedMetricSpecification::builder()
                            .predefined_metric_type(MetricType::from(kind))
                            .set_resource_label(label.map(String::from))
                            .build(),
                    )
                    .target_value(target)
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_changed_target_or_metric_is_drift() {
        let label = Some("app/g-lb/1/targetgroup/g-tg/2".to_string());
        let kind = MetricType::AlbRequestCountPerTarget;
        let p = policy("ALBRequestCountPerTarget", label.as_deref(), 60.0);
        assert!(differences(&p, &kind, &label, 60.0, 300).is_empty());
        assert_eq!(
            differences(&p, &kind, &label, 120.0, 300),
            vec!["target 60 -> 120"]
        );
        let cpu = MetricType::AsgAverageCpuUtilization;
        let d = differences(&p, &cpu, &None, 60.0, 300);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("-> ASGAverageCPUUtilization"), "{d:?}");
        // Another load balancer (the stack's was replaced).
        let other = Some("app/g-lb/9/targetgroup/g-tg/2".to_string());
        assert_eq!(differences(&p, &kind, &other, 60.0, 300).len(), 1);
        // While planning a new load balancer, the label is not known yet: no drift claimed.
        assert!(differences(&p, &kind, &Some(PLANNED.into()), 60.0, 300).is_empty());
        assert_eq!(describe(&p), "ALBRequestCountPerTarget held at 60");
        // A changed app.health_check_grace_secs is the policy's warmup.
        assert_eq!(
            differences(&p, &kind, &label, 60.0, 120),
            vec!["instance warmup 300 -> 120 s (app.health_check_grace_secs)"]
        );
    }
}
