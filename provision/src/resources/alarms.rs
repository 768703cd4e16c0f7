//! The stack's CloudWatch alarms (`[alarms]`, `ops_config::alarm_specs`): 5xx answers of
//! the instances and of the load balancer, unhealthy targets, the database's CPU and free
//! storage. Named `<stack>-alarm-<what>`, tagged at creation, converged by putting them
//! again (PutMetricAlarm replaces an alarm of that name), each notifying the stack's SNS
//! topic when `alarms.email` is set (AlarmActions and OKActions).

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricAlarm, StateValue, Statistic, Tag,
};

use crate::engine::context::{Ctx, PLANNED, ROLE_TAG, STACK_TAG};
use crate::engine::errors::AwsResult;
use crate::engine::graph::Change;
use crate::ops_config::{alarm_specs, AlarmSpec, ALARM_KINDS};
use crate::resources::database;
use crate::resources::scan::{found, Found};

pub fn name(ctx: &Ctx, what: &str) -> String {
    ctx.name(&format!("alarm-{what}"))
}

fn names(ctx: &Ctx) -> Vec<String> {
    ALARM_KINDS.iter().map(|w| name(ctx, w)).collect()
}

/// The stack's alarms that exist, by exact name, each checked for the stack's tag.
pub async fn find(ctx: &Ctx) -> anyhow::Result<Vec<MetricAlarm>> {
    let out = ctx
        .aws
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names(ctx)))
        .max_records(100)
        .send()
        .await
        .aws("finding the stack's alarms")?;
    let mut ours = Vec::new();
    for a in out.metric_alarms() {
        let Some(arn) = a.alarm_arn() else { continue };
        let tags = ctx
            .aws
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .aws_unless(
                format!("reading the tags of alarm {arn}"),
                &["ResourceNotFound", "ResourceNotFoundException"],
            )?;
        let Some(tags) = tags else { continue };
        if tags
            .tags()
            .iter()
            .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()))
        {
            ours.push(a.clone());
        } else {
            anyhow::bail!(
                "CloudWatch alarm {} exists but is not tagged for this stack: remove it, or choose another stack name",
                a.alarm_name().unwrap_or_default()
            );
        }
    }
    Ok(ours)
}

/// How an alarm found differs from its spec (empty: it matches).
pub fn differences(have: &MetricAlarm, want: &AlarmSpec, topic: Option<&str>) -> Vec<String> {
    let mut diff = Vec::new();
    let dims: Vec<(String, String)> = have
        .dimensions()
        .iter()
        .map(|d| {
            (
                d.name().unwrap_or_default().to_string(),
                d.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want_dims: Vec<(String, String)> = want
        .dimensions
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut dims_sorted = dims.clone();
    let mut want_sorted = want_dims.clone();
    dims_sorted.sort();
    want_sorted.sort();
    if have.namespace() != Some(want.namespace) || have.metric_name() != Some(want.metric) {
        diff.push(format!("metric -> {}/{}", want.namespace, want.metric));
    }
    if dims_sorted != want_sorted && !want_dims.iter().any(|(_, v)| v.contains(PLANNED)) {
        diff.push("what it watches".into());
    }
    if have.statistic().map(|s| s.as_str()) != Some(want.statistic)
        || have.period() != Some(want.period)
        || have.evaluation_periods() != Some(want.evaluation_periods)
        || have.comparison_operator().map(|c| c.as_str()) != Some(want.comparison)
        || have.treat_missing_data() != Some(want.missing_data)
    {
        diff.push("how it is evaluated".into());
    }
    let threshold = have.threshold().unwrap_or(f64::NAN);
    if (threshold - want.threshold).abs() > 1e-6 || threshold.is_nan() {
        diff.push(format!("threshold {threshold} -> {}", want.threshold));
    }
    if topic != Some(PLANNED) {
        let want_actions: Vec<String> = topic.map(|t| vec![t.to_string()]).unwrap_or_default();
        if have.alarm_actions() != want_actions.as_slice()
            || have.ok_actions() != want_actions.as_slice()
        {
            diff.push(match topic {
                Some(_) => "notify the alarms' e-mail".to_string(),
                None => "notify no one".to_string(),
            });
        }
    }
    diff
}

async fn put(ctx: &Ctx, spec: &AlarmSpec, topic: Option<&str>) -> anyhow::Result<()> {
    let alarm = name(ctx, spec.what);
    let mut call = ctx
        .aws
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm)
        .alarm_description(format!("{}: {}", ctx.stack(), spec.description))
        .namespace(spec.namespace)
        .metric_name(spec.metric)
        .statistic(Statistic::from(spec.statistic))
        .period(spec.period)
        .evaluation_periods(spec.evaluation_periods)
        .threshold(spec.threshold)
        .comparison_operator(ComparisonOperator::from(spec.comparison))
        .treat_missing_data(spec.missing_data)
        .actions_enabled(true)
        // Tags count at creation only; a put of an existing alarm keeps its tags.
        .tags(Tag::builder().key(STACK_TAG).value(ctx.stack()).build())
        .tags(Tag::builder().key(ROLE_TAG).value("alarm").build());
    for (k, v) in &spec.dimensions {
        call = call.dimensions(Dimension::builder().name(*k).value(v).build());
    }
    if let Some(t) = topic {
        call = call.alarm_actions(t).ok_actions(t);
    }
    // PutMetricAlarm creates or replaces: a repeat after a lost answer is harmless.
    call.send()
        .await
        .aws(format!("putting CloudWatch alarm {alarm}"))?;
    Ok(())
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let have = find(ctx).await?;
    let billed = u32::try_from(have.len()).unwrap_or(0);
    ctx.set(|o| o.running.alarms += billed);
    if !ctx.config.alarms.enabled {
        return match have.is_empty() {
            true => Ok(Change::Absent),
            false if ctx.planning() => Ok(Change::Delete),
            false => delete(ctx).await,
        };
    }
    let o = ctx.out();
    let lb = ctx.need("the load balancer", |o| o.load_balancer_arn.clone())?;
    let tg = ctx.need("the target group", |o| o.target_group_arn.clone())?;
    let topic = o.alarm_topic_arn.clone();
    let placeholder = |arn: &str, kind: &str| {
        if arn == PLANNED {
            format!("arn:aws:elasticloadbalancing:planned:0:{kind}/{PLANNED}/{PLANNED}")
        } else {
            arn.to_string()
        }
    };
    let specs = alarm_specs(
        &ctx.config,
        &placeholder(&lb, "loadbalancer/app"),
        &placeholder(&tg, "targetgroup"),
        &database::instance_id(ctx),
    )
    .ok_or_else(|| {
        anyhow::anyhow!(
            "the load balancer {lb} or target group {tg} is not an application load balancer's"
        )
    })?;
    let mut created = 0;
    let mut updated = Vec::new();
    for spec in &specs {
        let found = have
            .iter()
            .find(|a| a.alarm_name() == Some(name(ctx, spec.what).as_str()));
        let diff = match found {
            None => {
                created += 1;
                None
            }
            Some(a) => {
                let d = differences(a, spec, topic.as_deref());
                if d.is_empty() {
                    continue;
                }
                updated.push(format!("{}: {}", spec.what, d.join(", ")));
                Some(d)
            }
        };
        if !ctx.planning() {
            put(ctx, spec, topic.as_deref()).await?;
            ctx.progress(
                "alarm",
                &name(ctx, spec.what),
                if diff.is_some() { "updated" } else { "created" },
            );
        }
    }
    Ok(if created == specs.len() {
        Change::Create
    } else if created > 0 || !updated.is_empty() {
        let mut parts = updated;
        if created > 0 {
            parts.push(format!("{created} alarm(s) to create"));
        }
        Change::Update(parts.join("; "))
    } else {
        Change::Unchanged
    })
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let have = find(ctx).await?;
    if have.is_empty() {
        return Ok(Change::Absent);
    }
    let gone: Vec<String> = have
        .iter()
        .filter_map(|a| a.alarm_name().map(String::from))
        .collect();
    // Deleting alarms that are gone already succeeds.
    ctx.aws
        .cloudwatch
        .delete_alarms()
        .set_alarm_names(Some(gone.clone()))
        .send()
        .await
        .aws_unless("deleting the stack's alarms", &["ResourceNotFound"])?;
    ctx.progress("alarms", &gone.join(","), "deleted");
    Ok(Change::Delete)
}

/// The stack's alarms in ALARM state: (name, reason).
pub async fn firing(ctx: &Ctx) -> anyhow::Result<Vec<(String, String)>> {
    let out = ctx
        .aws
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names(ctx)))
        .state_value(StateValue::Alarm)
        .max_records(100)
        .send()
        .await
        .aws("reading the stack's alarms")?;
    Ok(out
        .metric_alarms()
        .iter()
        // Filtered here too: not every implementation combines names with a state.
        .filter(|a| a.state_value() == Some(&StateValue::Alarm))
        .map(|a| {
            (
                a.alarm_name().unwrap_or_default().to_string(),
                a.state_reason().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    Ok(find(ctx)
        .await?
        .iter()
        .map(|a| {
            found(
                "alarm",
                a.alarm_name().unwrap_or_default(),
                a.state_value().map(|s| s.as_str()).unwrap_or_default(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/g-lb/50dc6c495c0c9188";
    const TG: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/g-tg/73e2d6bc24d8a067";

    fn as_put(spec: &AlarmSpec, topic: Option<&str>) -> MetricAlarm {
        let mut b = MetricAlarm::builder()
            .alarm_name(spec.what)
            .namespace(spec.namespace)
            .metric_name(spec.metric)
            .statistic(Statistic::from(spec.statistic))
            .period(spec.period)
            .evaluation_periods(spec.evaluation_periods)
            .threshold(spec.threshold)
            .comparison_operator(ComparisonOperator::from(spec.comparison))
            .treat_missing_data(spec.missing_data);
        for (k, v) in spec.dimensions.iter().rev() {
            b = b.dimensions(Dimension::builder().name(*k).value(v).build());
        }
        if let Some(t) = topic {
            b = b.alarm_actions(t).ok_actions(t);
        }
        b.build()
    }

    #[test]
    fn alarms_converge_on_threshold_and_notification() {
        let mut c =
            crate::config::StackConfig::parse(include_str!("../../../config.toml")).unwrap();
        c.alarms.enabled = true;
        let specs = alarm_specs(&c, LB, TG, "g-db").unwrap();
        let topic = "arn:aws:sns:us-east-1:123456789012:g-alarms";
        for spec in &specs {
            let have = as_put(spec, Some(topic));
            assert!(
                differences(&have, spec, Some(topic)).is_empty(),
                "{}",
                spec.what
            );
            // The e-mail removed: the alarm notifies no one.
            assert_eq!(differences(&have, spec, None), vec!["notify no one"]);
            // A topic still to be made (planning): not drift.
            assert!(differences(&have, spec, Some(PLANNED)).is_empty());
        }
        c.alarms.unhealthy_hosts = 2;
        let changed = alarm_specs(&c, LB, TG, "g-db").unwrap();
        let have = as_put(&specs[2], None);
        assert_eq!(
            differences(&have, &changed[2], None),
            vec!["threshold 1 -> 2"]
        );
        // Another database.
        let other = alarm_specs(&c, LB, TG, "h-db").unwrap();
        assert_eq!(
            differences(&as_put(&changed[3], None), &other[3], None),
            vec!["what it watches"]
        );
    }
}
