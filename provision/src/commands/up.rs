//! `plan` and `up`: read the stack, show or apply the difference. A no-op `up` makes only
//! read calls: it plans first and takes the lock only when there is something to change.

use crate::context::{Ctx, Mode};
use crate::graph::{self, Change, Node};

pub struct Outcome {
    pub changes: Vec<(Node, Change)>,
    pub url: Option<String>,
}

/// Walk the graph in `ctx.mode`; the first failure stops new nodes and is returned.
pub async fn walk(ctx: &Ctx) -> anyhow::Result<Vec<(Node, Change)>> {
    super::preflight(ctx).await?;
    let results = graph::walk(false, |n| super::ensure(ctx, n)).await;
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for (node, r) in results {
        match r {
            Ok(c) => changes.push((node, c)),
            Err(e) => errors.push(format!("{}: {e:#}", node.label())),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    changes.sort_by_key(|(n, _)| *n);
    Ok(changes)
}

pub async fn plan(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let changes = walk(ctx).await?;
    Ok(Outcome {
        changes,
        url: super::url(ctx),
    })
}

pub fn print_plan(outcome: &Outcome) {
    let pending: Vec<_> = outcome
        .changes
        .iter()
        .filter(|(_, c)| c.is_change())
        .collect();
    if pending.is_empty() {
        println!("No changes: the stack matches config.toml.");
    } else {
        println!("`provision up` would make {} change(s):", pending.len());
        for (node, change) in &pending {
            println!("  {:<20} {}", node.label(), change.describe(true));
        }
    }
    println!(
        "\nOrder (each step starts as soon as those it waits for are done):\n{}",
        graph::describe()
    );
}

/// Plan, and apply only if something differs.
pub async fn up(planner: &Ctx, applier: &Ctx, wait: bool) -> anyhow::Result<Outcome> {
    let planned = plan(planner).await?;
    if !planned.changes.iter().any(|(_, c)| c.is_change()) {
        return Ok(Outcome {
            changes: Vec::new(),
            url: planned.url,
        });
    }
    debug_assert_eq!(applier.mode, Mode::Apply);
    let guard = crate::lock::acquire(applier, "up").await?;
    let result = walk(applier).await;
    guard.stop().await;
    let released = crate::lock::release(applier).await;
    let changes = result?;
    released?;
    // The URL is worth printing once it serves: wait for the fleet to pass health checks.
    // (A stack scaled to zero instances has nothing to wait for.)
    let want = usize::try_from(applier.config.app.desired_capacity).unwrap_or(0);
    if wait && want > 0 {
        crate::balancer::wait_healthy(applier, want).await?;
    }
    Ok(Outcome {
        changes: changes
            .into_iter()
            .filter(|(_, c)| c.is_change() || matches!(c, Change::Note(_)))
            .collect(),
        url: super::url(applier),
    })
}
