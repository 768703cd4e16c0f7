//! `/admin`: list, add, modify and delete users (admins only).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use crate::accounts::{self, NewAccount};
use crate::auth::{csrf, AdminUser};
use crate::domain::{FullName, Password, Username};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{shares, users};
use crate::templates::{AdminPage, Nav, Page, UserDeletePage, UserFormPage};

fn bad(e: crate::domain::Invalid) -> AppError {
    AppError::Unprocessable(e.0)
}

pub async fn index(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
) -> AppResult<impl IntoResponse> {
    Ok(Page::ok(AdminPage {
        nav: Some(Nav::new(&admin.user, csrf::token(&admin.session).await?)),
        users: users::list_with_counts(&state.db).await?,
        me: admin.user.id,
    }))
}

pub async fn new_form(AdminUser(admin): AdminUser) -> AppResult<impl IntoResponse> {
    let token = csrf::token(&admin.session).await?;
    Ok(Page::ok(UserFormPage {
        nav: Some(Nav::new(&admin.user, token.clone())),
        csrf: token,
        user: None,
        quota_mb: String::new(),
        sharing_allowed: true,
    }))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    username: String,
    password: String,
    full_name: String,
    /// A checkbox: present ("on") when ticked.
    admin: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Form(form): Form<CreateForm>,
) -> AppResult<impl IntoResponse> {
    csrf::verify(&admin.session, &form.csrf).await?;
    let account = NewAccount {
        username: Username::parse(&form.username).map_err(bad)?,
        full_name: FullName::parse(&form.full_name).map_err(bad)?,
        password: Password::parse(&form.password).map_err(bad)?,
        is_admin: form.admin.is_some(),
    };
    let name = account.username.clone();
    accounts::create(&state, account).await?;
    tracing::info!(admin = %admin.user.username, user = %name, "user added");
    Ok(Redirect::to("/admin"))
}

pub async fn edit_form(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
) -> AppResult<impl IntoResponse> {
    let user = users::by_id(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let token = csrf::token(&admin.session).await?;
    Ok(Page::ok(UserFormPage {
        nav: Some(Nav::new(&admin.user, token.clone())),
        csrf: token,
        quota_mb: user
            .quota_bytes
            .map(|b| format!("{}", b / MB))
            .unwrap_or_default(),
        sharing_allowed: shares::sharing_allowed(&state.db, user.id).await?,
        user: Some(user),
    }))
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    csrf: String,
    full_name: String,
    /// Empty keeps the current password.
    #[serde(default)]
    password: String,
    admin: Option<String>,
    /// Storage quota in MB; empty: no limit.
    #[serde(default)]
    quota_mb: String,
    /// A checkbox: absent when unticked (sharing off).
    sharing: Option<String>,
}

/// A megabyte as the pages count it (`human_size`).
const MB: i64 = 1024 * 1024;

/// "500" (MB) → bytes; empty → no limit.
fn parse_quota(raw: &str) -> AppResult<Option<i64>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<u64>() {
        Ok(mb) if (1..=1 << 30).contains(&mb) => Ok(Some(mb as i64 * MB)),
        _ => Err(AppError::Unprocessable(format!(
            "Storage quota: `{raw}` is not a whole number of megabytes from 1 up (leave it empty for no limit)."
        ))),
    }
}

pub async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
    Form(form): Form<UpdateForm>,
) -> AppResult<impl IntoResponse> {
    csrf::verify(&admin.session, &form.csrf).await?;
    let full_name = FullName::parse(&form.full_name).map_err(bad)?;
    let password = if form.password.is_empty() {
        None
    } else {
        Some(Password::parse(&form.password).map_err(bad)?)
    };
    let quota = parse_quota(&form.quota_mb)?;
    accounts::update(&state, id, &full_name, form.admin.is_some(), password).await?;
    users::set_quota(&state.db, id, quota).await?;
    shares::set_sharing_allowed(&state.db, id, form.sharing.is_some()).await?;
    tracing::info!(admin = %admin.user.username, user_id = id, "user modified");
    Ok(Redirect::to("/admin"))
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
) -> AppResult<impl IntoResponse> {
    let user = users::list_with_counts(&state.db)
        .await?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or(AppError::NotFound)?;
    let token = csrf::token(&admin.session).await?;
    Ok(Page::ok(UserDeletePage {
        nav: Some(Nav::new(&admin.user, token.clone())),
        csrf: token,
        user,
    }))
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

pub async fn delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
    Form(form): Form<DeleteForm>,
) -> AppResult<impl IntoResponse> {
    csrf::verify(&admin.session, &form.csrf).await?;
    accounts::delete(&state.db, state.storage.as_ref(), id).await?;
    tracing::info!(admin = %admin.user.username, user_id = id, "user deleted");
    Ok(Redirect::to("/admin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_whole_megabytes_or_none() {
        assert_eq!(parse_quota("").unwrap(), None);
        assert_eq!(parse_quota(" 500 ").unwrap(), Some(500 * MB));
        for bad in ["0", "-1", "1.5", "lots", "99999999999"] {
            assert!(parse_quota(bad).is_err(), "{bad}");
        }
    }
}
