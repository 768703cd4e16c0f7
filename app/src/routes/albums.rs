//! `/albums`: a user's albums, one album's page, and what its owner does with it (edit,
//! delete, reorder, choose the cover, remove an image). Every album id is owner-checked:
//! another user's album is a 404. Adding images: `routes::bulk` (a selection, or the
//! viewer's "Add to an album").

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::auth::{csrf, CurrentUser};
use crate::db::now_millis;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::albums::{self, Album};
use crate::store::shares;
use crate::templates::{AlbumCard, AlbumPage, AlbumsPage, ImageView, LinkRow, Nav, Page};

const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 2000;

/// An album's title as typed: trimmed, 1 to 200 characters.
pub fn title(raw: &str) -> AppResult<String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(AppError::BadRequest(
            "Title: an album needs a title.".into(),
        ));
    }
    if t.chars().count() > TITLE_MAX {
        return Err(AppError::BadRequest(format!(
            "Title: at most {TITLE_MAX} characters."
        )));
    }
    Ok(t.to_string())
}

fn description(raw: &str) -> AppResult<String> {
    let d = raw.trim();
    if d.chars().count() > DESCRIPTION_MAX {
        return Err(AppError::BadRequest(format!(
            "Description: at most {DESCRIPTION_MAX} characters."
        )));
    }
    Ok(d.to_string())
}

/// The album, if it is the user's; else the same 404 as a missing one.
pub async fn owned(state: &AppState, id: &str, user_id: i64) -> AppResult<Album> {
    albums::owned(&state.db, id, user_id)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn index(State(state): State<AppState>, current: CurrentUser) -> AppResult<Response> {
    let token = csrf::token(&current.session).await?;
    let list = albums::list_for_owner(&state.db, current.user.id).await?;
    Ok(Page::ok(AlbumsPage {
        nav: Some(Nav::new(&current.user, token.clone())),
        csrf: token,
        albums: list
            .into_iter()
            .map(|s| AlbumCard {
                id: s.album.id,
                title: s.album.title,
                count: s.count,
                cover: s.cover,
            })
            .collect(),
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct AlbumForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
}

pub async fn create(
    State(state): State<AppState>,
    current: CurrentUser,
    Form(form): Form<AlbumForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    let title = title(&form.title)?;
    let description = description(&form.description)?;
    let id = albums::create(&state.db, current.user.id, &title, &description).await?;
    Ok(Redirect::to(&format!("/albums/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct ShowQuery {
    /// After adding a selection: how many were new to the album.
    added: Option<u64>,
}

pub async fn show(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> AppResult<Response> {
    let album = owned(&state, &id, current.user.id).await?;
    let images = albums::images(&state.db, &album.id).await?;
    let cover = albums::cover_of(&album, &images);
    let now = now_millis();
    let links = shares::for_owner(&state.db, current.user.id, Some(&album.id), None)
        .await?
        .iter()
        .map(|l| LinkRow::from(l, now))
        .collect();
    let back = format!("/albums/{}", album.id);
    let token = csrf::token(&current.session).await?;
    Ok(Page::ok(AlbumPage {
        nav: Some(Nav::new(&current.user, token.clone())),
        csrf: token,
        id: album.id,
        title: album.title,
        description: album.description,
        images: images.iter().map(ImageView::from).collect(),
        cover,
        links,
        back,
        sharing_allowed: shares::sharing_allowed(&state.db, current.user.id).await?,
        notice: q.added.map(|n| match n {
            0 => "Those photos were in the album already.".to_string(),
            1 => "1 photo added.".to_string(),
            n => format!("{n} photos added."),
        }),
    })
    .into_response())
}

pub async fn update(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<AlbumForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    let album = owned(&state, &id, current.user.id).await?;
    let title = title(&form.title)?;
    let description = description(&form.description)?;
    albums::update(&state.db, &album.id, current.user.id, &title, &description).await?;
    Ok(Redirect::to(&format!("/albums/{}", album.id)).into_response())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Delete the album (its links with it); its images stay in the gallery.
pub async fn delete(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    if !albums::delete(&state.db, &id, current.user.id).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to("/albums").into_response())
}

#[derive(Deserialize)]
pub struct ImageForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    image: String,
    /// `up`, `down`, `cover` or `remove`.
    #[serde(default)]
    action: String,
    /// Where to go afterwards (a local path: the viewer's "remove"); the album by default.
    back: Option<String>,
}

/// One image of the album: move it earlier or later, make it the cover, take it out.
pub async fn image(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<ImageForm>,
) -> AppResult<Response> {
    csrf::verify(&current.session, &form.csrf).await?;
    let album = owned(&state, &id, current.user.id).await?;
    let done = match form.action.as_str() {
        "up" => albums::shift(&state.db, &album, &form.image, -1).await?,
        "down" => albums::shift(&state.db, &album, &form.image, 1).await?,
        "cover" => albums::set_cover(&state.db, &album, &form.image).await?,
        "remove" => albums::remove(&state.db, &album, &form.image).await?,
        other => {
            return Err(AppError::BadRequest(format!(
            "`{other}` is not something to do with a photo of an album: up, down, cover or remove."
        )))
        }
    };
    if !done {
        // Not an image of this album (or already at that end: `shift` says true then).
        return Err(AppError::NotFound);
    }
    let back = match form.back.as_deref() {
        Some(b) if !b.is_empty() => crate::domain::safe_next(Some(b)),
        _ => format!("/albums/{}", album.id),
    };
    Ok(Redirect::to(&back).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_trimmed_and_bounded() {
        assert_eq!(title("  Summer 2026 ").unwrap(), "Summer 2026");
        assert!(title("   ").is_err());
        assert!(title(&"é".repeat(201)).is_err());
        assert!(title(&"é".repeat(200)).is_ok());
        assert!(description(&"x".repeat(2001)).is_err());
    }
}
