//! User lifecycle shared by the admin pages and the `gallery users` CLI: creating,
//! changing and deleting accounts (with their stored images), and the first admin.

use anyhow::Context;

use crate::config::FirstAdmin;
use crate::db::Db;
use crate::domain::{FullName, Password, Username};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::{ObjectKey, Storage};
use crate::store::users::{self, Change, NewUser};
use crate::store::{self, images};

pub struct NewAccount {
    pub username: Username,
    pub full_name: FullName,
    pub password: Password,
    pub is_admin: bool,
}

pub async fn create(state: &AppState, account: NewAccount) -> AppResult<i64> {
    let password = account.password.clone();
    let hash = state
        .blocking(move || crate::auth::password::hash(password.expose()))
        .await??;
    insert(&state.db, &account, &hash).await
}

/// Insert with an already computed hash (the CLI hashes without the server's CPU gate).
pub async fn insert(db: &Db, account: &NewAccount, hash: &str) -> AppResult<i64> {
    let result = users::insert(
        db,
        &NewUser {
            username: account.username.as_str(),
            full_name: account.full_name.as_str(),
            password_hash: hash,
            is_admin: account.is_admin,
        },
    )
    .await;
    match result {
        Ok(id) => Ok(id),
        Err(e) if store::is_unique_violation(&e) => Err(AppError::Conflict(format!(
            "The username `{}` is already taken.",
            account.username
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn update(
    state: &AppState,
    id: i64,
    full_name: &FullName,
    is_admin: bool,
    new_password: Option<Password>,
) -> AppResult<()> {
    let hash = match new_password {
        Some(p) => Some(
            state
                .blocking(move || crate::auth::password::hash(p.expose()))
                .await??,
        ),
        None => None,
    };
    match users::update(&state.db, id, full_name.as_str(), is_admin, hash.as_deref()).await? {
        Change::Done => Ok(()),
        Change::NotFound => Err(AppError::NotFound),
        Change::LastAdmin => Err(AppError::Conflict(
            "This is the last administrator; make someone else an administrator first.".into(),
        )),
    }
}

/// Delete the user's stored images first, then (in one transaction) their rows and the
/// user. If storage fails midway the user and remaining rows are still there: retry.
/// Images uploaded while this runs are caught by the transaction (their rows go with it)
/// and their objects removed after it; an upload finishing after the user is gone fails
/// on the missing owner and removes its own objects.
pub async fn delete(db: &Db, storage: &dyn Storage, id: i64) -> AppResult<()> {
    if users::by_id(db, id).await?.is_none() {
        return Err(AppError::NotFound);
    }
    if is_last_admin(db, id).await? {
        return Err(AppError::Conflict(
            "This is the last administrator and cannot be deleted.".into(),
        ));
    }
    let known = images::keys_for_owner(db, id).await?;
    for (original, thumb) in &known {
        let thumb = ObjectKey::stored(thumb)?;
        storage.delete(&ObjectKey::stored(original)?).await?;
        storage.delete(&thumb.screen()?).await?;
        storage.delete(&thumb).await?;
    }
    let (change, deleted) = users::delete(db, id).await?;
    match change {
        Change::Done => {}
        Change::NotFound => return Err(AppError::NotFound),
        Change::LastAdmin => {
            return Err(AppError::Conflict(
                "This is the last administrator and cannot be deleted.".into(),
            ))
        }
    }
    for (original, thumb) in deleted.iter().filter(|k| !known.contains(k)) {
        let thumb = ObjectKey::stored(thumb)?;
        for key in [ObjectKey::stored(original)?, thumb.screen()?, thumb] {
            if let Err(e) = storage.delete(&key).await {
                tracing::error!(key = key.as_str(), error = %e, "could not remove an object of a deleted user");
            }
        }
    }
    Ok(())
}

async fn is_last_admin(db: &Db, id: i64) -> AppResult<bool> {
    let all = users::list_with_counts(db).await?;
    let admins: Vec<_> = all.iter().filter(|u| u.is_admin).collect();
    Ok(admins.len() == 1 && admins[0].id == id)
}

/// On an empty database, create the first admin from configuration, or with a generated
/// password that is returned so the caller can show it once.
pub async fn ensure_first_admin(db: &Db, first: &FirstAdmin) -> anyhow::Result<Option<Password>> {
    if users::count(db).await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match &first.password {
        Some(p) => (p.clone(), false),
        None => (Password::generate(), true),
    };
    let pw = password.clone();
    let hash =
        tokio::task::spawn_blocking(move || crate::auth::password::hash(pw.expose())).await??;
    let created = users::insert_if_none(
        db,
        &NewUser {
            username: first.username.as_str(),
            full_name: "Administrator",
            password_hash: &hash,
            is_admin: true,
        },
    )
    .await
    .context("creating the first admin")?;
    Ok((created && generated).then_some(password))
}
