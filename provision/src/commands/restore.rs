//! `restore`: the running stack's data as it was at a point in time (or as a snapshot
//! holds it): the database restored beside the stack's and switched in by renames, the
//! images made to read as they did then (the bucket is versioned), every instance booted
//! again on it (so the restored database's sessions end, once), while the load balancer
//! answers every request with a 503 page. The previous database is kept until the
//! operator confirms, then removed with a final snapshot (or kept with `--keep-old`).
//!
//! Repeating a restore finds its finished steps done: one killed at any point is finished
//! by running the same command again; until then the gallery answers 503, and `up`
//! refuses to touch the stack.

use std::time::{Duration, Instant};

use crate::commands::deploy::{self, Rolling, Target};
use crate::engine::context::{Ctx, PLANNED};
use crate::engine::graph::Change;
use crate::resources::bucket::{self, Reverted};
use crate::resources::db_restore::{self, Source};
use crate::resources::{balancer, database, secrets, snapshots};

pub struct Report {
    pub source: String,
    /// The moment the data reads as (Unix seconds).
    pub at: i64,
    pub images: Reverted,
    /// The database the restore replaced, if it is still there (`--keep-old`, or not
    /// confirmed).
    pub kept: Option<String>,
    /// The previous database, removed (its final snapshot kept).
    pub removed: Option<String>,
    pub replaced: usize,
    pub elapsed: Duration,
}

/// `--to-time`: RFC 3339 (`2026-12-03T08:00:00Z`, any offset) or `2026-12-03 08:00:00`
/// (UTC).
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok(t.unix_timestamp());
    }
    let plain = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    match time::PrimitiveDateTime::parse(text, &plain) {
        Ok(t) => Ok(t.assume_utc().unix_timestamp()),
        Err(_) => anyhow::bail!(
            "--to-time {text:?}: not a time; write it as 2026-12-03T08:00:00Z (RFC 3339) or 2026-12-03 08:00:00 (UTC)"
        ),
    }
}

/// What the data is restored to, checked against what the stack has: the snapshot must be
/// one of the stack's (available, or becoming so), the time inside the restorable window.
async fn resolve(ctx: &Ctx, source: &Source) -> anyhow::Result<i64> {
    let at = match source {
        Source::Snapshot(name) => {
            // One still being made is waited for now, before the 503 page goes up.
            let s = crate::engine::retry::wait_for(
                &format!("snapshot {name} to become available"),
                ctx.timing,
                ctx.timing.wait_timeout,
                || async {
                    let all = snapshots::list(ctx).await?;
                    let Some(s) = all.into_iter().find(|s| &s.id == name) else {
                        anyhow::bail!(
                            "--snapshot {name}: the stack has no snapshot by that name (`provision backups` lists them)"
                        );
                    };
                    match s.status.as_str() {
                        "available" => Ok(Some(s)),
                        "creating" => Ok(None),
                        other => anyhow::bail!(
                            "--snapshot {name}: it is {other}, nothing can be restored from it"
                        ),
                    }
                },
            )
            .await?;
            s.taken.ok_or_else(|| {
                anyhow::anyhow!(
                    "--snapshot {name}: RDS has not stamped it yet; try again in a minute"
                )
            })?
        }
        Source::Time(t) => {
            let (from, to) = db_restore::window(ctx).await?;
            if *t < from || *t > to {
                anyhow::bail!(
                    "--to-time {}: outside what can be restored, {} to {} (UTC; `provision backups` shows the window)",
                    crate::commands::backup::when(*t),
                    crate::commands::backup::when(from),
                    crate::commands::backup::when(to)
                );
            }
            *t
        }
    };
    // The images of then are versions the lifecycle rule prunes after that many days.
    let days = ctx.config.database.snapshot_retention_days;
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - at;
    if age > i64::from(days) * 86_400 {
        anyhow::bail!(
            "{}: {} days ago, but the bucket keeps deleted and replaced images for database.snapshot_retention_days = {days} days: the database would come back without some of its images",
            source.label(),
            age / 86_400
        );
    }
    Ok(at)
}

/// Run the restore. `remove_previous` is asked (with the previous database's name)
/// whether to remove it, unless `keep_old`. Both contexts must have `restoring` set.
pub async fn restore(
    planner: &Ctx,
    applier: &Ctx,
    source: Source,
    keep_old: bool,
    rolling: Rolling,
    remove_previous: impl Fn(&str) -> anyhow::Result<bool>,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let label = source.label();
    super::preflight(planner).await?;
    // A restore under way (recorded in the database secret before its 503 page went up)
    // is resumed, from its record: the same time, the same name for the previous one.
    let record = secrets::read_db(planner).await?.restoring;
    if let Some(r) = &record {
        if r.source != label {
            anyhow::bail!(
                "a restore from {} is under way (the gallery answers 503): run it again to finish it before another",
                r.source
            );
        }
        planner.progress("restore", &label, "resuming the restore under way");
    }
    let outcome = crate::commands::up::plan(planner).await?;
    let missing: Vec<String> = outcome
        .changes
        .iter()
        // Between its two renames a restore leaves the stack without `<stack>-db`.
        .filter(|(n, c)| {
            matches!(c, Change::Create | Change::Restore(_))
                && !(record.is_some() && *n == crate::engine::graph::Node::Database)
        })
        .map(|(n, _)| n.label().to_string())
        .collect();
    let found = planner.out();
    if !missing.is_empty() || found.load_balancer_arn.as_deref() == Some(PLANNED) {
        anyhow::bail!(
            "the stack is not complete ({} to create): run `provision up` first",
            missing.join(", ")
        );
    }
    applier.set(|o| *o = found.clone());
    let record = match record {
        Some(r) => r,
        None => {
            let at = resolve(applier, &source).await?;
            let now = time::OffsetDateTime::now_utc();
            let stamp = now.format(time::macros::format_description!(
                "[year][month][day]-[hour][minute][second]"
            ))?;
            secrets::Restoring {
                source: label.clone(),
                at,
                started: now.unix_timestamp(),
                previous: format!("{}{stamp}", database::previous_prefix(applier)),
            }
        }
    };
    let guard = crate::engine::lock::acquire(applier, "restore").await?;
    let result = switch(applier, &source, &record, rolling).await;
    guard.stop().await;
    crate::engine::lock::release(applier).await?;
    let (images, replaced) = result.map_err(|e| {
        e.context(
            "the restore stopped; the gallery answers 503 until it is finished: run the same `provision restore` again (it goes on from where it stopped)",
        )
    })?;
    let (mut kept, mut removed) = (None, None);
    if database::find_id(applier, &record.previous)
        .await?
        .is_some()
    {
        let prev = record.previous.clone();
        if !keep_old && remove_previous(&prev)? {
            db_restore::remove_previous(applier, &prev).await?;
            removed = Some(prev);
        } else {
            kept = Some(prev);
        }
    }
    Ok(Report {
        source: label,
        at: record.at,
        images,
        kept,
        removed,
        replaced,
        elapsed: started.elapsed(),
    })
}

/// Everything between the 503 page going up and coming down; each step finds its work
/// done when repeated.
async fn switch(
    ctx: &Ctx,
    source: &Source,
    record: &secrets::Restoring,
    rolling: Rolling,
) -> anyhow::Result<(Reverted, usize)> {
    secrets::set_restoring(ctx, Some(record.clone())).await?;
    balancer::maintenance(ctx).await?;
    // Requests already on their way finish (the deregistration delay bounds them, as it
    // does a draining target) before the bucket's versions are read.
    tokio::time::sleep(Duration::from_secs(
        u64::try_from(ctx.config.balancer.deregistration_delay_secs).unwrap_or(0),
    ))
    .await;
    let images = if db_restore::switched(ctx, record).await? {
        bucket::revert_images_to(ctx, record.at).await?
    } else {
        let (images, _) = futures::try_join!(
            bucket::revert_images_to(ctx, record.at),
            db_restore::make_next(ctx, source)
        )?;
        db_restore::switch(ctx, &record.previous).await?;
        images
    };
    // The restored database: the secret's password, the config's backups and deletion
    // protection, and the restore recorded in the secret, so the instances booting on it
    // end its sessions (once).
    let db = database::after_restore(ctx).await?;
    let Some(endpoint) = db.endpoint().and_then(|e| e.address()).map(String::from) else {
        anyhow::bail!("the restored database reports no endpoint yet");
    };
    let port = db.endpoint().and_then(|e| e.port()).unwrap_or(5432) as u16;
    secrets::set_db_host(ctx, &endpoint, port, Some(&database::restore_marker(&db))).await?;
    let (_, _, replaced) = deploy::rolled(ctx, Target::Running, rolling).await?;
    balancer::end_maintenance(ctx).await?;
    secrets::set_restoring(ctx, None).await?;
    ctx.progress("restore", &source.label(), "serving again");
    Ok((images, replaced))
}
