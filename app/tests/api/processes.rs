//! The real `gallery` binary: several processes on one database, SIGTERM draining,
//! configuration errors and the `users` CLI.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_gallery");

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(data: &Data, extra: &[&str]) -> Server {
    let port = free_port();
    let child = Command::new(BIN)
        .args(data.args())
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--admin-password",
            ADMIN_PASSWORD,
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gallery binary");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn a_session_made_on_one_instance_works_on_another(b: Backend) {
    let data = Data::new(b).await;
    // Both start at once on an empty database: migrations and the first admin must not clash.
    let one = spawn_server(&data, &[]);
    let two = spawn_server(&data, &[]);
    wait_ready(&one.base).await;
    wait_ready(&two.base).await;
    assert_eq!(data.count("SELECT COUNT(*) FROM users").await, 1);

    let c = browser();
    assert_eq!(
        login(&one.base, &c, "admin", ADMIN_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let r = c.get(format!("{}/", two.base)).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the session from instance one is valid on instance two"
    );
    assert!(r.text().await.unwrap().contains("Hello, Administrator"));
    // A form rendered by one instance posts fine to the other (CSRF token lives in the session).
    let html = c
        .get(format!("{}/", one.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = c
        .post(format!("{}/logout", two.base))
        .form(&[("csrf", csrf_in(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        c.get(format!("{}/", one.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER,
        "logged out on both"
    );
}

/// The revocation contract of docs/SECURITY.md, across two processes on one database:
/// a logout, a password change, a demotion and a deletion made on one instance are
/// honoured by the other at once for every POST and admin page, and within 1 s for reads
/// that instance answers from memory.
async fn a_revocation_on_one_instance_is_honoured_by_the_other(b: Backend) {
    let data = Data::new(b).await;
    let one = spawn_server(&data, &[]);
    let two = spawn_server(&data, &[]);
    wait_ready(&one.base).await;
    wait_ready(&two.base).await;
    for (name, admin) in [
        ("leaver", false),
        ("changed", false),
        ("demoted", true),
        ("gone", false),
        ("lately", true),
        ("bystander", false),
    ] {
        let mut args = vec!["users", "add", name, "--full-name", name];
        if admin {
            args.push("--admin");
        }
        let (ok, _, err) = cli(&data, &args, &format!("{PASSWORD}\n"));
        assert!(ok, "{err}");
    }
    let id = |name: &'static str| {
        let data = &data;
        async move {
            data.count(&format!("SELECT id FROM users WHERE username = '{name}'"))
                .await
                .to_string()
        }
    };
    let (one, two) = (one.base.clone(), two.base.clone());
    // A photo each, uploaded through instance one: its thumbnail on instance two is
    // answered from memory (`routes::images::thumbnail_from_memory`) once warm.
    // The bytes (disk), or a 302 to a presigned URL (S3).
    let served = |r: reqwest::Response| {
        r.status() == StatusCode::OK
            || r.status() == StatusCode::FOUND && !location(&r).starts_with("/login")
    };
    let mut thumbs = std::collections::HashMap::new();
    for name in ["leaver", "changed", "gone", "bystander"] {
        let s = RawSession::login(&one, name, PASSWORD).await;
        let r = s.upload(&one, "p.jpg", photo("rocket.jpg")).await;
        assert!(
            r.status().is_redirection(),
            "{name}'s upload: {}",
            r.status()
        );
        let image = data
            .query_strings(&format!(
                "SELECT i.id FROM images i JOIN users u ON u.id = i.owner_id WHERE u.username = '{name}'"
            ))
            .await;
        assert_eq!(image.len(), 1, "{name}'s photo");
        thumbs.insert(name, format!("/images/{}/thumb", image[0]));
    }
    let admin = browser();
    assert_eq!(
        login(&one, &admin, "admin", ADMIN_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let admin_token = csrf_in(
        &admin
            .get(format!("{one}/admin"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

    // Each victim is logged in, and its pages on instance two are warm (read from memory).
    let mut victims = Vec::new();
    for name in ["leaver", "changed", "demoted", "gone", "bystander"] {
        let s = RawSession::login(&two, name, PASSWORD).await;
        let token = s.csrf(&two).await;
        for _ in 0..3 {
            assert_eq!(s.get(&two, "/gallery").await.status(), StatusCode::OK);
            if let Some(thumb) = thumbs.get(name) {
                assert!(served(s.get(&two, thumb).await), "{name}'s thumbnail");
            }
        }
        victims.push((name, s, token));
    }
    let demoted = &victims[2].1;
    assert_eq!(demoted.get(&two, "/admin").await.status(), StatusCode::OK);
    // Sessions that only read on instance two: a POST there would refresh what instance
    // two holds from the database, so only the change feed can tell these apart.
    let mut readers = Vec::new();
    for name in ["changed", "gone", "lately"] {
        let s = RawSession::login(&two, name, PASSWORD).await;
        for _ in 0..3 {
            assert_eq!(s.get(&two, "/gallery").await.status(), StatusCode::OK);
            if let Some(thumb) = thumbs.get(name) {
                assert!(served(s.get(&two, thumb).await), "{name}'s thumbnail");
            }
        }
        readers.push((name, s));
    }
    let home = readers[2].1.get(&two, "/").await.text().await.unwrap();
    assert!(
        home.contains("href=\"/admin\""),
        "an admin is offered admin"
    );
    let post = |r: reqwest::Response| (r.status(), location(&r));
    let login_page = |(status, to): (StatusCode, String)| {
        status == StatusCode::SEE_OTHER && to.starts_with("/login")
    };

    // On instance one: the leaver logs out, the admin changes a password, demotes an
    // admin and deletes a user.
    let (_, leaver, leaver_token) = &victims[0];
    assert_eq!(
        leaver
            .post(&one, "/logout", &[("csrf", leaver_token)])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let changed = id("changed").await;
    let r = admin
        .post(format!("{one}/admin/users/{changed}"))
        .form(&[
            ("csrf", admin_token.as_str()),
            ("full_name", "changed"),
            ("password", "a-new-password-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let demoted_id = id("demoted").await;
    let r = admin
        .post(format!("{one}/admin/users/{demoted_id}"))
        .form(&[("csrf", admin_token.as_str()), ("full_name", "demoted")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let lately = id("lately").await;
    let r = admin
        .post(format!("{one}/admin/users/{lately}"))
        .form(&[("csrf", admin_token.as_str()), ("full_name", "lately")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let gone = id("gone").await;
    let r = admin
        .post(format!("{one}/admin/users/{gone}/delete"))
        .form(&[("csrf", admin_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // At once on instance two: every POST and admin page reads the database.
    for (name, s, token) in &victims {
        let r = post(
            s.post(&two, "/images/none/delete", &[("csrf", token)])
                .await,
        );
        match *name {
            "leaver" | "changed" | "gone" => {
                assert!(login_page(r.clone()), "{name}'s POST at once: {r:?}")
            }
            // Still logged in (a 404 for the missing image), no longer an admin.
            _ => assert_eq!(r.0, StatusCode::NOT_FOUND, "{name}'s POST"),
        }
    }
    assert_eq!(
        demoted.get(&two, "/admin").await.status(),
        StatusCode::FORBIDDEN,
        "the admin page at once"
    );
    let r = post(
        demoted
            .post(
                &two,
                "/admin/users",
                &[
                    ("csrf", &victims[2].2),
                    ("username", "x"),
                    ("full_name", "x"),
                    ("password", PASSWORD),
                ],
            )
            .await,
    );
    assert_eq!(r.0, StatusCode::FORBIDDEN, "an admin POST at once");

    // Within a second: reads too, told by the change feed alone.
    tokio::time::sleep(gallery::cache::FRESHNESS + Duration::from_millis(400)).await;
    let (leaver, bystander) = (&victims[0].1, &victims[4].1);
    for (name, s) in [
        ("leaver", leaver),
        ("changed", &readers[0].1),
        ("gone", &readers[1].1),
    ] {
        assert_eq!(
            s.get(&two, "/gallery").await.status(),
            StatusCode::SEE_OTHER,
            "{name}'s read within 1 s"
        );
        let thumb = s.get(&two, &thumbs[name]).await;
        assert_eq!(
            (thumb.status(), location(&thumb).starts_with("/login")),
            (StatusCode::SEE_OTHER, true),
            "{name}'s thumbnail within 1 s"
        );
    }
    assert_eq!(
        bystander.get(&two, "/gallery").await.status(),
        StatusCode::OK,
        "the bystander is still logged in"
    );
    assert!(
        served(bystander.get(&two, &thumbs["bystander"]).await),
        "the bystander's thumbnail"
    );
    let home = readers[2].1.get(&two, "/").await.text().await.unwrap();
    assert!(
        !home.contains("href=\"/admin\""),
        "the demoted user's pages stop offering admin within 1 s"
    );
}

async fn sigterm_reports_not_ready_keeps_serving_then_exits(b: Backend) {
    let data = Data::new(b).await;
    let mut server = spawn_server(&data, &["--drain-secs", "2"]);
    wait_ready(&server.base).await;
    let c = browser();
    assert_eq!(
        login(&server.base, &c, "admin", ADMIN_PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    // A request in flight when SIGTERM arrives: an upload whose body is still arriving.
    let token = {
        let html = c
            .get(format!("{}/upload", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        csrf_in(&html)
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let slow_body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let boundary = "InFlight";
    let photo = photo("rocket.jpg");
    let mut head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"inflight.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    head.extend_from_slice(&photo[..photo.len() / 2]);
    let mut tail = photo[photo.len() / 2..].to_vec();
    tail.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let length = head.len() + tail.len();
    tx.send(Ok(head)).await.unwrap();
    let in_flight = tokio::spawn(
        c.post(format!("{}/upload", server.base))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("content-length", length.to_string())
            .body(slow_body)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = server.child.id().to_string();
    let killed = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready at once"
    );
    assert_eq!(
        c.get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let r = c
        .get(format!("{}/gallery", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "requests are still served while draining"
    );

    // The in-flight upload finishes after SIGTERM and succeeds.
    tx.send(Ok(tail)).await.unwrap();
    drop(tx);
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the upload in flight at SIGTERM succeeds"
    );
    assert_eq!(location(&r), "/gallery?uploaded=1");
    assert_eq!(data.count("SELECT COUNT(*) FROM images").await, 1);

    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "server did not stop after draining"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "stopped before the drain period ended"
    );
}

#[test]
fn a_bad_setting_stops_startup_and_names_it() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--storage", "ftp://nowhere", "serve"],
            "--storage (GALLERY_STORAGE)",
        ),
        (
            &["--database-url", "mysql://x", "serve"],
            "--database-url (GALLERY_DATABASE_URL)",
        ),
        (
            &["serve", "--bind", "not-an-address"],
            "--bind (GALLERY_BIND)",
        ),
        (
            &["serve", "--admin-password", "short"],
            "--admin-password (GALLERY_ADMIN_PASSWORD)",
        ),
        (
            &["serve", "--public-url", "ftp://x"],
            "--public-url (GALLERY_PUBLIC_URL)",
        ),
    ];
    for (args, named) in cases {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{args:?}: {err}");
    }
    // Every setting shows its environment variable in --help.
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "GALLERY_BIND",
        "GALLERY_PUBLIC_URL",
        "GALLERY_ADMIN_PASSWORD",
        "GALLERY_DATABASE_URL",
        "GALLERY_STORAGE",
        "GALLERY_MAX_UPLOAD_BYTES",
        "GALLERY_MAX_PIXELS",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
}

fn cli(data: &Data, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(data.args())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn users_can_be_managed_from_the_shell(b: Backend) {
    let data = Data::new(b).await;
    let (ok, _, err) = cli(
        &data,
        &[
            "users",
            "add",
            "carol",
            "--full-name",
            "Carol Danvers",
            "--admin",
        ],
        "carol-password\n",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        &data,
        &["users", "add", "carol", "--full-name", "Again"],
        "carol-password\n",
    );
    assert!(!ok && err.contains("already taken"), "{err}");
    let (ok, _, err) = cli(
        &data,
        &["users", "add", "dave", "--full-name", "Dave"],
        "short\n",
    );
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, out, _) = cli(&data, &["users", "list"], "");
    assert!(
        ok && out.contains("carol") && out.contains("Carol Danvers") && out.contains("yes"),
        "{out}"
    );

    let (ok, _, err) = cli(
        &data,
        &["users", "add", "erin", "--full-name", "Erin"],
        "erin-password\n",
    );
    assert!(ok, "{err}");

    // The server started on a database with users creates no first admin of its own.
    let app = TestApp::start_on(&data, &[]).await;
    assert_eq!(data.count("SELECT COUNT(*) FROM users").await, 2);
    let erin = RawSession::login(&app, "erin", "erin-password").await;
    let token = erin.csrf(&app).await;
    assert_eq!(erin.get(&app, "/gallery").await.status(), StatusCode::OK);
    let (ok, _, err) = cli(&data, &["users", "passwd", "erin"], "another-password\n");
    assert!(ok, "{err}");
    // The contract of docs/SECURITY.md: a write is refused at once, a read within 1 s.
    let r = erin
        .post(&app, "/images/none/delete", &[("csrf", &token)])
        .await;
    assert_eq!(
        (r.status(), location(&r).starts_with("/login")),
        (StatusCode::SEE_OTHER, true),
        "passwd ends sessions: a POST at once"
    );
    tokio::time::sleep(gallery::cache::FRESHNESS + Duration::from_millis(400)).await;
    assert_eq!(
        erin.get(&app, "/gallery").await.status(),
        StatusCode::SEE_OTHER,
        "passwd ends sessions: a read within a second"
    );
    assert_eq!(
        login(&app, &browser(), "erin", "another-password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    let (ok, _, err) = cli(&data, &["users", "delete", "erin"], "");
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, _, err) = cli(&data, &["users", "delete", "erin", "--yes"], "");
    assert!(ok, "{err}");
    assert_eq!(
        data.count("SELECT COUNT(*) FROM users WHERE username = 'erin'")
            .await,
        0
    );
    let (ok, _, err) = cli(&data, &["users", "delete", "carol", "--yes"], "");
    assert!(!ok && err.contains("last administrator"), "{err}");
}

async fn without_a_configured_password_the_first_admin_gets_a_generated_one_shown_once(b: Backend) {
    use std::io::BufRead;
    let data = Data::new(b).await;
    let start = |data: &Data| {
        let port = free_port();
        let child = Command::new(BIN)
            .args(data.args())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env_remove("GALLERY_ADMIN_PASSWORD")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (child, format!("http://127.0.0.1:{port}"))
    };
    let (mut child, base) = start(&data);
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        lines.find_map(|l| {
            l.ok().and_then(|l| {
                l.split("with password: ")
                    .nth(1)
                    .map(|p| p.trim().to_string())
            })
        })
    });
    let password = reader
        .join()
        .unwrap()
        .expect("the generated password is printed");
    assert!(password.len() >= 16, "{password}");
    let server = Server {
        child,
        base: base.clone(),
    };
    wait_ready(&server.base).await;
    assert_eq!(
        login(&base, &browser(), "admin", &password).await.status(),
        StatusCode::SEE_OTHER
    );
    drop(server);

    // A restart on the same database prints no password again.
    let (mut child, base) = start(&data);
    let stdout = child.stdout.take().unwrap();
    let server = Server { child, base };
    wait_ready(&server.base).await;
    drop(server);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut rest).unwrap();
    assert!(
        !rest.contains(&password) && !rest.contains("with password:"),
        "{rest}"
    );
}

/// A share link revoked on one instance is refused by the other at once: links are read
/// from the database on every request, never from a cache.
async fn a_link_revoked_on_one_instance_is_refused_by_the_other(b: Backend) {
    let data = Data::new(b).await;
    let one = spawn_server(&data, &[]);
    let two = spawn_server(&data, &[]);
    wait_ready(&one.base).await;
    wait_ready(&two.base).await;
    let (ok, _, err) = cli(
        &data,
        &["users", "add", "alice", "--full-name", "Alice"],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    let (one, two) = (one.base.clone(), two.base.clone());
    let alice = browser();
    assert_eq!(
        login(&one, &alice, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = |base: &str, path: &str| {
        let (alice, url) = (alice.clone(), format!("{base}{path}"));
        async move { alice.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let token = csrf_in(&page(&one, "/upload").await);
    let form = reqwest::multipart::Form::new()
        .text("csrf", token.clone())
        .part(
            "files",
            reqwest::multipart::Part::bytes(distinct_png(7)).file_name("seven.png"),
        );
    let r = alice
        .post(format!("{one}/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let id = data.query_strings("SELECT id FROM images").await.remove(0);
    let shared = |token: &str| {
        let (alice, url, token) = (
            alice.clone(),
            format!("{one}/images/{id}/share"),
            token.to_string(),
        );
        async move {
            let html = alice
                .post(url)
                .form(&[("csrf", token)])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let start = html.find("/s/").expect("link shown");
            let end = html[start..].find('"').unwrap();
            html[start..start + end].to_string()
        }
    };
    let first = shared(&token).await;
    let second = shared(&token).await;

    // The visitor opens both on instance two (its caches warm), then the first is revoked
    // on instance one: instance two refuses it on the very next request.
    let visitor = browser();
    let status = |base: &str, path: &str| {
        let (visitor, url) = (visitor.clone(), format!("{base}{path}"));
        async move { visitor.get(url).send().await.unwrap().status() }
    };
    for link in [&first, &second] {
        assert_eq!(status(&two, link).await, StatusCode::OK);
        assert_ne!(
            status(&two, &format!("{link}/i/{id}/thumb")).await,
            StatusCode::NOT_FOUND
        );
    }
    let token = csrf_in(&page(&one, "/shares").await);
    let link_of = data
        .query_strings(&format!(
            "SELECT id FROM share_links WHERE token_hash = '{}'",
            sha256_hex(first.trim_start_matches("/s/"))
        ))
        .await
        .remove(0);
    let r = alice
        .post(format!("{one}/shares/{link_of}/revoke"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(status(&two, &first).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(&two, &format!("{first}/i/{id}/thumb")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(&two, &second).await,
        StatusCode::OK,
        "the other link still opens"
    );

    // Sharing turned off for alice from instance two: her remaining link stops on one.
    let admin = browser();
    assert_eq!(
        login(&two, &admin, "admin", ADMIN_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let alice_id = data
        .count("SELECT id FROM users WHERE username = 'alice'")
        .await;
    let form = admin
        .get(format!("{two}/admin/users/{alice_id}/edit"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = admin
        .post(format!("{two}/admin/users/{alice_id}"))
        .form(&[("csrf", csrf_in(&form).as_str()), ("full_name", "Alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(status(&one, &second).await, StatusCode::NOT_FOUND);
}

fn sha256_hex(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

both_backends!(
    a_session_made_on_one_instance_works_on_another,
    a_link_revoked_on_one_instance_is_refused_by_the_other,
    a_revocation_on_one_instance_is_honoured_by_the_other,
    sigterm_reports_not_ready_keeps_serving_then_exits,
    users_can_be_managed_from_the_shell,
    without_a_configured_password_the_first_admin_gets_a_generated_one_shown_once,
);

/// A body stream fed through a channel, so a test decides when each piece is sent.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
