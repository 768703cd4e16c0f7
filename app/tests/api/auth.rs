//! Login, logout, sessions, CSRF and throttling.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

async fn every_private_page_redirects_to_login(b: Backend) {
    let app = TestApp::spawn(b).await;
    let c = app.client();
    for path in [
        "/",
        "/gallery",
        "/upload",
        "/admin",
        "/admin/users/new",
        "/images/abc",
        "/images/abc/thumb",
    ] {
        let r = app.get(&c, path).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
        assert_eq!(location(&r), format!("/login?next={next}"), "{path}");
    }
    for path in ["/login", "/healthz", "/readyz", "/static/app.css"] {
        assert_eq!(app.get(&c, path).await.status(), StatusCode::OK, "{path}");
    }
}

async fn wrong_password_and_unknown_user_get_the_same_401(b: Backend) {
    let app = TestApp::spawn(b).await;
    let c = app.client();
    let wrong = login(&app.base, &c, "admin", "not-the-password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = wrong.text().await.unwrap();
    let unknown = login(&app.base, &c, "nobody", "not-the-password").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = unknown.text().await.unwrap();
    assert!(wrong.contains("Invalid username or password."));
    assert!(unknown.contains("Invalid username or password."));
    // Still logged out.
    assert_eq!(app.get(&c, "/").await.status(), StatusCode::SEE_OTHER);
}

async fn login_goes_where_the_user_was_headed_on_this_site_only(b: Backend) {
    let app = TestApp::spawn(b).await;
    let c = app.client();
    let html = app.page(&c, "/login?next=%2Fupload").await;
    assert!(html.contains("name=\"next\" value=\"/upload\""));
    let token = csrf_in(&html);
    let r = app
        .post_form(
            &c,
            "/login",
            &[
                ("csrf", &token),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("next", "/upload"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/upload");

    for evil in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let c = app.client();
        let token = app.csrf(&c, "/login").await;
        let r = app
            .post_form(
                &c,
                "/login",
                &[
                    ("csrf", &token),
                    ("username", "admin"),
                    ("password", ADMIN_PASSWORD),
                    ("next", evil),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/", "next={evil}");
    }
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.strip_prefix("gallery_session=")
            .map(|rest| rest.split(';').next().unwrap_or_default().to_string())
    })
}

async fn session_id_is_rotated_at_login_and_fixation_fails(b: Backend) {
    let app = TestApp::spawn(b).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // An attacker obtains a pre-login session id...
    let r = plain.get(app.url("/login")).send().await.unwrap();
    let planted = session_cookie(&r).expect("login page sets a session cookie");
    let token = csrf_in(&r.text().await.unwrap());
    // ...the victim logs in with it...
    let r = plain
        .post(app.url("/login"))
        .header("cookie", format!("gallery_session={planted}"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let fresh = session_cookie(&r).expect("login sets a new session cookie");
    assert_ne!(fresh, planted, "the session id must change at login");
    // ...and the planted id is worth nothing.
    let r = plain
        .get(app.url("/"))
        .header("cookie", format!("gallery_session={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = plain
        .get(app.url("/"))
        .header("cookie", format!("gallery_session={fresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn logout_destroys_the_session_on_the_server(b: Backend) {
    let app = TestApp::spawn(b).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain.get(app.url("/login")).send().await.unwrap();
    let first = session_cookie(&r).unwrap();
    let token = csrf_in(&r.text().await.unwrap());
    let r = plain
        .post(app.url("/login"))
        .header("cookie", format!("gallery_session={first}"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let cookie = format!("gallery_session={}", session_cookie(&r).unwrap());
    let home = plain
        .get(app.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let token = csrf_in(&home.text().await.unwrap());
    assert_eq!(app.data.count("SELECT COUNT(*) FROM sessions").await, 1);

    let r = plain
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
    // The browser drops its cached (private, long-lived) images of this user.
    assert_eq!(r.headers()["clear-site-data"], "\"cache\"");
    // Replaying the old cookie (as a thief would) no longer works: the record is gone.
    let r = plain
        .get(app.url("/gallery"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.data.count("SELECT COUNT(*) FROM sessions").await, 0);
}

async fn state_changes_without_csrf_token_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin().await;
    let r = app.post_form(&admin, "/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .post_form(&admin, "/logout", &[("csrf", "forged")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&admin, "/").await.status(),
        StatusCode::OK,
        "still logged in"
    );

    let r = app
        .post_form(
            &admin,
            "/admin/users",
            &[
                ("username", "eve"),
                ("password", "password123"),
                ("full_name", "Eve"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.data.count("SELECT COUNT(*) FROM users").await, 1);

    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(photo("rocket.jpg")).file_name("rocket.jpg"),
    );
    let r = admin
        .post(app.url("/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.data.objects().await.is_empty());

    // Login too: a cross-site form can't log a victim into the attacker's account.
    let fresh = app.client();
    let r = app
        .post_form(
            &fresh,
            "/login",
            &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// The 3 POST routes `state_changes_without_csrf_token_are_refused` does not cover: each
/// refuses a missing token, forged tokens, and valid tokens of other sessions (of the same
/// user and of another user), and nothing changes.
async fn image_and_user_changes_refuse_missing_forged_and_foreign_csrf_tokens(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    assert_eq!(
        app.upload(&alice, &[("keep.jpg", photo("rocket.jpg"))])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let image = app.gallery_ids(&alice, "/gallery").await.remove(0);
    let objects = app.data.objects().await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    let alice_id = app
        .data
        .count("SELECT id FROM users WHERE username = 'alice'")
        .await;
    let admin = app.admin().await;
    // Other sessions, each with a token that is valid for that session only.
    let alice_elsewhere = app.client();
    assert_eq!(
        login(&app.base, &alice_elsewhere, "alice", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let admin_elsewhere = app.admin().await;
    let alice_other_token = app.csrf(&alice_elsewhere, "/gallery").await;
    let admin_other_token = app.csrf(&admin_elsewhere, "/admin").await;
    let alice_token = app.csrf(&alice, "/gallery").await;
    let admin_token = app.csrf(&admin, "/admin").await;
    assert_ne!(alice_token, alice_other_token, "tokens are per session");
    assert_ne!(admin_token, admin_other_token, "tokens are per session");
    // Same shape as a real token (32 random bytes, base64url), but not issued to anyone.
    let well_formed_forgery = "A".repeat(admin_token.len());

    let unchanged = |what: String| {
        let app = &app;
        let image = image.clone();
        let objects = objects.clone();
        async move {
            assert_eq!(
                app.data
                    .count(&format!(
                        "SELECT COUNT(*) FROM images WHERE id = '{image}' AND trashed_at IS NULL"
                    ))
                    .await,
                1,
                "{what}: the image is still in the gallery"
            );
            assert_eq!(app.data.objects().await, objects, "{what}: objects kept");
            assert_eq!(
                app.data
                    .query_strings(&format!(
                        "SELECT full_name FROM users WHERE id = {alice_id}"
                    ))
                    .await,
                vec!["alice Full".to_string()],
                "{what}: alice still exists with her name"
            );
            assert_eq!(
                app.data
                    .count(&format!(
                        "SELECT COUNT(*) FROM users WHERE id = {alice_id} AND is_admin"
                    ))
                    .await,
                0,
                "{what}: alice is still not an admin"
            );
            assert_eq!(app.data.count("SELECT COUNT(*) FROM users").await, 2);
        }
    };

    // (label, token or None for no field at all)
    let image_tokens: [(&str, Option<&str>); 6] = [
        ("no token", None),
        ("empty token", Some("")),
        ("forged token", Some("forged")),
        (
            "well-formed forged token",
            Some(well_formed_forgery.as_str()),
        ),
        (
            "alice's token from her other session",
            Some(alice_other_token.as_str()),
        ),
        ("admin's token", Some(admin_token.as_str())),
    ];
    let delete_image = format!("/images/{image}/delete");
    for (label, token) in image_tokens {
        let form: Vec<(&str, &str)> = token.map(|t| vec![("csrf", t)]).unwrap_or_default();
        let r = app.post_form(&alice, &delete_image, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "delete image, {label}");
        unchanged(format!("delete image, {label}")).await;
    }

    let admin_tokens: [(&str, Option<&str>); 6] = [
        ("no token", None),
        ("empty token", Some("")),
        ("forged token", Some("forged")),
        (
            "well-formed forged token",
            Some(well_formed_forgery.as_str()),
        ),
        (
            "admin's token from another session",
            Some(admin_other_token.as_str()),
        ),
        ("alice's token", Some(alice_token.as_str())),
    ];
    let update = format!("/admin/users/{alice_id}");
    let delete_user = format!("/admin/users/{alice_id}/delete");
    for (label, token) in admin_tokens {
        let mut form = vec![
            ("full_name", "Pwned"),
            ("password", "attacker-password"),
            ("admin", "on"),
        ];
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let r = app.post_form(&admin, &update, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "modify user, {label}");
        unchanged(format!("modify user, {label}")).await;

        let form: Vec<(&str, &str)> = token.map(|t| vec![("csrf", t)]).unwrap_or_default();
        let r = app.post_form(&admin, &delete_user, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "delete user, {label}");
        unchanged(format!("delete user, {label}")).await;
    }
    // Her password was not changed either: it still works, and her sessions survived.
    assert_eq!(app.get(&alice, "/").await.status(), StatusCode::OK);
    assert_eq!(
        login(&app.base, &app.client(), "alice", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login(&app.base, &app.client(), "alice", "attacker-password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Control: the session's own token is accepted, so the refusals above were the token's.
    let r = app
        .post_form(&alice, &delete_image, &[("csrf", &alice_token)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.gallery_ids(&alice, "/gallery").await.is_empty());
    assert_eq!(app.gallery_ids(&alice, "/trash").await.len(), 1);
    let r = app
        .post_form(&admin, &delete_user, &[("csrf", &admin_token)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.data.count("SELECT COUNT(*) FROM users").await, 1);
}

/// Timing must not tell an existing username from an unknown one (claim 1).
async fn unknown_user_and_wrong_password_take_similar_time(b: Backend) {
    use std::time::{Duration, Instant};

    let app = TestApp::spawn_with(b, &["--login-max-failures", "100"]).await;
    let c = app.client();
    // A failed login keeps the session's token, so one token serves every attempt and
    // only the POST itself is timed.
    let token = app.csrf(&c, "/login").await;
    let attempt = |username: &'static str| {
        let c = &c;
        let app = &app;
        let token = token.clone();
        async move {
            let started = Instant::now();
            let r = c
                .post(app.url("/login"))
                .form(&[
                    ("csrf", token.as_str()),
                    ("username", username),
                    ("password", "not-the-password"),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            let took = started.elapsed();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{username}");
            assert!(body.contains("Invalid username or password."), "{username}");
            took
        }
    };
    // Warm-up: the dummy hash is built on first use, connections and caches fill.
    for _ in 0..2 {
        attempt("nobody").await;
        attempt("admin").await;
    }
    let (mut existing, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..10 {
        // Alternate the order so a drift in machine load hits both sides alike.
        if i % 2 == 0 {
            existing.push(attempt("admin").await);
            unknown.push(attempt("nobody").await);
        } else {
            unknown.push(attempt("nobody").await);
            existing.push(attempt("admin").await);
        }
    }
    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
    }
    let (e, u) = (median(existing.clone()), median(unknown.clone()));
    let ratio = e.as_secs_f64().max(u.as_secs_f64()) / e.as_secs_f64().min(u.as_secs_f64());
    assert!(
        ratio < 2.0,
        "median wrong password {e:?} vs unknown user {u:?} (ratio {ratio:.2}); \
         all: {existing:?} vs {unknown:?}"
    );
}

/// With `--login-max-failures 3`: 2 failures, a success, then the count starts again.
async fn a_successful_login_resets_the_per_user_failure_counter(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        &["--login-max-failures", "3", "--login-lockout-secs", "60"],
    )
    .await;
    let c = app.client();
    let fail = || async {
        login(&app.base, &app.client(), "admin", "wrong-password")
            .await
            .status()
    };
    for _ in 0..2 {
        assert_eq!(fail().await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login(&app.base, &c, "admin", ADMIN_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    // Without the reset the next failure would be the 3rd and the one after it a 429.
    for i in 0..3 {
        assert_eq!(
            fail().await,
            StatusCode::UNAUTHORIZED,
            "failure {i} after the reset"
        );
    }
    // The count really restarted from 0 (and still counts): the 3rd failure locks again.
    let r = login(&app.base, &app.client(), "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn failed_logins_are_throttled_per_user_and_reset(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        &["--login-max-failures", "3", "--login-lockout-secs", "4"],
    )
    .await;
    let c = app.client();
    for _ in 0..3 {
        assert_eq!(
            login(&app.base, &c, "admin", "wrong-password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = login(&app.base, &c, "admin", ADMIN_PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=4).contains(&retry), "retry-after {retry}");
    // Other usernames from this client still get answers, until the per-client limit
    // (4x the per-user one) catches a spray across many names.
    for i in 0..9 {
        assert_eq!(
            login(&app.base, &c, &format!("user{i}"), "wrong")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&app.base, &c, "another", "wrong").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // Both windows end and the right password works again.
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    assert_eq!(
        login(&app.base, &c, "admin", ADMIN_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

async fn cookies_are_httponly_samesite_and_secure_behind_https(b: Backend) {
    let app = TestApp::spawn(b).await;
    let r = app.get(&app.client(), "/login").await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http must not set Secure: {cookie}"
    );
    // Over plain http HSTS means nothing (and would be wrong on a dev box): never sent.
    for path in ["/login", "/healthz", "/nonexistent"] {
        let r = app.get(&app.client(), path).await;
        assert!(
            !r.headers().contains_key("strict-transport-security"),
            "{path}: {:?}",
            r.headers()
        );
    }

    let app = TestApp::spawn_with(b, &["--public-url", "https://gallery.example.org"]).await;
    let r = app.get(&app.client(), "/login").await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // The value `security.rs::headers` sets: one year, on every response over https.
    for path in ["/login", "/healthz", "/nonexistent"] {
        let r = app.get(&app.client(), path).await;
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

async fn security_headers_are_on_every_page(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin().await;
    for path in ["/login", "/", "/gallery", "/admin", "/nonexistent"] {
        let r = app.get(&admin, path).await;
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(
            h["cache-control"], "no-store",
            "{path}: private pages must not be cached"
        );
    }
}

async fn home_greets_by_full_name_and_links_admin_only_for_admins(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin().await;
    let r = app
        .create_user(
            &admin,
            "mallory",
            PASSWORD,
            "<script>alert(1)</script> Mallory",
            false,
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let html = app.page(&admin, "/").await;
    assert!(html.contains("Hello, Administrator"));
    assert!(html.contains("href=\"/admin\""));
    assert!(
        html.contains("href=\"/gallery\"")
            && html.contains("href=\"/upload\"")
            && html.contains("action=\"/logout\"")
    );

    let m = app.client();
    assert_eq!(
        login(&app.base, &m, "mallory", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let html = app.page(&m, "/").await;
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "full name must be escaped"
    );
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62; Mallory")
            || html.contains("&lt;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("href=\"/admin\""));
    // And in the admin list.
    let html = app.page(&admin, "/admin").await;
    assert!(!html.contains("<script>alert(1)</script>"));
}

async fn sql_metacharacters_are_data(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin().await;
    let name = "O'Brien\"; DROP TABLE users; --";
    assert_eq!(
        app.create_user(&admin, "obrien", PASSWORD, name, false)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let c = app.client();
    assert_eq!(
        login(&app.base, &c, "admin' OR '1'='1", "x' OR '1'='1")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.data.count("SELECT COUNT(*) FROM users").await, 2);
    assert_eq!(
        app.data
            .query_strings("SELECT full_name FROM users WHERE username = 'obrien'")
            .await,
        vec![name.to_string()]
    );
}

/// Wrong passwords sent all at once (each attempt's hash takes a while) must not slip
/// past the limit: the attempt is counted before the password is checked.
async fn parallel_wrong_logins_cannot_slip_past_the_limit(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        &["--login-max-failures", "3", "--login-lockout-secs", "60"],
    )
    .await;
    let c = app.client();
    let token = app.csrf(&c, "/login").await;
    let attempts = (0..20).map(|_| {
        c.post(app.url("/login"))
            .form(&[
                ("csrf", token.as_str()),
                ("username", "admin"),
                ("password", "wrong-password"),
            ])
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // At most the limit is checked. (Fewer is possible: the address's counter, counted
    // separately, may refuse an attempt whose username count was still under the limit.)
    assert!(
        checked <= 3 && checked + refused == 20,
        "no more than the limit checked, the rest refused: {statuses:?}"
    );
    // Wrong passwords one by one until refused: with the burst's, still at most 3 are
    // checked. (The burst may have been refused partly by the address's counter, with
    // the username's still under its limit.)
    let mut more = 0;
    while login(&app.base, &app.client(), "admin", "wrong-password")
        .await
        .status()
        == StatusCode::UNAUTHORIZED
    {
        more += 1;
        assert!(
            checked + more <= 3,
            "{checked} + {more} checked: {statuses:?}"
        );
    }
    // Locked: even the right password is refused now.
    assert_eq!(
        login(&app.base, &app.client(), "admin", ADMIN_PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// `--session-idle-secs 4`: a user who keeps clicking stays logged in past the idle
/// period (the stored expiry and the cookie's Max-Age move forward); one who stops is
/// logged out after it.
async fn an_active_session_outlives_the_idle_period_and_an_idle_one_ends(b: Backend) {
    let app = TestApp::spawn_with(b, &["--session-idle-secs", "4"]).await;
    let c = app.admin().await;
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            app.get(&c, "/").await.status(),
            StatusCode::OK,
            "active for longer than the idle period"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = app.get(&c, "/").await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("Max-Age=4"),
        "the cookie is renewed too: {cookie}"
    );
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert_eq!(
        app.get(&c, "/").await.status(),
        StatusCode::SEE_OTHER,
        "idle for longer than the period: logged out"
    );
}

/// Behind a load balancer (`--behind-proxy`) the client is the last `X-Forwarded-For`
/// hop (the one the balancer appended): what a client puts before it changes nothing.
async fn behind_a_proxy_the_last_forwarded_hop_is_throttled(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        &[
            "--behind-proxy",
            "--login-max-failures",
            "1",
            "--login-lockout-secs",
            "60",
        ],
    )
    .await;
    let c = app.client();
    let token = app.csrf(&c, "/login").await;
    let attempt = |user: String, forwarded: String| {
        let (c, token, url) = (c.clone(), token.clone(), app.url("/login"));
        async move {
            c.post(url)
                .header("x-forwarded-for", forwarded)
                .form(&[
                    ("csrf", token.as_str()),
                    ("username", user.as_str()),
                    ("password", "wrong-password"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Per client: 4x the per-user limit, whatever the spoofed left-most entries say.
    for i in 0..4 {
        assert_eq!(
            attempt(format!("user{i}"), format!("203.0.113.{i}, 198.51.100.7")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt("user9".into(), "203.0.113.99, 198.51.100.7".into()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the same last hop is the same client"
    );
    assert_eq!(
        attempt("user9".into(), "198.51.100.8".into()).await,
        StatusCode::UNAUTHORIZED,
        "another last hop is another client"
    );
}

both_backends!(
    every_private_page_redirects_to_login,
    wrong_password_and_unknown_user_get_the_same_401,
    login_goes_where_the_user_was_headed_on_this_site_only,
    session_id_is_rotated_at_login_and_fixation_fails,
    logout_destroys_the_session_on_the_server,
    state_changes_without_csrf_token_are_refused,
    image_and_user_changes_refuse_missing_forged_and_foreign_csrf_tokens,
    unknown_user_and_wrong_password_take_similar_time,
    a_successful_login_resets_the_per_user_failure_counter,
    failed_logins_are_throttled_per_user_and_reset,
    cookies_are_httponly_samesite_and_secure_behind_https,
    security_headers_are_on_every_page,
    home_greets_by_full_name_and_links_admin_only_for_admins,
    sql_metacharacters_are_data,
    parallel_wrong_logins_cannot_slip_past_the_limit,
    an_active_session_outlives_the_idle_period_and_an_idle_one_ends,
    behind_a_proxy_the_last_forwarded_hop_is_throttled,
);
