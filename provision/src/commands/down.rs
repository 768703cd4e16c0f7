//! `down`: delete everything the stack owns, in reverse dependency order, then scan for
//! anything still tagged and fail if something is left. The data (the bucket, a final
//! database snapshot, the secret with its password) is kept unless `delete_data`, and
//! listed with what keeping it costs (`kept_cost`, priced by `cost::retained`).

use crate::engine::context::Ctx;
use crate::engine::graph::{self, Change, Node};
use crate::resources::database::Teardown;
use crate::resources::scan::{self, Found};

pub struct Outcome {
    pub deleted: Vec<(Node, Change)>,
    pub errors: Vec<String>,
    pub left: Vec<Found>,
    /// The data kept for `up` to bring back (empty with `delete_data`).
    pub kept: Vec<Found>,
    /// What the kept bucket holds.
    pub usage: Option<crate::resources::bucket::Usage>,
}

/// What keeping `kept` costs a month in `region`, at the price table's prices: each
/// snapshot at most its database's allocated size, the bucket's bytes (every version), the
/// secrets, the log group's stored bytes.
pub fn kept_cost(
    region: &str,
    kept: &[Found],
    usage: Option<&crate::resources::bucket::Usage>,
) -> Result<crate::cost::Estimate, String> {
    let prices = crate::cost::Prices::shipped()?;
    // A snapshot's state reads "available, 20 GB" (`snapshots::scan`).
    let snapshot_gb: Vec<u32> = kept
        .iter()
        .filter(|f| f.kind == "db-snapshot")
        .map(|f| {
            f.state
                .rsplit(", ")
                .next()
                .and_then(|s| s.trim_end_matches(" GB").parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let secrets = kept.iter().filter(|f| f.kind == "secret").count();
    // A log group's state reads "kept 14 days, 1234 bytes stored" (`logs::scan`).
    let log_bytes = kept.iter().find(|f| f.kind == "log-group").map(|f| {
        f.state
            .rsplit(", ")
            .next()
            .and_then(|s| s.trim_end_matches(" bytes stored").parse().ok())
            .unwrap_or(0)
    });
    Ok(crate::cost::retained(
        &prices,
        region,
        &crate::cost::Kept {
            snapshot_gb,
            bucket_bytes: kept
                .iter()
                .any(|f| f.kind == "bucket")
                .then(|| usage.map_or(0, |u| u.bytes)),
            secrets: u32::try_from(secrets).unwrap_or(0),
            log_bytes,
        },
    ))
}

pub async fn down(ctx: &Ctx, how: Teardown) -> anyhow::Result<Outcome> {
    super::preflight(ctx).await?;
    // Refuse before deleting anything, rather than half-way through.
    if !how.force {
        if let Some(db) = crate::resources::database::find(ctx).await? {
            if db.deletion_protection() == Some(true) {
                anyhow::bail!(
                    "database {} has deletion protection on (database.deletion_protection); nothing was deleted. \
                     Run `provision down --force` to turn it off and remove the stack (a final snapshot is still kept)",
                    crate::resources::database::instance_id(ctx)
                );
            }
        }
    }
    let guard = crate::engine::lock::acquire(ctx, "down").await?;
    let results = graph::walk(true, |n| crate::resources::delete(ctx, n, how)).await;
    guard.stop().await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (node, r) in results {
        match r {
            Ok(c) => deleted.push((node, c)),
            Err(e) => errors.push(format!("{}: {e:#}", node.label())),
        }
    }
    crate::engine::lock::release(ctx).await?;
    deleted.sort_by_key(|(n, _)| *n);
    let keep = !how.delete_data;
    let (kept, left): (Vec<Found>, Vec<Found>) = leftovers(ctx, keep)
        .await?
        .into_iter()
        .partition(|f| keep && scan::is_data(ctx, f));
    let usage = if kept.iter().any(|f| f.kind == "bucket") {
        crate::resources::bucket::usage(ctx).await?
    } else {
        None
    };
    Ok(Outcome {
        deleted,
        errors,
        left,
        kept,
        usage,
    })
}

/// What is still tagged for the stack. Listings lag deletes (ListSecrets by minutes,
/// GetRole by seconds): whatever the first scan finds is looked at again once the lag has
/// passed, and only what both scans find is left. Kept data (`keep`) is not a leftover:
/// it is returned as found, without a second look.
async fn leftovers(ctx: &Ctx, keep: bool) -> anyhow::Result<Vec<Found>> {
    let (data, first): (Vec<Found>, Vec<Found>) = scan::tagged(ctx)
        .await?
        .into_iter()
        .partition(|f| keep && scan::is_data(ctx, f));
    if first.is_empty() {
        return Ok(data);
    }
    ctx.progress(
        "scan",
        "",
        &format!(
            "{} still listed; looking again in {}s (listings lag deletes)",
            first.len(),
            ctx.timing.listing_lag.as_secs()
        ),
    );
    tokio::time::sleep(ctx.timing.listing_lag).await;
    let again = scan::tagged(ctx).await?;
    Ok(again
        .into_iter()
        .filter(|f| {
            (keep && scan::is_data(ctx, f))
                || first.iter().any(|g| g.kind == f.kind && g.id == f.id)
        })
        .collect())
}
