//! Storage and database failing in the middle of a change: nothing is left half-done that
//! the user can't see or retry. The storage is the real one (disk or S3 on the emulator)
//! behind a wrapper that fails on command; the database fails through a trigger.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use gallery::storage::{Delivery, ObjectKey, Storage, StorageError};
use reqwest::StatusCode;

use crate::helpers::*;

/// How many more calls of a kind succeed before they fail (`usize::MAX`: never fail),
/// and every key deleted so far.
pub(crate) struct Faults {
    puts_left: AtomicUsize,
    deletes_left: AtomicUsize,
    deleted: Mutex<Vec<String>>,
    /// While set, deletes wait (a slow storage).
    held: AtomicBool,
}

impl Faults {
    pub(crate) fn new() -> Arc<Faults> {
        Arc::new(Faults {
            puts_left: AtomicUsize::new(usize::MAX),
            deletes_left: AtomicUsize::new(usize::MAX),
            deleted: Mutex::new(Vec::new()),
            held: AtomicBool::new(false),
        })
    }
    /// Every key a delete succeeded for, in order (a key twice: deleted twice).
    pub(crate) fn deleted(&self) -> Vec<String> {
        self.deleted.lock().unwrap().clone()
    }
    fn fail_puts_after(&self, n: usize) {
        self.puts_left.store(n, Ordering::SeqCst);
    }
    fn fail_deletes_after(&self, n: usize) {
        self.deletes_left.store(n, Ordering::SeqCst);
    }
    fn hold_deletes(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }
    fn heal(&self) {
        self.fail_puts_after(usize::MAX);
        self.fail_deletes_after(usize::MAX);
    }
    /// Spend one call of the counter; false once it is used up.
    fn allow(counter: &AtomicUsize) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                0 => None,
                usize::MAX => Some(usize::MAX),
                n => Some(n - 1),
            })
            .is_ok()
    }
}

pub(crate) struct FaultyStorage {
    pub(crate) inner: Arc<dyn Storage>,
    pub(crate) faults: Arc<Faults>,
}

fn injected() -> StorageError {
    StorageError::Other("injected failure".into())
}

#[async_trait]
impl Storage for FaultyStorage {
    async fn put(
        &self,
        key: &ObjectKey,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        if !Faults::allow(&self.faults.puts_left) {
            return Err(injected());
        }
        self.inner.put(key, body, content_type).await
    }
    async fn put_file(
        &self,
        key: &ObjectKey,
        file: &std::path::Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        if !Faults::allow(&self.faults.puts_left) {
            return Err(injected());
        }
        self.inner.put_file(key, file, content_type).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        while self.faults.held.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if !Faults::allow(&self.faults.deletes_left) {
            return Err(injected());
        }
        self.inner.delete(key).await?;
        self.faults
            .deleted
            .lock()
            .unwrap()
            .push(key.as_str().to_string());
        Ok(())
    }
    async fn deliver(&self, key: &ObjectKey, content_type: &str) -> Result<Delivery, StorageError> {
        self.inner.deliver(key, content_type).await
    }
    async fn deliver_attachment(
        &self,
        key: &ObjectKey,
        content_type: &str,
        disposition: &str,
    ) -> Result<Delivery, StorageError> {
        self.inner
            .deliver_attachment(key, content_type, disposition)
            .await
    }
    async fn read(&self, key: &ObjectKey) -> Result<gallery::storage::Reader, StorageError> {
        self.inner.read(key).await
    }
    async fn check(&self) -> Result<(), StorageError> {
        self.inner.check().await
    }
    fn foreign_origin(&self) -> Option<String> {
        self.inner.foreign_origin()
    }
}

async fn faulty_app(b: Backend) -> (TestApp, Arc<Faults>) {
    let faults = Faults::new();
    let f = faults.clone();
    let app = TestApp::spawn_wrapping_storage(b, move |inner| {
        Arc::new(FaultyStorage { inner, faults: f })
    })
    .await;
    (app, faults)
}

/// A trigger that makes every `op` (INSERT or DELETE) on `images` fail, and the statement
/// that removes it again.
fn failing_trigger(b: Backend, op: &str) -> (String, String) {
    match b {
        Backend::Sqlite => (
            format!(
                "CREATE TRIGGER fail_images BEFORE {op} ON images \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            ),
            "DROP TRIGGER fail_images;".to_string(),
        ),
        Backend::Postgres => (
            format!(
                "CREATE FUNCTION fail_images() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER fail_images BEFORE {op} ON images \
                 FOR EACH ROW EXECUTE FUNCTION fail_images();"
            ),
            "DROP TRIGGER fail_images ON images; DROP FUNCTION fail_images();".to_string(),
        ),
    }
}

async fn a_storage_failure_midway_through_an_upload_leaves_no_row_and_no_object(b: Backend) {
    let (app, faults) = faulty_app(b).await;
    let alice = app.user("alice").await;
    // Two files: the original and thumbnail of the first and the original of the second
    // are stored, then the second thumbnail fails.
    faults.fail_puts_after(3);
    let files = [
        ("a.jpg", photo("rocket.jpg")),
        ("b.png", photo("camera.png")),
    ];
    let r = app.upload(&alice, &files).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let page = r.text().await.unwrap();
    assert!(page.contains("Try again"), "{page}");
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(app.data.objects().await, Vec::<String>::new());

    faults.heal();
    assert_eq!(
        app.upload(&alice, &files).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 2);
    assert_eq!(app.data.objects().await.len(), 4);
}

async fn a_database_failure_after_storing_removes_the_stored_objects(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let (fail, heal) = failing_trigger(b, "INSERT");
    app.data.execute(&fail).await;
    let files = [
        ("a.jpg", photo("rocket.jpg")),
        ("b.gif", photo("chelsea-animated.gif")),
    ];
    let r = app.upload(&alice, &files).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(app.data.objects().await, Vec::<String>::new());

    app.data.execute(&heal).await;
    assert_eq!(
        app.upload(&alice, &files).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.data.objects().await.len(), 4);
}

async fn a_storage_failure_while_deleting_an_image_keeps_it_listed_and_a_retry_finishes(
    b: Backend,
) {
    let (app, faults) = faulty_app(b).await;
    let alice = app.user("alice").await;
    app.upload(&alice, &[("a.jpg", photo("rocket.jpg"))]).await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let token = app.csrf(&alice, &format!("/images/{id}")).await;
    let r = app
        .post_form(&alice, &format!("/images/{id}/delete"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // Deleting it for good: the original goes, the thumbnail's delete fails. The image
    // is still in the trash, so the user sees it and can delete it again; it can no
    // longer be restored (its original is gone).
    faults.fail_deletes_after(1);
    let r = app
        .post_form(&alice, &format!("/images/{id}/purge"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.gallery_ids(&alice, "/trash").await, vec![id.clone()]);
    assert!(app
        .page(&alice, "/trash")
        .await
        .contains("Being deleted for good"));
    let r = app
        .post_form(
            &alice,
            &format!("/images/{id}/restore"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    faults.heal();
    let r = app
        .post_form(&alice, &format!("/images/{id}/purge"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.gallery_ids(&alice, "/trash").await.is_empty());
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(app.data.objects().await, Vec::<String>::new());
}

async fn a_database_failure_while_deleting_an_image_keeps_it_listed_and_a_retry_finishes(
    b: Backend,
) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(&alice, &[("a.jpg", photo("rocket.jpg"))]).await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let token = app.csrf(&alice, &format!("/images/{id}")).await;
    let r = app
        .post_form(&alice, &format!("/images/{id}/delete"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (fail, heal) = failing_trigger(b, "DELETE");
    app.data.execute(&fail).await;

    // The objects go, the row's delete fails: still in the trash, and a retry finishes.
    let r = app
        .post_form(&alice, &format!("/images/{id}/purge"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.gallery_ids(&alice, "/trash").await, vec![id.clone()]);

    app.data.execute(&heal).await;
    let r = app
        .post_form(&alice, &format!("/images/{id}/purge"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(app.data.objects().await, Vec::<String>::new());
}

async fn a_storage_failure_while_deleting_a_user_keeps_the_user_and_a_retry_finishes(b: Backend) {
    let (app, faults) = faulty_app(b).await;
    let alice = app.user("alice").await;
    let files = [
        ("a.jpg", photo("rocket.jpg")),
        ("b.png", photo("camera.png")),
    ];
    app.upload(&alice, &files).await;
    let id = app
        .data
        .count("SELECT id FROM users WHERE username = 'alice'")
        .await;
    let admin = app.admin().await;
    let token = app.csrf(&admin, &format!("/admin/users/{id}/delete")).await;

    faults.fail_deletes_after(2);
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        app.data
            .count("SELECT COUNT(*) FROM users WHERE username = 'alice'")
            .await,
        1,
        "the user stays until all their objects are gone"
    );
    assert_eq!(app.get(&alice, "/gallery").await.status(), StatusCode::OK);

    faults.heal();
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.data
            .count("SELECT COUNT(*) FROM users WHERE username = 'alice'")
            .await,
        0
    );
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(app.data.objects().await, Vec::<String>::new());
}

async fn emptying_a_trash_that_takes_long_answers_in_time_and_finishes_by_itself(b: Backend) {
    let (app, faults) = faulty_app(b).await;
    let alice = app.user("alice").await;
    let files = [("a.png", distinct_png(1)), ("b.png", distinct_png(2))];
    app.upload(&alice, &files).await;
    let token = app.csrf(&alice, "/gallery").await;
    for id in app.gallery_ids(&alice, "/gallery").await {
        app.post_form(&alice, &format!("/images/{id}/delete"), &[("csrf", &token)])
            .await;
    }
    // The storage takes "forever": the answer comes after the wait, not after the work.
    faults.hold_deletes(true);
    let started = std::time::Instant::now();
    let r = app
        .post_form(&alice, "/trash/empty", &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/trash?emptied=2");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Still going: listed as being deleted, not restorable.
    let page = app.page(&alice, "/trash").await;
    assert!(page.contains("Being deleted for good"), "{page}");
    faults.hold_deletes(false);
    for _ in 0..500 {
        if app.data.count("SELECT COUNT(*) FROM images").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(app.data.objects().await, Vec::<String>::new());
}

both_backends!(
    emptying_a_trash_that_takes_long_answers_in_time_and_finishes_by_itself,
    a_storage_failure_midway_through_an_upload_leaves_no_row_and_no_object,
    a_database_failure_after_storing_removes_the_stored_objects,
    a_storage_failure_while_deleting_an_image_keeps_it_listed_and_a_retry_finishes,
    a_database_failure_while_deleting_an_image_keeps_it_listed_and_a_retry_finishes,
    a_storage_failure_while_deleting_a_user_keeps_the_user_and_a_retry_finishes,
);
