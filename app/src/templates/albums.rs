//! Pages of albums and share links: the owner's (`/albums`, `/shares`) and the shared
//! pages visitors without an account see (`/s/...`).

use askama::Template;

use super::{human_time, ImageView, Nav};
use crate::store::shares::ShareLink;

/// An album as listed on `/albums`.
pub struct AlbumCard {
    pub id: String,
    pub title: String,
    pub count: i64,
    /// The image standing for it, if it has any.
    pub cover: Option<String>,
}

#[derive(Template)]
#[template(path = "albums.html")]
pub struct AlbumsPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub albums: Vec<AlbumCard>,
}

/// A share link as its owner sees it.
pub struct LinkRow {
    pub id: String,
    /// The album's title or the image's name.
    pub target: String,
    pub created: String,
    /// "never", a date, or "expired".
    pub expires: String,
    pub password: bool,
    pub download: bool,
    pub visits: i64,
    pub last_used: String,
    /// Revoked or expired: no longer opens.
    pub ended: bool,
}

impl LinkRow {
    pub fn from(link: &ShareLink, now: i64) -> Self {
        let expired = link.expires_at.is_some_and(|at| at <= now);
        LinkRow {
            id: link.id.clone(),
            target: link.target.clone(),
            created: human_time(link.created_at),
            expires: match (link.revoked_at, link.expires_at) {
                (Some(at), _) => format!("revoked {}", human_time(at)),
                (None, Some(_)) if expired => "expired".to_string(),
                (None, Some(at)) => human_time(at),
                (None, None) => "never".to_string(),
            },
            password: link.password_hash.is_some(),
            download: link.allow_download,
            visits: link.visits,
            last_used: link
                .last_used_at
                .map(human_time)
                .unwrap_or_else(|| "never".into()),
            ended: link.revoked_at.is_some() || expired,
        }
    }
}

#[derive(Template)]
#[template(path = "album.html")]
pub struct AlbumPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub id: String,
    pub title: String,
    pub description: String,
    pub images: Vec<ImageView>,
    pub cover: Option<String>,
    pub links: Vec<LinkRow>,
    /// Where "Revoke" comes back to.
    pub back: String,
    /// The admin stopped this user's sharing.
    pub sharing_allowed: bool,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "shares.html")]
pub struct SharesPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub links: Vec<LinkRow>,
    /// Where "Revoke" comes back to.
    pub back: String,
}

/// The one time a link's address is shown: only its hash is kept.
#[derive(Template)]
#[template(path = "share_created.html")]
pub struct ShareCreatedPage {
    pub nav: Option<Nav>,
    pub url: String,
    pub target: String,
    pub back: String,
    pub password: bool,
    pub expires: String,
    pub download: bool,
}

/// A shared album's grid, or the page of a shared image: no navigation to anything else.
#[derive(Template)]
#[template(path = "shared.html")]
pub struct SharedPage {
    pub nav: Option<Nav>,
    /// `/s/<token>`: every link of the page starts with it.
    pub base: String,
    pub title: String,
    pub description: String,
    pub images: Vec<ImageView>,
}

#[derive(Template)]
#[template(path = "shared_image.html")]
pub struct SharedImagePage {
    pub nav: Option<Nav>,
    pub base: String,
    pub image: ImageView,
    /// The rendition's size (the long edge at most `media::SCREEN_EDGE`).
    pub width: i64,
    pub height: i64,
    pub newer: Option<String>,
    pub older: Option<String>,
    /// Part of an album (a grid to go back to), or a single shared image.
    pub in_album: bool,
    pub download: bool,
}

#[derive(Template)]
#[template(path = "shared_password.html")]
pub struct SharedPasswordPage {
    pub nav: Option<Nav>,
    pub base: String,
    pub csrf: String,
}

/// The rendition's size for an image of `w` x `h`: the long edge at most `edge`.
pub fn fit(w: i64, h: i64, edge: i64) -> (i64, i64) {
    let long = w.max(h).max(1);
    if long <= edge {
        return (w, h);
    }
    ((w * edge / long).max(1), (h * edge / long).max(1))
}

/// Which album a selection goes to (an existing one, or a new one).
#[derive(Template)]
#[template(path = "album_choose.html")]
pub struct AlbumChoosePage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub ids: Vec<String>,
    pub albums: Vec<(String, String)>,
}
