//! `backup`: a snapshot of the running database now, then the pruning of those past
//! `database.snapshot_retention_days`. `backups`: every snapshot of the stack (automated,
//! backup, final) with when it was taken and its size, and the window a point in time can
//! be restored from.

use serde::Serialize;

use crate::engine::context::Ctx;
use crate::resources::{database, snapshots};

#[derive(Debug, Serialize)]
pub struct Taken {
    pub snapshot: snapshots::Listed,
    pub pruned: Vec<String>,
}

pub async fn backup(ctx: &Ctx, wait: bool) -> anyhow::Result<Taken> {
    super::preflight(ctx).await?;
    // Not while a `down` deletes the database (or its snapshots) or another backup prunes.
    let guard = crate::engine::lock::acquire(ctx, "backup").await?;
    let taken = async {
        let snapshot = snapshots::backup(ctx, wait).await?;
        // The snapshot is taken: a failure to prune is reported, not fatal.
        let pruned = match snapshots::prune(ctx).await {
            Ok(p) => p,
            Err(e) => {
                ctx.progress(
                    "db-snapshot",
                    "",
                    &format!("warning: pruning old snapshots failed: {e:#}"),
                );
                Vec::new()
            }
        };
        Ok::<_, anyhow::Error>(Taken { snapshot, pruned })
    }
    .await;
    guard.stop().await;
    crate::engine::lock::release(ctx).await?;
    taken
}

#[derive(Debug, Serialize)]
pub struct Backups {
    pub stack: String,
    pub snapshots: Vec<snapshots::Listed>,
    /// The running database's restorable window, Unix seconds (none without a database,
    /// or before RDS has backed it up once): from its creation or the start of the
    /// retention, whichever is later, to its latest restorable time.
    pub restorable_from: Option<i64>,
    pub restorable_to: Option<i64>,
    pub retention_days: i32,
}

pub async fn backups(ctx: &Ctx) -> anyhow::Result<Backups> {
    super::preflight(ctx).await?;
    let (snapshots, db) = futures::try_join!(snapshots::list(ctx), database::find(ctx))?;
    let (restorable_from, restorable_to) = match db {
        Some(_) => match crate::resources::db_restore::window(ctx).await {
            Ok((from, to)) => (Some(from), Some(to)),
            Err(_) => (None, None),
        },
        None => (None, None),
    };
    Ok(Backups {
        stack: ctx.stack().to_string(),
        snapshots,
        restorable_from,
        restorable_to,
        retention_days: ctx.config.database.snapshot_retention_days,
    })
}

/// `2026-12-03 08:00:00` (UTC).
pub fn when(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

pub fn print_taken(t: &Taken) {
    println!(
        "Snapshot {} ({}, {} GB) taken; `provision up --from-snapshot {}` brings it back into a stack without a database.",
        t.snapshot.id, t.snapshot.status, t.snapshot.size_gb, t.snapshot.id
    );
    for p in &t.pruned {
        println!("  pruned {p} (older than database.snapshot_retention_days)");
    }
}

pub fn print(b: &Backups) {
    if b.snapshots.is_empty() {
        println!("Stack {} has no snapshots.", b.stack);
    } else {
        println!(
            "{:<48} {:<10} {:<20} {:<10} {:>6}",
            "SNAPSHOT", "KIND", "TAKEN (UTC)", "STATUS", "SIZE"
        );
    }
    for s in &b.snapshots {
        println!(
            "{:<48} {:<10} {:<20} {:<10} {:>3} GB{}",
            s.id,
            s.kind.label(),
            s.taken.map(when).unwrap_or_else(|| "(not yet)".into()),
            s.status,
            s.size_gb,
            if s.retained { "  kept by a down" } else { "" }
        );
    }
    match (b.restorable_from, b.restorable_to) {
        (Some(from), Some(to)) => println!(
            "The database can be restored to any second from {} to {} (UTC).",
            when(from),
            when(to)
        ),
        (None, Some(to)) => println!(
            "The database can be restored to any second up to {} (UTC).",
            when(to)
        ),
        _ => {}
    }
    println!(
        "Backups and older final snapshots are pruned after {} days (database.snapshot_retention_days); the newest is always kept.",
        b.retention_days
    );
}
