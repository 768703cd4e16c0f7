//! What the hot path reads from memory: sessions, users and each user's images (with the
//! albums holding each), kept
//! right by the database's change feed (`store::changes`, filled by triggers, so the CLI
//! and every other instance count as writers).
//!
//! The contract (`docs/SECURITY.md`, "Revocation across instances"):
//! - Only reads use it: `GET`/`HEAD` outside `/admin`, from a browser that made no write in
//!   the last seconds (no `gallery_sync` cookie). Every state-changing request and every
//!   admin page reads the database.
//! - It is used only while the last poll of the feed began less than [`FRESHNESS`] ago and
//!   everything that poll returned is applied, so a revocation committed anywhere stops
//!   being served from memory within 1 s. When the feed can't be read, the cache is not
//!   used: it fails closed, to the database.
//! - A write on this instance makes the cache unusable until a poll begun after it has
//!   been applied, and its response sets `gallery_sync`, so other instances read the
//!   database for that browser until their own polls have caught up: a user's upload or
//!   delete shows at once on any instance.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::session::Record;

use crate::db::Db;
use crate::state::AppState;
use crate::store::albums;
use crate::store::changes::{self, Change};
use crate::store::images::{self, Image, Order};
use crate::store::users::User;

/// How stale a cached read may be, at most.
pub const FRESHNESS: Duration = Duration::from_secs(1);
/// How often the feed is read.
pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// How far back each poll reads the feed (by the database's clock).
const WINDOW: Duration = Duration::from_secs(30);
/// Polls further apart than this may have missed rows: start from empty.
const GAP: Duration = Duration::from_secs(20);
/// How long the feed keeps its rows.
const KEEP: Duration = Duration::from_secs(600);
/// The cookie a write's response sets: "read the database for me a little while".
pub const SYNC_COOKIE: &str = "gallery_sync";
const SYNC_SECONDS: u32 = 2;

const MAX_SESSIONS: usize = 20_000;
const MAX_USERS: usize = 20_000;
/// Users whose images are held; each holds its pages and looked-up images.
const MAX_LIBRARIES: usize = 2_000;
const MAX_PER_LIBRARY: usize = 512;

/// One page of a user's images, with the count of all of them, and its grid's HTML once
/// a view rendered it.
pub struct CachedPage {
    pub images: Vec<Image>,
    pub total: i64,
    pub grid: std::sync::OnceLock<String>,
}
pub type ImagePage = Arc<CachedPage>;
pub type Neighbours = (Option<String>, Option<String>);
/// The owner's albums holding one image, as (id, title), by title.
pub type Albums = Arc<Vec<(String, String)>>;

tokio::task_local! {
    /// Whether this request may read from the cache (set by [`scope`]).
    static READS: bool;
}

/// A read of the database that may fill the cache, if nothing changed meanwhile.
#[derive(Clone, Copy)]
pub struct Ticket(u64);

pub struct Cache {
    entries: Mutex<Entries>,
    started: Instant,
    /// Microseconds since `started` at which the last applied poll began (0: none yet).
    fresh_from: AtomicU64,
    /// Microseconds since `started` at which the last local write ended.
    wrote_at: AtomicU64,
}

#[derive(Default)]
struct Entries {
    /// Bumped by every invalidation: a read begun before it must not fill the cache.
    generation: u64,
    sessions: HashMap<String, Record>,
    users: HashMap<i64, User>,
    libraries: HashMap<i64, Library>,
    /// Feed rows applied, with their time, to skip them when a later poll sees them again.
    seen: HashMap<i64, i64>,
    last_poll: Option<Instant>,
}

#[derive(Default)]
struct Library {
    pages: HashMap<(Order, i64, i64), ImagePage>,
    images: HashMap<String, Arc<Image>>,
    neighbours: HashMap<(Order, String), Neighbours>,
    /// The albums holding an image, as (id, title) by title.
    albums: HashMap<String, Albums>,
}

impl Library {
    fn len(&self) -> usize {
        self.pages.len() + self.images.len() + self.neighbours.len() + self.albums.len()
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            entries: Mutex::new(Entries::default()),
            started: Instant::now(),
            fresh_from: AtomicU64::new(0),
            wrote_at: AtomicU64::new(0),
        }
    }
}

impl Cache {
    fn micros(&self) -> u64 {
        // Never 0, which means "no poll yet".
        self.started.elapsed().as_micros() as u64 + 1
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves maps that are merely incomplete.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a read of this request may be answered from memory now.
    pub fn usable(&self) -> bool {
        let allowed = READS.try_with(|r| *r).unwrap_or(false);
        let fresh = self.fresh_from.load(Ordering::Acquire);
        allowed
            && fresh != 0
            && fresh > self.wrote_at.load(Ordering::Acquire)
            && self.micros().saturating_sub(fresh) < FRESHNESS.as_micros() as u64
    }

    /// Record a write made here: nothing is read from memory until a poll begun after it
    /// has been applied.
    pub fn wrote(&self) {
        self.wrote_at.store(self.micros(), Ordering::Release);
    }

    /// Taken before reading the database for a value to cache.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    pub fn session(&self, id: &str) -> Option<Record> {
        if !self.usable() {
            return None;
        }
        let e = self.lock();
        let record = e.sessions.get(id)?;
        (record.expiry_date > time::OffsetDateTime::now_utc()).then(|| record.clone())
    }

    pub fn put_session(&self, ticket: Ticket, record: &Record) {
        let mut e = self.lock();
        if e.generation == ticket.0 {
            if e.sessions.len() >= MAX_SESSIONS {
                e.sessions.clear();
            }
            e.sessions.insert(record.id.to_string(), record.clone());
        }
    }

    /// This instance saved the session: keep the copy in step (a session deleted
    /// meanwhile is not brought back: only an entry still held is replaced).
    pub fn saved_session(&self, record: &Record) {
        let mut e = self.lock();
        if let Some(held) = e.sessions.get_mut(&record.id.to_string()) {
            *held = record.clone();
        }
    }

    pub fn forget_session(&self, id: &str) {
        let mut e = self.lock();
        e.generation += 1;
        e.sessions.remove(id);
    }

    pub fn user(&self, id: i64) -> Option<User> {
        if !self.usable() {
            return None;
        }
        self.lock().users.get(&id).cloned()
    }

    pub fn put_user(&self, ticket: Ticket, user: &User) {
        let mut e = self.lock();
        if e.generation == ticket.0 {
            if e.users.len() >= MAX_USERS {
                e.users.clear();
            }
            e.users.insert(user.id, user.clone());
        }
    }

    pub fn page(&self, owner: i64, order: Order, limit: i64, offset: i64) -> Option<ImagePage> {
        if !self.usable() {
            return None;
        }
        let e = self.lock();
        e.libraries
            .get(&owner)?
            .pages
            .get(&(order, limit, offset))
            .cloned()
    }

    pub fn put_page(
        &self,
        ticket: Ticket,
        owner: i64,
        order: Order,
        limit: i64,
        offset: i64,
        page: ImagePage,
    ) {
        self.fill(ticket, owner, |l| {
            l.pages.insert((order, limit, offset), page);
        });
    }

    /// The image `id` if it is `owner`'s: the library is the owner's, so another user's
    /// id is never found in it.
    pub fn image(&self, owner: i64, id: &str) -> Option<Arc<Image>> {
        if !self.usable() {
            return None;
        }
        let e = self.lock();
        e.libraries.get(&owner)?.images.get(id).cloned()
    }

    /// The image `id`, if the session `session_id` is signed in as its owner, answered
    /// wholly from memory: the session (not expired), its user (the session's epoch is
    /// the user's) and the image. `None` whenever any of them is not held, or the
    /// session's idle expiry is due to be pushed forward (its last push is `refresh_ms`
    /// old or more: the full path saves it), so the caller takes the full path, which
    /// decides exactly as `auth::CurrentUser` does. Nothing is cloned but the image's
    /// `Arc`: this is the thumbnail's hot path (`routes::images::thumbnail`).
    pub fn signed_in_image(
        &self,
        session_id: &str,
        id: &str,
        refresh_ms: i64,
    ) -> Option<Arc<Image>> {
        use crate::auth::{SESSION_EPOCH, SESSION_SEEN, SESSION_USER};
        if !self.usable() {
            return None;
        }
        let now = time::OffsetDateTime::now_utc();
        let e = self.lock();
        let record = e.sessions.get(session_id)?;
        if record.expiry_date <= now {
            return None;
        }
        let field = |name: &str| record.data.get(name).and_then(|v| v.as_i64());
        let uid = field(SESSION_USER)?;
        let seen = field(SESSION_SEEN).unwrap_or(0);
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        if now_ms - seen >= refresh_ms {
            return None;
        }
        let user = e.users.get(&uid)?;
        if user.session_epoch != field(SESSION_EPOCH).unwrap_or(-1) {
            return None;
        }
        e.libraries.get(&uid)?.images.get(id).cloned()
    }

    pub fn put_image(&self, ticket: Ticket, image: &Arc<Image>) {
        self.fill(ticket, image.owner_id, |l| {
            l.images.insert(image.id.clone(), image.clone());
        });
    }

    pub fn neighbours(&self, owner: i64, order: Order, id: &str) -> Option<Neighbours> {
        if !self.usable() {
            return None;
        }
        let e = self.lock();
        e.libraries
            .get(&owner)?
            .neighbours
            .get(&(order, id.to_string()))
            .cloned()
    }

    pub fn put_neighbours(
        &self,
        ticket: Ticket,
        owner: i64,
        order: Order,
        id: &str,
        n: Neighbours,
    ) {
        self.fill(ticket, owner, |l| {
            l.neighbours.insert((order, id.to_string()), n);
        });
    }

    pub fn albums(&self, owner: i64, image_id: &str) -> Option<Albums> {
        if !self.usable() {
            return None;
        }
        let e = self.lock();
        e.libraries.get(&owner)?.albums.get(image_id).cloned()
    }

    pub fn put_albums(&self, ticket: Ticket, owner: i64, image_id: &str, albums: Albums) {
        self.fill(ticket, owner, |l| {
            l.albums.insert(image_id.to_string(), albums);
        });
    }

    fn fill(&self, ticket: Ticket, owner: i64, put: impl FnOnce(&mut Library)) {
        let mut e = self.lock();
        if e.generation != ticket.0 {
            return;
        }
        if !e.libraries.contains_key(&owner) && e.libraries.len() >= MAX_LIBRARIES {
            e.libraries.clear();
        }
        let library = e.libraries.entry(owner).or_default();
        if library.len() >= MAX_PER_LIBRARY {
            *library = Library::default();
        }
        put(library);
    }

    /// Apply one poll of the feed, begun at `began` (microseconds, from [`Cache::now`]).
    fn apply(&self, began: u64, began_at: Instant, rows: &[Change]) {
        let mut e = self.lock();
        let gap = e
            .last_poll
            .is_none_or(|last| began_at.saturating_duration_since(last) > GAP);
        let mut changed = false;
        if gap {
            // Rows may have come and gone unseen: nothing held can be trusted.
            e.sessions.clear();
            e.users.clear();
            e.libraries.clear();
            changed = true;
        }
        let mut users_touched = HashSet::new();
        for row in rows {
            if e.seen.insert(row.id, row.at).is_some() {
                continue;
            }
            changed = true;
            match (row.scope.as_str(), row.user_id) {
                ("images", Some(user)) => {
                    users_touched.insert(user);
                }
                ("auth", _) => {
                    e.sessions.clear();
                    e.users.clear();
                }
                // A scope this release doesn't know (a newer one wrote it): drop everything.
                _ => {
                    e.sessions.clear();
                    e.users.clear();
                    e.libraries.clear();
                }
            }
        }
        for user in users_touched {
            e.libraries.remove(&user);
        }
        if changed {
            e.generation += 1;
        }
        if let Some(newest) = rows.iter().map(|r| r.at).max() {
            let oldest_kept = newest - 2 * WINDOW.as_millis() as i64;
            e.seen.retain(|_, at| *at >= oldest_kept);
        }
        e.last_poll = Some(began_at);
        self.fresh_from.store(began, Ordering::Release);
    }

    /// Give up freshness at once (the feed could not be read).
    fn stale(&self) {
        self.fresh_from.store(0, Ordering::Release);
    }

    /// Read the feed forever, every [`POLL_EVERY`]; prune it now and then.
    pub async fn follow(self: Arc<Self>, db: Db) {
        let mut polls: u64 = 0;
        let mut failing = false;
        loop {
            let began_at = Instant::now();
            let began = self.micros();
            match changes::recent(&db, WINDOW.as_millis() as i64).await {
                Ok(rows) => {
                    self.apply(began, began_at, &rows);
                    if failing {
                        tracing::info!("change feed readable again; cache in use");
                        failing = false;
                    }
                }
                Err(e) => {
                    self.stale();
                    if !failing {
                        tracing::warn!(error = %e, "change feed unreadable; reading the database");
                        failing = true;
                    }
                }
            }
            polls += 1;
            if polls % 300 == 0 {
                if let Err(e) = changes::prune(&db, KEEP.as_millis() as i64).await {
                    tracing::warn!(error = %e, "pruning the change feed failed");
                }
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// The reads of the hot path: from memory when [`Cache::usable`], else from the database
/// (filling the cache unless something changed meanwhile).
impl Cache {
    /// `store::images::page_for_owner`, cached.
    pub async fn image_page(
        &self,
        db: &Db,
        owner: i64,
        order: Order,
        limit: i64,
        offset: i64,
    ) -> Result<ImagePage, sqlx::Error> {
        if let Some(page) = self.page(owner, order, limit, offset) {
            return Ok(page);
        }
        let ticket = self.ticket();
        let (images, total) = images::page_for_owner(db, owner, order, limit, offset).await?;
        let page = Arc::new(CachedPage {
            images,
            total,
            grid: std::sync::OnceLock::new(),
        });
        self.put_page(ticket, owner, order, limit, offset, page.clone());
        Ok(page)
    }

    /// `store::images::owned`, cached: `None` for another user's image however it is held.
    pub async fn owned_image(
        &self,
        db: &Db,
        id: &str,
        owner: i64,
    ) -> Result<Option<Arc<Image>>, sqlx::Error> {
        if let Some(image) = self.image(owner, id) {
            return Ok(Some(image));
        }
        let ticket = self.ticket();
        let image = images::owned(db, id, owner).await?.map(Arc::new);
        if let Some(image) = &image {
            self.put_image(ticket, image);
        }
        Ok(image)
    }

    /// `store::albums::holding`, cached with the owner's images: the triggers on `albums`
    /// and `album_images` report a change of either as a change of the owner's images.
    pub async fn albums_holding(
        &self,
        db: &Db,
        owner: i64,
        image_id: &str,
    ) -> Result<Albums, sqlx::Error> {
        if let Some(albums) = self.albums(owner, image_id) {
            return Ok(albums);
        }
        let ticket = self.ticket();
        let albums: Albums = Arc::new(
            albums::holding(db, owner, image_id)
                .await?
                .into_iter()
                .map(|a| (a.id, a.title))
                .collect(),
        );
        self.put_albums(ticket, owner, image_id, albums.clone());
        Ok(albums)
    }

    /// `store::images::neighbours`, cached.
    pub async fn image_neighbours(
        &self,
        db: &Db,
        image: &Image,
        order: Order,
    ) -> Result<Neighbours, sqlx::Error> {
        if let Some(n) = self.neighbours(image.owner_id, order, &image.id) {
            return Ok(n);
        }
        let ticket = self.ticket();
        let n = images::neighbours(db, image, order).await?;
        self.put_neighbours(ticket, image.owner_id, order, &image.id, n.clone());
        Ok(n)
    }
}

/// Decide, per request, whether it may read from the cache, and record the writes.
pub async fn scope(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let reads = reading
        && !request.uri().path().starts_with("/admin")
        && !has_sync_cookie(request.headers());
    let mut response = READS.scope(reads, next.run(request)).await;
    // A refused request (4xx, 5xx: no session, no CSRF token, a bad form) wrote nothing,
    // and must not switch this instance's cache off: anyone can send those.
    let answered = response.status().is_success() || response.status().is_redirection();
    if !reading && answered {
        // The handler and the session layer are done: the write is committed.
        state.cache.wrote();
        let secure = if state.config.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{SYNC_COOKIE}=1; Max-Age={SYNC_SECONDS}; Path=/; HttpOnly; SameSite=Lax{secure}"
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Run `f` as a request that may read from memory (what [`scope`] decides for a read; for
/// `routes::Lane`, which answers before the router and its layers).
pub async fn reading<F: std::future::Future>(f: F) -> F::Output {
    READS.scope(true, f).await
}

/// Whether the browser wrote a moment ago (see [`SYNC_COOKIE`]).
pub fn has_sync_cookie(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim_start().starts_with(SYNC_COOKIE) && c.contains('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_sessions::session::Id;

    fn user(id: i64) -> User {
        User {
            id,
            username: format!("u{id}"),
            full_name: "U".into(),
            is_admin: false,
            session_epoch: 0,
            keep_location: false,
            quota_bytes: None,
            sharing_allowed: true,
        }
    }

    fn empty_page() -> ImagePage {
        Arc::new(CachedPage {
            images: Vec::new(),
            total: 0,
            grid: Default::default(),
        })
    }

    fn change(id: i64, scope: &str, user_id: Option<i64>) -> Change {
        Change {
            id,
            scope: scope.into(),
            user_id,
            at: 1_000_000 + id,
        }
    }

    async fn reading<T>(f: impl std::future::Future<Output = T>) -> T {
        READS.scope(true, f).await
    }

    fn poll(cache: &Cache, rows: &[Change]) {
        cache.apply(cache.micros(), Instant::now(), rows);
    }

    fn image(id: &str, owner: i64) -> Arc<Image> {
        Arc::new(Image {
            id: id.into(),
            owner_id: owner,
            storage_key: format!("{id}.jpg"),
            thumb_key: format!("{id}.thumb.jpg"),
            original_name: "a.jpg".into(),
            content_type: "image/jpeg".into(),
            thumb_content_type: "image/jpeg".into(),
            byte_size: 1,
            width: 1,
            height: 1,
            created_at: 0,
            trashed_at: None,
            purging: false,
            details: Default::default(),
            has_location: false,
            location_kept: false,
            content_hash: None,
        })
    }

    fn session(id: Id, uid: i64, epoch: i64, seen: i64, expires_in: time::Duration) -> Record {
        let mut data = HashMap::new();
        data.insert(crate::auth::SESSION_USER.to_string(), uid.into());
        data.insert(crate::auth::SESSION_EPOCH.to_string(), epoch.into());
        data.insert(crate::auth::SESSION_SEEN.to_string(), seen.into());
        Record {
            id,
            data,
            expiry_date: time::OffsetDateTime::now_utc() + expires_in,
        }
    }

    #[tokio::test]
    async fn a_thumbnail_is_answered_from_memory_only_for_a_live_session_of_its_owner() {
        let cache = Cache::default();
        poll(&cache, &[]);
        let t = cache.ticket();
        let now = crate::db::now_millis();
        let hour = time::Duration::hours(1);
        let (live, old_epoch, due, expired) = (Id(1), Id(2), Id(3), Id(4));
        cache.put_session(t, &session(live, 1, 5, now, hour));
        cache.put_session(t, &session(old_epoch, 1, 4, now, hour));
        cache.put_session(t, &session(due, 1, 5, now - 60_000, hour));
        cache.put_session(t, &session(expired, 1, 5, now, -hour));
        cache.put_user(
            t,
            &User {
                session_epoch: 5,
                ..user(1)
            },
        );
        cache.put_user(t, &user(2));
        cache.put_image(t, &image("mine", 1));
        cache.put_image(t, &image("theirs", 2));
        let ask = |s: Id, id: &str| cache.signed_in_image(&s.to_string(), id, 60_000);
        reading(async {
            assert_eq!(ask(live, "mine").map(|i| i.id.clone()), Some("mine".into()));
            assert!(ask(live, "theirs").is_none(), "another user's image");
            assert!(
                ask(old_epoch, "mine").is_none(),
                "a session from before a password change"
            );
            assert!(
                ask(due, "mine").is_none(),
                "its expiry is due to be pushed forward"
            );
            assert!(ask(expired, "mine").is_none(), "expired");
            assert!(ask(Id(9), "mine").is_none(), "not held");
        })
        .await;
        assert!(ask(live, "mine").is_none(), "not inside a read request");
        cache.wrote();
        reading(async { assert!(ask(live, "mine").is_none(), "after a local write") }).await;
        poll(&cache, &[change(1, "auth", None)]);
        reading(async { assert!(ask(live, "mine").is_none(), "sessions dropped") }).await;
    }

    #[tokio::test]
    async fn nothing_is_read_before_the_first_poll_or_outside_a_read() {
        let cache = Cache::default();
        cache.put_user(cache.ticket(), &user(1));
        reading(async { assert!(cache.user(1).is_none(), "no poll yet") }).await;
        poll(&cache, &[]);
        // put before the first poll was dropped by its gap: fill again.
        cache.put_user(cache.ticket(), &user(1));
        reading(async { assert!(cache.user(1).is_some()) }).await;
        assert!(cache.user(1).is_none(), "not inside a read request");
    }

    #[tokio::test]
    async fn an_auth_change_drops_every_session_and_user_and_a_read_begun_before_it_fills_nothing()
    {
        let cache = Cache::default();
        poll(&cache, &[]);
        let before = cache.ticket();
        cache.put_user(before, &user(1));
        poll(&cache, &[change(1, "auth", None)]);
        reading(async { assert!(cache.user(1).is_none()) }).await;
        // A database read that began before the change was applied must not fill.
        cache.put_user(before, &user(2));
        reading(async { assert!(cache.user(2).is_none()) }).await;
        // The same row seen again by the next poll changes nothing.
        let after = cache.ticket();
        cache.put_user(after, &user(3));
        poll(&cache, &[change(1, "auth", None)]);
        reading(async { assert!(cache.user(3).is_some()) }).await;
    }

    #[tokio::test]
    async fn an_images_change_drops_only_that_users_library() {
        let cache = Cache::default();
        poll(&cache, &[]);
        let t = cache.ticket();
        cache.put_page(t, 1, Order::Taken, 60, 0, empty_page());
        cache.put_page(t, 2, Order::Taken, 60, 0, empty_page());
        cache.put_user(t, &user(1));
        poll(&cache, &[change(7, "images", Some(1))]);
        reading(async {
            assert!(cache.page(1, Order::Taken, 60, 0).is_none());
            assert!(cache.page(2, Order::Taken, 60, 0).is_some());
            assert!(cache.user(1).is_some());
        })
        .await;
    }

    #[tokio::test]
    async fn a_local_write_or_an_unreadable_feed_stops_reads_until_the_next_poll() {
        let cache = Cache::default();
        poll(&cache, &[]);
        cache.put_user(cache.ticket(), &user(1));
        cache.wrote();
        reading(async { assert!(cache.user(1).is_none(), "poll began before the write") }).await;
        poll(&cache, &[]);
        reading(async { assert!(cache.user(1).is_some()) }).await;
        cache.stale();
        reading(async { assert!(cache.user(1).is_none(), "fails closed") }).await;
    }

    #[tokio::test]
    async fn a_poll_older_than_the_freshness_bound_is_not_trusted() {
        let cache = Cache {
            started: Instant::now()
                .checked_sub(Duration::from_secs(10))
                .expect("the clock is past 10 s"),
            ..Cache::default()
        };
        let began = cache.micros();
        cache.apply(began, Instant::now(), &[]);
        cache.put_user(cache.ticket(), &user(1));
        reading(async { assert!(cache.user(1).is_some()) }).await;
        // Pretend the last poll began more than FRESHNESS ago.
        let old = cache.micros() - FRESHNESS.as_micros() as u64 - 1;
        cache.fresh_from.store(old, Ordering::Release);
        reading(async { assert!(cache.user(1).is_none()) }).await;
    }

    #[test]
    fn the_sync_cookie_is_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gallery_sync=1"),
        );
        assert!(has_sync_cookie(&h));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("gallery_session=x"),
        );
        assert!(!has_sync_cookie(&h));
    }
}
