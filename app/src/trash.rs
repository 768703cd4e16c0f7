//! The trash: deleting moves an image here, where it can be restored for
//! `--trash-days`; then the purge deletes it for good. The purge runs on every instance
//! and is safe with several: each image is claimed in the database before any object is
//! touched (`store::images::claim_expired`), a claimed image can't be restored, and its
//! row goes only after its objects, so a purge that fails midway leaves a claim the next
//! run finishes, never a row without objects or objects nobody knows of.

use std::time::Duration;

use uuid::Uuid;

use crate::db::now_millis;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::store::images::{self, Image};
use crate::store::users::User;

/// A claim older than this is taken as a purge that died, and taken over.
pub const LEASE: Duration = Duration::from_secs(600);
/// Images claimed per round of the purge.
const BATCH: i64 = 100;

/// Move one of the owner's images to the trash. Trashing it again is not an error.
pub async fn trash(state: &AppState, owner: &User, id: &str) -> AppResult<Image> {
    if images::trash(&state.db, id, owner.id, now_millis()).await? {
        return images::owned(&state.db, id, owner.id)
            .await?
            .ok_or(AppError::NotFound);
    }
    match images::owned(&state.db, id, owner.id).await? {
        Some(img) if img.trashed_at.is_some() => Ok(img),
        _ => Err(AppError::NotFound),
    }
}

/// Bring one of the owner's images back from the trash. Restoring one that is in the
/// gallery already is not an error; one the purge has claimed can't come back.
pub async fn restore(state: &AppState, owner: &User, id: &str) -> AppResult<()> {
    if images::restore(&state.db, id, owner.id).await? {
        return Ok(());
    }
    match images::owned(&state.db, id, owner.id).await? {
        None => Err(AppError::NotFound),
        Some(img) if img.trashed_at.is_none() => Ok(()),
        Some(_) => Err(AppError::Conflict(
            "This image is being deleted for good and can no longer be restored.".into(),
        )),
    }
}

/// Delete one image of the owner's trash for good.
pub async fn delete_forever(state: &AppState, owner: &User, id: &str) -> AppResult<()> {
    let n = in_task(state, owner.id, Some(id.to_string())).await?;
    if n == 0 {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// Delete everything in the owner's trash for good; returns how many images went.
pub async fn empty(state: &AppState, owner: &User) -> AppResult<usize> {
    in_task(state, owner.id, None).await
}

/// How long a request waits for its images to be deleted for good. A larger trash goes
/// on being emptied by itself after the answer (before a load balancer's timeout).
pub const PURGE_WAIT: Duration = Duration::from_secs(5);

/// Claim (`id`, or the whole trash) and purge, as a task of its own: a client that goes
/// away midway does not stop it (its claims would otherwise sit, not restorable, until
/// the lease lets another run finish). Returns how many images were claimed; waits for
/// them to be deleted up to [`PURGE_WAIT`] (a failure by then is the answer).
async fn in_task(state: &AppState, owner_id: i64, id: Option<String>) -> AppResult<usize> {
    let state = state.clone();
    let (claimed_tx, claimed_rx) = tokio::sync::oneshot::channel();
    let mut task = tokio::spawn(async move {
        let token = Uuid::new_v4().to_string();
        let claimed =
            images::claim_owned(&state.db, &token, now_millis(), owner_id, id.as_deref()).await?;
        let _ = claimed_tx.send(claimed.len());
        let result = purge(&state, &token, &claimed).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "deleting for good stopped; the purge will finish it");
        }
        result.map(|()| claimed.len())
    });
    let joined = match tokio::time::timeout(PURGE_WAIT, &mut task).await {
        Ok(joined) => joined,
        // Still deleting: the images are claimed (no longer restorable) and will go.
        Err(_) => match claimed_rx.await {
            Ok(n) => return Ok(n),
            Err(_) => task.await,
        },
    };
    joined.map_err(|e| AppError::Internal(e.into()))?
}

/// Delete claimed images: the objects (idempotent), then the row. Every image is tried;
/// the first failure is returned, and its claim stays for a retry or the next purge.
async fn purge(state: &AppState, token: &str, claimed: &[Image]) -> AppResult<()> {
    let mut first_error = None;
    for img in claimed {
        if let Err(e) = purge_one(state, token, img).await {
            tracing::warn!(image = %img.id, error = %e, "could not delete an image for good yet");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn purge_one(state: &AppState, token: &str, img: &Image) -> AppResult<()> {
    state
        .storage
        .delete(&ObjectKey::stored(&img.storage_key)?)
        .await?;
    let thumb = ObjectKey::stored(&img.thumb_key)?;
    state.storage.delete(&thumb.screen()?).await?;
    state.storage.delete(&thumb).await?;
    // False when another purge took the claim over meanwhile: it deletes the row.
    images::delete_claimed(&state.db, &img.id, token).await?;
    Ok(())
}

/// One run of the purge: every image whose time in the trash is over, and every claim
/// left by a purge that died. Returns how many images were deleted for good.
pub async fn purge_expired(state: &AppState) -> AppResult<usize> {
    let retention = state.config.trash_retention.as_millis() as i64;
    let mut done = 0;
    loop {
        let now = now_millis();
        let token = Uuid::new_v4().to_string();
        let claimed = images::claim_expired(
            &state.db,
            &token,
            now,
            now - retention,
            now - LEASE.as_millis() as i64,
            BATCH,
        )
        .await?;
        if claimed.is_empty() {
            return Ok(done);
        }
        purge(state, &token, &claimed).await?;
        done += claimed.len();
    }
}

/// How often the purge runs: a tenth of the retention, between a second and ten minutes.
pub fn purge_every(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// The purge, forever: a run every [`purge_every`] once the database is ready.
pub async fn purge_forever(state: AppState) {
    let mut tick = tokio::time::interval(purge_every(state.config.trash_retention));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !state.health.is_migrated() {
            continue;
        }
        match purge_expired(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(images = n, "emptied from the trash"),
            Err(e) => tracing::warn!(error = %e, "the trash purge stopped; the next run goes on"),
        }
    }
}

/// "in 3 days", "in 5 hours", "in 2 minutes": when a trashed image goes for good.
pub fn time_left(trashed_at: i64, retention: Duration, now: i64) -> String {
    let left = (trashed_at + retention.as_millis() as i64 - now).max(0);
    let minute = 60_000;
    let (n, unit) = if left >= 2 * 86_400_000 {
        (ceil_div(left, 86_400_000), "days")
    } else if left >= 2 * 3_600_000 {
        (ceil_div(left, 3_600_000), "hours")
    } else if left >= 2 * minute {
        (ceil_div(left, minute), "minutes")
    } else {
        return "in a minute or so".to_string();
    };
    format!("in {n} {unit}")
}

fn ceil_div(n: i64, d: i64) -> i64 {
    (n + d - 1) / d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_rounded_up_in_the_largest_sensible_unit() {
        let day = Duration::from_secs(86_400);
        assert_eq!(time_left(0, day * 30, 0), "in 30 days");
        assert_eq!(time_left(0, day * 30, 1), "in 30 days");
        assert_eq!(time_left(0, day * 3, 86_400_000 + 1), "in 48 hours");
        assert_eq!(time_left(0, Duration::from_secs(600), 0), "in 10 minutes");
        assert_eq!(
            time_left(0, Duration::from_secs(60), 0),
            "in a minute or so"
        );
        assert_eq!(time_left(0, day, 2 * 86_400_000), "in a minute or so");
    }

    #[test]
    fn the_purge_runs_often_enough_for_a_short_retention_and_rarely_for_a_long_one() {
        assert_eq!(purge_every(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            purge_every(Duration::from_secs(100)),
            Duration::from_secs(10)
        );
        assert_eq!(
            purge_every(Duration::from_secs(30 * 86_400)),
            Duration::from_secs(600)
        );
    }
}
