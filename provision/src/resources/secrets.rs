//! Secrets Manager: the database credentials and the first admin's password. Generated
//! here, stored only there: never printed, never in user-data or logs.

use crate::resources::scan::{found, Found};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::engine::context::{Ctx, PLANNED, STACK_TAG};
use crate::engine::errors::{already, code, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::until_visible_if;
use crate::engine::tags::secret_tags;

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
    /// Names the restore that made the database (snapshot, and when), once `up` has
    /// finished it: the app ends the snapshot's sessions once per restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
    /// A `provision restore` under way (written before its 503 page goes up, cleared once
    /// the gallery serves again): what a re-run resumes, and what `up` refuses to cross.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restoring: Option<Restoring>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Restoring {
    /// `Source::label`: the snapshot, or `time ...`.
    pub source: String,
    /// The moment the data is restored to (Unix seconds).
    pub at: i64,
    /// When the restore began (Unix seconds): a database made from `source` after this
    /// is this restore's.
    pub started: i64,
    /// What the stack's database is renamed to (chosen once).
    pub previous: String,
}

/// Record (or clear, with `None`) the restore under way.
pub async fn set_restoring(ctx: &Ctx, restoring: Option<Restoring>) -> anyhow::Result<()> {
    let mut secret = read_db(ctx).await?;
    if secret.restoring == restoring {
        return Ok(());
    }
    secret.restoring = restoring;
    write_db(ctx, &secret, "recording the restore under way").await
}

#[derive(Serialize, Deserialize, Clone)]
pub struct AdminSecret {
    pub username: String,
    pub password: String,
}

pub fn name(ctx: &Ctx, role: &str) -> String {
    format!("{}/{role}", ctx.stack())
}

pub fn password() -> String {
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
        Err(e) => Err(crate::engine::errors::explain(
            format!("finding secret {name}"),
            e,
        )),
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
            // Billed (one scheduled for deletion is not): for the cost beside config.toml's.
            ctx.set(|o| o.running.secrets += 1);
            return Ok((arn, Change::Unchanged));
        }
        // Scheduled for deletion (a `down` that kept the database's final snapshot, or the
        // console's default): bring it back rather than fail on reading it later.
        if !ctx.planning() {
            match ctx
                .aws
                .secrets
                .restore_secret()
                .secret_id(&name)
                .send()
                .await
            {
                Ok(_) => {}
                // Restored already: by this call, its first answer lost.
                Err(e)
                    if crate::engine::errors::message(&e)
                        .is_some_and(|m| m.contains("not scheduled for deletion")) => {}
                Err(e) => {
                    return Err(crate::engine::errors::explain(
                        format!("restoring secret {name} (it was scheduled for deletion)"),
                        e,
                    ))
                }
            }
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
    let value = initial()?;
    // A name force-deleted moments ago (a `down` just before) stays taken for a while:
    // "scheduled for deletion". Retried, bounded.
    let created = until_visible_if(
        &format!("creating secret {name}"),
        ctx.timing,
        |code, msg| code == "InvalidRequestException" && msg.contains("scheduled for deletion"),
        || async {
            // Taken already: by this create, its answer lost (the SDK's retry finds the name).
            already(
                ctx.aws
                    .secrets
                    .create_secret()
                    .name(&name)
                    .description(format!("gallery stack {}: {role} credentials", ctx.stack()))
                    .secret_string(&value)
                    .set_tags(Some(secret_tags(ctx, role)))
                    .send()
                    .await,
                &["ResourceExistsException"],
            )
        },
    )
    .await?;
    let arn = match created {
        Some(out) => out.arn().unwrap_or_default().to_string(),
        None => match describe(ctx, role).await? {
            Some(out) if ours(ctx, &out) => out.arn().unwrap_or_default().to_string(),
            _ => anyhow::bail!(
                "creating secret {name}: the name is taken by a secret not tagged {STACK_TAG}={}",
                ctx.stack()
            ),
        },
    };
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
            restored: None,
            restoring: None,
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
pub async fn set_db_host(
    ctx: &Ctx,
    host: &str,
    port: u16,
    restored: Option<&str>,
) -> anyhow::Result<bool> {
    let mut secret = read_db(ctx).await?;
    let restored_recorded = restored.is_none() || secret.restored.as_deref() == restored;
    if secret.host.as_deref() == Some(host) && secret.port == port && restored_recorded {
        return Ok(false);
    }
    secret.host = Some(host.to_string());
    secret.port = port;
    if let Some(r) = restored {
        secret.restored = Some(r.to_string());
    }
    write_db(ctx, &secret, "recording the database address").await?;
    Ok(true)
}

/// The database's address forgotten (`down`, and `up` before it restores a snapshot):
/// the app waits until the next address is written together with the restore it names.
pub async fn forget_db_host(ctx: &Ctx) -> anyhow::Result<()> {
    let mut secret = read_db(ctx).await?;
    if secret.host.take().is_some() {
        write_db(ctx, &secret, "forgetting the database address").await?;
    }
    Ok(())
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
/// `down` keeping the data: the secrets stay, since they hold the passwords of the kept
/// database (its master user's, and the admin's first one); only the database's address,
/// which goes with the database, is forgotten.
pub async fn keep(ctx: &Ctx, role: &str) -> anyhow::Result<Change> {
    let Some(out) = describe(ctx, role).await? else {
        return Ok(Change::Absent);
    };
    if !ours(ctx, &out) || out.deleted_date().is_some() {
        return Ok(Change::Absent);
    }
    if role == "db" {
        forget_db_host(ctx).await?;
    }
    Ok(Change::Note(
        "kept: it holds a password of the kept database".into(),
    ))
}

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
    // Gone or scheduled already: by this call, its first answer lost. (Other
    // InvalidRequestExceptions, a secret RDS manages or one with replicas, are failures.)
    match req.send().await {
        Ok(_) => {}
        Err(e)
            if crate::engine::errors::code(&e).as_deref() == Some("ResourceNotFoundException") => {}
        Err(e)
            if crate::engine::errors::code(&e).as_deref() == Some("InvalidRequestException")
                && crate::engine::errors::message(&e).is_some_and(|m| {
                    m.contains("scheduled for deletion") || m.contains("marked for deletion")
                }) => {}
        Err(e) => {
            return Err(crate::engine::errors::explain(
                format!("deleting secret {name}"),
                e,
            ))
        }
    }
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

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = ctx
            .aws
            .secrets
            .list_secrets()
            .filters(
                aws_sdk_secretsmanager::types::Filter::builder()
                    .key(aws_sdk_secretsmanager::types::FilterNameStringType::TagValue)
                    .values(ctx.stack())
                    .build(),
            )
            .set_next_token(token)
            .send()
            .await
            .aws("scanning secrets")?;
        for s in page.secret_list() {
            let ours = s
                .tags()
                .iter()
                .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()));
            if !ours {
                continue;
            }
            // ListSecrets lags deletes by minutes: ask for the secret by name.
            let name = s.name().unwrap_or_default();
            let live = match ctx
                .aws
                .secrets
                .describe_secret()
                .secret_id(name)
                .send()
                .await
            {
                Ok(d) => d.deleted_date().is_none(),
                Err(e) if code(&e).as_deref() == Some("ResourceNotFoundException") => false,
                Err(e) => {
                    return Err(crate::engine::errors::explain(
                        format!("checking secret {name}"),
                        e,
                    ))
                }
            };
            if live {
                all.push(found("secret", name, "present"));
            }
        }
        token = page
            .next_token()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if token.is_none() {
            break;
        }
    }
    Ok(all)
}
