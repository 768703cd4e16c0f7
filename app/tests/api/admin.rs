//! The admin pages: list, add, modify, delete users; the last-admin rules.

use reqwest::StatusCode;

use crate::helpers::*;

async fn user_id(app: &TestApp, username: &str) -> i64 {
    app.data
        .count(&format!(
            "SELECT id FROM users WHERE username = '{username}'"
        ))
        .await
}

async fn non_admins_get_403_on_every_admin_page(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let id = user_id(&app, "alice").await;
    for path in [
        "/admin",
        "/admin/users/new",
        &format!("/admin/users/{id}/edit"),
        &format!("/admin/users/{id}/delete"),
    ] {
        assert_eq!(
            app.get(&alice, path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let token = app.csrf(&alice, "/").await;
    let r = app
        .post_form(
            &alice,
            "/admin/users",
            &[
                ("csrf", &token),
                ("username", "evil"),
                ("password", "password123"),
                ("full_name", "E"),
                ("admin", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .post_form(
            &alice,
            &format!("/admin/users/{id}"),
            &[("csrf", &token), ("full_name", "Alice"), ("admin", "on")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.data
            .count("SELECT COUNT(*) FROM users WHERE is_admin")
            .await,
        1
    );
}

async fn admin_page_lists_users_with_name_role_and_image_count(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    app.upload(
        &alice,
        &[
            ("a.jpg", photo("rocket.jpg")),
            ("b.webp", photo("rocket.webp")),
        ],
    )
    .await;
    let admin = app.admin().await;
    let html = app.page(&admin, "/admin").await;
    let row = html
        .split("<tr>")
        .find(|r| r.contains("<td>alice</td>"))
        .expect("alice's row");
    assert!(
        row.contains("<td>alice Full</td>")
            && row.contains("<td>no</td>")
            && row.contains("<td>2</td>"),
        "{row}"
    );
    let row = html
        .split("<tr>")
        .find(|r| r.contains("<td>admin</td>"))
        .expect("admin's row");
    assert!(
        row.contains("<td>yes</td>") && row.contains("<td>0</td>"),
        "{row}"
    );
}

async fn admin_adds_users_and_bad_input_is_explained(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin().await;
    let form = app.page(&admin, "/admin/users/new").await;
    for field in [
        "name=\"username\"",
        "name=\"password\"",
        "name=\"full_name\"",
        "name=\"admin\"",
    ] {
        assert!(form.contains(field), "{field}");
    }
    assert_eq!(
        app.create_user(&admin, "bob", PASSWORD, "Bob Builder", true)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let bob = app.client();
    assert_eq!(
        login(&app.base, &bob, "bob", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.get(&bob, "/admin").await.status(),
        StatusCode::OK,
        "bob is an admin"
    );

    let r = app
        .create_user(&admin, "bob", PASSWORD, "Other Bob", false)
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("already taken"));
    let r = app
        .create_user(&admin, "../etc", PASSWORD, "X", false)
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Username may contain only"));
    let r = app.create_user(&admin, "shorty", "short", "X", false).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("at least 8"));
    assert_eq!(app.data.count("SELECT COUNT(*) FROM users").await, 2);
    // Passwords are stored as argon2id hashes, never in clear.
    for hash in app
        .data
        .query_strings("SELECT password_hash FROM users")
        .await
    {
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(PASSWORD));
    }
}

async fn admin_modifies_name_role_and_optionally_password(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let id = user_id(&app, "alice").await;
    let admin = app.admin().await;
    let form = app.page(&admin, &format!("/admin/users/{id}/edit")).await;
    assert!(form.contains("value=\"alice Full\""));
    let token = csrf_in(&form);

    // Name and role, password untouched: alice's session survives.
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}"),
            &[
                ("csrf", &token),
                ("full_name", "Alice Liddell"),
                ("password", ""),
                ("admin", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.page(&alice, "/").await.contains("Hello, Alice Liddell"));
    assert_eq!(app.get(&alice, "/admin").await.status(), StatusCode::OK);

    // A new password logs her out everywhere and replaces the old one.
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}"),
            &[
                ("csrf", &token),
                ("full_name", "Alice Liddell"),
                ("password", "brand-new-pass"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&alice, "/").await.status(),
        StatusCode::SEE_OTHER,
        "old session ended"
    );
    let c = app.client();
    assert_eq!(
        login(&app.base, &c, "alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app.base, &c, "alice", "brand-new-pass")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.get(&c, "/admin").await.status(),
        StatusCode::FORBIDDEN,
        "admin flag was removed"
    );

    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}"),
            &[("csrf", &token), ("full_name", "  ")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.post_form(
            &admin,
            "/admin/users/99999",
            &[("csrf", &token), ("full_name", "X")]
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
}

async fn deleting_a_user_asks_first_and_removes_their_images(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.upload(
        &alice,
        &[
            ("a.jpg", photo("rocket.jpg")),
            ("b.png", photo("camera.png")),
        ],
    )
    .await;
    app.upload(&bob, &[("c.jpg", photo("rocket.jpg"))]).await;
    assert_eq!(app.data.objects().await.len(), 6);
    let id = user_id(&app, "alice").await;
    let admin = app.admin().await;

    let confirm = app.page(&admin, &format!("/admin/users/{id}/delete")).await;
    assert!(confirm.contains("Delete alice?") && confirm.contains("all 2 of their images"));
    let token = csrf_in(&confirm);
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let left = app.data.objects().await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|k| k.starts_with("bob/")), "{left:?}");
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 1);
    assert_eq!(
        app.data
            .count("SELECT COUNT(*) FROM users WHERE username = 'alice'")
            .await,
        0
    );
    assert_eq!(
        app.get(&alice, "/").await.status(),
        StatusCode::SEE_OTHER,
        "her session is over"
    );
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn the_last_admin_cannot_delete_or_demote_themselves(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin().await;
    let id = user_id(&app, "admin").await;
    let token = app.csrf(&admin, "/admin").await;
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("last administrator"));
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}"),
            &[("csrf", &token), ("full_name", "Admin")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        app.data
            .count("SELECT COUNT(*) FROM users WHERE is_admin")
            .await,
        1
    );

    // With a second admin, stepping down is fine.
    assert_eq!(
        app.create_user(&admin, "second", PASSWORD, "Second", true)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let r = app
        .post_form(
            &admin,
            &format!("/admin/users/{id}"),
            &[("csrf", &token), ("full_name", "Former Admin")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&admin, "/admin").await.status(),
        StatusCode::FORBIDDEN
    );
}

/// Decode the character references Askama emits, to check a payload is shown as text.
fn unescape(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').filter(|&end| end <= 8).and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Claim 6 (G3): a full name and file names built to break out of text and of attributes
/// are shown, escaped, on every page that displays them; usernames refuse HTML characters.
async fn hostile_names_are_escaped_on_every_page(b: Backend) {
    const NAME: &str = "\"><script>alert(1)</script>";
    const QUOTE_FILE: &str = "x\" onerror=\"alert(1).jpg";
    const TAG_FILE: &str = "<img src=x onerror=alert(1)>.jpg";
    // Fragments that would be live markup if they reached a page unescaped.
    const RAW: [&str; 6] = [
        NAME,
        QUOTE_FILE,
        TAG_FILE,
        "<script>alert(1)",
        "onerror=\"alert(1)",
        "<img src=x onerror",
    ];

    let app = TestApp::spawn(b).await;
    let admin = app.admin().await;
    assert_eq!(
        app.create_user(&admin, "mallory", PASSWORD, NAME, false)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.data
            .query_strings("SELECT full_name FROM users WHERE username = 'mallory'")
            .await,
        vec![NAME.to_string()],
        "the payload is stored as it was typed"
    );
    let id = user_id(&app, "mallory").await;
    let m = app.client();
    assert_eq!(
        login(&app.base, &m, "mallory", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    for (i, file) in [QUOTE_FILE, TAG_FILE].into_iter().enumerate() {
        assert_eq!(
            app.upload(&m, &[(file, distinct_png(i as u32))])
                .await
                .status(),
            StatusCode::SEE_OTHER,
            "{file} is an acceptable display name"
        );
    }
    let mut stored = app
        .data
        .query_strings("SELECT original_name FROM images")
        .await;
    stored.sort();
    assert_eq!(
        stored,
        [TAG_FILE, QUOTE_FILE],
        "file names stored byte for byte"
    );
    let images = app.gallery_ids(&m, "/gallery").await;
    assert_eq!(images.len(), 2);

    let mut pages: Vec<(String, String, Vec<&str>)> = vec![
        ("/".into(), app.page(&m, "/").await, vec![NAME]),
        (
            "/gallery".into(),
            app.page(&m, "/gallery").await,
            vec![NAME, QUOTE_FILE, TAG_FILE],
        ),
        (
            "/admin".into(),
            app.page(&admin, "/admin").await,
            vec![NAME],
        ),
    ];
    for image in &images {
        let path = format!("/images/{image}");
        let html = app.page(&m, &path).await;
        let file = if unescape(&html).contains(QUOTE_FILE) {
            QUOTE_FILE
        } else {
            TAG_FILE
        };
        pages.push((path, html, vec![NAME, file]));
    }
    for path in [
        format!("/admin/users/{id}/edit"),
        format!("/admin/users/{id}/delete"),
    ] {
        let html = app.page(&admin, &path).await;
        pages.push((path, html, vec![NAME]));
    }
    // A failed login echoes the username into the form's value attribute.
    let r = login(&app.base, &app.client(), NAME, "wrong-password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    pages.push((
        "/login (failed)".into(),
        r.text().await.unwrap(),
        vec![NAME],
    ));

    for (path, html, shown) in &pages {
        for raw in RAW {
            assert!(
                !html.contains(raw),
                "{path}: raw `{raw}` in the page:\n{html}"
            );
        }
        let text = unescape(html);
        for payload in shown {
            assert!(
                text.contains(payload),
                "{path}: `{payload}` is not displayed (escaped) at all:\n{html}"
            );
        }
    }
    // The attribute contexts specifically: the edit form's value and the grid's title/alt.
    let edit = &pages.iter().find(|p| p.0.ends_with("/edit")).unwrap().1;
    let value = edit
        .split("name=\"full_name\" value=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .expect("full_name value attribute");
    assert_eq!(
        unescape(value),
        NAME,
        "the whole name stays inside value=\"…\""
    );
    let grid = &pages[1].1;
    for attr in ["title=\"", "alt=\""] {
        let mut values: Vec<String> = grid
            .split(attr)
            .skip(1)
            .map(|v| unescape(v.split('"').next().unwrap()))
            .collect();
        values.sort();
        assert_eq!(values, [TAG_FILE, QUOTE_FILE], "{attr}…\" in the grid");
    }

    // Usernames with HTML characters are refused outright.
    for bad in [
        "<script>",
        "<b>x",
        "a\"b",
        "x>y",
        "\"><script>alert(1)</script>",
    ] {
        let r = app.create_user(&admin, bad, PASSWORD, "X", false).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let body = r.text().await.unwrap();
        assert!(body.contains("Username may contain only"), "{bad}: {body}");
        assert!(!body.contains(bad), "{bad} echoed raw: {body}");
    }
    assert_eq!(app.data.count("SELECT COUNT(*) FROM users").await, 2);
}

both_backends!(
    non_admins_get_403_on_every_admin_page,
    admin_page_lists_users_with_name_role_and_image_count,
    admin_adds_users_and_bad_input_is_explained,
    admin_modifies_name_role_and_optionally_password,
    deleting_a_user_asks_first_and_removes_their_images,
    the_last_admin_cannot_delete_or_demote_themselves,
    hostile_names_are_escaped_on_every_page,
);
