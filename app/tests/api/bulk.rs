//! A selection of images at once: to the trash (with one undo), back, and as one ZIP.

use std::io::Read;

use reqwest::StatusCode;

use crate::helpers::*;

async fn bulk(
    app: &TestApp,
    client: &reqwest::Client,
    action: &str,
    ids: &[&str],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let token = app.csrf(client, "/gallery").await;
    let mut form: Vec<(&str, &str)> = vec![("csrf", &token), ("action", action)];
    form.extend(ids.iter().map(|id| ("ids", *id)));
    form.extend_from_slice(extra);
    app.post_form(client, "/images/bulk", &form).await
}

async fn a_selection_goes_to_the_trash_and_back_in_one_step(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let files: Vec<_> = (0..3)
        .map(|i| (format!("p{i}.png"), distinct_png(i)))
        .collect();
    let files: Vec<_> = files.iter().map(|(n, f)| (n.as_str(), f.clone())).collect();
    app.upload(&alice, &files).await;
    let ids = app.gallery_ids(&alice, "/gallery").await;
    let html = app.page(&alice, "/gallery").await;
    assert!(html.contains("form=\"bulk\""), "a box per image");
    assert!(html.contains("value=\"zip\""));

    let chosen = [ids[0].as_str(), ids[2].as_str()];
    let r = bulk(&app, &alice, "trash", &chosen, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let next = location(&r);
    assert_eq!(
        app.gallery_ids(&alice, "/gallery").await,
        vec![ids[1].clone()]
    );
    let page = app.page(&alice, &next).await;
    assert!(page.contains("2 images were moved to the trash"), "{page}");
    // The page's undo is one form with both ids.
    let notice = &page[page.find("were moved to the trash").unwrap()..];
    let notice = &notice[..notice.find("</form>").unwrap()];
    let undo: Vec<&str> = notice
        .match_indices("name=\"ids\" value=\"")
        .map(|(at, m)| &notice[at + m.len()..at + m.len() + 36])
        .collect();
    let mut expected = chosen.to_vec();
    expected.sort();
    let mut got = undo.clone();
    got.sort();
    assert_eq!(got, expected);
    let r = bulk(&app, &alice, "restore", &undo, &[("back", "/gallery")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/gallery");
    assert_eq!(app.gallery_ids(&alice, "/gallery").await, ids);
    assert!(app.gallery_ids(&alice, "/trash").await.is_empty());

    // Nothing selected, a made-up action: a clear 400, nothing done.
    let r = bulk(&app, &alice, "trash", &[], &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = bulk(&app, &alice, "shred", &chosen, &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.gallery_ids(&alice, "/gallery").await.len(), 3);
}

async fn a_selection_downloads_as_one_zip_of_the_originals(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(
        &alice,
        &[
            ("holiday.jpg", photo("rocket.jpg")),
            ("holiday.jpg", photo("exif-gps.jpg")),
            ("cam.png", photo("camera.png")),
        ],
    )
    .await;
    let ids = app.gallery_ids(&alice, "/gallery").await;
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    let r = bulk(&app, &alice, "zip", &all, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"gallery-")
            && disposition.ends_with("-3-images.zip\""),
        "{disposition}"
    );
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a whole ZIP");
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        names.push((entry.name().to_string(), data));
    }
    let mut just_names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    just_names.sort();
    assert_eq!(just_names, ["cam.png", "holiday (2).jpg", "holiday.jpg"]);
    // Each entry is the stored original, byte for byte (the location already removed).
    let (_, png) = names.iter().find(|(n, _)| n == "cam.png").unwrap();
    assert_eq!(png, &photo("camera.png"));
    for (name, data) in &names {
        assert!(
            !data.windows(11).any(|w| w == b"GPSLatitude"),
            "{name} carries a location"
        );
    }
}

async fn a_selection_with_anything_not_yours_does_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.upload(&alice, &[("hers.png", distinct_png(1))]).await;
    app.upload(&bob, &[("his.png", distinct_png(2))]).await;
    let hers = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let his = app.gallery_ids(&bob, "/gallery").await.remove(0);
    for action in ["trash", "zip", "restore"] {
        let r = bulk(&app, &alice, action, &[&hers, &his], &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(
        app.gallery_ids(&alice, "/gallery").await,
        vec![hers.clone()]
    );
    assert_eq!(app.gallery_ids(&bob, "/gallery").await, vec![his.clone()]);
    // And without the form's token, nothing either.
    let r = app
        .post_form(
            &alice,
            "/images/bulk",
            &[("action", "trash"), ("ids", hers.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.gallery_ids(&alice, "/gallery").await, vec![hers]);
}

both_backends!(
    a_selection_goes_to_the_trash_and_back_in_one_step,
    a_selection_downloads_as_one_zip_of_the_originals,
    a_selection_with_anything_not_yours_does_nothing,
);
