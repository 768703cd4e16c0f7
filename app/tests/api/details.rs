//! Photo details from EXIF, location privacy, and downloading the original under its
//! own name.

use reqwest::StatusCode;

use crate::helpers::*;

/// A response's bytes and headers, following a redirect to storage (S3) once.
async fn fetch(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let r = app.get(client, path).await;
    let r = if r.status() == StatusCode::FOUND {
        reqwest::get(location(&r)).await.unwrap()
    } else {
        r
    };
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    let headers = r.headers().clone();
    (headers, r.bytes().await.unwrap().to_vec())
}

fn has_gps(bytes: &[u8]) -> bool {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .expect("EXIF reads");
    exif.fields()
        .any(|f| matches!(f.tag, exif::Tag::GPSLatitude | exif::Tag::GPSLongitude))
        || bytes.windows(11).any(|w| w == b"GPSLatitude")
}

async fn a_photo_shows_its_details_and_its_original_has_no_location(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    assert!(
        has_gps(&photo("exif-gps.jpg")),
        "the fixture has a position"
    );
    app.upload(&alice, &[("Tour Eiffel.jpg", photo("exif-gps.jpg"))])
        .await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);

    let page = app.page(&alice, &format!("/images/{id}")).await;
    for shown in [
        "<dt>Taken</dt><dd>2024-07-14 18:32</dd>",
        "<dt>Camera</dt><dd>Google Pixel 8</dd>",
        "<dt>Lens</dt><dd>Pixel 8 back camera 6.9mm f/1.68</dd>",
        "<dt>Exposure</dt><dd>6.9 mm · f/1.8 · 1/250 s · ISO 200</dd>",
        "<dt>Location</dt><dd>Recorded, removed from the stored original</dd>",
        "<dt>Dimensions</dt><dd>640 × 427</dd>",
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    for coordinate in ["48,51", "48°", "2,17", "GPS"] {
        assert!(
            !page.contains(coordinate),
            "no coordinates on the page: {coordinate}"
        );
    }

    // The stored object, the original as shown, and the download: no position in any.
    let key = app
        .data
        .objects()
        .await
        .into_iter()
        .find(|k| !k.contains(".thumb."))
        .unwrap();
    let stored = app.data.object_bytes(&key).await;
    assert!(!has_gps(&stored), "{key} still has a position");
    assert_eq!(stored.len(), photo("exif-gps.jpg").len());
    let (_, original) = fetch(&app, &alice, &format!("/images/{id}/original")).await;
    assert!(!has_gps(&original));
    let (headers, downloaded) = fetch(&app, &alice, &format!("/images/{id}/download")).await;
    assert!(!has_gps(&downloaded));
    assert_eq!(downloaded, original);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"Tour Eiffel.jpg\"; filename*=UTF-8''Tour%20Eiffel.jpg"
    );
    assert_eq!(headers["content-type"], "image/jpeg");

    // A photo without EXIF shows none of it.
    app.upload(&alice, &[("plain.png", photo("camera.png"))])
        .await;
    let plain = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let page = app.page(&alice, &format!("/images/{plain}")).await;
    assert!(!page.contains("<dt>Camera</dt>") && !page.contains("<dt>Location</dt>"));
}

async fn a_user_who_keeps_locations_gets_them_in_later_uploads(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    // Without the form's token the setting does not change.
    let r = app
        .post_form(&alice, "/account/privacy", &[("keep_location", "on")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let token = app.csrf(&alice, "/account").await;
    let r = app
        .post_form(
            &alice,
            "/account/privacy",
            &[("csrf", &token), ("keep_location", "on")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/account?done=privacy");
    assert!(app.page(&alice, "/account").await.contains("checked"));

    app.upload(&alice, &[("kept.jpg", photo("exif-gps.jpg"))])
        .await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let (_, downloaded) = fetch(&app, &alice, &format!("/images/{id}/download")).await;
    assert_eq!(
        downloaded,
        photo("exif-gps.jpg"),
        "byte for byte as uploaded"
    );
    assert!(app
        .page(&alice, &format!("/images/{id}"))
        .await
        .contains("Recorded, kept in the original"));

    // Deleted for good (or the next upload of the same photo is a duplicate of it)...
    let token = app.csrf(&alice, "/account").await;
    for action in ["delete", "purge"] {
        let r = app
            .post_form(
                &alice,
                &format!("/images/{id}/{action}"),
                &[("csrf", &token)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{action}");
    }
    // ...and the setting turned off again (an unticked box is absent from the form).
    app.post_form(&alice, "/account/privacy", &[("csrf", &token)])
        .await;
    assert!(!app.page(&alice, "/account").await.contains("checked"));
    app.upload(&alice, &[("stripped.jpg", photo("exif-gps.jpg"))])
        .await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let (_, downloaded) = fetch(&app, &alice, &format!("/images/{id}/download")).await;
    assert!(!has_gps(&downloaded));
}

async fn another_users_download_is_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.upload(&alice, &[("mine.jpg", photo("exif-gps.jpg"))])
        .await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let r = app.get(&bob, &format!("/images/{id}/download")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .get(&app.client(), &format!("/images/{id}/download"))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "anonymous: to the login");
}

both_backends!(
    a_photo_shows_its_details_and_its_original_has_no_location,
    a_user_who_keeps_locations_gets_them_in_later_uploads,
    another_users_download_is_404,
);
