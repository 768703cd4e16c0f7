//! `/account`: a user changes their own name and password; the change of password needs
//! the current one and signs out every other session of theirs.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

const NEW_PASSWORD: &str = "brand-new-password-2";

async fn change_password(
    app: &TestApp,
    client: &reqwest::Client,
    current: &str,
    new: &str,
    confirm: &str,
) -> reqwest::Response {
    let token = app.csrf(client, "/account").await;
    app.post_form(
        client,
        "/account/password",
        &[
            ("csrf", &token),
            ("current", current),
            ("new", new),
            ("confirm", confirm),
        ],
    )
    .await
}

async fn a_password_change_needs_the_current_password_and_ends_the_other_sessions(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    // A second browser of hers, signed in before the change, with a form open.
    let laptop = app.client();
    assert_eq!(
        login(&app.base, &laptop, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let laptop_token = app.csrf(&laptop, "/account").await;

    // Refused, and nothing changes: a wrong current password, a confirmation that
    // differs, a new password too short.
    let r = change_password(&app, &alice, "not-her-password", NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("current password is not right"));
    let r = change_password(&app, &alice, PASSWORD, NEW_PASSWORD, "something-else-3").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("differ"));
    let r = change_password(&app, &alice, PASSWORD, "short", "short").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("at least 8"));
    assert_eq!(app.get(&laptop, "/gallery").await.status(), StatusCode::OK);

    // Accepted: this session goes on, the laptop's ends.
    let r = change_password(&app, &alice, PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/account?done=password");
    assert!(app
        .page(&alice, "/account?done=password")
        .await
        .contains("Password changed"));
    assert_eq!(app.get(&alice, "/gallery").await.status(), StatusCode::OK);
    // Only this session is listed now (the laptop's row is over, whatever is left of it).
    let page = app.page(&alice, "/account").await;
    assert!(
        page.contains("This device") && !page.contains("name=\"session\""),
        "{page}"
    );
    // A state-changing request from the laptop is refused at once...
    let r = app
        .post_form(
            &laptop,
            "/account/name",
            &[("csrf", &laptop_token), ("full_name", "Laptop Thief")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/login"), "{}", location(&r));
    // ...and its pages within the cache's second.
    let mut signed_out = false;
    for _ in 0..30 {
        let r = app.get(&laptop, "/gallery").await;
        if r.status() == StatusCode::SEE_OTHER && location(&r).starts_with("/login") {
            signed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(signed_out, "the laptop's session still reads pages");
    assert!(!app.page(&alice, "/account").await.contains("Laptop Thief"));

    // The old password no longer logs in; the new one does.
    let fresh = app.client();
    assert_eq!(
        login(&app.base, &fresh, "alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app.base, &fresh, "alice", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

async fn a_user_renames_themselves_and_sees_it_at_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let token = app.csrf(&alice, "/account").await;
    let r = app
        .post_form(
            &alice,
            "/account/name",
            &[("csrf", &token), ("full_name", "Alice <Liddell>")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/account?done=name");
    let html = app.page(&alice, "/gallery").await;
    assert!(
        html.contains("Alice &#60;Liddell&#62;"),
        "escaped, in the header: {}",
        &html[html.find("class=\"who\"").unwrap_or(0)..][..120.min(html.len())]
    );
    let token = app.csrf(&alice, "/account").await;
    let r = app
        .post_form(
            &alice,
            "/account/name",
            &[("csrf", &token), ("full_name", "   ")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(app
        .page(&alice, "/account")
        .await
        .contains("Alice &#60;Liddell&#62;"));
}

async fn account_forms_need_a_login_and_the_csrf_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    let anonymous = app.client();
    let r = app.get(&anonymous, "/account").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&r).starts_with("/login?next=%2Faccount"),
        "{}",
        location(&r)
    );

    let alice = app.user("alice").await;
    let r = app
        .post_form(&alice, "/account/name", &[("full_name", "Mallory")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .post_form(
            &alice,
            "/account/password",
            &[
                ("current", PASSWORD),
                ("new", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!app.page(&alice, "/account").await.contains("Mallory"));
    let fresh = app.client();
    assert_eq!(
        login(&app.base, &fresh, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER,
        "the password is unchanged"
    );
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

fn browser_named(agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(agent)
        .build()
        .unwrap()
}

/// The public handles of the "Sign out" forms on `/account`, in page order.
fn session_handles(html: &str) -> Vec<String> {
    html.match_indices("name=\"session\" value=\"")
        .map(|(at, m)| {
            let rest = &html[at + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// Whether a client is signed out: a write is refused at once, and a page read within
/// the cache's second.
async fn signed_out(base: &str, client: &reqwest::Client, token: &str) -> bool {
    let r = client
        .post(format!("{base}/account/name"))
        .form(&[("csrf", token), ("full_name", "Still Here")])
        .send()
        .await
        .unwrap();
    if !(r.status() == StatusCode::SEE_OTHER && location(&r).starts_with("/login")) {
        return false;
    }
    for _ in 0..30 {
        let r = client.get(format!("{base}/gallery")).send().await.unwrap();
        if r.status() == StatusCode::SEE_OTHER && location(&r).starts_with("/login") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn a_user_sees_their_sessions_and_signs_one_out_on_another_instance(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.user("alice").await;
    // Her phone on this instance, her laptop on a second one over the same data.
    let other = TestApp::start_on(&app.data, &[]).await;
    let phone = browser_named(IPHONE);
    let laptop = browser_named(FIREFOX);
    assert_eq!(
        login(&app.base, &phone, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login(&other, &laptop, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let laptop_html = laptop
        .get(format!("{other}/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let laptop_token = csrf_in(&laptop_html);

    // Three sessions: the one `user()` made, the phone (this page), the laptop.
    let html = app.page(&phone, "/account").await;
    assert!(html.contains("Safari on iPhone"), "{html}");
    assert!(html.contains("Firefox on Linux"), "{html}");
    assert!(html.contains("127.0.0.1"), "{html}");
    assert!(html.contains("This device"), "{html}");
    let handles = session_handles(&html);
    assert_eq!(
        handles.len(),
        2,
        "a form for each other session: {handles:?}"
    );
    // No session id (a credential) appears in the page.
    for id in app.data.query_strings("SELECT id FROM sessions").await {
        assert!(!html.contains(&id), "session id {id} in the page");
    }
    let laptop_handle = {
        let at = html.find("Firefox on Linux").unwrap();
        session_handles(&html[at..]).remove(0)
    };

    // Another user can't end her session, even knowing its handle.
    app.user("bob").await;
    let bob = app.client();
    login(&app.base, &bob, "bob", PASSWORD).await;
    let token = app.csrf(&bob, "/account").await;
    let r = app
        .post_form(
            &bob,
            "/account/sessions/end",
            &[("csrf", &token), ("session", &laptop_handle)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A made-up handle, and none at all: 404 too.
    for handle in ["made-up", ""] {
        let token = app.csrf(&phone, "/account").await;
        let r = app
            .post_form(
                &phone,
                "/account/sessions/end",
                &[("csrf", &token), ("session", handle)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{handle:?}");
    }
    let r = laptop.get(format!("{other}/gallery")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the laptop is still signed in");

    // The phone signs the laptop out; the laptop, on the other instance, is out at once.
    let token = app.csrf(&phone, "/account").await;
    let r = app
        .post_form(
            &phone,
            "/account/sessions/end",
            &[("csrf", &token), ("session", &laptop_handle)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/account?done=ended");
    assert!(signed_out(&other, &laptop, &laptop_token).await);
    let html = app.page(&phone, "/account?done=ended").await;
    assert!(html.contains("has been signed out"));
    assert!(!html.contains("Firefox on Linux"), "{html}");
    assert_eq!(app.get(&phone, "/gallery").await.status(), StatusCode::OK);
}

async fn sign_out_everywhere_ends_every_session_including_this_one(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.user("alice").await;
    let other = TestApp::start_on(&app.data, &[]).await;
    let laptop = browser_named(FIREFOX);
    login(&other, &laptop, "alice", PASSWORD).await;
    let laptop_token = csrf_in(
        &laptop
            .get(format!("{other}/account"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let alice_token = app.csrf(&alice, "/account").await;
    // Without its token the form does nothing.
    let r = app
        .post_form(&alice, "/account/sessions/end-all", &[])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .post_form(
            &alice,
            "/account/sessions/end-all",
            &[("csrf", &alice_token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
    assert!(signed_out(&other, &laptop, &laptop_token).await);
    assert!(signed_out(&app.base, &alice, &alice_token).await);
    assert_eq!(
        app.data
            .count("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL AND user_id IN (SELECT id FROM users WHERE username = 'alice')")
            .await,
        0
    );
    // Her password still works.
    let fresh = app.client();
    assert_eq!(
        login(&app.base, &fresh, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

both_backends!(
    a_user_sees_their_sessions_and_signs_one_out_on_another_instance,
    sign_out_everywhere_ends_every_session_including_this_one,
    a_password_change_needs_the_current_password_and_ends_the_other_sessions,
    a_user_renames_themselves_and_sees_it_at_once,
    account_forms_need_a_login_and_the_csrf_token,
);
