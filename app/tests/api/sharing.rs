//! Albums and share links: what their owner does, what a visitor without an account
//! sees, and every way a link stops working (all the same 404).

use reqwest::{Client, StatusCode};

use crate::helpers::*;

/// Create an album through its form; its id.
pub async fn make_album(app: &TestApp, client: &Client, title: &str) -> String {
    let token = app.csrf(client, "/albums").await;
    let r = app
        .post_form(
            client,
            "/albums",
            &[("csrf", &token), ("title", title), ("description", "")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "create album {title}");
    location(&r).trim_start_matches("/albums/").to_string()
}

/// Add images to an album through the bulk form; the redirect's target.
pub async fn add_to_album(app: &TestApp, client: &Client, album: &str, ids: &[&str]) -> String {
    let token = app.csrf(client, "/gallery").await;
    let mut form = vec![
        ("csrf", token.as_str()),
        ("action", "album"),
        ("album", album),
    ];
    form.extend(ids.iter().map(|id| ("ids", *id)));
    let r = app.post_form(client, "/images/bulk", &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    location(&r)
}

/// Make a link from `path` (`/albums/{id}/share` or `/images/{id}/share`); its `/s/...`
/// path, read from the page that shows it once.
pub async fn share(app: &TestApp, client: &Client, path: &str, extra: &[(&str, &str)]) -> String {
    let token = app.csrf(client, "/albums").await;
    let mut form = vec![("csrf", token.as_str())];
    form.extend_from_slice(extra);
    let r = app.post_form(client, path, &form).await;
    assert_eq!(r.status(), StatusCode::OK, "share {path}");
    let html = r.text().await.unwrap();
    let start = html.find("/s/").expect("the link is shown");
    let end = html[start..].find('"').unwrap();
    let link = &html[start..start + end];
    assert_eq!(link.len(), "/s/".len() + 43, "a 256-bit token: {link}");
    link.to_string()
}

/// A response's status and bytes, following one redirect to storage (S3).
async fn fetch(client: &Client, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = client.get(url).send().await.unwrap();
    let r = if r.status() == StatusCode::FOUND {
        assert_eq!(r.headers()["cache-control"], "no-store", "{url}");
        let to = location(&r);
        assert!(!to.contains("/s/"), "storage is reached by a presigned URL");
        let r = Client::new().get(to).send().await.unwrap();
        if r.status() == StatusCode::OK {
            assert_eq!(
                r.headers()["cache-control"],
                "private, no-store",
                "{url} from storage"
            );
        }
        r
    } else {
        r
    };
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

/// The session cookie a response sets, if it sets one.
fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gallery_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// Whether these bytes hold EXIF, or a position anywhere.
fn has_metadata(bytes: &[u8]) -> bool {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .is_ok();
    exif || has_position(bytes)
}

fn has_position(bytes: &[u8]) -> bool {
    let exif = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes));
    let gps = exif.is_ok_and(|e| {
        e.fields()
            .any(|f| matches!(f.tag, exif::Tag::GPSLatitude | exif::Tag::GPSLongitude))
    });
    gps || bytes.windows(11).any(|w| w == b"GPSLatitude")
}

/// Keep locations in originals (the owner's setting), so sharing has one to remove.
async fn keep_locations(app: &TestApp, client: &Client) {
    let token = app.csrf(client, "/account").await;
    let r = app
        .post_form(
            client,
            "/account/privacy",
            &[("csrf", &token), ("keep_location", "on")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

fn ids_in(html: &str, prefix: &str) -> Vec<String> {
    html.match_indices("/thumb\"")
        .filter_map(|(end, _)| html[..end].rsplit(prefix).next().map(String::from))
        .collect()
}

async fn album_action(
    app: &TestApp,
    client: &Client,
    album: &str,
    token: &str,
    image: &str,
    action: &str,
) -> StatusCode {
    app.post_form(
        client,
        &format!("/albums/{album}/images"),
        &[("csrf", token), ("image", image), ("action", action)],
    )
    .await
    .status()
}

async fn an_album_is_made_ordered_shared_with_a_password_and_revoked(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    keep_locations(&app, &alice).await;
    app.upload(&alice, &[("eiffel.jpg", photo("exif-gps.jpg"))])
        .await;
    app.upload(&alice, &[("one.png", distinct_png(1))]).await;
    app.upload(&alice, &[("two.png", distinct_png(2))]).await;
    let ids = app.gallery_ids(&alice, "/gallery?sort=uploaded").await;
    let (two, one, eiffel) = (&ids[0], &ids[1], &ids[2]);

    // An album, its photos added from a selection (in the order they were taken, a second
    // add of the same one changes nothing), moved, a cover chosen.
    let album = make_album(&app, &alice, "Paris 2024").await;
    let to = add_to_album(&app, &alice, &album, &[eiffel, one]).await;
    assert_eq!(to, format!("/albums/{album}?added=2"));
    assert_eq!(
        add_to_album(&app, &alice, &album, &[one, two]).await,
        format!("/albums/{album}?added=1")
    );
    let page = app.page(&alice, &to).await;
    assert!(page.contains("2 photos added.") && page.contains("Paris 2024"));
    let in_album = ids_in(
        &app.page(&alice, &format!("/albums/{album}")).await,
        "/images/",
    );
    let order: Vec<&str> = in_album.iter().map(String::as_str).collect();
    assert_eq!(order, [eiffel.as_str(), one, two]);
    let token = app.csrf(&alice, &format!("/albums/{album}")).await;
    assert_eq!(
        album_action(&app, &alice, &album, &token, two, "up").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        album_action(&app, &alice, &album, &token, two, "cover").await,
        StatusCode::SEE_OTHER
    );
    let page = app.page(&alice, &format!("/albums/{album}")).await;
    let order = ids_in(&page, "/images/");
    assert_eq!(order, [eiffel.clone(), two.clone(), one.clone()]);
    let albums = app.page(&alice, "/albums").await;
    assert!(
        albums.contains(&format!("/images/{two}/thumb")),
        "the cover: {albums}"
    );
    assert!(albums.contains("3 photos"));
    assert!(app
        .page(&alice, &format!("/images/{one}"))
        .await
        .contains(&format!("<a href=\"/albums/{album}\">Paris 2024</a>")));
    // A photo can be in several albums; each lists it, and its page names both.
    let second = make_album(&app, &alice, "Best of").await;
    add_to_album(&app, &alice, &second, &[one]).await;
    let page = app.page(&alice, &format!("/images/{one}")).await;
    for (id, title) in [(&album, "Paris 2024"), (&second, "Best of")] {
        assert!(
            page.contains(&format!("<a href=\"/albums/{id}\">{title}</a>")),
            "{title}"
        );
    }
    assert_eq!(
        ids_in(
            &app.page(&alice, &format!("/albums/{second}")).await,
            "/images/"
        ),
        vec![one.clone()]
    );
    assert_eq!(
        app.data
            .count(&format!(
                "SELECT COUNT(*) FROM album_images WHERE image_id = '{one}'"
            ))
            .await,
        2
    );

    // Shared with a password, originals allowed.
    let link = share(
        &app,
        &alice,
        &format!("/albums/{album}/share"),
        &[
            ("password", "grandma-2024"),
            ("expires_days", "30"),
            ("allow_download", "1"),
        ],
    )
    .await;
    let token_hash = app
        .data
        .query_strings("SELECT token_hash FROM share_links")
        .await;
    assert_eq!(token_hash.len(), 1);
    assert!(
        !token_hash[0].contains(&link[3..]),
        "only the token's hash is stored"
    );

    // A visitor without an account: the password first, nothing shown before it.
    let visitor = browser();
    let r = visitor.get(app.url(&link)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let before = session_cookie(&r).expect("the password form's session");
    assert_eq!(r.headers()["x-robots-tag"], "noindex, nofollow, noarchive");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert!(r.headers().contains_key("content-security-policy"));
    let html = r.text().await.unwrap();
    assert!(html.contains("These photos are protected") && html.contains("noindex"));
    assert!(!html.contains("/logout") && !html.contains("Paris 2024"));
    let (status, _, _) = fetch(&visitor, &app.url(&format!("{link}/i/{one}/thumb"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "locked: no image either");
    let csrf = csrf_in(&html);
    let r = visitor
        .post(app.url(&link))
        .form(&[("password", "grandma-2024")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "the form's token is required"
    );
    let r = visitor
        .post(app.url(&link))
        .form(&[("csrf", csrf.as_str()), ("password", "grandpa")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "a wrong password is a 404"
    );
    let r = visitor
        .post(app.url(&link))
        .form(&[("csrf", csrf.as_str()), ("password", "grandma-2024")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), link);
    let after = session_cookie(&r).expect("a new session id");
    assert_ne!(
        before, after,
        "the session id changes when the password is given"
    );

    // The grid, in the album's order, and nothing else of alice's.
    let r = visitor.get(app.url(&link)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert_eq!(ids_in(&html, &format!("{link}/i/")), order);
    for absent in ["/gallery", "/albums", "/logout", "/images/", "alice"] {
        assert!(!html.contains(absent), "{absent} on the shared page");
    }
    // The viewer: previous and next in the album's order.
    let viewer = visitor
        .get(app.url(&format!("{link}/i/{two}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(viewer.contains(&format!("href=\"{link}/i/{eiffel}\" rel=\"prev\"")));
    assert!(viewer.contains(&format!("href=\"{link}/i/{one}\" rel=\"next\"")));
    assert!(viewer.contains(&format!("{link}/i/{two}/original")));

    // Every byte a visitor gets: no EXIF, no position; the original only without it.
    for id in &order {
        for what in ["thumb", "screen"] {
            let (status, headers, bytes) =
                fetch(&visitor, &app.url(&format!("{link}/i/{id}/{what}"))).await;
            assert_eq!(status, StatusCode::OK, "{what} of {id}");
            assert!(!has_metadata(&bytes), "{what} of {id} carries metadata");
            assert!(headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("image/"));
        }
    }
    let screens = app.data.objects().await;
    let screens: Vec<_> = screens.iter().filter(|k| k.contains(".screen.")).collect();
    assert_eq!(
        screens.len(),
        3,
        "made once, kept beside the thumbnails: {screens:?}"
    );
    assert_eq!(
        app.data
            .count("SELECT COUNT(*) FROM screen_renditions")
            .await,
        3
    );
    let (_, _, screen) = fetch(&visitor, &app.url(&format!("{link}/i/{eiffel}/screen"))).await;
    let screen = image::load_from_memory(&screen).unwrap();
    assert_eq!(
        (screen.width(), screen.height()),
        (640, 427),
        "small ones stay their size"
    );
    let (status, headers, original) =
        fetch(&visitor, &app.url(&format!("{link}/i/{eiffel}/original"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !has_position(&original),
        "the shared original has no position"
    );
    assert!(has_position(&photo("exif-gps.jpg")));
    assert_eq!(original.len(), photo("exif-gps.jpg").len());
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("eiffel.jpg"));
    // The owner still has it (her setting keeps it).
    let mine = alice
        .get(app.url(&format!("/images/{eiffel}/download")))
        .send()
        .await
        .unwrap();
    let mine = match mine.status() {
        StatusCode::FOUND => reqwest::get(location(&mine)).await.unwrap(),
        _ => mine,
    };
    assert_eq!(mine.bytes().await.unwrap().to_vec(), photo("exif-gps.jpg"));
    // An image of alice's not in the album is not reachable through the link.
    app.upload(&alice, &[("private.png", distinct_png(3))])
        .await;
    let private = app
        .gallery_ids(&alice, "/gallery?sort=uploaded")
        .await
        .remove(0);
    for path in ["", "/thumb", "/screen", "/original"] {
        let (status, _, _) = fetch(&visitor, &app.url(&format!("{link}/i/{private}{path}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }

    // Visits and last use, on the owner's page of links.
    let links = app.page(&alice, "/shares").await;
    assert!(links.contains("<td>Paris 2024</td>"), "{links}");
    let row = &links[links.find("<td>Paris 2024</td>").unwrap()..];
    let cells: Vec<&str> = row
        .split("<td>")
        .skip(1)
        .map(|c| c.split("</td>").next().unwrap())
        .collect();
    assert_eq!(
        cells[5], "1",
        "one visit of the grid (the image pages are not visits): {cells:?}"
    );
    assert_ne!(cells[6], "never", "its last use is shown");

    // Trashing a photo takes it out of the shared views at once.
    let token = app.csrf(&alice, "/gallery").await;
    app.post_form(
        &alice,
        &format!("/images/{one}/delete"),
        &[("csrf", &token)],
    )
    .await;
    let html = visitor
        .get(app.url(&link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        ids_in(&html, &format!("{link}/i/")),
        [eiffel.clone(), two.clone()]
    );
    let (status, _, _) = fetch(&visitor, &app.url(&format!("{link}/i/{one}/screen"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Revoked (the form's token required): the link and every image behind it are gone.
    let link_id = app
        .data
        .query_strings("SELECT id FROM share_links")
        .await
        .remove(0);
    let r = app
        .post_form(&alice, &format!("/shares/{link_id}/revoke"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let token = app.csrf(&alice, "/shares").await;
    let r = app
        .post_form(
            &alice,
            &format!("/shares/{link_id}/revoke"),
            &[("csrf", &token), ("back", &format!("/albums/{album}"))],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/albums/{album}"));
    for path in [
        String::new(),
        format!("/i/{two}"),
        format!("/i/{two}/thumb"),
    ] {
        let (status, _, _) = fetch(&visitor, &app.url(&format!("{link}{path}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} after revocation");
    }
    let revoked = app.get(&visitor, &link).await.text().await.unwrap();
    let unknown = app
        .get(&browser(), &format!("/s/{}", "C".repeat(43)))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        revoked, unknown,
        "a revoked link is the same 404 as an unknown one"
    );
    assert!(app.page(&alice, "/shares").await.contains("revoked"));

    // Deleting the album keeps its photos.
    let token = app.csrf(&alice, "/albums").await;
    let r = app
        .post_form(
            &alice,
            &format!("/albums/{album}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(location(&r), "/albums");
    assert_eq!(app.gallery_ids(&alice, "/gallery").await.len(), 3);
    assert_eq!(app.data.count("SELECT COUNT(*) FROM share_links").await, 0);
}

async fn every_link_that_does_not_work_answers_the_same_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(&alice, &[("one.png", distinct_png(1))]).await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);

    // One image, no download of the original, no password.
    let link = share(&app, &alice, &format!("/images/{id}/share"), &[]).await;
    let visitor = browser();
    let page = app.page(&visitor, &link).await;
    assert!(page.contains(&format!("{link}/i/{id}/screen")));
    assert!(!page.contains("/original"), "no download offered");
    let (status, _, _) = fetch(&visitor, &app.url(&format!("{link}/i/{id}/original"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "download not allowed");
    let (status, _, bytes) = fetch(&visitor, &app.url(&format!("{link}/i/{id}/screen"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!has_metadata(&bytes));

    // Bad settings are refused with what is wrong, and no link is made.
    let token = app.csrf(&alice, "/gallery").await;
    for (days, why) in [("0", "from 1 to 3650"), ("soon", "not a number")] {
        let r = app
            .post_form(
                &alice,
                &format!("/images/{id}/share"),
                &[("csrf", &token), ("expires_days", days)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains(why));
    }
    let r = app
        .post_form(&alice, &format!("/images/{id}/share"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "CSRF");
    assert_eq!(app.data.count("SELECT COUNT(*) FROM share_links").await, 1);

    // The 404 of a made-up token, the model for all the others.
    let unknown = format!("/s/{}", "A".repeat(43));
    let r = visitor.get(app.url(&unknown)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let model = r.text().await.unwrap();
    let same = |html: String, what: &str| assert_eq!(html, model, "{what}: not the same 404");
    same(
        visitor
            .get(app.url("/s/short"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "malformed",
    );

    // Expired.
    let expired = share(
        &app,
        &alice,
        &format!("/images/{id}/share"),
        &[("expires_days", "1")],
    )
    .await;
    assert_eq!(app.get(&visitor, &expired).await.status(), StatusCode::OK);
    app.data
        .execute("UPDATE share_links SET expires_at = 1000 WHERE expires_at IS NOT NULL")
        .await;
    let r = app.get(&visitor, &expired).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    same(r.text().await.unwrap(), "expired");
    assert!(app.page(&alice, "/shares").await.contains("expired"));

    // A wrong password (and a password for a link that has none: the same).
    let locked = share(
        &app,
        &alice,
        &format!("/images/{id}/share"),
        &[("password", "secret")],
    )
    .await;
    let csrf = csrf_in(&app.page(&visitor, &locked).await);
    for (path, what) in [(&locked, "wrong password"), (&unknown, "unknown, posted")] {
        let r = visitor
            .post(app.url(path))
            .form(&[("csrf", csrf.as_str()), ("password", "guess")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{what}");
        same(r.text().await.unwrap(), what);
    }

    // A large photo is shown at 1600 pixels at most, turned upright, and its rendition
    // goes when the photo is deleted for good.
    app.upload(&alice, &[("big.jpg", photo("large-12mp-exif-rot6.jpg"))])
        .await;
    let big = app
        .gallery_ids(&alice, "/gallery?sort=uploaded")
        .await
        .remove(0);
    let big_link = share(&app, &alice, &format!("/images/{big}/share"), &[]).await;
    let (status, _, bytes) = fetch(&visitor, &app.url(&format!("{big_link}/i/{big}/screen"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!has_metadata(&bytes));
    let shown = image::load_from_memory(&bytes).unwrap();
    assert_eq!((shown.width(), shown.height()), (1200, 1600));
    assert!(app
        .page(&visitor, &big_link)
        .await
        .contains("width=\"1200\" height=\"1600\""));
    let token = app.csrf(&alice, "/gallery").await;
    for action in ["delete", "purge"] {
        let r = app
            .post_form(
                &alice,
                &format!("/images/{big}/{action}"),
                &[("csrf", &token)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{action}");
    }
    let objects = app.data.objects().await;
    assert!(
        !objects.iter().any(|k| k.contains(&big)),
        "every object of the photo deleted for good: {objects:?}"
    );
    assert!(
        objects.iter().any(|k| k.contains(".screen.")),
        "the other photo's stays"
    );

    // Trashed image.
    app.post_form(&alice, &format!("/images/{id}/delete"), &[("csrf", &token)])
        .await;
    let r = app.get(&visitor, &link).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    same(r.text().await.unwrap(), "image in the trash");
    // ...and one that cannot be shared while it is there.
    let r = app
        .post_form(&alice, &format!("/images/{id}/share"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn another_users_albums_images_and_links_are_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.upload(&alice, &[("a.png", distinct_png(1))]).await;
    app.upload(&bob, &[("b.png", distinct_png(2))]).await;
    let a_img = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let b_img = app.gallery_ids(&bob, "/gallery").await.remove(0);
    let a_album = make_album(&app, &alice, "Alice's").await;
    add_to_album(&app, &alice, &a_album, &[&a_img]).await;
    share(&app, &alice, &format!("/albums/{a_album}/share"), &[]).await;
    let a_link = app
        .data
        .query_strings("SELECT id FROM share_links")
        .await
        .remove(0);
    let b_album = make_album(&app, &bob, "Bob's").await;

    assert_eq!(
        app.get(&bob, &format!("/albums/{a_album}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!app.page(&bob, "/albums").await.contains("Alice's"));
    assert!(!app.page(&bob, "/shares").await.contains("Alice's"));
    let token = app.csrf(&bob, "/albums").await;
    for (path, form) in [
        (format!("/albums/{a_album}"), vec![("title", "mine now")]),
        (format!("/albums/{a_album}/delete"), vec![]),
        (
            format!("/albums/{a_album}/images"),
            vec![("image", a_img.as_str()), ("action", "remove")],
        ),
        (format!("/albums/{a_album}/share"), vec![]),
        (format!("/images/{a_img}/share"), vec![]),
        (format!("/shares/{a_link}/revoke"), vec![]),
    ] {
        let mut form = form;
        form.push(("csrf", &token));
        let r = app.post_form(&bob, &path, &form).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Adding: alice's image to bob's album, or bob's image to alice's album.
    let gallery_token = app.csrf(&bob, "/gallery").await;
    for (album, image) in [(&b_album, &a_img), (&a_album, &b_img)] {
        let r = app
            .post_form(
                &bob,
                "/images/bulk",
                &[
                    ("csrf", &gallery_token),
                    ("action", "album"),
                    ("album", album),
                    ("ids", image),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{album} {image}");
    }
    // Bob's own image in his own album: fine; cover or move of an image not in it: 404.
    add_to_album(&app, &bob, &b_album, &[&b_img]).await;
    let r = app
        .post_form(
            &bob,
            &format!("/albums/{b_album}/images"),
            &[("csrf", &token), ("image", &a_img), ("action", "cover")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Nothing of alice's changed.
    assert_eq!(
        app.data
            .query_strings("SELECT title FROM albums ORDER BY title")
            .await,
        ["Alice's", "Bob's"]
    );
    assert_eq!(app.data.count("SELECT COUNT(*) FROM album_images").await, 2);
    assert_eq!(
        app.data
            .count("SELECT COUNT(*) FROM share_links WHERE revoked_at IS NULL")
            .await,
        1
    );
    // Bob takes his photo out of his album from its page, and is back there.
    let r = app
        .post_form(
            &bob,
            &format!("/albums/{b_album}/images"),
            &[
                ("csrf", &token),
                ("image", &b_img),
                ("action", "remove"),
                ("back", &format!("/images/{b_img}")),
            ],
        )
        .await;
    assert_eq!(location(&r), format!("/images/{b_img}"));
    assert_eq!(app.data.count("SELECT COUNT(*) FROM album_images").await, 1);
    assert_eq!(app.gallery_ids(&bob, "/gallery").await, vec![b_img.clone()]);
    // Every form of the album pages needs its token.
    for path in [
        "/albums".to_string(),
        format!("/albums/{b_album}"),
        format!("/albums/{b_album}/delete"),
        format!("/albums/{b_album}/images"),
        format!("/albums/{b_album}/share"),
    ] {
        let r = app.post_form(&bob, &path, &[("title", "x")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} without a token");
    }
    let r = app
        .post_form(&bob, "/albums", &[("csrf", &token), ("title", "  ")])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("an album needs a title"));
}

async fn guessing_links_is_throttled_per_client(b: Backend) {
    let app = TestApp::spawn_with(b, &["--login-max-failures", "2"]).await;
    // Two failures allowed per login: four times as many for links (one office, one
    // address), then the client is refused before anything is looked up.
    let guesser = browser();
    for n in 0..8 {
        let r = app
            .get(&guesser, &format!("/s/{:A>43}", n.to_string()))
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "guess {n}");
    }
    let r = app.get(&guesser, &format!("/s/{}", "B".repeat(43))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
}

/// Password attempts are counted before they are checked (a burst sent at once gets no
/// more tries than one after another), per client and per link.
async fn password_guesses_are_limited_per_client_and_per_link(b: Backend) {
    let app = TestApp::spawn_with(b, &["--login-max-failures", "1", "--behind-proxy"]).await;
    let alice = app.user("alice").await;
    app.upload(&alice, &[("one.png", distinct_png(1))]).await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let link = share(
        &app,
        &alice,
        &format!("/images/{id}/share"),
        &[("password", "right")],
    )
    .await;
    let other = share(
        &app,
        &alice,
        &format!("/images/{id}/share"),
        &[("password", "right")],
    )
    .await;
    let attempt = |from: String, path: String, password: &'static str| {
        let app = &app;
        async move {
            let c = browser();
            let csrf = csrf_in(&app.page(&c, &path).await);
            c.post(app.url(&path))
                .header("x-forwarded-for", from)
                .form(&[("csrf", csrf.as_str()), ("password", password)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Ten wrong guesses at once from one address: at most four are checked (4 x 1), the
    // rest 429. (Fewer when two attempts each pass one counter and fail the other: both
    // are refused; never more.)
    let burst = futures_util::future::join_all(
        (0..10).map(|_| attempt("198.51.100.7".into(), link.clone(), "wrong")),
    )
    .await;
    let checked = burst
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    let refused = burst
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!((1..=4).contains(&checked), "{burst:?}");
    assert_eq!(checked + refused, 10, "{burst:?}");
    // The link's own limit, ten addresses' worth (one address can't lock it for its
    // family): wrong guesses from other addresses, one after another, are checked until
    // the link has had forty; then it is refused from anywhere, even with the password.
    let mut on_link = checked;
    for n in 0..60 {
        match attempt(format!("203.0.113.{n}"), link.clone(), "wrong").await {
            StatusCode::NOT_FOUND => on_link += 1,
            StatusCode::TOO_MANY_REQUESTS => break,
            other => panic!("a wrong guess answered {other}"),
        }
    }
    assert_eq!(on_link, 40, "forty tries on the link, from anywhere");
    assert_eq!(
        attempt("192.0.2.1".into(), link.clone(), "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The first address's own limit, on a third link: four tries in all, then refused on
    // any link, even with the right password.
    let third = share(
        &app,
        &alice,
        &format!("/images/{id}/share"),
        &[("password", "right")],
    )
    .await;
    let mut from_client = checked;
    for _ in 0..10 {
        match attempt("198.51.100.7".into(), third.clone(), "wrong").await {
            StatusCode::NOT_FOUND => from_client += 1,
            StatusCode::TOO_MANY_REQUESTS => break,
            other => panic!("a wrong guess answered {other}"),
        }
    }
    assert_eq!(from_client, 4, "four tries from one address");
    assert_eq!(
        attempt("198.51.100.7".into(), other.clone(), "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another address opens the other link with its password.
    assert_eq!(
        attempt("192.0.2.1".into(), other.clone(), "right").await,
        StatusCode::SEE_OTHER
    );
}

/// A wrong password for a real link and any password for a made-up one take similar time:
/// both cost one argon2 verification (a dummy one for the made-up link).
async fn a_wrong_password_and_an_unknown_link_take_similar_time(b: Backend) {
    use std::time::{Duration, Instant};

    let app = TestApp::spawn_with(b, &["--login-max-failures", "100"]).await;
    let alice = app.user("alice").await;
    app.upload(&alice, &[("one.png", distinct_png(1))]).await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let real = share(
        &app,
        &alice,
        &format!("/images/{id}/share"),
        &[("password", "right")],
    )
    .await;
    let unknown = format!("/s/{}", "D".repeat(43));
    let visitor = browser();
    let csrf = csrf_in(&app.page(&visitor, &real).await);
    let attempt = |path: String| {
        let (visitor, app, csrf) = (&visitor, &app, csrf.clone());
        async move {
            let started = Instant::now();
            let r = visitor
                .post(app.url(&path))
                .form(&[("csrf", csrf.as_str()), ("password", "wrong")])
                .send()
                .await
                .unwrap();
            let status = r.status();
            r.text().await.unwrap();
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            started.elapsed()
        }
    };
    for _ in 0..2 {
        attempt(real.clone()).await;
        attempt(unknown.clone()).await;
    }
    let (mut wrong, mut made_up) = (Vec::new(), Vec::new());
    for i in 0..10 {
        if i % 2 == 0 {
            wrong.push(attempt(real.clone()).await);
            made_up.push(attempt(unknown.clone()).await);
        } else {
            made_up.push(attempt(unknown.clone()).await);
            wrong.push(attempt(real.clone()).await);
        }
    }
    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
    }
    let (w, u) = (median(wrong.clone()), median(made_up.clone()));
    let ratio = w.as_secs_f64().max(u.as_secs_f64()) / w.as_secs_f64().min(u.as_secs_f64());
    assert!(
        ratio < 2.0,
        "median wrong password {w:?} vs unknown link {u:?} (ratio {ratio:.2}); \
         all: {wrong:?} vs {made_up:?}"
    );
}

async fn an_admin_turns_sharing_off_and_every_link_stops(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(&alice, &[("one.png", distinct_png(1))]).await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let link = share(&app, &alice, &format!("/images/{id}/share"), &[]).await;
    let visitor = browser();
    assert_eq!(app.get(&visitor, &link).await.status(), StatusCode::OK);

    let admin = app.admin().await;
    let users = app.page(&admin, "/admin").await;
    assert!(users.contains("<th>Share links</th>"));
    let alice_id = app
        .data
        .query_strings("SELECT CAST(id AS TEXT) FROM users WHERE username = 'alice'")
        .await
        .remove(0);
    let edit = format!("/admin/users/{alice_id}/edit");
    let form = app.page(&admin, &edit).await;
    assert!(form.contains("name=\"sharing\" checked"), "{form}");
    let token = csrf_in(&form);
    // Saved with the box unticked: sharing off.
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{alice_id}"),
            &[("csrf", &token), ("full_name", "Alice")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.page(&admin, "/admin").await.contains("(sharing off)"));
    assert_eq!(
        app.get(&visitor, &link).await.status(),
        StatusCode::NOT_FOUND
    );
    let token = app.csrf(&alice, "/gallery").await;
    let r = app
        .post_form(&alice, &format!("/images/{id}/share"), &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no new links either");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("turned sharing off for your account"));
    assert!(app
        .page(
            &alice,
            &format!("/albums/{}", make_album(&app, &alice, "x").await)
        )
        .await
        .contains("turned sharing off"));
    assert!(!app
        .page(&alice, &format!("/images/{id}"))
        .await
        .contains("Share this photo"));
    // Turned on again, the link (not revoked) opens again.
    let token = csrf_in(&app.page(&admin, &edit).await);
    app.post_form(
        &admin,
        &format!("/admin/users/{alice_id}"),
        &[("csrf", &token), ("full_name", "Alice"), ("sharing", "on")],
    )
    .await;
    assert_eq!(app.get(&visitor, &link).await.status(), StatusCode::OK);
}

/// `page` of `base` as `client` sees it once it shows `wanted` (true) or stops showing it
/// (false), within the cache's second; panics with the last page otherwise.
async fn within_a_second(base: &str, client: &Client, page: &str, text: &str, wanted: bool) {
    let mut html = String::new();
    for _ in 0..15 {
        html = client
            .get(format!("{base}{page}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if html.contains(text) == wanted {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{page} on {base}: {text:?} shown = {}: {html}", !wanted);
}

/// The photo page's albums and share form come from the cache on a read: a change made
/// on another instance shows there within the cache's second (the change feed's triggers
/// on albums and album_images, and the user row for sharing).
async fn album_and_sharing_changes_on_one_instance_show_on_the_others_photo_page(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(&alice, &[("one.png", distinct_png(1))]).await;
    let id = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let album = make_album(&app, &alice, "Before").await;
    // Alice reads her photo on a second instance, past the sync cookie of her login, so
    // that instance answers from its cache.
    let other = TestApp::start_on(&app.data, &[]).await;
    let reader = browser();
    login(&other, &reader, "alice", PASSWORD).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let photo = format!("/images/{id}");
    within_a_second(&other, &reader, &photo, "Share this photo", true).await;
    within_a_second(&other, &reader, &photo, "Albums with this photo", false).await;

    add_to_album(&app, &alice, &album, &[&id]).await;
    within_a_second(&other, &reader, &photo, ">Before</a>", true).await;
    let token = app.csrf(&alice, &format!("/albums/{album}")).await;
    let r = app
        .post_form(
            &alice,
            &format!("/albums/{album}"),
            &[("csrf", &token), ("title", "After"), ("description", "")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    within_a_second(&other, &reader, &photo, ">After</a>", true).await;
    assert_eq!(
        album_action(&app, &alice, &album, &token, &id, "remove").await,
        StatusCode::SEE_OTHER
    );
    within_a_second(&other, &reader, &photo, "Albums with this photo", false).await;
    add_to_album(&app, &alice, &album, &[&id]).await;
    within_a_second(&other, &reader, &photo, ">After</a>", true).await;
    let r = app
        .post_form(
            &alice,
            &format!("/albums/{album}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    within_a_second(&other, &reader, &photo, "Albums with this photo", false).await;

    // An admin turns her sharing off on the first instance: the form goes on the second.
    let admin = app.admin().await;
    let alice_id = app
        .data
        .query_strings("SELECT CAST(id AS TEXT) FROM users WHERE username = 'alice'")
        .await
        .remove(0);
    let token = csrf_in(
        &app.page(&admin, &format!("/admin/users/{alice_id}/edit"))
            .await,
    );
    app.post_form(
        &admin,
        &format!("/admin/users/{alice_id}"),
        &[("csrf", &token), ("full_name", "Alice")],
    )
    .await;
    within_a_second(&other, &reader, &photo, "Share this photo", false).await;
}

both_backends!(
    album_and_sharing_changes_on_one_instance_show_on_the_others_photo_page,
    an_album_is_made_ordered_shared_with_a_password_and_revoked,
    every_link_that_does_not_work_answers_the_same_404,
    another_users_albums_images_and_links_are_404,
    guessing_links_is_throttled_per_client,
    password_guesses_are_limited_per_client_and_per_link,
    a_wrong_password_and_an_unknown_link_take_similar_time,
    an_admin_turns_sharing_off_and_every_link_stops,
);
