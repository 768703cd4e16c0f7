//! Everything in the account that carries this stack's tag: each resource module lists
//! its own (`scan` in each), and this gathers them, with the stack lock. What `status`
//! lists and what `down` checks is gone at the end.

use crate::engine::context::Ctx;
use crate::engine::lock;
use crate::resources::{
    alarms, balancer, bucket, certificate, database, dns, fleet, iam, launch, logs, network,
    notifications, scaling, secrets, security_groups, snapshots,
};

#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub kind: String,
    pub id: String,
    pub state: String,
}

pub fn found(kind: &str, id: impl Into<String>, state: impl Into<String>) -> Found {
    Found {
        kind: kind.into(),
        id: id.into(),
        state: state.into(),
    }
}

/// The stack's data, which `down` keeps unless told to destroy it: the bucket (every
/// image and release), the database's snapshots, and the secrets holding its passwords.
pub fn is_data(ctx: &Ctx, f: &Found) -> bool {
    match f.kind.as_str() {
        "bucket" | "db-snapshot" | "log-group" => true,
        "secret" => f.id == secrets::name(ctx, "db") || f.id == secrets::name(ctx, "admin"),
        _ => false,
    }
}

pub async fn tagged(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let parts = futures::try_join!(
        network::scan(ctx),
        security_groups::scan(ctx),
        launch::scan(ctx),
        fleet::scan(ctx),
        balancer::scan(ctx),
        database::scan(ctx),
        secrets::scan(ctx),
        bucket::scan(ctx),
        iam::scan(ctx),
        snapshots::scan(ctx),
        logs::scan(ctx),
    )?;
    let more = futures::try_join!(
        certificate::scan(ctx),
        dns::scan(ctx),
        scaling::scan(ctx),
        notifications::scan(ctx),
        alarms::scan(ctx),
    )?;
    let mut all: Vec<Found> = [
        parts.0, parts.1, parts.2, parts.3, parts.4, parts.5, parts.6, parts.7, parts.8, parts.9,
        parts.10, more.0, more.1, more.2, more.3, more.4,
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(h) = lock::holder(ctx).await? {
        all.push(found(
            "lock",
            lock::parameter(ctx),
            format!("held by {} since {}", h.who, h.since),
        ));
    }
    all.sort();
    Ok(all)
}
