//! `/`: greets the user and links to everything they may use.

use axum::extract::State;
use axum::response::IntoResponse;

use crate::auth::{csrf, CurrentUser};
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::images;
use crate::templates::{HomePage, Nav, Page};

pub async fn show(
    State(state): State<AppState>,
    current: CurrentUser,
) -> AppResult<impl IntoResponse> {
    let image_count = images::count_for_owner(&state.db, current.user.id).await?;
    Ok(Page::ok(HomePage {
        nav: Some(Nav::new(
            &current.user,
            csrf::token(&current.session).await?,
        )),
        full_name: current.user.full_name.clone(),
        is_admin: current.user.is_admin,
        image_count,
    }))
}
