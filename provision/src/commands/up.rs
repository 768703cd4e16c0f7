//! `plan` and `up`: read the stack, show or apply the difference and what it costs. A
//! no-op `up` makes only read calls: it plans first and takes the lock only when there is
//! something to change.

use crate::engine::context::{Ctx, Mode};
use crate::engine::graph::{self, Change, Node};

pub struct Outcome {
    pub changes: Vec<(Node, Change)>,
    pub url: Option<String>,
    /// The cost table (`cost`) of the plan.
    pub cost: String,
}

/// Walk the graph in `ctx.mode`; the first failure stops new nodes and is returned.
pub async fn walk(ctx: &Ctx) -> anyhow::Result<Vec<(Node, Change)>> {
    super::preflight(ctx).await?;
    let results = graph::walk(false, |n| crate::resources::ensure(ctx, n)).await;
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
        cost: cost(ctx),
    })
}

/// The monthly cost of the stack as config.toml sets it, beside what the plan walk found
/// running (`Outputs::running`) when any of the stack exists.
pub fn cost(ctx: &Ctx) -> String {
    let prices = match crate::cost::Prices::shipped() {
        Ok(p) => p,
        Err(e) => return format!("Monthly cost unknown: {e}\n"),
    };
    let region = &ctx.config.stack.region;
    let wanted = crate::cost::estimate(
        &prices,
        region,
        &crate::cost::Shape::configured(&ctx.config),
    );
    let running = ctx.out().running;
    if running.is_nothing() {
        let title = crate::cost::title(ctx.stack(), &wanted, "as config.toml sets it");
        return crate::cost::table::render(&title, &wanted, None);
    }
    let now = crate::cost::estimate(&prices, region, &running);
    let title = crate::cost::title(
        ctx.stack(),
        &wanted,
        "as config.toml sets it, beside what runs now",
    );
    crate::cost::table::render(&title, &wanted, Some(&now))
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
    println!("\n{}", outcome.cost.trim_end());
    println!(
        "\nOrder (each step starts as soon as those it waits for are done):\n{}",
        graph::describe()
    );
}

/// Plan, and apply only if something differs.
pub async fn up(planner: &Ctx, applier: &Ctx, wait: bool) -> anyhow::Result<Outcome> {
    let planned = plan(planner).await?;
    if !planned.changes.iter().any(|(_, c)| c.is_change()) {
        // An `up` that died after its last write left its lock: nothing is left to do,
        // but the lapsed lock must not stay (`status` and the scan would show it).
        crate::engine::lock::clear_lapsed(applier, "up").await?;
        return Ok(Outcome {
            changes: Vec::new(),
            url: planned.url,
            cost: planned.cost,
        });
    }
    // What the changes cost, before any is made.
    if !planner.quiet {
        println!("{}", planned.cost.trim_end());
    }
    debug_assert_eq!(applier.mode, Mode::Apply);
    let guard = crate::engine::lock::acquire(applier, "up").await?;
    let mut result = walk(applier).await;
    if result.is_ok() {
        if let Err(e) = settle(applier).await {
            result = Err(e);
        }
    }
    guard.stop().await;
    let released = crate::engine::lock::release(applier).await;
    let changes = result?;
    released?;
    // The URL is worth printing once it serves: wait for the fleet to pass health checks.
    // (A stack scaled to zero instances has nothing to wait for.)
    // (With a scaling policy, at least min_size: the policy may have scaled the group in.)
    let want = usize::try_from(if applier.config.scaling.enabled {
        applier
            .config
            .app
            .min_size
            .min(applier.config.app.desired_capacity)
    } else {
        applier.config.app.desired_capacity
    })
    .unwrap_or(0);
    if wait && want > 0 {
        crate::resources::balancer::wait_healthy(applier, want).await?;
    }
    Ok(Outcome {
        changes: changes
            .into_iter()
            .filter(|(_, c)| c.is_change() || matches!(c, Change::Note(_)))
            .collect(),
        url: super::url(applier),
        cost: planned.cost,
    })
}

/// Wait (bounded) until the stack's EC2 resources are listed by their tags: AWS lists a new
/// resource only after a while, and the next command (a `plan` at once, another `up`)
/// finds resources by tag, so it would not see what this run made and make it again.
async fn settle(ctx: &Ctx) -> anyhow::Result<()> {
    let o = ctx.out();
    let want: Vec<String> = [
        o.vpc,
        o.igw,
        o.nat,
        o.public_route_table,
        o.private_route_table,
        o.s3_endpoint,
        o.lb_sg,
        o.app_sg,
        o.db_sg,
        o.launch_template_id,
    ]
    .into_iter()
    .flatten()
    .chain(o.public_subnets)
    .chain(o.private_subnets)
    .filter(|id| id != crate::engine::context::PLANNED)
    .collect();
    let missing = std::sync::Mutex::new(Vec::new());
    let waited = crate::engine::retry::wait_for(
        "the stack's new resources to be listed by their tags",
        ctx.timing,
        ctx.timing.visibility,
        || async {
            let listed = crate::engine::context::ids(&crate::resources::scan::tagged(ctx).await?);
            let unlisted: Vec<String> = want
                .iter()
                .filter(|id| !listed.contains(*id))
                .cloned()
                .collect();
            let done = unlisted.is_empty();
            if let Ok(mut m) = missing.lock() {
                *m = unlisted;
            }
            Ok(done.then_some(()))
        },
    )
    .await;
    waited.map_err(|e| {
        let unlisted = missing.lock().map(|m| m.join(", ")).unwrap_or_default();
        anyhow::anyhow!("{e} (not listed: {unlisted})")
    })
}
