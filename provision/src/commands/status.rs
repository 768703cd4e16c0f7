//! `status`: every resource of the stack with its id and state, target health, the URL.

use serde::Serialize;

use crate::context::Ctx;
use crate::scan::{self, Found};

#[derive(Serialize)]
pub struct Status {
    pub stack: String,
    pub region: String,
    pub url: Option<String>,
    pub resources: Vec<Found>,
    pub targets: Vec<Target>,
}

#[derive(Serialize)]
pub struct Target {
    pub instance: String,
    pub state: String,
    pub reason: String,
}

pub async fn status(ctx: &Ctx) -> anyhow::Result<Status> {
    super::preflight(ctx).await?;
    let resources = scan::tagged(ctx).await?;
    let url = crate::balancer::find_load_balancer(ctx)
        .await?
        .and_then(|lb| {
            lb.dns_name()
                .map(|d| format!("{}/", crate::launch::public_url(ctx, d)))
        });
    let targets = crate::balancer::target_health(ctx)
        .await?
        .into_iter()
        .map(|(instance, state, reason)| Target {
            instance,
            state,
            reason,
        })
        .collect();
    Ok(Status {
        stack: ctx.stack().to_string(),
        region: ctx.aws.region.clone(),
        url,
        resources,
        targets,
    })
}

pub fn print(s: &Status) {
    println!("stack {} in {}", s.stack, s.region);
    if s.resources.is_empty() {
        println!("  nothing exists (run `provision up`)");
    }
    for r in &s.resources {
        println!("  {:<20} {:<60} {}", r.kind, r.id, r.state);
    }
    if !s.targets.is_empty() {
        println!("targets:");
        for t in &s.targets {
            println!("  {:<20} {:<10} {}", t.instance, t.state, t.reason);
        }
    }
    if let Some(url) = &s.url {
        println!("url: {url}");
    }
}
