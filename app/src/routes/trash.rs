//! `/trash`: what was deleted, when each goes for good, restore and delete forever (the
//! per-image actions are in `routes::gallery`), and emptying it.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::auth::{csrf, CurrentUser};
use crate::db::now_millis;
use crate::error::AppResult;
use crate::routes::gallery::{page_number, CsrfForm};
use crate::state::AppState;
use crate::store::images;
use crate::templates::{EmptyTrashPage, ImageView, Nav, Page, TrashItem, TrashPage};
use crate::trash;

#[derive(Deserialize)]
pub struct TrashQuery {
    page: Option<String>,
    /// How many images the last "Empty trash" deleted.
    emptied: Option<u64>,
}

pub async fn index(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(q): Query<TrashQuery>,
) -> AppResult<Response> {
    let page = page_number(q.page.as_deref())?;
    let size = i64::from(state.config.page_size);
    let (list, total) = images::trash_page(
        &state.db,
        current.user.id,
        size,
        (page - 1).saturating_mul(size),
    )
    .await?;
    let pages = ((total + size - 1) / size).max(1);
    if list.is_empty() && page > 1 {
        return Ok(Redirect::to(&format!("/trash?page={pages}")).into_response());
    }
    let retention = state.config.trash_retention;
    let now = now_millis();
    let token = csrf::token(&current.session).await?;
    Ok(Page::ok(TrashPage {
        nav: Some(Nav::new(&current.user, token.clone())),
        csrf: token,
        items: list
            .iter()
            .map(|img| TrashItem {
                image: ImageView::from(img),
                left: trash::time_left(img.trashed_at.unwrap_or(now), retention, now),
                purging: img.purging,
            })
            .collect(),
        page,
        pages,
        total,
        keeps_for: keeps_for(retention),
        notice: q.emptied.map(|n| match n {
            1 => "1 image was deleted for good.".to_string(),
            n => format!("{n} images were deleted for good."),
        }),
    })
    .into_response())
}

/// "30 days", "12 hours", "5 minutes".
fn keeps_for(retention: std::time::Duration) -> String {
    let secs = retention.as_secs();
    let (n, unit) = if secs >= 2 * 86_400 {
        (secs / 86_400, "days")
    } else if secs >= 2 * 3_600 {
        (secs / 3_600, "hours")
    } else {
        (secs.div_ceil(60), "minutes")
    };
    match n {
        1 => format!("1 {}", unit.trim_end_matches('s')),
        n => format!("{n} {unit}"),
    }
}

pub async fn confirm_empty(
    State(state): State<AppState>,
    current: CurrentUser,
) -> AppResult<Response> {
    let (_, total) = images::trash_page(&state.db, current.user.id, 1, 0).await?;
    if total == 0 {
        return Ok(Redirect::to("/trash").into_response());
    }
    let token = csrf::token(&current.session).await?;
    Ok(Page::ok(EmptyTrashPage {
        nav: Some(Nav::new(&current.user, token.clone())),
        csrf: token,
        total,
    })
    .into_response())
}

pub async fn empty(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<CsrfForm>,
) -> AppResult<impl IntoResponse> {
    csrf::verify(&current.session, &form.csrf).await?;
    let n = trash::empty(&state, &current.user).await?;
    Ok(Redirect::to(&format!("/trash?emptied={n}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_retention_reads_in_a_sensible_unit() {
        assert_eq!(keeps_for(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(keeps_for(Duration::from_secs(43_200)), "12 hours");
        assert_eq!(keeps_for(Duration::from_secs(5)), "1 minute");
    }
}
