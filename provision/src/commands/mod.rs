//! The commands: `plan`, `up`, `status`, `down`, `deploy`, `rollback`, `backup`,
//! `backups`, `restore`, `exec` and `logs`; `cli` runs `admin-password` and `unlock` itself.

pub mod backup;
pub mod deploy;
pub mod down;
pub mod exec;
pub mod logs;
pub mod restore;
pub mod status;
pub mod up;

use crate::engine::context::Ctx;
use crate::resources::{launch, network};

/// Facts every command needs before touching resources: the account and two zones.
pub async fn preflight(ctx: &Ctx) -> anyhow::Result<()> {
    let who = ctx
        .aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| crate::engine::errors::explain("checking AWS credentials", e))?;
    let account = who.account().unwrap_or_default().to_string();
    let azs = network::zones(ctx).await?;
    ctx.set(|o| {
        o.account = account;
        o.azs = azs;
    });
    Ok(())
}

/// The gallery's URL, once the load balancer exists.
pub fn url(ctx: &Ctx) -> Option<String> {
    ctx.out()
        .load_balancer_dns
        .filter(|d| d != crate::engine::context::PLANNED)
        .map(|d| format!("{}/", launch::public_url(ctx, &d)))
}
