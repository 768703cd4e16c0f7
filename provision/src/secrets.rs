//! Secrets Manager: the database credentials and the first admin's password. Generated
//! here, stored only there: never printed, never in user-data or logs.

use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::aws::{code, AwsResult};
use crate::context::{Ctx, PLANNED, STACK_TAG};
use crate::graph::Change;
use crate::tags::secret_tags;

pub const DB_USER: &str = "gallery";
pub const DB_NAME: &str = "gallery";

/// What the app reads at startup to reach its database.
#[derive(Serialize, Deserialize, Clone)]
pub struct DbSecret {
    pub engine: String,
    pub username: String,
    pub password: String,
    pub dbname: String,
    pub port: u16,
    /// Filled in once RDS reports its endpoint; the app waits for it.
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct AdminSecret {
    pub username: String,
    pub password: String,
}

pub fn name(ctx: &Ctx, role: &str) -> String {
    format!("{}/{role}", ctx.stack())
}

fn password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

async fn describe(ctx: &Ctx, role: &str) -> anyhow::Result<Option<DescribeSecretOutput>> {
    let name = name(ctx, role);
    match ctx
        .aws
        .secrets
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
    {
        Ok(out) => Ok(Some(out)),
        Err(e) if code(&e).as_deref() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(crate::aws::explain(format!("finding secret {name}"), e)),
    }
}

fn ours(ctx: &Ctx, out: &DescribeSecretOutput) -> bool {
    out.tags()
        .iter()
        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()))
}

async fn ensure_secret(
    ctx: &Ctx,
    role: &str,
    initial: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<(String, Change)> {
    let name = name(ctx, role);
    if let Some(out) = describe(ctx, role).await? {
        if !ours(ctx, &out) {
            anyhow::bail!(
                "secret {name} exists but is not tagged {STACK_TAG}={}: refusing to use it",
                ctx.stack()
            );
        }
        let arn = out.arn().unwrap_or_default().to_string();
        if out.deleted_date().is_none() {
            return Ok((arn, Change::Unchanged));
        }
        // Scheduled for deletion (a `down` that kept the database's final snapshot, or the
        // console's default): bring it back rather than fail on reading it later.
        if !ctx.planning() {
            ctx.aws
                .secrets
                .restore_secret()
                .secret_id(&name)
                .send()
                .await
                .aws(format!(
                    "restoring secret {name} (it was scheduled for deletion)"
                ))?;
            ctx.progress("secret", &name, "restored (was scheduled for deletion)");
        }
        return Ok((
            arn,
            Change::Update("restore: scheduled for deletion".into()),
        ));
    }
    if ctx.planning() {
        return Ok((PLANNED.into(), Change::Create));
    }
    let out = ctx
        .aws
        .secrets
        .create_secret()
        .name(&name)
        .description(format!("gallery stack {}: {role} credentials", ctx.stack()))
        .secret_string(initial()?)
        .set_tags(Some(secret_tags(ctx, role)))
        .send()
        .await
        .aws(format!("creating secret {name}"))?;
    let arn = out.arn().unwrap_or_default().to_string();
    ctx.progress("secret", &name, "created");
    Ok((arn, Change::Create))
}

pub async fn ensure_db(ctx: &Ctx) -> anyhow::Result<Change> {
    let (arn, change) = ensure_secret(ctx, "db", || {
        Ok(serde_json::to_string(&DbSecret {
            engine: "postgres".into(),
            username: DB_USER.into(),
            password: password(),
            dbname: DB_NAME.into(),
            port: 5432,
            host: None,
        })?)
    })
    .await?;
    ctx.set(|o| o.db_secret_arn = Some(arn));
    Ok(change)
}

pub async fn ensure_admin(ctx: &Ctx) -> anyhow::Result<Change> {
    let username = ctx.config.app.admin_username.clone();
    let (arn, change) = ensure_secret(ctx, "admin", || {
        Ok(serde_json::to_string(&AdminSecret {
            username,
            password: password(),
        })?)
    })
    .await?;
    ctx.set(|o| o.admin_secret_arn = Some(arn));
    Ok(change)
}

async fn read<T: for<'de> Deserialize<'de>>(ctx: &Ctx, role: &str) -> anyhow::Result<T> {
    let name = name(ctx, role);
    let out = ctx
        .aws
        .secrets
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .aws(format!("reading secret {name}"))?;
    serde_json::from_str(out.secret_string().unwrap_or_default())
        // Not the parser's message: it may quote the secret's content.
        .map_err(|_| anyhow::anyhow!("secret {name} does not hold the expected JSON"))
}

pub async fn read_db(ctx: &Ctx) -> anyhow::Result<DbSecret> {
    read(ctx, "db").await
}

pub async fn read_admin(ctx: &Ctx) -> anyhow::Result<AdminSecret> {
    read(ctx, "admin").await
}

/// Record the database's address in its secret (once RDS reports one).
pub async fn set_db_host(ctx: &Ctx, host: &str, port: u16) -> anyhow::Result<bool> {
    let mut secret = read_db(ctx).await?;
    if secret.host.as_deref() == Some(host) && secret.port == port {
        return Ok(false);
    }
    secret.host = Some(host.to_string());
    secret.port = port;
    write_db(ctx, &secret, "recording the database address").await?;
    Ok(true)
}

/// Store a new value of the database secret.
async fn write_db(ctx: &Ctx, secret: &DbSecret, why: &str) -> anyhow::Result<()> {
    let name = name(ctx, "db");
    ctx.aws
        .secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string(serde_json::to_string(secret)?)
        .send()
        .await
        .aws(format!("{why} in {name}"))?;
    Ok(())
}

/// How long a secret that goes with a kept snapshot stays recoverable.
pub const RECOVERY_DAYS: i64 = 30;

/// Delete the secret. With `keep_recoverable` (the database credentials when a final
/// snapshot is kept: the snapshot's master password is in it) it is scheduled for deletion
/// in [`RECOVERY_DAYS`] instead, restorable by `aws secretsmanager restore-secret` or by the
/// next `up` of the same stack.
pub async fn delete(ctx: &Ctx, role: &str, keep_recoverable: bool) -> anyhow::Result<Change> {
    let name = name(ctx, role);
    let Some(out) = describe(ctx, role).await? else {
        return Ok(Change::Absent);
    };
    if !ours(ctx, &out) {
        ctx.progress("secret", &name, "not tagged for this stack: left alone");
        return Ok(Change::Absent);
    }
    if out.deleted_date().is_some() {
        return Ok(Change::Absent);
    }
    if keep_recoverable && role == "db" {
        // The address goes with the database; a restored secret must not send a new
        // stack's instances to it.
        let mut secret = read_db(ctx).await?;
        if secret.host.take().is_some() {
            write_db(ctx, &secret, "forgetting the database address").await?;
        }
    }
    let req = ctx.aws.secrets.delete_secret().secret_id(&name);
    let req = if keep_recoverable {
        req.recovery_window_in_days(RECOVERY_DAYS)
    } else {
        req.force_delete_without_recovery(true)
    };
    req.send().await.aws(format!("deleting secret {name}"))?;
    if keep_recoverable {
        let note = format!(
            "scheduled for deletion in {RECOVERY_DAYS} days: it holds the final snapshot's password (restore it with `aws secretsmanager restore-secret --secret-id {name}`)"
        );
        ctx.progress("secret", &name, &note);
        return Ok(Change::Note(note));
    }
    ctx.progress("secret", &name, "deleted");
    Ok(Change::Delete)
}
