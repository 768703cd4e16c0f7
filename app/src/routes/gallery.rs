//! `/gallery` (the grid), `/images/{id}` (one image) and deleting an image.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use crate::auth::{csrf, CurrentUser};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::templates::{grid_html, GalleryPage, ImagePage, ImageView, Nav, Page};

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<String>,
}

pub async fn index(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(q): Query<PageQuery>,
) -> AppResult<axum::response::Response> {
    let page: i64 = match q.page.as_deref() {
        None | Some("") => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| AppError::BadRequest(format!("`{p}` is not a page number.")))?,
    };
    let size = i64::from(state.config.page_size);
    let found = state
        .cache
        .image_page(
            &state.db,
            current.user.id,
            size,
            (page - 1).saturating_mul(size),
        )
        .await?;
    let (list, total) = (&found.images, found.total);
    let pages = ((total + size - 1) / size).max(1);
    if list.is_empty() && total > 0 {
        // Past the last page (say, after deleting its last image): show the last one.
        return Ok(Redirect::to(&format!("/gallery?page={pages}")).into_response());
    }
    Ok(Page::ok(GalleryPage {
        nav: Some(Nav::new(
            &current.user,
            csrf::token(&current.session).await?,
        )),
        grid: match found.grid.get() {
            Some(grid) => grid,
            None => {
                let html = grid_html(list).map_err(|e| AppError::Internal(e.into()))?;
                found.grid.get_or_init(|| html)
            }
        },
        page,
        pages,
        total,
    })
    .into_response())
}

pub async fn show(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
) -> AppResult<impl IntoResponse> {
    // Another user's id is indistinguishable from a missing one.
    let img = state
        .cache
        .owned_image(&state.db, &id, current.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    let (newer, older) = state.cache.image_neighbours(&state.db, &img).await?;
    let token = csrf::token(&current.session).await?;
    Ok(Page::ok(ImagePage {
        nav: Some(Nav::new(&current.user, token.clone())),
        csrf: token,
        image: ImageView::from(img.as_ref()),
        newer,
        older,
    }))
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

pub async fn delete(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> AppResult<impl IntoResponse> {
    csrf::verify(&current.session, &form.csrf).await?;
    crate::images::delete(&state, &current.user, &id).await?;
    Ok(Redirect::to("/gallery"))
}
