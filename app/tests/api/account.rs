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

both_backends!(
    a_password_change_needs_the_current_password_and_ends_the_other_sessions,
    a_user_renames_themselves_and_sees_it_at_once,
    account_forms_need_a_login_and_the_csrf_token,
);
