//! `down`: delete everything the stack owns, in reverse dependency order, then scan for
//! anything still tagged and fail if something is left. The data (the bucket, a final
//! database snapshot, the secret with its password) is kept unless `delete_data`, and
//! listed with what keeping it costs.

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

/// US East (N. Virginia) list prices, as of 2026-12 (aws.amazon.com/s3/pricing,
/// /rds/postgresql/pricing, /secrets-manager/pricing): dollars per GB-month of S3
/// Standard, per GB-month of RDS snapshot storage once the database is gone, and per
/// secret-month. Other regions cost up to about a third more.
const S3_GB_MONTH: f64 = 0.023;
const SNAPSHOT_GB_MONTH: f64 = 0.095;
const SECRET_MONTH: f64 = 0.40;

/// What keeping `kept` costs per month, in dollars (snapshots at their database's
/// allocated size, an upper bound: RDS bills the blocks they hold).
pub fn monthly_cost(kept: &[Found], usage: Option<&crate::resources::bucket::Usage>) -> f64 {
    let mut dollars = usage.map_or(0.0, |u| u.bytes as f64 / 1e9 * S3_GB_MONTH);
    for f in kept {
        match f.kind.as_str() {
            "db-snapshot" => {
                let gb: f64 = f
                    .state
                    .rsplit(", ")
                    .next()
                    .and_then(|s| s.trim_end_matches(" GB").parse().ok())
                    .unwrap_or(0.0);
                dollars += gb * SNAPSHOT_GB_MONTH;
            }
            "secret" => dollars += SECRET_MONTH,
            _ => {}
        }
    }
    dollars
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
