//! Hostile clients: slow headers and bodies, absurd multipart bodies. Each gets a bounded,
//! clean answer, nothing is stored, and the server keeps serving everyone else.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const TIMEOUTS: [&str; 4] = ["--header-timeout-secs", "1", "--body-timeout-secs", "1"];

fn host_port(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Read until the server closes the connection (or `limit` passes); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while started.elapsed() < limit {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    None
}

async fn slow_headers_are_cut_off_while_others_are_served(b: Backend) {
    let app = TestApp::spawn_with(b, &TIMEOUTS).await;
    let mut slow = TcpStream::connect(host_port(&app)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // Meanwhile everyone else is served.
    assert_eq!(
        app.get(&app.client(), "/healthz").await.status(),
        StatusCode::OK
    );
    let started = Instant::now();
    let closed = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "the slow client's connection must be closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off after the header timeout"
    );
}

async fn a_stalled_body_fails_cleanly(b: Backend) {
    let app = TestApp::spawn_with(b, &TIMEOUTS).await;
    let mut s = TcpStream::connect(host_port(&app)).await.unwrap();
    s.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=a")
        .await
        .unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered and closed within the bound");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    assert_eq!(
        app.get(&app.client(), "/healthz").await.status(),
        StatusCode::OK
    );
}

async fn multipart_abuse_gets_4xx_and_stores_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin().await;
    app.create_user(&admin, "alice", PASSWORD, "Alice", false)
        .await;
    // A cookie jar we can read, to replay alice's session over a raw socket below.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let alice = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(
        login(&app.base, &alice, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let token = app.csrf(&alice, "/upload").await;
    let post =
        |form: reqwest::multipart::Form| alice.post(app.url("/upload")).multipart(form).send();

    // Missing parts: no files at all, and no token.
    let r = post(reqwest::multipart::Form::new().text("csrf", token.clone()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(photo("rocket.jpg")).file_name("a.jpg"),
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A huge part count.
    let mut form = reqwest::multipart::Form::new().text("csrf", token.clone());
    for i in 0..500 {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(vec![0u8; 8]).file_name(format!("f{i}.jpg")),
        );
    }
    let r = post(form).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A file name of megabytes.
    let long = format!("{}.jpg", "n".repeat(2 * 1024 * 1024));
    let form = reqwest::multipart::Form::new()
        .text("csrf", token.clone())
        .part(
            "files",
            reqwest::multipart::Part::bytes(photo("rocket.jpg")).file_name(long),
        );
    let r = post(form).await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // A body that stops in the middle of a part.
    let mut s = TcpStream::connect(host_port(&app)).await.unwrap();
    let cookie = reqwest::cookie::CookieStore::cookies(&*jar, &app.base.parse().unwrap()).unwrap();
    let boundary = "XyZ";
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"cut.jpg\"\r\n\r\n",
        cookie.to_str().unwrap()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&photo("rocket.jpg")[..1000]).await.unwrap();
    s.shutdown().await.unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered and closed within the bound");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );

    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 0);
    assert!(app.data.objects().await.is_empty());
    assert_eq!(
        app.upload(&alice, &[("fine.jpg", photo("rocket.jpg"))])
            .await
            .status(),
        StatusCode::SEE_OTHER,
        "still serving"
    );
}

/// A body that never stalls long enough for the body timeout but trickles in a byte at a
/// time is cut off by the upload deadline (408), and others keep uploading meanwhile.
async fn a_trickled_upload_is_cut_off_while_others_upload(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        &["--body-timeout-secs", "2", "--upload-timeout-secs", "3"],
    )
    .await;
    let admin = app.admin().await;
    app.create_user(&admin, "alice", PASSWORD, "Alice", false)
        .await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let alice = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(
        login(&app.base, &alice, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let token = app.csrf(&alice, "/upload").await;
    let cookie = reqwest::cookie::CookieStore::cookies(&*jar, &app.base.parse().unwrap()).unwrap();
    let boundary = "XyZ";
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"slow.jpg\"\r\n\r\n",
        cookie.to_str().unwrap()
    );
    let stream = TcpStream::connect(host_port(&app)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        let photo = photo("rocket.jpg");
        for byte in photo.iter().take(40) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
    });
    assert_eq!(
        app.upload(&alice, &[("fine.jpg", photo("rocket.jpg"))])
            .await
            .status(),
        StatusCode::SEE_OTHER,
        "others upload while the slow one trickles"
    );
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "cut off with 408: {answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "cut off after {:?}",
        started.elapsed()
    );
    trickle.abort();
    assert_eq!(app.data.count("SELECT COUNT(*) FROM images").await, 1);
    assert_eq!(app.data.objects().await.len(), 2, "only the good upload");
}

/// Nobody can make the server read a large body for them without logging in first.
async fn an_oversize_upload_without_a_session_is_refused_at_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mut s = TcpStream::connect(host_port(&app)).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 100000000\r\n\r\n--XyZ\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 303") && answer.contains("location: /login"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

both_backends!(
    slow_headers_are_cut_off_while_others_are_served,
    a_stalled_body_fails_cleanly,
    multipart_abuse_gets_4xx_and_stores_nothing,
    a_trickled_upload_is_cut_off_while_others_upload,
    an_oversize_upload_without_a_session_is_refused_at_once,
);
