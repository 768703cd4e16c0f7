//! `/gallery` (the grid), `/images/{id}` (one image), and moving an image to the trash
//! and back (the trash itself: `routes::trash`).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;

use crate::auth::{csrf, CurrentUser};
use crate::db::now_millis;
use crate::domain::safe_next;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::images::Order;
use crate::templates::{grid_html, GalleryPage, ImagePage, ImageView, Nav, Page};

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<String>,
    /// The image just moved to the trash: the page offers to undo it.
    trashed: Option<String>,
    /// After an upload: how many images were stored, and how many skipped as duplicates.
    uploaded: Option<u64>,
    skipped: Option<u64>,
    /// `taken` (the default) or `uploaded`.
    sort: Option<String>,
}

#[derive(Deserialize)]
pub struct SortQuery {
    sort: Option<String>,
}

/// `?sort=`: `taken` (by date taken, the default) or `uploaded`.
pub fn order_of(raw: Option<&str>) -> AppResult<Order> {
    match raw {
        None | Some("") | Some("taken") => Ok(Order::Taken),
        Some("uploaded") => Ok(Order::Uploaded),
        Some(other) => Err(AppError::BadRequest(format!(
            "`{other}` is not a way to sort: use `taken` or `uploaded`."
        ))),
    }
}

/// The query a link keeps to stay in the same order ("" for the default).
pub fn order_param(order: Order) -> &'static str {
    match order {
        Order::Taken => "",
        Order::Uploaded => "sort=uploaded",
    }
}

/// The grid at `page` in `order`: "/gallery", "/gallery?page=2&sort=uploaded".
pub fn grid_url(page: i64, order: Order) -> String {
    let mut query = Vec::new();
    let page = (page > 1).then(|| format!("page={page}"));
    query.extend(page.as_deref());
    query.extend(Some(order_param(order)).filter(|q| !q.is_empty()));
    match query.as_slice() {
        [] => "/gallery".to_string(),
        q => format!("/gallery?{}", q.join("&")),
    }
}

/// Where to go after moving `ids` to the trash: back to the grid they were in (`back`,
/// when it is one: its page and order kept), which offers to undo it.
pub fn after_trash(back: Option<&str>, ids: &[&str]) -> String {
    let grid = match back {
        Some(b) if b == "/gallery" || b.starts_with("/gallery?") => safe_next(Some(b)),
        _ => "/gallery".to_string(),
    };
    if ids.is_empty() {
        return grid;
    }
    let sep = if grid.contains('?') { '&' } else { '?' };
    format!("{grid}{sep}trashed={}", ids.join(","))
}

/// "3 images uploaded. 2 were skipped: you have them already."
fn upload_notice(uploaded: Option<u64>, skipped: Option<u64>) -> Option<String> {
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            one.to_string()
        } else {
            format!("{n} {many}")
        }
    };
    let mut out = match uploaded? {
        0 => "Nothing new was uploaded.".to_string(),
        n => format!("{} uploaded.", plural(n, "1 image", "images")),
    };
    if let Some(n) = skipped.filter(|n| *n > 0) {
        out.push_str(&format!(
            " {} skipped: you have {} already.",
            plural(n, "1 file was", "files were"),
            if n == 1 { "it" } else { "them" }
        ));
    }
    Some(out)
}

/// `?page=N`: a positive number, 1 when absent.
pub fn page_number(raw: Option<&str>) -> AppResult<i64> {
    match raw {
        None | Some("") => Ok(1),
        Some(p) => p
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| AppError::BadRequest(format!("`{p}` is not a page number."))),
    }
}

pub async fn index(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(q): Query<PageQuery>,
) -> AppResult<axum::response::Response> {
    let page = page_number(q.page.as_deref())?;
    let order = order_of(q.sort.as_deref())?;
    let size = i64::from(state.config.page_size);
    let found = state
        .cache
        .image_page(
            &state.db,
            current.user.id,
            order,
            size,
            (page - 1).saturating_mul(size),
        )
        .await?;
    let (list, total) = (&found.images, found.total);
    let pages = ((total + size - 1) / size).max(1);
    if list.is_empty() && total > 0 {
        // Past the last page (say, after deleting its last image): show the last one.
        return Ok(Redirect::to(&grid_url(pages, order)).into_response());
    }
    let token = csrf::token(&current.session).await?;
    // The images just moved to the trash (one, or a selection), to offer an undo: only
    // the user's own, and only while they are still in the trash.
    let mut undo = Vec::new();
    for id in q
        .trashed
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .take(1000)
    {
        if id.is_empty() {
            continue;
        }
        if let Some(img) = state
            .cache
            .owned_image(&state.db, id, current.user.id)
            .await?
            .filter(|img| img.trashed_at.is_some() && !img.purging)
        {
            undo.push(ImageView::from(&img));
        }
    }
    Ok(Page::ok(GalleryPage {
        csrf: token.clone(),
        nav: Some(Nav::new(&current.user, token)),
        grid: match found.grid.get() {
            Some(grid) => grid,
            None => {
                let html = grid_html(list, order).map_err(|e| AppError::Internal(e.into()))?;
                found.grid.get_or_init(|| html)
            }
        },
        page,
        pages,
        total,
        undo,
        notice: upload_notice(q.uploaded, q.skipped),
        by_upload: order == Order::Uploaded,
        keep: order_param(order),
        here: grid_url(page, order),
    })
    .into_response())
}

pub async fn show(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<SortQuery>,
) -> AppResult<impl IntoResponse> {
    let order = order_of(q.sort.as_deref())?;
    // Another user's id is indistinguishable from a missing one.
    let img = state
        .cache
        .owned_image(&state.db, &id, current.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    let (newer, older) = match img.trashed_at {
        None => state.cache.image_neighbours(&state.db, &img, order).await?,
        Some(_) => (None, None),
    };
    let token = csrf::token(&current.session).await?;
    Ok(Page::ok(ImagePage {
        nav: Some(Nav::new(&current.user, token.clone())),
        csrf: token,
        image: ImageView::from(img.as_ref()),
        newer,
        older,
        keep: order_param(order),
        trashed: img
            .trashed_at
            .map(|at| crate::trash::time_left(at, state.config.trash_retention, now_millis())),
        purging: img.purging,
        in_albums: state
            .cache
            .albums_holding(&state.db, current.user.id, &img.id)
            .await?,
        sharing: current.user.sharing_allowed,
    }))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    /// The grid to go back to (a `/gallery` path), `/gallery` by default.
    back: Option<String>,
}

/// "Delete": to the trash, then to the grid, which offers to undo it.
pub async fn delete(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> AppResult<impl IntoResponse> {
    csrf::verify(&current.session, &form.csrf).await?;
    let img = crate::trash::trash(&state, &current.user, &id).await?;
    Ok(Redirect::to(&after_trash(
        form.back.as_deref(),
        &[img.id.as_str()],
    )))
}

#[derive(Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    csrf: String,
    /// Where to go afterwards (a local path); the image's page by default.
    back: Option<String>,
}

pub async fn restore(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<RestoreForm>,
) -> AppResult<impl IntoResponse> {
    csrf::verify(&current.session, &form.csrf).await?;
    crate::trash::restore(&state, &current.user, &id).await?;
    let back = match form.back.as_deref() {
        Some(back) if !back.is_empty() => safe_next(Some(back)),
        _ => format!("/images/{id}"),
    };
    Ok(Redirect::to(&back))
}

/// "Delete forever", from the trash.
pub async fn purge(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> AppResult<impl IntoResponse> {
    csrf::verify(&current.session, &form.csrf).await?;
    crate::trash::delete_forever(&state, &current.user, &id).await?;
    Ok(Redirect::to("/trash"))
}
