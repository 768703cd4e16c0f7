//! RDS PostgreSQL in the private subnets: encrypted, not public, backups on. Its subnet
//! group lives here too. Deleting keeps a timestamped final snapshot unless told not to.

use aws_sdk_rds::types::DbInstance;

use crate::aws::{code, explain, wait_for, AwsResult};
use crate::context::{Ctx, PLANNED, STACK_TAG};
use crate::graph::Change;
use crate::secrets;
use crate::tags::rds_tags;

pub fn instance_id(ctx: &Ctx) -> String {
    ctx.name("db")
}

fn subnet_group_name(ctx: &Ctx) -> String {
    ctx.name("db-subnets")
}

fn tagged(ctx: &Ctx, tags: &[aws_sdk_rds::types::Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()))
}

async fn subnet_group(ctx: &Ctx) -> anyhow::Result<Option<aws_sdk_rds::types::DbSubnetGroup>> {
    let name = subnet_group_name(ctx);
    match ctx
        .aws
        .rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(&name)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_subnet_groups().first().cloned()),
        Err(e) if code(&e).as_deref() == Some("DBSubnetGroupNotFoundFault") => Ok(None),
        Err(e) => Err(explain(format!("finding DB subnet group {name}"), e)),
    }
}

async fn subnet_group_is_ours(ctx: &Ctx, arn: &str) -> anyhow::Result<bool> {
    let tags = ctx
        .aws
        .rds
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .aws(format!("reading tags of {arn}"))?;
    Ok(tagged(ctx, tags.tag_list()))
}

pub async fn ensure_subnet_group(ctx: &Ctx) -> anyhow::Result<Change> {
    let name = subnet_group_name(ctx);
    let subnets = ctx.out().private_subnets;
    if let Some(g) = subnet_group(ctx).await? {
        if !subnet_group_is_ours(ctx, g.db_subnet_group_arn().unwrap_or_default()).await? {
            anyhow::bail!("DB subnet group {name} exists but is not tagged for this stack: refusing to use it");
        }
        ctx.set(|o| o.db_subnet_group = Some(name.clone()));
        let mut have: Vec<String> = g
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(String::from))
            .collect();
        let mut want = subnets.clone();
        have.sort();
        want.sort();
        if have == want || want.iter().any(|s| s == PLANNED) {
            return Ok(Change::Unchanged);
        }
        if !ctx.planning() {
            ctx.aws
                .rds
                .modify_db_subnet_group()
                .db_subnet_group_name(&name)
                .set_subnet_ids(Some(want))
                .send()
                .await
                .aws(format!("updating DB subnet group {name}"))?;
        }
        return Ok(Change::Update("subnets".into()));
    }
    ctx.set(|o| o.db_subnet_group = Some(name.clone()));
    if ctx.planning() {
        return Ok(Change::Create);
    }
    ctx.aws
        .rds
        .create_db_subnet_group()
        .db_subnet_group_name(&name)
        .db_subnet_group_description(format!("gallery {}: private subnets", ctx.stack()))
        .set_subnet_ids(Some(subnets))
        .set_tags(Some(rds_tags(ctx, "db-subnets")))
        .send()
        .await
        .aws(format!("creating DB subnet group {name}"))?;
    ctx.progress("db-subnet-group", &name, "created");
    Ok(Change::Create)
}

pub async fn find(ctx: &Ctx) -> anyhow::Result<Option<DbInstance>> {
    let id = instance_id(ctx);
    match ctx
        .aws
        .rds
        .describe_db_instances()
        .db_instance_identifier(&id)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_instances().first().cloned()),
        Err(e)
            if code(&e).as_deref() == Some("DBInstanceNotFound")
                || code(&e).as_deref() == Some("DBInstanceNotFoundFault") =>
        {
            Ok(None)
        }
        Err(e) => Err(explain(format!("finding database {id}"), e)),
    }
}

/// Settings that `up` converges on a running database.
fn drift(ctx: &Ctx, db: &DbInstance) -> Vec<String> {
    let want = &ctx.config.database;
    let mut d = Vec::new();
    if db.db_instance_class() != Some(want.instance_class.as_str()) {
        d.push(format!(
            "instance class {} -> {}",
            db.db_instance_class().unwrap_or("?"),
            want.instance_class
        ));
    }
    if db.allocated_storage().unwrap_or(0) < want.allocated_storage_gb {
        d.push(format!(
            "storage {} -> {} GB",
            db.allocated_storage().unwrap_or(0),
            want.allocated_storage_gb
        ));
    }
    if db.backup_retention_period() != Some(want.backup_retention_days) {
        d.push(format!(
            "backups {} -> {} days",
            db.backup_retention_period().unwrap_or(0),
            want.backup_retention_days
        ));
    }
    if db.deletion_protection() != Some(want.deletion_protection) {
        d.push(format!(
            "deletion protection -> {}",
            want.deletion_protection
        ));
    }
    if !engine_matches(
        db.engine_version().unwrap_or_default(),
        &want.engine_version,
    ) {
        d.push(format!(
            "engine version {} -> {}",
            db.engine_version().unwrap_or("?"),
            want.engine_version
        ));
    }
    d
}

/// `16` in config.toml is satisfied by any 16.x RDS reports; `16.4` by 16.4 or a later
/// 16.x, since RDS applies minor upgrades on its own and never goes back down.
fn engine_matches(have: &str, want: &str) -> bool {
    fn parts(v: &str) -> Vec<u64> {
        v.split('.').map_while(|p| p.parse().ok()).collect()
    }
    let (have, want) = (parts(have), parts(want));
    match (have.split_first(), want.split_first()) {
        (Some((hm, hrest)), Some((wm, wrest))) => hm == wm && hrest >= wrest,
        _ => false,
    }
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let id = instance_id(ctx);
    let want = ctx.config.database.clone();
    let found = find(ctx).await?;
    let change = match &found {
        Some(db) => {
            if !tagged(ctx, db.tag_list()) {
                anyhow::bail!(
                    "database {id} exists but is not tagged for this stack: refusing to touch it"
                );
            }
            let d = drift(ctx, db);
            if d.is_empty() {
                Change::Unchanged
            } else {
                if !ctx.planning() {
                    wait_available(ctx).await?;
                    ctx.aws
                        .rds
                        .modify_db_instance()
                        .db_instance_identifier(&id)
                        .db_instance_class(&want.instance_class)
                        .allocated_storage(
                            want.allocated_storage_gb
                                .max(db.allocated_storage().unwrap_or(0)),
                        )
                        .backup_retention_period(want.backup_retention_days)
                        .deletion_protection(want.deletion_protection)
                        .set_engine_version(
                            (!engine_matches(
                                db.engine_version().unwrap_or_default(),
                                &want.engine_version,
                            ))
                            .then(|| want.engine_version.clone()),
                        )
                        // Only ever reached by changing database.engine_version on purpose.
                        .allow_major_version_upgrade(true)
                        .apply_immediately(true)
                        .send()
                        .await
                        .aws(format!("modifying database {id}"))?;
                    ctx.progress("database", &id, "modifying");
                }
                Change::Update(d.join("; "))
            }
        }
        None if ctx.planning() => Change::Create,
        None => {
            let secret = secrets::read_db(ctx).await?;
            let sg = ctx.need("the database security group", |o| o.db_sg.clone())?;
            let group = ctx.need("the DB subnet group", |o| o.db_subnet_group.clone())?;
            ctx.aws
                .rds
                .create_db_instance()
                .db_instance_identifier(&id)
                .engine("postgres")
                .engine_version(&want.engine_version)
                .db_instance_class(&want.instance_class)
                .allocated_storage(want.allocated_storage_gb)
                .master_username(&secret.username)
                .master_user_password(&secret.password)
                .db_name(&secret.dbname)
                .db_subnet_group_name(&group)
                .vpc_security_group_ids(&sg)
                .storage_encrypted(true)
                .publicly_accessible(false)
                .backup_retention_period(want.backup_retention_days)
                .deletion_protection(want.deletion_protection)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(rds_tags(ctx, "db")))
                .send()
                .await
                .aws(format!("creating database {id}"))?;
            ctx.progress("database", &id, "creating");
            Change::Create
        }
    };
    if ctx.planning() {
        // The endpoint must be in the secret (the app waits for it): a run that died
        // before recording it left work to do even though the database is as configured.
        if let (Change::Unchanged, Some(db)) = (&change, &found) {
            let endpoint = db.endpoint().and_then(|e| e.address());
            let secret_planned = ctx.out().db_secret_arn.as_deref() == Some(PLANNED);
            if endpoint.is_none() || secret_planned {
                return Ok(Change::Update(
                    "record the endpoint in the secret (once available)".into(),
                ));
            }
            // Unreadable now (e.g. scheduled for deletion, which `up` restores first):
            // `up` has the endpoint to record, and says so if the secret still fails.
            match secrets::read_db(ctx).await {
                Ok(s) if s.host.as_deref() == endpoint => {}
                Ok(_) => return Ok(Change::Update("record the endpoint in the secret".into())),
                Err(e) => {
                    return Ok(Change::Update(format!(
                        "record the endpoint in the secret (unreadable now: {e:#})"
                    )))
                }
            }
        }
        return Ok(change);
    }
    let db = wait_available(ctx).await?;
    let endpoint = db
        .endpoint()
        .and_then(|e| e.address())
        .unwrap_or_default()
        .to_string();
    let port = db.endpoint().and_then(|e| e.port()).unwrap_or(5432) as u16;
    let updated = secrets::set_db_host(ctx, &endpoint, port).await?;
    ctx.progress("database", &id, &format!("available at {endpoint}:{port}"));
    ctx.set(|o| o.db_endpoint = Some(endpoint));
    Ok(match change {
        Change::Unchanged if updated => {
            Change::Update("recorded the endpoint in the secret".into())
        }
        c => c,
    })
}

async fn wait_available(ctx: &Ctx) -> anyhow::Result<DbInstance> {
    let id = instance_id(ctx);
    wait_for(
        &format!("database {id} to become available"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async {
            let db = find(ctx).await?;
            match db.as_ref().and_then(|d| d.db_instance_status()) {
                Some("available") => Ok(db),
                Some(
                    s @ ("failed"
                    | "incompatible-parameters"
                    | "incompatible-network"
                    | "storage-full"),
                ) => {
                    anyhow::bail!("database {id} is {s}")
                }
                _ => Ok(None),
            }
        },
    )
    .await
}

/// How `down` treats the data in the database.
#[derive(Debug, Clone, Copy)]
pub struct Teardown {
    /// Turn deletion protection off if it is on.
    pub force: bool,
    /// Delete without the final snapshot.
    pub skip_snapshot: bool,
}

pub async fn delete(ctx: &Ctx, how: Teardown) -> anyhow::Result<Change> {
    let id = instance_id(ctx);
    let Some(db) = find(ctx).await? else {
        return Ok(Change::Absent);
    };
    if !tagged(ctx, db.tag_list()) {
        ctx.progress("database", &id, "not tagged for this stack: left alone");
        return Ok(Change::Absent);
    }
    let mut note = None;
    if db.db_instance_status() != Some("deleting") {
        if db.deletion_protection() == Some(true) {
            if !how.force {
                anyhow::bail!(
                    "database {id} has deletion protection on (database.deletion_protection). \
                     Run `provision down --force` to turn it off and delete it (a final snapshot is still kept)"
                );
            }
            wait_available(ctx).await?;
            ctx.aws
                .rds
                .modify_db_instance()
                .db_instance_identifier(&id)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                .aws(format!("turning off deletion protection of {id}"))?;
        }
        let snapshot = if how.skip_snapshot {
            None
        } else {
            // RDS refuses a final snapshot of a database still creating (an `up`
            // interrupted early) or modifying: wait those out. A stopped one can be
            // snapshotted as it is; a failed one never can.
            match db.db_instance_status().unwrap_or("unknown") {
                "available" | "stopped" => {}
                s @ ("failed"
                | "incompatible-parameters"
                | "incompatible-network"
                | "incompatible-restore"
                | "storage-full") => {
                    anyhow::bail!(
                        "database {id} is {s}, so RDS cannot take its final snapshot: \
                         run `provision down --skip-final-snapshot` to delete it without one"
                    )
                }
                s => {
                    ctx.progress(
                        "database",
                        &id,
                        &format!("{s}: waiting until available for the final snapshot"),
                    );
                    wait_available(ctx).await?;
                }
            }
            // Timestamped, so a second teardown never hits DBSnapshotAlreadyExists.
            let stamp = time::OffsetDateTime::now_utc().format(
                time::macros::format_description!("[year][month][day]-[hour][minute][second]"),
            )?;
            Some(format!("{id}-final-{stamp}"))
        };
        crate::aws::retry_while(
            &format!("deleting database {id}"),
            &["InvalidDBInstanceState", "InvalidDBInstanceStateFault"],
            ctx.timing,
            || {
                let req = ctx.aws.rds.delete_db_instance().db_instance_identifier(&id);
                match &snapshot {
                    Some(s) => req.final_db_snapshot_identifier(s),
                    None => req.skip_final_snapshot(true),
                }
                .send()
            },
        )
        .await?;
        note = snapshot;
        ctx.progress("database", &id, "deleting");
    }
    wait_for(
        &format!("database {id} to be deleted"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async { Ok(find(ctx).await?.is_none().then_some(())) },
    )
    .await?;
    ctx.progress("database", &id, "deleted");
    Ok(match note {
        Some(s) => Change::Note(format!("deleted; final snapshot kept: {s}")),
        None => Change::Delete,
    })
}

pub async fn delete_subnet_group(ctx: &Ctx) -> anyhow::Result<Change> {
    let name = subnet_group_name(ctx);
    let Some(g) = subnet_group(ctx).await? else {
        return Ok(Change::Absent);
    };
    if !subnet_group_is_ours(ctx, g.db_subnet_group_arn().unwrap_or_default()).await? {
        return Ok(Change::Absent);
    }
    crate::aws::retry_while(
        &format!("deleting DB subnet group {name}"),
        &["InvalidDBSubnetGroupStateFault"],
        ctx.timing,
        || {
            ctx.aws
                .rds
                .delete_db_subnet_group()
                .db_subnet_group_name(&name)
                .send()
        },
    )
    .await?;
    ctx.progress("db-subnet-group", &name, "deleted");
    Ok(Change::Delete)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_version_is_satisfied_by_its_minor_versions_and_upgrades() {
        assert!(super::engine_matches("16.4", "16"));
        assert!(super::engine_matches("16", "16"));
        assert!(super::engine_matches("16.4", "16.4"));
        assert!(!super::engine_matches("15.7", "16"));
        assert!(
            super::engine_matches("16.4", "16.3"),
            "RDS upgraded the minor"
        );
        assert!(!super::engine_matches("16.2", "16.3"));
        assert!(super::engine_matches("16.10", "16.9"));
        assert!(!super::engine_matches("160.1", "16"));
    }
}
