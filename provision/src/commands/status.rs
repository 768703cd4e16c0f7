//! `status`: every resource of the stack with its id and state, target health, the URL,
//! and what the stack costs a month as config.toml sets it.

use serde::Serialize;

use crate::engine::context::Ctx;
use crate::resources::scan::{self, Found};

#[derive(Serialize)]
pub struct Status {
    pub stack: String,
    pub region: String,
    pub url: Option<String>,
    pub resources: Vec<Found>,
    pub targets: Vec<Target>,
    /// The release the Auto Scaling group launches (its pinned launch template version's).
    pub release: Option<String>,
    /// The release each live instance booted.
    pub instances: Vec<Instance>,
    /// The stack as config.toml sets it, priced (None: the price table would not parse).
    pub cost: Option<crate::cost::Estimate>,
    /// The Auto Scaling group's size: desired, InService, min, max.
    pub group: Option<GroupSize>,
    /// The target-tracking policy, if any (`[scaling]`).
    pub scaling_policy: Option<String>,
    /// The stack's alarms in ALARM state: (name, reason).
    pub alarms_firing: Vec<(String, String)>,
}

#[derive(Serialize)]
pub struct GroupSize {
    pub desired: i32,
    pub running: usize,
    pub min: i32,
    pub max: i32,
}

#[derive(Serialize)]
pub struct Instance {
    pub instance: String,
    pub release: String,
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
    let url = crate::resources::balancer::find_load_balancer(ctx)
        .await?
        .and_then(|lb| {
            lb.dns_name()
                .map(|d| format!("{}/", crate::resources::launch::public_url(ctx, d)))
        });
    let targets = crate::resources::balancer::target_health(ctx)
        .await?
        .into_iter()
        .map(|(instance, state, reason)| Target {
            instance,
            state,
            reason,
        })
        .collect();
    let found_group = crate::resources::fleet::find(ctx).await?;
    let group = found_group.as_ref().map(|g| GroupSize {
        desired: g.desired_capacity().unwrap_or(0),
        running: g
            .instances()
            .iter()
            .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
            .count(),
        min: g.min_size().unwrap_or(0),
        max: g.max_size().unwrap_or(0),
    });
    let scaling_policy = match &found_group {
        Some(_) => crate::resources::scaling::find(ctx)
            .await?
            .map(|p| crate::resources::scaling::describe(&p)),
        None => None,
    };
    let alarms_firing = crate::resources::alarms::firing(ctx).await?;
    let release = match found_group {
        Some(g) => match g
            .launch_template()
            .and_then(|l| Some((l.launch_template_id()?, l.version()?.parse::<i64>().ok()?)))
        {
            Some((id, version)) => {
                Some(crate::commands::deploy::release_of_version(ctx, id, version).await?)
            }
            None => None,
        },
        None => None,
    };
    let mut instances = Vec::new();
    for id in crate::resources::fleet::live_instances(ctx).await? {
        let release = crate::resources::fleet::release_of_instance(ctx, &id).await?;
        instances.push(Instance {
            instance: id,
            release,
        });
    }
    let cost = crate::cost::Prices::shipped().ok().map(|prices| {
        crate::cost::estimate(
            &prices,
            &ctx.config.stack.region,
            &crate::cost::Shape::configured(&ctx.config),
        )
    });
    Ok(Status {
        cost,
        stack: ctx.stack().to_string(),
        region: ctx.aws.region.clone(),
        url,
        resources,
        targets,
        release,
        instances,
        group,
        scaling_policy,
        alarms_firing,
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
    if let Some(r) = &s.release {
        println!("release: {r} (what new instances boot)");
    }
    if !s.instances.is_empty() {
        println!("instances:");
        for i in &s.instances {
            println!("  {:<20} {}", i.instance, i.release);
        }
    }
    if let Some(g) = &s.group {
        println!(
            "group: desired {}, running {} (in service), min {}, max {}",
            g.desired, g.running, g.min, g.max
        );
    }
    if let Some(p) = &s.scaling_policy {
        println!("scaling: {p}");
    }
    for (name, reason) in &s.alarms_firing {
        println!("ALARM: {name}: {reason}");
    }
    if let Some(url) = &s.url {
        println!("url: {url}");
    }
    if let Some(cost) = &s.cost {
        let title = crate::cost::title(&s.stack, cost, "as config.toml sets it");
        println!(
            "{}",
            crate::cost::table::render(&title, cost, None).trim_end()
        );
    }
}
