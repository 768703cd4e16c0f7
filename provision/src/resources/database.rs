//! RDS PostgreSQL in the private subnets: encrypted, not public, backups on. Its subnet
//! group lives here too. Deleting keeps a timestamped final snapshot unless told not to;
//! creating restores the newest of those when there is one (the data outlives `down`).

use crate::resources::scan::{found, Found};
use aws_sdk_rds::types::{DbInstance, DbSnapshot};

use crate::engine::context::{Ctx, PLANNED, STACK_TAG};
use crate::engine::errors::{already, code, explain, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{until_visible, wait_for};
use crate::engine::tags::rds_tags;
use crate::resources::{secrets, snapshots};

pub fn instance_id(ctx: &Ctx) -> String {
    ctx.name("db")
}

fn subnet_group_name(ctx: &Ctx) -> String {
    ctx.name("db-subnets")
}

pub fn tagged(ctx: &Ctx, tags: &[aws_sdk_rds::types::Tag]) -> bool {
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
            until_visible(
                &format!("updating DB subnet group {name}"),
                &["InvalidSubnet"],
                ctx.timing,
                || {
                    ctx.aws
                        .rds
                        .modify_db_subnet_group()
                        .db_subnet_group_name(&name)
                        .set_subnet_ids(Some(want.clone()))
                        .send()
                },
            )
            .await?;
        }
        return Ok(Change::Update("subnets".into()));
    }
    ctx.set(|o| o.db_subnet_group = Some(name.clone()));
    if ctx.planning() {
        return Ok(Change::Create);
    }
    // Subnets created moments ago may be unknown to RDS yet (InvalidSubnet). One that
    // exists already was made by this call, its answer lost.
    until_visible(
        &format!("creating DB subnet group {name}"),
        &["InvalidSubnet"],
        ctx.timing,
        || async {
            already(
                ctx.aws
                    .rds
                    .create_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .db_subnet_group_description(format!(
                        "gallery {}: private subnets",
                        ctx.stack()
                    ))
                    .set_subnet_ids(Some(subnets.clone()))
                    .set_tags(Some(rds_tags(ctx, "db-subnets")))
                    .send()
                    .await,
                &[
                    "DBSubnetGroupAlreadyExists",
                    "DBSubnetGroupAlreadyExistsFault",
                ],
            )
        },
    )
    .await?;
    ctx.progress("db-subnet-group", &name, "created");
    Ok(Change::Create)
}

pub async fn find(ctx: &Ctx) -> anyhow::Result<Option<DbInstance>> {
    find_id(ctx, &instance_id(ctx)).await
}

pub async fn find_id(ctx: &Ctx, id: &str) -> anyhow::Result<Option<DbInstance>> {
    match ctx
        .aws
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
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

/// The database `provision restore` makes beside the stack's, before the switch.
pub fn next_id(ctx: &Ctx) -> String {
    ctx.name("db-next")
}

/// What the stack's database is renamed to when a restore replaces it.
pub fn previous_prefix(ctx: &Ctx) -> String {
    ctx.name("db-prev-")
}

/// A restore's other databases of this stack: the one it is making (`-db-next`) and the
/// previous ones it kept (`-db-prev-<time>`), oldest first.
pub async fn others(ctx: &Ctx) -> anyhow::Result<Vec<DbInstance>> {
    let (next, prev) = (next_id(ctx), previous_prefix(ctx));
    let mut all = Vec::new();
    let mut marker = None;
    loop {
        let out = ctx
            .aws
            .rds
            .describe_db_instances()
            .set_marker(marker)
            .send()
            .await
            .aws("listing the databases")?;
        all.extend(
            out.db_instances()
                .iter()
                .filter(|d| {
                    d.db_instance_identifier()
                        .is_some_and(|i| i == next || i.starts_with(&prev))
                        && tagged(ctx, d.tag_list())
                })
                .cloned(),
        );
        marker = out.marker().map(String::from);
        if marker.is_none() {
            break;
        }
    }
    all.sort_by_key(|d| d.instance_create_time().map(|t| t.secs()));
    Ok(all)
}

/// What the running database is billed as, for the cost beside config.toml's.
fn running(db: &DbInstance) -> crate::cost::Database {
    crate::cost::Database {
        class: db.db_instance_class().unwrap_or_default().to_string(),
        storage_gb: u32::try_from(db.allocated_storage().unwrap_or(0)).unwrap_or(0),
        multi_az: db.multi_az().unwrap_or(false),
        storage_type: db.storage_type().map(String::from),
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
    // Unreadable now (e.g. scheduled for deletion, which `up` restores first): said below.
    let secret = secrets::read_db(ctx).await;
    if let (Ok(s), false) = (&secret, ctx.restoring) {
        if let Some(r) = &s.restoring {
            anyhow::bail!(
                "a restore from {} was interrupted and the gallery answers 503 until it is finished: run `provision restore {}` again; `up` will not touch the stack until then",
                r.source,
                if let Some(t) = r.source.strip_prefix("time ") {
                    format!("--to-time \"{t}\"")
                } else {
                    format!("--snapshot {}", r.source)
                }
            );
        }
    }
    let found = find(ctx).await?;
    let change = match &found {
        Some(db) => {
            if !tagged(ctx, db.tag_list()) {
                anyhow::bail!(
                    "database {id} exists but is not tagged for this stack: refusing to touch it"
                );
            }
            if let Some(wanted) = &ctx.from_snapshot {
                anyhow::bail!(
                    "--from-snapshot {wanted}: the stack has a database ({id}); a snapshot is restored only into a stack without one (after `provision down`)"
                );
            }
            ctx.set(|o| o.running.database = Some(running(db)));
            let mut d = drift(ctx, db);
            if let Some(from) = unfinished_restore(ctx, db).await? {
                d.push(format!(
                    "finish the restore from {from}: the secret's password, its sessions ended"
                ));
            }
            if d.is_empty() {
                Change::Unchanged
            } else if d.len() == 1 && d[0].starts_with("finish the restore") {
                Change::Update(d.remove(0))
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
        None => match restore_source(ctx).await? {
            Some(snapshot) if ctx.planning() => Change::Restore(describe_snapshot(&snapshot)),
            None if ctx.planning() => Change::Create,
            Some(snapshot) => {
                restore(ctx, &snapshot).await?;
                Change::Restore(describe_snapshot(&snapshot))
            }
            None => {
                create(ctx).await?;
                Change::Create
            }
        },
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
            match secret {
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
    let mut db = wait_available(ctx).await?;
    // A restore is finished when the secret names it: the app then ends the snapshot's
    // sessions, once. Re-checked here, so an `up` killed mid-restore is finished by the next.
    let finish = matches!(change, Change::Restore(_))
        || match &found {
            Some(found) => unfinished_restore(ctx, found).await?.is_some(),
            None => false,
        };
    let restored = if finish {
        db = after_restore(ctx).await?;
        Some(restore_marker(&db))
    } else {
        None
    };
    let endpoint = db
        .endpoint()
        .and_then(|e| e.address())
        .unwrap_or_default()
        .to_string();
    let port = db.endpoint().and_then(|e| e.port()).unwrap_or(5432) as u16;
    let updated = secrets::set_db_host(ctx, &endpoint, port, restored.as_deref()).await?;
    ctx.progress("database", &id, &format!("available at {endpoint}:{port}"));
    ctx.set(|o| o.db_endpoint = Some(endpoint));
    Ok(match change {
        Change::Unchanged if updated => {
            Change::Update("recorded the endpoint in the secret".into())
        }
        c => c,
    })
}

/// Tag on a database restored from a snapshot: which one.
pub const RESTORED_FROM_TAG: &str = "gallery:restored-from";

/// Names one restore: the snapshot and when the database made from it was created (a
/// snapshot can be restored twice, an instance is created once).
pub fn restore_marker(db: &DbInstance) -> String {
    let from = db
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(RESTORED_FROM_TAG))
        .and_then(|t| t.value())
        .unwrap_or("a snapshot");
    match db.instance_create_time() {
        Some(t) => format!("{from} into {}", t.secs()),
        None => from.to_string(),
    }
}

/// The snapshot this database was restored from, when the restore's follow-up (the
/// secret's password, recording the restore in the secret) has not been done yet.
async fn unfinished_restore(ctx: &Ctx, db: &DbInstance) -> anyhow::Result<Option<String>> {
    let Some(from) = db
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(RESTORED_FROM_TAG))
        .and_then(|t| t.value())
    else {
        return Ok(None);
    };
    // Unreadable (scheduled for deletion, which `up` restores first): unfinished.
    let recorded = secrets::read_db(ctx).await.ok().and_then(|s| s.restored);
    Ok((recorded.as_deref() != Some(restore_marker(db).as_str())).then(|| from.to_string()))
}

/// A new, empty database with the secret's credentials.
async fn create(ctx: &Ctx) -> anyhow::Result<()> {
    let id = instance_id(ctx);
    let want = ctx.config.database.clone();
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
        // There already: made by this call, its answer lost.
        .aws_unless(
            format!("creating database {id}"),
            &["DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"],
        )?;
    ctx.progress("database", &id, "creating");
    Ok(())
}

/// The snapshot `up` restores the database from: `up --from-snapshot`, or else the
/// newest this stack kept (a `down`'s final snapshot, or a `backup`).
async fn restore_source(ctx: &Ctx) -> anyhow::Result<Option<DbSnapshot>> {
    let all = snapshots::manual(ctx).await?;
    if let Some(wanted) = &ctx.from_snapshot {
        return match all
            .into_iter()
            .find(|s| s.db_snapshot_identifier() == Some(wanted.as_str()))
        {
            Some(s) => Ok(Some(s)),
            None => anyhow::bail!(
                "--from-snapshot {wanted}: no snapshot of this stack by that name (`provision backups` lists them)"
            ),
        };
    }
    // The newest, whatever its state: right after `down` its final snapshot may still be
    // `creating` (minutes on AWS), and an older one would bring back older data.
    // `restore` waits for it.
    Ok(all
        .into_iter()
        .find(|s| !matches!(s.status(), Some("deleting" | "failed"))))
}

fn describe_snapshot(s: &DbSnapshot) -> String {
    let name = s.db_snapshot_identifier().unwrap_or("?");
    match s.snapshot_create_time() {
        Some(t) => {
            let age = time::OffsetDateTime::now_utc().unix_timestamp() - t.secs();
            format!("snapshot {name} (taken {} ago)", age_text(age))
        }
        None => format!("snapshot {name}"),
    }
}

/// `95s`, `42m`, `5h`, `3d`: how long ago, at a glance.
fn age_text(secs: i64) -> String {
    match secs.max(0) {
        s @ 0..=119 => format!("{s}s"),
        s @ 120..=7199 => format!("{}m", s / 60),
        s @ 7200..=172_799 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The database as the snapshot holds it, in this stack's network. Its users, images and
/// settings are the snapshot's; its master password is set to the secret's afterwards.
async fn restore(ctx: &Ctx, snapshot: &DbSnapshot) -> anyhow::Result<()> {
    let id = instance_id(ctx);
    let want = ctx.config.database.clone();
    let name = snapshot.db_snapshot_identifier().unwrap_or_default();
    let sg = ctx.need("the database security group", |o| o.db_sg.clone())?;
    let group = ctx.need("the DB subnet group", |o| o.db_subnet_group.clone())?;
    if snapshot.status() != Some("available") {
        ctx.progress(
            "db-snapshot",
            name,
            &format!(
                "{}: waiting until available to restore from it",
                snapshot.status().unwrap_or("unknown")
            ),
        );
        wait_for(
            &format!("snapshot {name} to become available"),
            ctx.timing,
            ctx.timing.wait_timeout,
            || async {
                let now = snapshots::manual(ctx).await?;
                match now
                    .iter()
                    .find(|s| s.db_snapshot_identifier() == Some(name))
                    .and_then(|s| s.status())
                {
                    Some("available") => Ok(Some(())),
                    Some(s @ ("failed" | "deleting" | "error")) => anyhow::bail!(
                        "snapshot {name} is {s}: nothing to restore from it (`up --from-snapshot ID` picks another)"
                    ),
                    None => anyhow::bail!("snapshot {name} is gone"),
                    _ => Ok(None),
                }
            },
        )
        .await?;
    }
    // Instances booting now must not take the restored database for the old one (the
    // same endpoint name, the same password) before the restore is recorded with its
    // address: a `down` killed before it forgot the address left it in the secret.
    secrets::forget_db_host(ctx).await?;
    ctx.aws
        .rds
        .restore_db_instance_from_db_snapshot()
        .db_instance_identifier(&id)
        .db_snapshot_identifier(name)
        .db_instance_class(&want.instance_class)
        .db_subnet_group_name(&group)
        .vpc_security_group_ids(&sg)
        .publicly_accessible(false)
        .deletion_protection(want.deletion_protection)
        .copy_tags_to_snapshot(true)
        .set_tags(Some({
            let mut tags = rds_tags(ctx, "db");
            tags.push(
                aws_sdk_rds::types::Tag::builder()
                    .key(RESTORED_FROM_TAG)
                    .value(name)
                    .build(),
            );
            tags
        }))
        .send()
        .await
        // There already: made by this call, its answer lost.
        .aws_unless(
            format!("restoring database {id} from snapshot {name}"),
            &["DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"],
        )?;
    ctx.progress("database", &id, &format!("restoring from snapshot {name}"));
    Ok(())
}

/// A restored database has the snapshot's master password and settings: make the
/// password the secret's (the app reads it there) and the settings the config's.
pub async fn after_restore(ctx: &Ctx) -> anyhow::Result<DbInstance> {
    let id = instance_id(ctx);
    let want = ctx.config.database.clone();
    let secret = secrets::read_db(ctx).await?;
    let restored = wait_available(ctx).await?;
    let storage = restored.allocated_storage().unwrap_or(0);
    // A lost answer's retry finds the instance busy applying the first call: wait it out.
    crate::engine::retry::retry_while(
        &format!("setting the restored database {id}'s password and backups"),
        &["InvalidDBInstanceState", "InvalidDBInstanceStateFault"],
        ctx.timing,
        || async {
            ctx.aws
                .rds
                .modify_db_instance()
                .db_instance_identifier(&id)
                .master_user_password(&secret.password)
                .backup_retention_period(want.backup_retention_days)
                .deletion_protection(want.deletion_protection)
                .set_allocated_storage(
                    (storage < want.allocated_storage_gb).then_some(want.allocated_storage_gb),
                )
                .apply_immediately(true)
                .send()
                .await
        },
    )
    .await?;
    ctx.progress("database", &id, "restored; password set to the secret's");
    wait_available(ctx).await
}

pub async fn wait_available(ctx: &Ctx) -> anyhow::Result<DbInstance> {
    wait_available_id(ctx, &instance_id(ctx)).await
}

pub async fn wait_available_id(ctx: &Ctx, id: &str) -> anyhow::Result<DbInstance> {
    wait_for(
        &format!("database {id} to become available"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async {
            let db = find_id(ctx, id).await?;
            match db.as_ref().and_then(|d| d.db_instance_status()) {
                Some("available") => Ok(db),
                Some(
                    s @ ("failed"
                    | "incompatible-parameters"
                    | "incompatible-network"
                    | "incompatible-restore"
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
    /// Destroy the data too: no final snapshot, the kept snapshots, the bucket, the
    /// database's secret. Otherwise they are kept, for `up` to bring back.
    pub delete_data: bool,
}

pub async fn delete(ctx: &Ctx, how: Teardown) -> anyhow::Result<Change> {
    // A restore's other databases first: the previous one (kept by `restore --keep-old`,
    // or left by an interrupted restore) and one it was making.
    for other in others(ctx).await? {
        let id = other
            .db_instance_identifier()
            .unwrap_or_default()
            .to_string();
        // They may hold the only copy of what was written before a restore went back in
        // time: a final snapshot of each unless the data goes too.
        let keep = Teardown {
            skip_snapshot: how.skip_snapshot && how.delete_data,
            ..how
        };
        delete_instance(ctx, &id, keep).await?;
    }
    let change = delete_instance(ctx, &instance_id(ctx), how).await?;
    if !how.delete_data {
        // Housekeeping: a failure here must not stop `down` (the rest of the stack, the
        // secret forgetting the address) once the data is safe in its snapshot.
        let mut trouble = Vec::new();
        if let Err(e) = snapshots::mark_retained(ctx).await {
            trouble.push(format!("tagging the kept snapshot failed: {e:#}"));
        }
        if let Err(e) = snapshots::prune(ctx).await {
            trouble.push(format!("pruning old snapshots failed: {e:#}"));
        }
        if trouble.is_empty() {
            return Ok(change);
        }
        for t in &trouble {
            ctx.progress("db-snapshot", "", &format!("warning: {t}"));
        }
        return Ok(Change::Note(format!(
            "{} (warning: {})",
            change.describe(false),
            trouble.join("; ")
        )));
    }
    let removed = snapshots::delete_all(ctx).await?;
    Ok(match (change, removed) {
        (c, 0) => c,
        (Change::Absent, n) => Change::Note(format!("{n} snapshot(s) deleted")),
        (_, n) => Change::Note(format!("deleted, and its {n} snapshot(s)")),
    })
}

pub async fn delete_instance(ctx: &Ctx, id: &str, how: Teardown) -> anyhow::Result<Change> {
    let id = id.to_string();
    let main = instance_id(ctx);
    let Some(db) = find_id(ctx, &id).await? else {
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
            wait_available_id(ctx, &id).await?;
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
        let snapshot = if how.skip_snapshot || how.delete_data {
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
                    wait_available_id(ctx, &id).await?;
                }
            }
            // Timestamped, so a second teardown never hits DBSnapshotAlreadyExists. Named
            // after the stack's database whichever instance it is of, so the stack's
            // snapshots are one list; a restore's other databases say which they were.
            let stamp = time::OffsetDateTime::now_utc().format(
                time::macros::format_description!("[year][month][day]-[hour][minute][second]"),
            )?;
            Some(match id.strip_prefix(&format!("{main}-")) {
                Some(which) => format!("{main}-final-{stamp}-{which}"),
                None => format!("{main}-final-{stamp}"),
            })
        };
        crate::engine::retry::retry_while(
            &format!("deleting database {id}"),
            &["InvalidDBInstanceState", "InvalidDBInstanceStateFault"],
            ctx.timing,
            || async {
                let req = ctx.aws.rds.delete_db_instance().db_instance_identifier(&id);
                let result = match &snapshot {
                    Some(s) => req.final_db_snapshot_identifier(s),
                    None => req.skip_final_snapshot(true),
                }
                .send()
                .await;
                // Deleting or gone already: this call did it, its first answer lost.
                match result {
                    Err(e)
                        if crate::engine::errors::message(&e)
                            .is_some_and(|m| m.contains("already being deleted")) =>
                    {
                        Ok(None)
                    }
                    r => already(r, &["DBInstanceNotFound", "DBInstanceNotFoundFault"]),
                }
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
        || async { Ok(find_id(ctx, &id).await?.is_none().then_some(())) },
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
    crate::engine::retry::retry_while(
        &format!("deleting DB subnet group {name}"),
        &["InvalidDBSubnetGroupStateFault"],
        ctx.timing,
        || async {
            already(
                ctx.aws
                    .rds
                    .delete_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .send()
                    .await,
                &["DBSubnetGroupNotFoundFault"],
            )
        },
    )
    .await?;
    ctx.progress("db-subnet-group", &name, "deleted");
    Ok(Change::Delete)
}

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let mut all = Vec::new();
    if let Some(db) = find(ctx).await? {
        if db
            .tag_list()
            .iter()
            .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()))
        {
            all.push(found(
                "database",
                instance_id(ctx),
                db.db_instance_status().unwrap_or_default(),
            ));
        }
    }
    for other in others(ctx).await? {
        all.push(found(
            "database",
            other.db_instance_identifier().unwrap_or_default(),
            other.db_instance_status().unwrap_or_default(),
        ));
    }
    let subnet_group = ctx.name("db-subnets");
    match ctx
        .aws
        .rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(&subnet_group)
        .send()
        .await
    {
        Ok(groups) => {
            for g in groups.db_subnet_groups() {
                all.push(found(
                    "db-subnet-group",
                    g.db_subnet_group_name().unwrap_or_default(),
                    g.subnet_group_status().unwrap_or_default(),
                ));
            }
        }
        Err(e) if code(&e).as_deref() == Some("DBSubnetGroupNotFoundFault") => {}
        Err(e) => {
            return Err(explain(
                format!("scanning DB subnet group {subnet_group}"),
                e,
            ))
        }
    }
    Ok(all)
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
