//! The stack lock: an SSM parameter created only if absent, naming its holder and renewed
//! while the holder runs. Two runs that change one stack at once are refused; the lock of
//! a run that died lapses after one lease (or is broken at once with `provision unlock`).

use std::time::Duration;

use aws_sdk_ssm::types::{ParameterType, Tag};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::engine::context::{Ctx, STACK_TAG};
use crate::engine::errors::{code, explain};

#[derive(Debug, Serialize, Deserialize)]
pub struct Holder {
    pub who: String,
    pub command: String,
    pub since: String,
    pub pid: u32,
    /// Unix time after which the lock is stale unless renewed.
    pub expires: i64,
    /// Unix time of the holder's last renewal: a dead run's last sign of life.
    #[serde(default)]
    pub renewed: i64,
    /// Tells this run's lock from another's (a create whose answer was lost finds it).
    #[serde(default)]
    pub token: String,
}

pub fn parameter(ctx: &Ctx) -> String {
    format!("/gallery/{}/lock", ctx.stack())
}

fn me(command: &str, lease: Duration, token: &str) -> Holder {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let now = OffsetDateTime::now_utc();
    Holder {
        who: format!("{user}@{host}"),
        command: command.to_string(),
        since: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        pid: std::process::id(),
        expires: now.unix_timestamp() + lease.as_secs().max(1) as i64,
        renewed: now.unix_timestamp(),
        token: token.to_string(),
    }
}

pub async fn holder(ctx: &Ctx) -> anyhow::Result<Option<Holder>> {
    let name = parameter(ctx);
    match ctx.aws.ssm.get_parameter().name(&name).send().await {
        Ok(out) => Ok(out
            .parameter()
            .and_then(|p| p.value())
            .and_then(|v| serde_json::from_str(v).ok())),
        Err(e) if code(&e).as_deref() == Some("ParameterNotFound") => Ok(None),
        Err(e) => Err(explain(format!("reading lock {name}"), e)),
    }
}

async fn put(
    ctx: &Ctx,
    holder: &Holder,
    overwrite: bool,
) -> Result<
    (),
    aws_sdk_ssm::error::SdkError<aws_sdk_ssm::operation::put_parameter::PutParameterError>,
> {
    let mut req = ctx
        .aws
        .ssm
        .put_parameter()
        .name(parameter(ctx))
        .description(format!(
            "gallery stack {}: held while a command changes it",
            ctx.stack()
        ))
        .value(serde_json::to_string(holder).unwrap_or_default())
        .r#type(ParameterType::String)
        .overwrite(overwrite);
    if !overwrite {
        // Tags may only be given when creating.
        if let Ok(tag) = Tag::builder().key(STACK_TAG).value(ctx.stack()).build() {
            req = req.tags(tag);
        }
    }
    req.send().await.map(|_| ())
}

/// Renews the lease in the background until [`Guard::stop`] (or drop, when a run dies).
pub struct Guard {
    renew: Option<tokio::task::JoinHandle<()>>,
    stop: std::sync::Arc<tokio::sync::Notify>,
}

impl Guard {
    /// Stop renewing, waiting for a renewal in flight so it can't re-create the lock
    /// after it is released.
    pub async fn stop(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.renew.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(task) = self.renew.take() {
            task.abort();
        }
    }
}

/// Take the lock or say who holds it. Taking over the lapsed lock of a run that died
/// first waits out the listing lag since its last sign of life, so that whatever it
/// created just before dying is listed (and found, not made twice) by this run.
pub async fn acquire(ctx: &Ctx, command: &str) -> anyhow::Result<Guard> {
    let name = parameter(ctx);
    let lease = ctx.timing.lock_lease;
    let token = format!("{:016x}", rand::random::<u64>());
    for attempt in 0..2 {
        match put(ctx, &me(command, lease, &token), false).await {
            Ok(()) => return Ok(start_renewing(ctx, command, token)),
            Err(e) if code(&e).as_deref() == Some("ParameterAlreadyExists") => {
                let h = holder(ctx).await?;
                if h.as_ref().is_some_and(|h| h.token == token) {
                    // Ours: the create succeeded, its answer was lost.
                    return Ok(start_renewing(ctx, command, token));
                }
                let now = OffsetDateTime::now_utc().unix_timestamp();
                // Only a holder we can read and whose lease ran out is dead: a lock we can't
                // read (gone at once, another tool's) is not ours to break.
                let stale = h.as_ref().is_some_and(|h| h.expires < now);
                if stale && attempt == 0 {
                    // Its holder stopped renewing it: that run is dead.
                    if let Some(h) = &h {
                        ctx.progress(
                            "lock",
                            &name,
                            &format!("taking over the lapsed lock of {} (`{}`)", h.who, h.command),
                        );
                        let last_seen = if h.renewed > 0 { h.renewed } else { h.expires };
                        let lag =
                            i64::try_from(ctx.timing.listing_lag.as_secs()).unwrap_or(i64::MAX);
                        let wait = last_seen.saturating_add(lag) - now;
                        if wait > 0 {
                            ctx.progress(
                                "lock",
                                &name,
                                &format!("waiting {wait}s for what that run made to be listed"),
                            );
                            tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())).await;
                        }
                    }
                    release(ctx).await?;
                    continue;
                }
                return Err(match h {
                    Some(h) => anyhow::anyhow!(
                        "stack {} is locked by {} (`provision {}`, pid {}) since {}. If that run is gone, \
                         wait for its lock to lapse or break it with `provision unlock`",
                        ctx.stack(),
                        h.who,
                        h.command,
                        h.pid,
                        h.since
                    ),
                    None => anyhow::anyhow!("stack {} is locked (lock {name}); `provision unlock` breaks it", ctx.stack()),
                });
            }
            Err(e) => return Err(explain(format!("taking lock {name}"), e)),
        }
    }
    anyhow::bail!("could not take lock {name}")
}

fn start_renewing(ctx: &Ctx, command: &str, token: String) -> Guard {
    let clients = ctx.aws.clone();
    let config = ctx.config.clone();
    let timing = ctx.timing;
    let command = command.to_string();
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let renew = tokio::spawn(async move {
        let ctx = Ctx::new(config, clients, crate::engine::context::Mode::Apply, timing);
        let every = (timing.lock_lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stopped.notified() => return,
                _ = tokio::time::sleep(every) => {
                    // A failed renewal is retried at the next tick; the lease covers a few misses.
                    let _ = put(&ctx, &me(&command, timing.lock_lease, &token), true).await;
                }
            }
        }
    });
    Guard {
        renew: Some(renew),
        stop,
    }
}

/// Take over and release the lock if its holder's lease ran out (a run that died): for a
/// command that finds nothing to change and so would not take the lock at all. A live
/// holder's lock is left alone.
pub async fn clear_lapsed(ctx: &Ctx, command: &str) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if holder(ctx).await?.is_some_and(|h| h.expires < now) {
        let guard = acquire(ctx, command).await?;
        guard.stop().await;
        release(ctx).await?;
    }
    Ok(())
}

pub async fn release(ctx: &Ctx) -> anyhow::Result<()> {
    let name = parameter(ctx);
    match ctx.aws.ssm.delete_parameter().name(&name).send().await {
        Ok(_) => Ok(()),
        Err(e) if code(&e).as_deref() == Some("ParameterNotFound") => Ok(()),
        Err(e) => Err(explain(format!("releasing lock {name}"), e)),
    }
}
