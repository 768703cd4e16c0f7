//! Askama page structs (templates live in `app/templates/`, auto-escaped) and the one
//! wrapper that turns any of them into a response.

mod albums;

pub use albums::*;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::store::images::{Image, Order};
use crate::store::users::{User, UserSummary};

/// Render a template, with a status (200 unless given).
pub struct Page<T>(pub StatusCode, pub T);

impl<T: Template> Page<T> {
    pub fn ok(t: T) -> Self {
        Page(StatusCode::OK, t)
    }
    pub fn with_status(status: StatusCode, t: T) -> Self {
        Page(status, t)
    }
}

impl<T: Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.1.render() {
            Ok(html) => (self.0, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "template failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

/// What the navigation bar needs: who is logged in and the token for the logout form.
pub struct Nav {
    pub full_name: String,
    pub is_admin: bool,
    pub csrf: String,
}

impl Nav {
    pub fn new(user: &User, csrf: String) -> Self {
        Nav {
            full_name: user.full_name.clone(),
            is_admin: user.is_admin,
            csrf,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub nav: Option<Nav>,
    pub title: String,
    pub message: String,
}

impl ErrorPage {
    pub fn new(title: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorPage {
            nav: None,
            title: title.into(),
            message: message.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub next: String,
    pub username: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub nav: Option<Nav>,
    pub full_name: String,
    pub is_admin: bool,
    pub image_count: i64,
}

/// An image as the gallery and image pages show it.
pub struct ImageView {
    pub id: String,
    pub name: String,
    pub width: i64,
    pub height: i64,
    pub thumb_width: u32,
    pub thumb_height: u32,
    pub size: String,
    pub uploaded: String,
    pub content_type: String,
    /// "2024-07-14 18:32" as the camera's clock read.
    pub taken: Option<String>,
    pub camera: Option<String>,
    pub lens: Option<String>,
    /// "6.9 mm · f/1.8 · 1/250 s · ISO 200", of what is known.
    pub exposure: Option<String>,
    /// "Removed from the original", "Kept in the original", or `None`: none recorded.
    pub location: Option<&'static str>,
}

impl ImageView {
    pub fn from(img: &Image) -> Self {
        let (tw, th) = thumb_size(img.width, img.height);
        ImageView {
            id: img.id.clone(),
            name: img.original_name.clone(),
            width: img.width,
            height: img.height,
            thumb_width: tw,
            thumb_height: th,
            size: human_size(img.byte_size),
            uploaded: human_time(img.created_at),
            content_type: img.content_type.clone(),
            taken: img.details.taken_at.map(camera_time),
            camera: img.details.camera.clone(),
            lens: img.details.lens.clone(),
            exposure: {
                let d = &img.details;
                let parts: Vec<String> = [
                    d.focal_length.clone(),
                    d.aperture.clone(),
                    d.exposure.clone(),
                    d.iso.map(|iso| format!("ISO {iso}")),
                ]
                .into_iter()
                .flatten()
                .collect();
                (!parts.is_empty()).then(|| parts.join(" · "))
            },
            location: match (img.has_location, img.location_kept) {
                (false, _) => None,
                (true, false) => Some("Recorded, removed from the stored original"),
                (true, true) => Some("Recorded, kept in the original"),
            },
        }
    }
}

/// The thumbnail's size, so the grid reserves space before lazy images load.
fn thumb_size(w: i64, h: i64) -> (u32, u32) {
    let edge = i64::from(crate::media::THUMB_EDGE);
    if w <= edge && h <= edge {
        return (w.max(1) as u32, h.max(1) as u32);
    }
    if w >= h {
        (edge as u32, ((h * edge) / w.max(1)).max(1) as u32)
    } else {
        (((w * edge) / h.max(1)).max(1) as u32, edge as u32)
    }
}

pub fn human_size(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.0} KB", b / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

/// A camera's clock reading (no time zone), as it read.
fn camera_time(millis: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(millis / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

pub fn human_time(millis: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(millis / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "gallery.html")]
pub struct GalleryPage<'a> {
    pub nav: Option<Nav>,
    /// The grid's HTML (rendered by [`grid_html`], escaped there); empty for no images.
    pub grid: &'a str,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    /// The images just moved to the trash, with an "Undo" for them.
    pub undo: Vec<ImageView>,
    pub csrf: String,
    /// What the last upload did.
    pub notice: Option<String>,
    /// Sorted by upload time (else by date taken).
    pub by_upload: bool,
    /// The query that keeps this order in links ("" or "sort=uploaded").
    pub keep: &'static str,
    /// This grid's own address (its page and order), to come back to after an action.
    pub here: String,
}

/// One page's grid of thumbnails, in groups by month: rendered once per cached page of
/// images, not per view.
#[derive(Template)]
#[template(path = "grid.html")]
struct Grid<'a> {
    months: Vec<Month<'a>>,
    /// The query that keeps the order in the image links ("" or "sort=uploaded").
    keep: &'static str,
}

struct Month<'a> {
    /// "July 2024"
    title: String,
    items: Vec<GridItem<'a>>,
}

struct GridItem<'a> {
    id: &'a str,
    name: &'a str,
    thumb_width: u32,
    thumb_height: u32,
}

/// "July 2024" for a time in ms since the epoch.
fn month_of(millis: i64) -> String {
    let format = time::macros::format_description!("[month repr:long] [year]");
    time::OffsetDateTime::from_unix_timestamp(millis / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The grid of `images` (in `order`) as HTML, a heading per month (empty for none).
pub fn grid_html(images: &[Image], order: Order) -> askama::Result<String> {
    if images.is_empty() {
        return Ok(String::new());
    }
    let mut months: Vec<Month> = Vec::new();
    for img in images {
        let title = month_of(order.of(img));
        let (thumb_width, thumb_height) = thumb_size(img.width, img.height);
        let item = GridItem {
            id: &img.id,
            name: &img.original_name,
            thumb_width,
            thumb_height,
        };
        match months.last_mut() {
            Some(m) if m.title == title => m.items.push(item),
            _ => months.push(Month {
                title,
                items: vec![item],
            }),
        }
    }
    Grid {
        months,
        keep: crate::routes::order_param(order),
    }
    .render()
}

#[derive(Template)]
#[template(path = "image.html")]
pub struct ImagePage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub image: ImageView,
    pub newer: Option<String>,
    pub older: Option<String>,
    /// The query that keeps the gallery's order in the previous/next links.
    pub keep: &'static str,
    /// In the trash: when it goes for good ("in 30 days"), or `None` in the gallery.
    pub trashed: Option<String>,
    /// The purge has claimed it; it can't be restored.
    pub purging: bool,
    /// The albums it is in.
    pub in_albums: crate::cache::Albums,
    /// The user may make share links (an admin can turn it off).
    pub sharing: bool,
}

/// An image in the trash, with when it goes for good.
pub struct TrashItem {
    pub image: ImageView,
    pub left: String,
    pub purging: bool,
}

#[derive(Template)]
#[template(path = "trash.html")]
pub struct TrashPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub items: Vec<TrashItem>,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    /// "30 days", "12 hours": how long the trash keeps an image.
    pub keeps_for: String,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "trash_empty.html")]
pub struct EmptyTrashPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub total: i64,
}

#[derive(Template)]
#[template(path = "upload.html")]
pub struct UploadPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub max_upload: String,
    pub max_upload_bytes: usize,
    pub max_megapixels: u64,
}

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage {
    pub nav: Option<Nav>,
    pub users: Vec<UserSummary>,
    pub me: i64,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub username: String,
    pub full_name: String,
    pub keep_location: bool,
    /// "12.3 MB of 1.0 GB" (or "12.3 MB" without a quota), the trash included.
    pub usage: String,
    /// What the last change did.
    pub notice: Option<String>,
    /// Why the last change was refused.
    pub error: Option<String>,
    pub sessions: Vec<SessionView>,
}

/// One of the user's sessions, as `/account` lists it.
pub struct SessionView {
    /// Its public name, for the "Sign out" form (`None`: an old session without one).
    pub handle: Option<String>,
    pub device: String,
    pub address: String,
    pub since: String,
    pub seen: String,
    /// The session this page is shown in.
    pub current: bool,
}

#[derive(Template)]
#[template(path = "user_form.html")]
pub struct UserFormPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    /// `None` for the add form.
    pub user: Option<User>,
    /// The user's storage quota in MB, empty for none.
    pub quota_mb: String,
    pub sharing_allowed: bool,
}

#[derive(Template)]
#[template(path = "user_delete.html")]
pub struct UserDeletePage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub user: UserSummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumb_sizes_keep_aspect() {
        assert_eq!(thumb_size(4000, 3000), (400, 300));
        assert_eq!(thumb_size(3000, 4000), (300, 400));
        assert_eq!(thumb_size(100, 50), (100, 50));
    }
}
