//! The trash: deleting moves an image there (undo, restore), deleting for good removes
//! its row and objects, and the purge empties it after `--trash-days`, once, whatever
//! the number of instances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::failures::{Faults, FaultyStorage};
use crate::helpers::*;

async fn trash(app: &TestApp, client: &reqwest::Client, id: &str) -> reqwest::Response {
    let token = app.csrf(client, "/gallery").await;
    app.post_form(client, &format!("/images/{id}/delete"), &[("csrf", &token)])
        .await
}

async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let token = app.csrf(client, "/trash").await;
    let mut form = vec![("csrf", token.as_str())];
    form.extend_from_slice(extra);
    app.post_form(client, path, &form).await
}

async fn deleting_moves_an_image_to_the_trash_and_undo_brings_it_back(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(
        &alice,
        &[
            ("first.png", distinct_png(1)),
            ("second.png", distinct_png(2)),
        ],
    )
    .await;
    let ids = app.gallery_ids(&alice, "/gallery").await;
    assert_eq!(ids.len(), 2);

    let r = trash(&app, &alice, &ids[0]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/gallery?trashed={}", ids[0]));
    // Gone from the gallery at once, with an undo on the next page.
    let next = app.page(&alice, &location(&r)).await;
    assert_eq!(
        app.gallery_ids(&alice, "/gallery").await,
        vec![ids[1].clone()]
    );
    assert!(next.contains("was moved to the trash"), "{next}");
    assert!(
        next.contains(&format!("action=\"/images/{}/restore\"", ids[0])),
        "{next}"
    );
    assert!(app.page(&alice, "/").await.contains("1 image"));
    // Nothing is deleted yet: both rows and all four objects are there.
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 2);
    assert_eq!(app.data.objects().await.len(), 4);
    // The trash lists it, with its time left; its page and thumbnail still open.
    let listed = app.page(&alice, "/trash").await;
    assert_eq!(
        app.gallery_ids(&alice, "/trash").await,
        vec![ids[0].clone()]
    );
    assert!(listed.contains("Deleted for good in 30 days"), "{listed}");
    let page = app.page(&alice, &format!("/images/{}", ids[0])).await;
    assert!(page.contains("This image is in the trash"), "{page}");
    assert!(!page.contains("Move to trash"), "{page}");
    // (From disk the bytes; from S3 a redirect to them.)
    let thumb = app
        .get(&alice, &format!("/images/{}/thumb", ids[0]))
        .await
        .status();
    assert!(
        thumb == StatusCode::OK || thumb == StatusCode::FOUND,
        "{thumb}"
    );
    // Trashing it again is not an error.
    assert_eq!(
        trash(&app, &alice, &ids[0]).await.status(),
        StatusCode::SEE_OTHER
    );

    // Undo: back in the gallery in its place.
    let r = post(
        &app,
        &alice,
        &format!("/images/{}/restore", ids[0]),
        &[("back", "/gallery")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/gallery");
    assert_eq!(app.gallery_ids(&alice, "/gallery").await, ids);
    assert!(app.gallery_ids(&alice, "/trash").await.is_empty());
    assert!(app
        .page(&alice, "/trash")
        .await
        .contains("The trash is empty"));
    // A `back` that leaves the site is not followed.
    trash(&app, &alice, &ids[1]).await;
    let r = post(
        &app,
        &alice,
        &format!("/images/{}/restore", ids[1]),
        &[("back", "//evil.example/")],
    )
    .await;
    assert_eq!(location(&r), "/");
    assert_eq!(app.gallery_ids(&alice, "/gallery").await, ids);
}

async fn deleting_for_good_and_emptying_the_trash_remove_rows_and_objects(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let files: Vec<_> = (0..3)
        .map(|i| (format!("p{i}.png"), distinct_png(i)))
        .collect();
    let files: Vec<_> = files.iter().map(|(n, f)| (n.as_str(), f.clone())).collect();
    app.upload(&alice, &files).await;
    let ids = app.gallery_ids(&alice, "/gallery").await;
    // An image in the gallery can't be deleted for good without the trash.
    let r = post(&app, &alice, &format!("/images/{}/purge", ids[0]), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    for id in &ids {
        trash(&app, &alice, id).await;
    }

    let r = post(&app, &alice, &format!("/images/{}/purge", ids[0]), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/trash");
    let objects = app.data.objects().await;
    assert_eq!(objects.len(), 4, "{objects:?}");
    assert!(!objects.iter().any(|k| k.contains(&ids[0])), "{objects:?}");
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 2);
    assert_eq!(
        app.get(&alice, &format!("/images/{}", ids[0]))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let r = post(&app, &alice, &format!("/images/{}/restore", ids[0]), &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Emptying asks first, then deletes the rest.
    let confirm = app.page(&alice, "/trash/empty").await;
    assert!(
        confirm.contains("deletes the 2 images in your trash for good"),
        "{confirm}"
    );
    let r = post(&app, &alice, "/trash/empty", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/trash?emptied=2");
    assert!(app
        .page(&alice, "/trash?emptied=2")
        .await
        .contains("2 images were deleted for good"));
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(app.data.objects().await, Vec::<String>::new());
    // An empty trash has nothing to confirm.
    let r = app.get(&alice, "/trash/empty").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

async fn another_users_trash_is_out_of_reach(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.upload(
        &alice,
        &[("a.png", distinct_png(1)), ("b.png", distinct_png(2))],
    )
    .await;
    let ids = app.gallery_ids(&alice, "/gallery").await;
    trash(&app, &alice, &ids[0]).await;
    for path in ["delete", "restore", "purge"] {
        for id in &ids {
            let r = post(&app, &bob, &format!("/images/{id}/{path}"), &[]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} {id}");
        }
    }
    assert!(app.gallery_ids(&bob, "/trash").await.is_empty());
    // Bob's "empty trash" empties his (empty) trash, not hers.
    let r = post(&app, &bob, "/trash/empty", &[]).await;
    assert_eq!(location(&r), "/trash?emptied=0");
    assert_eq!(
        app.gallery_ids(&alice, "/trash").await,
        vec![ids[0].clone()]
    );
    assert_eq!(
        app.gallery_ids(&alice, "/gallery").await,
        vec![ids[1].clone()]
    );
    // The undo notice names only her own trashed images.
    let page = app
        .page(&bob, &format!("/gallery?trashed={}", ids[0]))
        .await;
    assert!(!page.contains("moved to the trash"), "{page}");
    assert!(!page.contains("a.png"), "{page}");
    assert_eq!(app.data.objects().await.len(), 4);
}

async fn every_trash_form_needs_its_csrf_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(
        &alice,
        &[("a.png", distinct_png(1)), ("b.png", distinct_png(2))],
    )
    .await;
    let ids = app.gallery_ids(&alice, "/gallery").await;
    trash(&app, &alice, &ids[0]).await;
    for path in [
        format!("/images/{}/delete", ids[1]),
        format!("/images/{}/restore", ids[0]),
        format!("/images/{}/purge", ids[0]),
        "/trash/empty".to_string(),
    ] {
        for form in [vec![], vec![("csrf", "forged")]] {
            let r = app.post_form(&alice, &path, &form).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} {form:?}");
        }
    }
    assert_eq!(
        app.gallery_ids(&alice, "/trash").await,
        vec![ids[0].clone()]
    );
    assert_eq!(
        app.gallery_ids(&alice, "/gallery").await,
        vec![ids[1].clone()]
    );
    assert_eq!(app.data.objects().await.len(), 4);
}

/// Poll until `done` holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `--trash-days` of about three seconds: restorable within it, purged after.
const SHORT_TRASH: &str = "0.000035";

async fn images_past_their_time_in_the_trash_are_deleted_for_good(b: Backend) {
    let app = TestApp::spawn_with(b, &["--trash-days", SHORT_TRASH]).await;
    let alice = app.user("alice").await;
    app.upload(
        &alice,
        &[
            ("keep.png", distinct_png(1)),
            ("old.png", distinct_png(2)),
            ("stuck.png", distinct_png(3)),
        ],
    )
    .await;
    let ids = app.gallery_ids(&alice, "/gallery").await;
    let (keep, old, stuck) = (&ids[0], &ids[1], &ids[2]);
    let started = Instant::now();
    trash(&app, &alice, old).await;
    trash(&app, &alice, keep).await;
    assert!(app
        .page(&alice, "/trash")
        .await
        .contains("Deleted for good in a minute or so"));
    let r = post(&app, &alice, &format!("/images/{keep}/restore"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "restored in time"
    );

    // A purge that died after claiming an image, long ago: the image can't be restored
    // (its objects may be half gone), and the next run finishes it.
    trash(&app, &alice, stuck).await;
    app.data
        .execute(&format!(
            "UPDATE images SET purge_token = 'dead', purge_claimed_at = 1 WHERE id = '{stuck}'"
        ))
        .await;
    let r = post(&app, &alice, &format!("/images/{stuck}/restore"), &[]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    eventually(Duration::from_secs(20), "the trash purged", || async {
        app.data.count("SELECT COUNT(*) FROM images").await == 1
    })
    .await;
    assert_eq!(
        app.gallery_ids(&alice, "/gallery").await,
        vec![keep.clone()]
    );
    let objects = app.data.objects().await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(
        objects.iter().all(|k| k.contains(keep.as_str())),
        "{objects:?}"
    );
}

async fn two_instances_purge_each_image_once(b: Backend) {
    let data = Data::new(b).await;
    let faults = Faults::new();
    let mut bases = Vec::new();
    for _ in 0..2 {
        let f = faults.clone();
        bases.push(
            TestApp::start_wrapping_on(&data, &["--trash-days", SHORT_TRASH], move |inner| {
                Arc::new(FaultyStorage { inner, faults: f })
            })
            .await,
        );
    }
    let app = TestApp {
        base: bases[0].clone(),
        data,
    };
    let alice = app.user("alice").await;
    let files: Vec<_> = (0..30)
        .map(|i| (format!("p{i}.png"), distinct_png(i)))
        .collect();
    let files: Vec<_> = files.iter().map(|(n, f)| (n.as_str(), f.clone())).collect();
    assert_eq!(
        app.upload(&alice, &files).await.status(),
        StatusCode::SEE_OTHER
    );
    let keys = app.data.objects().await;
    assert_eq!(keys.len(), 60);
    for id in app.gallery_ids(&alice, "/gallery?page=1").await {
        trash(&app, &alice, &id).await;
    }
    eventually(Duration::from_secs(30), "the trash purged", || async {
        app.data.count("SELECT COUNT(*) FROM images").await == 0
    })
    .await;
    assert_eq!(app.data.objects().await, Vec::<String>::new());
    // (Each purge also deletes the screen rendition a share link would have made; none
    // was, so those are deletes of nothing, which storage takes as done.)
    let mut deleted: Vec<String> = faults
        .deleted()
        .into_iter()
        .filter(|k| !k.contains(".screen."))
        .collect();
    deleted.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(deleted, expected, "each object deleted exactly once");
}

async fn deleting_and_undo_go_back_to_the_same_page_and_order(b: Backend) {
    let app = TestApp::spawn_with(b, &["--page-size", "2"]).await;
    let alice = app.user("alice").await;
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("{i}.png"), distinct_png(100 + i)))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    app.upload(&alice, &files).await;
    let grid = "/gallery?page=2&sort=uploaded";
    let page = app.page(&alice, grid).await;
    // The grid names itself for the forms that come back to it.
    assert!(
        page.contains("name=\"back\" value=\"/gallery?page=2&#38;sort=uploaded\""),
        "{page}"
    );
    let id = app.gallery_ids(&alice, grid).await.remove(0);

    // One image, from the grid's page (the image page sends its order).
    let token = app.csrf(&alice, grid).await;
    let r = app
        .post_form(
            &alice,
            &format!("/images/{id}/delete"),
            &[("csrf", &token), ("back", grid)],
        )
        .await;
    assert_eq!(location(&r), format!("{grid}&trashed={id}"));
    let next = app.page(&alice, &location(&r)).await;
    assert!(next.contains("was moved to the trash"), "{next}");
    let r = post(
        &app,
        &alice,
        &format!("/images/{id}/restore"),
        &[("back", grid)],
    )
    .await;
    assert_eq!(location(&r), grid);
    let image = app
        .page(&alice, &format!("/images/{id}?sort=uploaded"))
        .await;
    assert!(
        image.contains("name=\"back\" value=\"/gallery?sort=uploaded\""),
        "{image}"
    );

    // A selection, the same way.
    let r = app
        .post_form(
            &alice,
            "/images/bulk",
            &[
                ("csrf", &token),
                ("action", "trash"),
                ("ids", &id),
                ("back", grid),
            ],
        )
        .await;
    assert_eq!(location(&r), format!("{grid}&trashed={id}"));
    // Only a grid is gone back to; anything else is the gallery.
    for back in ["//evil.example/", "/trash", "/gallery/../admin"] {
        let r = app
            .post_form(
                &alice,
                &format!("/images/{id}/delete"),
                &[("csrf", &token), ("back", back)],
            )
            .await;
        assert_eq!(location(&r), format!("/gallery?trashed={id}"), "{back}");
    }
}

both_backends!(
    deleting_and_undo_go_back_to_the_same_page_and_order,
    deleting_moves_an_image_to_the_trash_and_undo_brings_it_back,
    deleting_for_good_and_emptying_the_trash_remove_rows_and_objects,
    another_users_trash_is_out_of_reach,
    every_trash_form_needs_its_csrf_token,
    images_past_their_time_in_the_trash_are_deleted_for_good,
    two_instances_purge_each_image_once,
);
