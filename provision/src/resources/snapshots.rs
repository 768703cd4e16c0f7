//! The database's snapshots: `down`'s final ones (the data kept for `up`), `backup`'s
//! on-demand ones, and RDS's automated daily ones. Manual snapshots are this stack's by
//! name (`<stack>-db-final-<stamp>`, `<stack>-db-backup-<stamp>`), since they outlive the
//! instance their tags were copied from. RDS has no lifecycle rule for manual snapshots,
//! so `backup` and `down` prune those older than `database.snapshot_retention_days`
//! themselves, never the newest (the one `up` restores).

use aws_sdk_rds::types::DbSnapshot;
use serde::Serialize;

use crate::engine::context::{Ctx, RETAINED_TAG, STACK_TAG};
use crate::engine::errors::{already, explain, AwsResult};
use crate::engine::retry::wait_for;
use crate::engine::tags::rds_tags;
use crate::resources::database::{self, instance_id};
use crate::resources::scan::{found, Found};

/// What made a snapshot, read from its type and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// RDS's daily snapshot, pruned by RDS after `database.backup_retention_days`.
    Automated,
    /// `provision backup`.
    Backup,
    /// `provision down`'s final snapshot.
    Final,
    /// Made by hand (named like the stack's): listed, never pruned.
    Manual,
}

impl Kind {
    fn of(ctx: &Ctx, s: &DbSnapshot) -> Kind {
        let name = s.db_snapshot_identifier().unwrap_or_default();
        let id = instance_id(ctx);
        if s.snapshot_type() == Some("automated") {
            Kind::Automated
        } else if name.starts_with(&format!("{id}-final-")) {
            Kind::Final
        } else if name.starts_with(&format!("{id}-backup-")) {
            Kind::Backup
        } else {
            Kind::Manual
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Automated => "automated",
            Kind::Backup => "backup",
            Kind::Final => "final",
            Kind::Manual => "manual",
        }
    }
}

/// One snapshot as `provision backups` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: String,
    pub kind: Kind,
    /// Unix seconds; none while RDS has not stamped it yet.
    pub taken: Option<i64>,
    pub status: String,
    /// The allocated storage of the database it was taken of (RDS bills the blocks held,
    /// which is at most this).
    pub size_gb: i32,
    pub retained: bool,
}

fn listed(ctx: &Ctx, s: &DbSnapshot) -> Listed {
    Listed {
        id: s.db_snapshot_identifier().unwrap_or_default().to_string(),
        kind: Kind::of(ctx, s),
        taken: s.snapshot_create_time().map(|t| t.secs()),
        status: s.status().unwrap_or_default().to_string(),
        size_gb: s.allocated_storage().unwrap_or(0),
        retained: s.tag_list().iter().any(|t| t.key() == Some(RETAINED_TAG)),
    }
}

/// Snapshots of `kind`: of the stack's database (automated ones go with it), or with
/// `of_instance` false every one of the account's (manual ones outlive their instance,
/// and a restore's previous database has another name).
async fn of_type(ctx: &Ctx, kind: &str, of_instance: bool) -> anyhow::Result<Vec<DbSnapshot>> {
    let id = instance_id(ctx);
    let mut all = Vec::new();
    let mut marker = None;
    loop {
        let out = ctx
            .aws
            .rds
            .describe_db_snapshots()
            .set_db_instance_identifier(of_instance.then(|| id.clone()))
            .snapshot_type(kind)
            .set_marker(marker)
            .send()
            .await
            .aws(format!("listing the {kind} snapshots of {id}"))?;
        all.extend(out.db_snapshots().iter().cloned());
        marker = out.marker().map(String::from);
        if marker.is_none() {
            break;
        }
    }
    // Newest first; within one second a `down`'s final snapshot is the later one (RDS
    // stamps to the second, and a `backup` may come just before a `down`).
    all.sort_by_key(|s| {
        std::cmp::Reverse((
            s.snapshot_create_time().map(|t| t.secs()),
            s.db_snapshot_identifier()
                .is_some_and(|n| n.contains("-final-")),
        ))
    });
    Ok(all)
}

/// The stack's manual snapshots (a `down`'s final ones, `backup`'s), newest first: named
/// after its database and tagged for it (a name alone could be another stack's, or a
/// database `down` leaves alone).
pub async fn manual(ctx: &Ctx) -> anyhow::Result<Vec<DbSnapshot>> {
    let prefix = format!("{}-", instance_id(ctx));
    Ok(of_type(ctx, "manual", false)
        .await?
        .into_iter()
        .filter(|s| {
            s.db_snapshot_identifier()
                .is_some_and(|n| n.starts_with(&prefix))
                && s.tag_list()
                    .iter()
                    .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()))
        })
        .collect())
}

/// Every snapshot of the stack's database, automated ones included, newest first.
pub async fn list(ctx: &Ctx) -> anyhow::Result<Vec<Listed>> {
    let (manual, automated) = futures::try_join!(manual(ctx), of_type(ctx, "automated", true))?;
    let mut all: Vec<Listed> = manual
        .iter()
        .chain(automated.iter())
        .map(|s| listed(ctx, s))
        .collect();
    all.sort_by_key(|s| std::cmp::Reverse((s.taken, s.kind == Kind::Final)));
    Ok(all)
}

/// `provision backup`: a manual snapshot of the running database, now. Returns its name
/// once RDS has it (`wait`: once it is available).
pub async fn backup(ctx: &Ctx, wait: bool) -> anyhow::Result<Listed> {
    let id = instance_id(ctx);
    let Some(db) = database::find(ctx).await? else {
        anyhow::bail!(
            "stack {} has no database ({id}) to back up; `provision backups` lists the snapshots kept",
            ctx.stack()
        );
    };
    match db.db_instance_status().unwrap_or("unknown") {
        // RDS snapshots a stopped instance as it is.
        "available" | "stopped" => {}
        s @ ("deleting"
        | "failed"
        | "incompatible-parameters"
        | "incompatible-network"
        | "incompatible-restore"
        | "storage-full") => {
            anyhow::bail!("database {id} is {s}: RDS cannot take a snapshot of it")
        }
        s => {
            ctx.progress(
                "database",
                &id,
                &format!("{s}: waiting until available to snapshot it"),
            );
            database::wait_available(ctx).await?;
        }
    }
    let stamp = time::OffsetDateTime::now_utc().format(time::macros::format_description!(
        "[year][month][day]-[hour][minute][second]"
    ))?;
    let name = format!("{id}-backup-{stamp}");
    // There already: made by this call, its answer lost (the name is this run's).
    already(
        ctx.aws
            .rds
            .create_db_snapshot()
            .db_instance_identifier(&id)
            .db_snapshot_identifier(&name)
            .set_tags(Some(rds_tags(ctx, "db-backup")))
            .send()
            .await,
        &["DBSnapshotAlreadyExists", "DBSnapshotAlreadyExistsFault"],
    )
    .map_err(|e| explain(format!("taking snapshot {name} of {id}"), e))?;
    ctx.progress("db-snapshot", &name, "creating");
    let snapshot = wait_for(
        &format!(
            "snapshot {name} to be {}",
            if wait { "available" } else { "listed" }
        ),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async {
            let all = manual(ctx).await?;
            let s = all
                .into_iter()
                .find(|s| s.db_snapshot_identifier() == Some(name.as_str()));
            match s.as_ref().and_then(|s| s.status()) {
                Some("available") => Ok(s),
                Some(st @ ("failed" | "error" | "deleting")) => {
                    anyhow::bail!("snapshot {name} is {st}")
                }
                Some(_) if !wait => Ok(s),
                _ => Ok(None),
            }
        },
    )
    .await?;
    ctx.progress("db-snapshot", &name, snapshot.status().unwrap_or("unknown"));
    Ok(listed(ctx, &snapshot))
}

/// The names of the snapshots to prune: `backup`'s and `down`'s older than `days`,
/// never the newest snapshot of all (what `up` would restore) nor one made by hand.
pub fn prunable(all: &[Listed], now: i64, days: i32) -> Vec<String> {
    let cutoff = now - i64::from(days) * 86_400;
    let newest_where = |keep: &dyn Fn(&Listed) -> bool| {
        all.iter()
            .filter(|s| s.kind != Kind::Automated && keep(s))
            .max_by_key(|s| (s.taken, s.kind == Kind::Final))
            .map(|s| s.id.clone())
    };
    // What `up` would restore (the newest not failed nor being deleted, which may still be
    // in the making) and the newest that is surely good: neither goes, however old.
    let protected = [
        newest_where(&|s| !matches!(s.status.as_str(), "deleting" | "failed")),
        newest_where(&|s| s.status == "available"),
    ];
    all.iter()
        .filter(|s| matches!(s.kind, Kind::Backup | Kind::Final))
        .filter(|s| s.taken.is_some_and(|t| t < cutoff))
        .filter(|s| !protected.iter().any(|p| p.as_ref() == Some(&s.id)))
        .filter(|s| s.status == "available")
        .map(|s| s.id.clone())
        .collect()
}

/// Delete what `prunable` names; returns their names.
pub async fn prune(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let all: Vec<Listed> = manual(ctx).await?.iter().map(|s| listed(ctx, s)).collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let names = prunable(&all, now, ctx.config.database.snapshot_retention_days);
    for name in &names {
        delete(ctx, name).await?;
        ctx.progress(
            "db-snapshot",
            name,
            &format!(
                "deleted: older than database.snapshot_retention_days ({})",
                ctx.config.database.snapshot_retention_days
            ),
        );
    }
    Ok(names)
}

async fn delete(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    already(
        ctx.aws
            .rds
            .delete_db_snapshot()
            .db_snapshot_identifier(name)
            .send()
            .await,
        &["DBSnapshotNotFound", "DBSnapshotNotFoundFault"],
    )
    .map_err(|e| explain(format!("deleting snapshot {name}"), e))?;
    Ok(())
}

/// `down --delete-data`: the kept snapshots go too.
pub async fn delete_all(ctx: &Ctx) -> anyhow::Result<usize> {
    let all = manual(ctx).await?;
    for s in &all {
        let name = s.db_snapshot_identifier().unwrap_or_default();
        delete(ctx, name).await?;
        ctx.progress("db-snapshot", name, "deleted");
    }
    Ok(all.len())
}

/// `down` keeping the data: the newest snapshot (its final one) is tagged as the stack's
/// retained data, with when. Idempotent: a `down` killed before it tags on the next run.
pub async fn mark_retained(ctx: &Ctx) -> anyhow::Result<()> {
    let all = manual(ctx).await?;
    let Some(newest) = all
        .iter()
        .find(|s| !matches!(s.status(), Some("deleting" | "failed")))
    else {
        return Ok(());
    };
    if newest
        .tag_list()
        .iter()
        .any(|t| t.key() == Some(RETAINED_TAG))
    {
        return Ok(());
    }
    let (Some(arn), Some(name)) = (newest.db_snapshot_arn(), newest.db_snapshot_identifier())
    else {
        return Ok(());
    };
    let since =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    ctx.aws
        .rds
        .add_tags_to_resource()
        .resource_name(arn)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key(RETAINED_TAG)
                .value(since)
                .build(),
        )
        .send()
        .await
        .aws(format!("tagging snapshot {name} as retained data"))?;
    ctx.progress("db-snapshot", name, "tagged as retained data");
    Ok(())
}

/// The stack's manual snapshots, for `status` and `down`'s final check (one being
/// deleted is on its way out: AWS lists it as `deleting` for a while).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    Ok(manual(ctx)
        .await?
        .into_iter()
        .filter(|s| s.status() != Some("deleting"))
        .map(|s| {
            found(
                "db-snapshot",
                s.db_snapshot_identifier().unwrap_or_default(),
                format!(
                    "{}, {} GB",
                    s.status().unwrap_or_default(),
                    s.allocated_storage().unwrap_or(0)
                ),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{prunable, Kind, Listed};

    fn snap(id: &str, kind: Kind, days_ago: i64) -> Listed {
        Listed {
            id: id.into(),
            kind,
            taken: Some(1_000_000_000 - days_ago * 86_400),
            status: "available".into(),
            size_gb: 20,
            retained: false,
        }
    }

    #[test]
    fn old_backups_and_finals_go_but_never_the_newest_nor_a_hand_made_one() {
        let now = 1_000_000_000;
        let all = vec![
            snap("b-new", Kind::Backup, 2),
            snap("b-old", Kind::Backup, 40),
            snap("f-old", Kind::Final, 90),
            snap("hand", Kind::Manual, 400),
            snap("auto", Kind::Automated, 400),
        ];
        assert_eq!(prunable(&all, now, 30), vec!["b-old", "f-old"]);
        assert!(prunable(&all, now, 3650).is_empty(), "nothing is that old");
    }

    #[test]
    fn a_failed_or_unfinished_newest_does_not_expose_the_last_good_one() {
        let now = 1_000_000_000;
        let mut failed = snap("f-failed", Kind::Final, 1);
        failed.status = "failed".into();
        let all = vec![failed, snap("f-good", Kind::Final, 40)];
        assert!(
            prunable(&all, now, 30).is_empty(),
            "the good one is what up restores"
        );
        let mut making = snap("b-making", Kind::Backup, 0);
        making.status = "creating".into();
        let all = vec![
            making,
            snap("b-good", Kind::Backup, 40),
            snap("b-older", Kind::Backup, 50),
        ];
        assert_eq!(
            prunable(&all, now, 30),
            vec!["b-older"],
            "the newest available one stays while the newer is not yet made"
        );
    }

    #[test]
    fn the_snapshot_up_would_restore_is_kept_however_old() {
        let now = 1_000_000_000;
        let all = vec![
            snap("f-last", Kind::Final, 200),
            snap("f-before", Kind::Final, 300),
        ];
        assert_eq!(prunable(&all, now, 30), vec!["f-before"]);
        let mut creating = snap("b-creating", Kind::Backup, 100);
        creating.status = "creating".into();
        assert!(
            prunable(&[snap("f", Kind::Final, 1), creating], now, 30).is_empty(),
            "only an available snapshot is deleted"
        );
    }
}
