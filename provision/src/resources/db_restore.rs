//! `provision restore`'s side of the database: a new instance beside the stack's, made
//! from a snapshot or from the point-in-time logs (`<stack>-db-next`), then the switch by
//! renames (the stack's becomes `<stack>-db-prev-<time>`, the new one `<stack>-db`, so the
//! endpoint in the secret stays the same name), and the previous one's removal with a
//! final snapshot. Every step finds its work done when repeated: a restore killed at any
//! point is finished by running it again (`commands/restore.rs` keeps its record).

use aws_sdk_rds::types::DbInstance;

use crate::engine::context::Ctx;
use crate::engine::errors::AwsResult;
use crate::engine::retry::{retry_while, wait_for};
use crate::engine::tags::rds_tags;
use crate::resources::database::{
    self, find_id, instance_id, next_id, wait_available_id, RESTORED_FROM_TAG,
};

/// What the database is restored to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One of the stack's snapshots, by name.
    Snapshot(String),
    /// A second within the backup retention (Unix seconds).
    Time(i64),
}

impl Source {
    /// Recorded on the new instance (`gallery:restored-from`), and in the secret.
    pub fn label(&self) -> String {
        match self {
            Source::Snapshot(name) => name.clone(),
            Source::Time(t) => format!("time {}", crate::commands::backup::when(*t)),
        }
    }
}

fn restored_from(db: &DbInstance) -> Option<&str> {
    db.tag_list()
        .iter()
        .find(|t| t.key() == Some(RESTORED_FROM_TAG))
        .and_then(|t| t.value())
}

/// The new database, made once: `<stack>-db-next` from `source`, in the stack's network,
/// waited for until available. One left by an earlier restore from the same source is
/// taken as it is; one from another source is refused.
pub async fn make_next(ctx: &Ctx, source: &Source) -> anyhow::Result<DbInstance> {
    let next = next_id(ctx);
    let label = source.label();
    if let Some(db) = find_id(ctx, &next).await? {
        if !database::tagged(ctx, db.tag_list()) {
            anyhow::bail!(
                "database {next} exists but is not tagged for this stack: refusing to use it"
            );
        }
        match restored_from(&db) {
            Some(from) if from == label => {}
            other => anyhow::bail!(
                "database {next} is left from a restore from {}: run that restore again to finish it, or delete {next}",
                other.unwrap_or("an unknown source")
            ),
        }
        ctx.progress("database", &next, "found (an earlier run made it)");
        return wait_available_id(ctx, &next).await;
    }
    let main = instance_id(ctx);
    let want = ctx.config.database.clone();
    let sg = ctx.need("the database security group", |o| o.db_sg.clone())?;
    let group = ctx.need("the DB subnet group", |o| o.db_subnet_group.clone())?;
    let mut tags = rds_tags(ctx, "db");
    tags.push(
        aws_sdk_rds::types::Tag::builder()
            .key(RESTORED_FROM_TAG)
            .value(&label)
            .build(),
    );
    // There already: made by this call, its answer lost.
    let what = format!("restoring database {next} from {label}");
    let exists = &["DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"];
    match source {
        Source::Snapshot(name) => ctx
            .aws
            .rds
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(&next)
            .db_snapshot_identifier(name)
            .db_instance_class(&want.instance_class)
            .db_subnet_group_name(&group)
            .vpc_security_group_ids(&sg)
            .publicly_accessible(false)
            .deletion_protection(false)
            .copy_tags_to_snapshot(true)
            .set_tags(Some(tags))
            .send()
            .await
            .aws_unless(what, exists)?
            .map(|_| ()),
        Source::Time(t) => ctx
            .aws
            .rds
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(&main)
            .target_db_instance_identifier(&next)
            .restore_time(aws_sdk_rds::primitives::DateTime::from_secs(*t))
            .db_instance_class(&want.instance_class)
            .db_subnet_group_name(&group)
            .vpc_security_group_ids(&sg)
            .publicly_accessible(false)
            .deletion_protection(false)
            .copy_tags_to_snapshot(true)
            .set_tags(Some(tags))
            .send()
            .await
            .aws_unless(what, exists)?
            .map(|_| ()),
    };
    ctx.progress("database", &next, &format!("restoring from {label}"));
    wait_available_id(ctx, &next).await
}

/// Rename `from` to `to` and wait until `to` is available. Done already (`from` gone,
/// `to` there: an earlier run, or this call with its answer lost) is success.
async fn rename(ctx: &Ctx, from: &str, to: &str) -> anyhow::Result<()> {
    if find_id(ctx, from).await?.is_some() {
        wait_available_id(ctx, from).await?;
        let result = retry_while(
            &format!("renaming database {from} to {to}"),
            &["InvalidDBInstanceState", "InvalidDBInstanceStateFault"],
            ctx.timing,
            || async {
                ctx.aws
                    .rds
                    .modify_db_instance()
                    .db_instance_identifier(from)
                    .new_db_instance_identifier(to)
                    .apply_immediately(true)
                    .send()
                    .await
            },
        )
        .await;
        if let Err(e) = result {
            // Renamed by the first try, its answer lost: `from` is no more, and `to`
            // appears once RDS has applied it.
            if find_id(ctx, from).await?.is_some() {
                return Err(e);
            }
        }
        ctx.progress("database", from, &format!("renamed to {to}"));
    }
    // RDS reboots a renamed instance; the old name may answer a moment longer.
    wait_for(
        &format!("database {to} to answer by its new name"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async { Ok(find_id(ctx, from).await?.is_none().then_some(())) },
    )
    .await?;
    wait_for(
        &format!("database {to} to be listed by its new name"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async { Ok(find_id(ctx, to).await?.map(|_| ())) },
    )
    .await?;
    wait_available_id(ctx, to).await?;
    Ok(())
}

/// Whether the stack's database is this restore's already (a re-run after the switch):
/// made from its source since it began.
pub async fn switched(
    ctx: &Ctx,
    record: &crate::resources::secrets::Restoring,
) -> anyhow::Result<bool> {
    Ok(find_id(ctx, &instance_id(ctx)).await?.is_some_and(|db| {
        restored_from(&db) == Some(record.source.as_str())
            && db
                .instance_create_time()
                .is_some_and(|t| t.secs() >= record.started - 5)
    }))
}

/// The switch: the stack's database steps aside as `previous` and the new one takes its
/// name (and so its endpoint). The previous one's master password is then changed to a
/// random one nobody keeps: an instance resolving the endpoint from a stale DNS cache
/// cannot log in to it (and write where no one will read). With no `-next` there is
/// nothing to switch.
pub async fn switch(ctx: &Ctx, previous: &str) -> anyhow::Result<()> {
    let (main, next) = (instance_id(ctx), next_id(ctx));
    if find_id(ctx, &next).await?.is_none() {
        return Ok(());
    }
    if find_id(ctx, &main).await?.is_some() {
        rename(ctx, &main, previous).await?;
    }
    if find_id(ctx, previous).await?.is_some() {
        wait_available_id(ctx, previous).await?;
        let locked = crate::resources::secrets::password();
        retry_while(
            &format!("locking the previous database {previous} out"),
            &["InvalidDBInstanceState", "InvalidDBInstanceStateFault"],
            ctx.timing,
            || async {
                ctx.aws
                    .rds
                    .modify_db_instance()
                    .db_instance_identifier(previous)
                    .master_user_password(&locked)
                    .apply_immediately(true)
                    .send()
                    .await
            },
        )
        .await?;
        ctx.progress(
            "database",
            previous,
            "its password changed: nothing reaches it by the old name",
        );
    }
    rename(ctx, &next, &main).await?;
    Ok(())
}

/// The previous database goes, leaving a final snapshot (`<stack>-db-final-<time>-prev-...`).
pub async fn remove_previous(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    database::delete_instance(
        ctx,
        id,
        database::Teardown {
            force: true,
            skip_snapshot: false,
            delete_data: false,
        },
    )
    .await?;
    Ok(())
}

/// The window a point in time can be restored from: the running database's creation (or
/// the start of its retention) to its latest restorable time.
pub async fn window(ctx: &Ctx) -> anyhow::Result<(i64, i64)> {
    let main = instance_id(ctx);
    let Some(db) = find_id(ctx, &main).await? else {
        anyhow::bail!("stack {} has no database ({main}) to restore to a point in time; `provision up --from-snapshot ID` restores a snapshot into a stack without one", ctx.stack());
    };
    let Some(latest) = db.latest_restorable_time().map(|t| t.secs()) else {
        anyhow::bail!(
            "database {main} has no point-in-time backup yet (RDS makes the first within minutes of creating it): try again later, or `--snapshot ID`"
        );
    };
    let retention = i64::from(db.backup_retention_period().unwrap_or(0)) * 86_400;
    let created = db
        .instance_create_time()
        .map(|t| t.secs())
        .unwrap_or(latest);
    Ok((created.max(latest - retention), latest))
}
