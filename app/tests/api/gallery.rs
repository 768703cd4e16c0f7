//! The gallery grid, the image page, image delivery and deleting images.

use reqwest::StatusCode;

use crate::helpers::*;

async fn empty_gallery_links_to_upload(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let html = app.page(&alice, "/gallery").await;
    assert!(html.contains("No images yet") && html.contains("href=\"/upload\""));
    assert!(!html.contains("class=\"grid\""));
}

async fn gallery_is_newest_first_lazy_and_paginated(b: Backend) {
    let app = TestApp::spawn_with(b, &["--page-size", "2"]).await;
    let alice = app.user("alice").await;
    for (i, name) in ["first.jpg", "second.jpg", "third.jpg"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            app.upload(&alice, &[(name, distinct_png(i as u32))])
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let html = app.page(&alice, "/gallery").await;
    assert!(html.contains("loading=\"lazy\""));
    assert!(html.contains("Page 1 of 2") && html.contains("href=\"/gallery?page=2\""));
    let third = html.find("third.jpg").unwrap();
    let second = html.find("second.jpg").unwrap();
    assert!(third < second, "newest first");
    assert!(!html.contains("first.jpg"));
    let page2 = app.page(&alice, "/gallery?page=2").await;
    assert!(page2.contains("first.jpg") && page2.contains("href=\"/gallery?page=1\""));
    assert_eq!(
        app.get(&alice, "/gallery?page=zero").await.status(),
        StatusCode::BAD_REQUEST
    );
    // Past the end (an old link, the last image of a page deleted): the last page, not
    // the empty state.
    let r = app.get(&alice, "/gallery?page=9").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/gallery?page=2");
    // The page never inlines image bytes.
    assert!(!html.contains("base64"));
}

async fn image_page_shows_details_neighbours_and_delete(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    for name in ["older.jpg", "middle.png", "newer.webp"] {
        let bytes = match name {
            "older.jpg" => photo("rocket.jpg"),
            "middle.png" => photo("camera.png"),
            _ => photo("rocket.webp"),
        };
        app.upload(&alice, &[(name, bytes)]).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let ids = app.gallery_ids(&alice, "/gallery").await;
    assert_eq!(ids.len(), 3);
    let html = app.page(&alice, &format!("/images/{}", ids[1])).await;
    assert!(html.contains("<h1>middle.png</h1>"));
    assert!(
        html.contains("image/png") && html.contains("512 × 512") && html.contains("136 KB"),
        "{html}"
    );
    assert!(html.contains(" UTC"), "upload date");
    assert!(html.contains(&format!("src=\"/images/{}/original\"", ids[1])));
    assert!(html.contains(&format!("href=\"/images/{}\" rel=\"prev\"", ids[0])));
    assert!(html.contains(&format!("href=\"/images/{}\" rel=\"next\"", ids[2])));
    assert!(html.contains(&format!("action=\"/images/{}/delete\"", ids[1])));
    let newest = app.page(&alice, &format!("/images/{}", ids[0])).await;
    assert!(!newest.contains("rel=\"prev\""));
}

async fn deleting_an_image_and_then_for_good_removes_its_row_and_objects(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(
        &alice,
        &[
            ("a.jpg", photo("rocket.jpg")),
            ("b.png", photo("camera.png")),
        ],
    )
    .await;
    let ids = app.gallery_ids(&alice, "/gallery").await;
    let token = app.csrf(&alice, &format!("/images/{}", ids[0])).await;
    let r = app
        .post_form(
            &alice,
            &format!("/images/{}/delete", ids[0]),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/gallery?trashed={}", ids[0]));
    let r = app
        .post_form(
            &alice,
            &format!("/images/{}/purge", ids[0]),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let keys = app.data.objects().await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.contains(&ids[1])), "{keys:?}");
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 1);
    assert_eq!(
        app.get(&alice, &format!("/images/{}", ids[0]))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // Deleting again is a clean 404, not an error.
    for action in ["delete", "purge"] {
        let r = app
            .post_form(
                &alice,
                &format!("/images/{}/{action}", ids[0]),
                &[("csrf", &token)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
    }
}

async fn another_users_image_is_404_everywhere(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.upload(&alice, &[("private.jpg", photo("rocket.jpg"))])
        .await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    for path in [
        format!("/images/{id}"),
        format!("/images/{id}/original"),
        format!("/images/{id}/thumb"),
    ] {
        assert_eq!(
            app.get(&bob, &path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let token = app.csrf(&bob, "/gallery").await;
    let r = app
        .post_form(&bob, &format!("/images/{id}/delete"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.data.objects().await.len(), 2);
    assert!(app.gallery_ids(&bob, "/gallery").await.is_empty());
    // Even an admin can't browse someone else's images.
    let admin = app.admin().await;
    assert_eq!(
        app.get(&admin, &format!("/images/{id}/original"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

async fn images_are_delivered_typed_cached_and_not_sniffable(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(&alice, &[("r.webp", photo("rocket.webp"))])
        .await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);

    let r = app.get(&alice, &format!("/images/{id}/original")).await;
    match b {
        Backend::Sqlite => {
            assert_eq!(r.status(), StatusCode::OK);
            let h = r.headers().clone();
            assert_eq!(h["content-type"], "image/webp");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["cache-control"], "private, max-age=31536000, immutable");
            let etag = h["etag"].to_str().unwrap().to_string();
            assert_eq!(r.bytes().await.unwrap().to_vec(), photo("rocket.webp"));
            let r = alice
                .get(app.url(&format!("/images/{id}/original")))
                .header("if-none-match", &etag)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
            let thumb = app.get(&alice, &format!("/images/{id}/thumb")).await;
            assert_eq!(thumb.headers()["content-type"], "image/jpeg");
            assert_ne!(thumb.headers()["etag"].to_str().unwrap(), etag);
        }
        Backend::Postgres => {
            // Bytes don't flow through the server: a redirect to a short-lived presigned URL.
            assert_eq!(r.status(), StatusCode::FOUND);
            let target = location(&r);
            let endpoint = app.data.s3_endpoint.clone().unwrap();
            assert!(target.starts_with(&endpoint), "{target}");
            assert!(
                target.contains("X-Amz-Signature") && target.contains("X-Amz-Expires"),
                "{target}"
            );
            let cache = r.headers()["cache-control"].to_str().unwrap();
            assert!(cache.starts_with("private, max-age="), "{cache}");
            let csp = r.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains(&format!("img-src 'self' {endpoint}")), "{csp}");
            let fetched = reqwest::get(&target).await.unwrap();
            assert_eq!(fetched.status(), StatusCode::OK);
            assert_eq!(fetched.headers()["content-type"], "image/webp");
            assert_eq!(
                fetched.bytes().await.unwrap().to_vec(),
                photo("rocket.webp")
            );
            // The same image keeps the same URL for a while, so browsers can cache it.
            let again = app.get(&alice, &format!("/images/{id}/original")).await;
            assert_eq!(location(&again), target);
        }
    }
}

/// `routes::Lane` answers a warm thumbnail before the router: its answer must be the
/// router's, byte for byte and header for header, and a thumbnail another user asks for
/// the same way is still a 404.
async fn a_thumbnail_from_memory_is_the_routers_answer(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.user("alice").await;
    app.user("bob").await;
    let alice = RawSession::login(&app.url(""), "alice", PASSWORD).await;
    let r = alice
        .upload(&app.url(""), "r.jpg", photo("rocket.jpg"))
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let (id, key) = {
        let mut row = app
            .data
            .query_strings("SELECT id || ' ' || thumb_key FROM images")
            .await;
        let row = row.remove(0);
        let (id, key) = row.split_once(' ').unwrap();
        (id.to_string(), key.to_string())
    };
    let thumb = format!("/images/{id}/thumb");
    let ask = |cookie: String, etag: Option<String>| {
        let url = app.url(&thumb);
        async move {
            let mut r = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .get(url)
                .header("cookie", cookie);
            if let Some(etag) = etag {
                r = r.header("if-none-match", etag);
            }
            let r = r.send().await.unwrap();
            let mut headers: Vec<(String, String)> = r
                .headers()
                .iter()
                // Each response's own: its date and its request id (`access_log`).
                .filter(|(name, _)| *name != "date" && *name != "x-request-id")
                .map(|(n, v)| {
                    let v = v.to_str().unwrap();
                    // A presigned URL's signature may roll over to the next window between
                    // two requests: the object it points at is what must match.
                    // and the redirect's lifetime counts down.
                    let v = match n.as_str() {
                        "location" => v.split('?').next().unwrap(),
                        "cache-control" if v.starts_with("private, max-age=") && v.len() < 24 => {
                            "private, max-age=(the URL's lifetime)"
                        }
                        _ => v,
                    };
                    (n.to_string(), v.to_string())
                })
                .collect();
            headers.sort();
            (r.status(), headers, r.bytes().await.unwrap())
        }
    };
    // With `gallery_sync` the router answers (and fills the cache); without it, once the
    // feed has been polled since the upload, the lane does.
    let routed = format!("{}; gallery_sync=1", alice.cookie);
    // After the upload's change has been applied: it empties alice's images in memory.
    tokio::time::sleep(gallery::cache::POLL_EVERY * 3).await;
    let by_router = ask(routed.clone(), None).await;
    assert!(by_router.0.is_success() || by_router.0.is_redirection());
    tokio::time::sleep(gallery::cache::POLL_EVERY * 3).await;
    for _ in 0..3 {
        assert_eq!(ask(alice.cookie.clone(), None).await, by_router);
    }
    if b == Backend::Sqlite {
        assert_eq!(
            by_router.2.as_ref(),
            app.data.object_bytes(&key).await.as_slice()
        );
        let etag = by_router
            .1
            .iter()
            .find(|(n, _)| n == "etag")
            .unwrap()
            .1
            .clone();
        let not_modified = ask(routed, Some(etag.clone())).await;
        assert_eq!(not_modified.0, StatusCode::NOT_MODIFIED);
        assert_eq!(ask(alice.cookie.clone(), Some(etag)).await, not_modified);
    }
    let bob = RawSession::login(&app.url(""), "bob", PASSWORD).await;
    assert_eq!(ask(bob.cookie.clone(), None).await.0, StatusCode::NOT_FOUND);
    tokio::time::sleep(gallery::cache::POLL_EVERY * 3).await;
    assert_eq!(ask(bob.cookie, None).await.0, StatusCode::NOT_FOUND);
}

async fn the_gallery_is_by_date_taken_in_months_or_by_upload_time(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    // Uploaded first, with no date: its upload time (now) is its date.
    app.upload(&alice, &[("screenshot.png", distinct_png(1))])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // Uploaded last, taken in July 2024.
    app.upload(&alice, &[("paris.jpg", photo("exif-gps.jpg"))])
        .await;
    let by_upload = app.gallery_ids(&alice, "/gallery?sort=uploaded").await;
    let by_taken = app.gallery_ids(&alice, "/gallery").await;
    assert_eq!(by_taken.len(), 2);
    assert_eq!(
        by_upload,
        by_taken.iter().rev().cloned().collect::<Vec<_>>()
    );
    let (screenshot, paris) = (&by_taken[0], &by_taken[1]);

    let html = app.page(&alice, "/gallery").await;
    let july = html
        .find("<h2>July 2024</h2>")
        .expect("a heading for July 2024");
    let this_month = html.find("<h2>").unwrap();
    assert!(this_month < july, "the newer month first");
    assert!(html.find("paris.jpg").unwrap() > july);
    assert!(
        html.contains("href=\"/gallery?sort=uploaded\""),
        "the other order is offered"
    );
    // Sorted by upload, links keep that order, and the image page's neighbours follow it.
    let html = app.page(&alice, "/gallery?sort=uploaded").await;
    assert!(
        html.contains(&format!("href=\"/images/{paris}?sort=uploaded\"")),
        "{html}"
    );
    let page = app
        .page(&alice, &format!("/images/{paris}?sort=uploaded"))
        .await;
    assert!(
        page.contains(&format!(
            "href=\"/images/{screenshot}?sort=uploaded\" rel=\"next\""
        )),
        "{page}"
    );
    let page = app.page(&alice, &format!("/images/{paris}")).await;
    assert!(
        page.contains(&format!("href=\"/images/{screenshot}\" rel=\"prev\"")),
        "{page}"
    );
    // A made-up order is a clear 400.
    let r = app.get(&alice, "/gallery?sort=colour").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("is not a way to sort"));
}

both_backends!(
    empty_gallery_links_to_upload,
    gallery_is_newest_first_lazy_and_paginated,
    image_page_shows_details_neighbours_and_delete,
    deleting_an_image_and_then_for_good_removes_its_row_and_objects,
    another_users_image_is_404_everywhere,
    images_are_delivered_typed_cached_and_not_sniffable,
    a_thumbnail_from_memory_is_the_routers_answer,
    the_gallery_is_by_date_taken_in_months_or_by_upload_time,
);
