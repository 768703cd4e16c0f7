//! `down`: delete everything the stack owns, in reverse dependency order, then scan for
//! anything still tagged and fail if something is left.

use crate::context::Ctx;
use crate::database::Teardown;
use crate::graph::{self, Change, Node};
use crate::scan::{self, Found};

pub struct Outcome {
    pub deleted: Vec<(Node, Change)>,
    pub errors: Vec<String>,
    pub left: Vec<Found>,
}

pub async fn down(ctx: &Ctx, how: Teardown) -> anyhow::Result<Outcome> {
    super::preflight(ctx).await?;
    // Refuse before deleting anything, rather than half-way through.
    if !how.force {
        if let Some(db) = crate::database::find(ctx).await? {
            if db.deletion_protection() == Some(true) {
                anyhow::bail!(
                    "database {} has deletion protection on (database.deletion_protection); nothing was deleted. \
                     Run `provision down --force` to turn it off and remove the stack (a final snapshot is still kept)",
                    crate::database::instance_id(ctx)
                );
            }
        }
    }
    let guard = crate::lock::acquire(ctx, "down").await?;
    let results = graph::walk(true, |n| super::delete(ctx, n, how)).await;
    guard.stop().await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (node, r) in results {
        match r {
            Ok(c) => deleted.push((node, c)),
            Err(e) => errors.push(format!("{}: {e:#}", node.label())),
        }
    }
    crate::lock::release(ctx).await?;
    deleted.sort_by_key(|(n, _)| *n);
    let left = scan::tagged(ctx).await?;
    Ok(Outcome {
        deleted,
        errors,
        left,
    })
}
