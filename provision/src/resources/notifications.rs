//! The SNS topic the stack's alarms notify (`<stack>-alarms`), with `alarms.email`
//! subscribed. Only with alarms on and an address set. The address must confirm the
//! subscription (AWS mails it a link): until then the subscription is "pending
//! confirmation" and nothing is delivered, which `up` says.

use crate::engine::context::{Ctx, PLANNED, ROLE_TAG, STACK_TAG};
use crate::engine::errors::AwsResult;
use crate::engine::graph::Change;
use crate::engine::retry::until_visible_if;
use crate::resources::scan::{found, Found};

pub fn name(ctx: &Ctx) -> String {
    ctx.name("alarms")
}

/// The topic's ARN (SNS names a topic by account, region and name).
pub fn arn(ctx: &Ctx) -> String {
    format!(
        "arn:aws:sns:{}:{}:{}",
        ctx.aws.region,
        ctx.out().account,
        name(ctx)
    )
}

fn wanted(ctx: &Ctx) -> bool {
    ctx.config.alarms.enabled && !ctx.config.alarms.email.is_empty()
}

/// The stack's topic, if it exists and carries the stack's tag.
pub async fn find(ctx: &Ctx) -> anyhow::Result<Option<String>> {
    let arn = arn(ctx);
    let tags = match ctx
        .aws
        .sns
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
    {
        Ok(t) => t,
        Err(e)
            if crate::engine::errors::code(&e)
                .is_some_and(|c| c == "NotFound" || c == "ResourceNotFound") =>
        {
            return Ok(None)
        }
        Err(e) => {
            return Err(crate::engine::errors::explain(
                "finding the alarms' topic",
                e,
            ))
        }
    };
    let ours = tags
        .tags()
        .iter()
        .any(|t| t.key() == STACK_TAG && t.value() == ctx.stack());
    if !ours {
        anyhow::bail!(
            "SNS topic {arn} exists but is not tagged for this stack: remove it, or choose another stack name"
        );
    }
    Ok(Some(arn))
}

/// The topic's e-mail subscriptions: (subscription ARN, address).
async fn subscriptions(ctx: &Ctx, topic: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = ctx
            .aws
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(topic)
            .set_next_token(next.clone())
            .send()
            .await
            .aws("listing the alarms' e-mail subscriptions")?;
        for s in out.subscriptions() {
            if s.protocol() == Some("email") {
                all.push((
                    s.subscription_arn().unwrap_or_default().to_string(),
                    s.endpoint().unwrap_or_default().to_string(),
                ));
            }
        }
        next = out.next_token().map(String::from);
        if next.is_none() {
            return Ok(all);
        }
    }
}

/// A subscription not yet confirmed has no ARN of its own.
fn pending(subscription_arn: &str) -> bool {
    !subscription_arn.starts_with("arn:")
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let have = find(ctx).await?;
    if !wanted(ctx) {
        ctx.set(|o| o.alarm_topic_arn = None);
        return match have {
            None => Ok(Change::Absent),
            Some(_) if ctx.planning() => Ok(Change::Delete),
            Some(_) => delete(ctx).await,
        };
    }
    let email = ctx.config.alarms.email.clone();
    let subs = match &have {
        Some(topic) => subscriptions(ctx, topic).await?,
        None => Vec::new(),
    };
    let subscribed = subs.iter().any(|(_, e)| e.eq_ignore_ascii_case(&email));
    // Addresses config.toml no longer names (a pending one cannot be removed: AWS drops
    // it after three days unconfirmed).
    let stale: Vec<&(String, String)> = subs
        .iter()
        .filter(|(a, e)| !e.eq_ignore_ascii_case(&email) && !pending(a))
        .collect();
    let change = match (&have, subscribed, stale.is_empty()) {
        (Some(_), true, true) => Change::Unchanged,
        (Some(_), _, _) => Change::Update(format!("e-mail subscription -> {email}")),
        (None, _, _) => Change::Create,
    };
    if ctx.planning() {
        ctx.set(|o| o.alarm_topic_arn = Some(have.clone().unwrap_or_else(|| PLANNED.into())));
        return Ok(change);
    }
    let topic = match have {
        Some(t) => t,
        None => {
            // CreateTopic returns the existing topic of that name (same tags): a repeat
            // after a lost answer is harmless. Re-made soon after a delete (`down` then
            // `up`, the e-mail set again), SNS answers StaleTag or ConcurrentAccess for a
            // while: wait it out.
            let tags = [
                aws_sdk_sns::types::Tag::builder()
                    .key(STACK_TAG)
                    .value(ctx.stack())
                    .build()?,
                aws_sdk_sns::types::Tag::builder()
                    .key(ROLE_TAG)
                    .value("alarms")
                    .build()?,
            ];
            let out = until_visible_if(
                &format!("creating SNS topic {}", name(ctx)),
                ctx.timing,
                |code, _| code == "StaleTag" || code == "ConcurrentAccess",
                || {
                    ctx.aws
                        .sns
                        .create_topic()
                        .name(name(ctx))
                        .set_tags(Some(tags.to_vec()))
                        .send()
                },
            )
            .await?;
            let topic = out
                .topic_arn()
                .map(String::from)
                .unwrap_or_else(|| arn(ctx));
            ctx.progress("sns-topic", &topic, "created");
            topic
        }
    };
    for (sub, address) in stale {
        ctx.aws
            .sns
            .unsubscribe()
            .subscription_arn(sub)
            .send()
            .await
            // Gone already: this call's first answer was lost.
            .aws_unless(
                format!("unsubscribing {address} from the alarms"),
                &["NotFound"],
            )?;
        ctx.progress("sns-subscription", address, "unsubscribed");
    }
    if !subscribed {
        // Subscribing an address twice returns the same subscription.
        ctx.aws
            .sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("email")
            .endpoint(&email)
            .send()
            .await
            .aws(format!("subscribing {email} to the alarms"))?;
        ctx.progress(
            "sns-subscription",
            &email,
            "pending confirmation: AWS has mailed this address a link to confirm; alarms reach it once confirmed",
        );
    }
    ctx.set(|o| o.alarm_topic_arn = Some(topic.clone()));
    Ok(change)
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let Some(topic) = find(ctx).await? else {
        return Ok(Change::Absent);
    };
    // Deleting a topic removes its subscriptions; deleting one that is gone succeeds.
    ctx.aws
        .sns
        .delete_topic()
        .topic_arn(&topic)
        .send()
        .await
        .aws_unless(format!("deleting SNS topic {topic}"), &["NotFound"])?;
    ctx.progress("sns-topic", &topic, "deleted");
    Ok(Change::Delete)
}

pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let Some(topic) = find(ctx).await? else {
        return Ok(Vec::new());
    };
    let subs = subscriptions(ctx, &topic).await?;
    let state = subs
        .iter()
        .map(|(a, e)| {
            if pending(a) {
                format!("{e} (pending confirmation)")
            } else {
                e.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(vec![found("sns-topic", topic, state)])
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pending_subscription_has_no_arn() {
        assert!(super::pending("PendingConfirmation"));
        assert!(super::pending("pending confirmation"));
        assert!(!super::pending(
            "arn:aws:sns:us-east-1:123456789012:g-alarms:4b1a8c1e-94a5-4c2e-9b4e-1f1d2c3b4a5e"
        ));
    }
}
