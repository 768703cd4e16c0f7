//! The database connection: verified TLS (the server's certificate must chain to the CA
//! the app is given, and name the host), and an outage after startup, which leaves the
//! instance ready (it is not the instance that is broken) while pages answer a clear 503,
//! until the database is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// A TCP relay in front of the test PostgreSQL that can go down: while down it cuts every
/// relayed connection and drops new ones at once (the server refusing connections, as
/// during a maintenance reboot), and relays again once up.
struct Outage {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Outage {
    async fn start(bind: &str, target: String) -> Outage {
        let listener = TcpListener::bind(format!("{bind}:0")).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Outage { port, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A database URL of `data`'s with its host and port replaced.
fn via(data: &Data, port: u16) -> String {
    let mut url = url::Url::parse(&data.database_url).unwrap();
    url.set_port(Some(port)).unwrap();
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_keeps_the_instance_ready_answers_503_and_recovers() {
    let data = Data::new(Backend::Postgres).await;
    let pg = url::Url::parse(&data.database_url).unwrap();
    let relay = Outage::start("127.0.0.1", format!("127.0.0.1:{}", pg.port().unwrap())).await;
    let relayed = Data {
        database_url: via(&data, relay.port),
        ..data
    };
    let base = TestApp::start_on(&relayed, &[]).await;
    let c = browser();
    assert_eq!(
        login(&base, &c, "admin", ADMIN_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        c.get(format!("{base}/gallery"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    relay.down();
    let started = Instant::now();
    // A read may still be answered from memory until the cache's freshness bound has
    // passed (it can no longer read the change feed), then the 503 page.
    let page = loop {
        let r = c.get(format!("{base}/gallery")).send().await.unwrap();
        if r.status() != StatusCode::OK
            || started.elapsed() > gallery::cache::FRESHNESS + Duration::from_secs(1)
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.headers().contains_key("retry-after"));
    let text = page.text().await.unwrap();
    assert!(text.contains("Briefly unavailable"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the 503 comes at once, not after a long hang: {:?}",
        started.elapsed()
    );
    // Readiness is about the instance: still ready (a load balancer keeps it, Auto
    // Scaling does not replace it), and the body says what is down.
    let ready = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(ready.text().await.unwrap().contains("database unreachable"));
    let login_page = c.get(format!("{base}/login")).send().await.unwrap();
    assert!(
        login_page.status() == StatusCode::SERVICE_UNAVAILABLE
            || login_page.status() == StatusCode::SEE_OTHER,
        "{}",
        login_page.status()
    );

    relay.restore();
    let back = Instant::now();
    loop {
        let r = c.get(format!("{base}/gallery")).send().await.unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "still 503 30 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same session: nothing was lost.
    assert!(c
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("Log out"));
    let ready = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.text().await.unwrap(), "ready");
}

fn other_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let crt = dir.join("other-ca.crt");
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=some other CA", "-keyout"])
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl (scripts/test requires it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crt
}

/// With `--database-ca-file`, the connection is `verify-full`: a server whose certificate
/// does not chain to that CA is refused, and so is one whose certificate names another
/// host, and the app stays unready rather than talking to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_certificate_not_signed_by_the_trusted_ca_is_refused() {
    let data = Data::new(Backend::Postgres).await;
    let bare = {
        let mut u = url::Url::parse(&data.database_url).unwrap();
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| k != "sslmode" && k != "sslrootcert")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut().clear().extend_pairs(kept);
        u.to_string()
    };
    let trusted = std::env::var("GALLERY_TEST_POSTGRES_CA")
        .expect("scripts/test sets GALLERY_TEST_POSTGRES_CA");
    let wrong = other_ca(data.dir.path());
    // The CA of the suite's own signs the server: connects.
    let config = gallery::config::DataArgs {
        database_url: bare.clone(),
        storage: data.storage.clone(),
        s3_endpoint: data.s3_endpoint.clone(),
        aws_region: Some("us-east-1".into()),
        database_secret_arn: None,
        aws_endpoint: None,
        database_ca_file: Some(trusted.into()),
    };
    let parsed = gallery::config::DataConfig::from_args(&config).unwrap();
    let gallery::config::DatabaseSource::Url(url) = &parsed.database else {
        unreachable!()
    };
    assert!(url.url.contains("sslmode=verify-full"), "{}", url.url);
    let db = gallery::db::Db::connect_lazy(url).unwrap();
    db.ping()
        .await
        .expect("the trusted CA's server is accepted");

    // Another CA: refused.
    let config = gallery::config::DataArgs {
        database_ca_file: Some(wrong.clone()),
        ..config
    };
    let parsed = gallery::config::DataConfig::from_args(&config).unwrap();
    let gallery::config::DatabaseSource::Url(url) = &parsed.database else {
        unreachable!()
    };
    let db = gallery::db::Db::connect_lazy(url).unwrap();
    let err = db
        .ping()
        .await
        .expect_err("a server signed by another CA is refused");
    assert!(
        format!("{err}").to_lowercase().contains("certificate"),
        "refused for its certificate: {err}"
    );

    // The right CA but another host name than the certificate's (127.0.0.2, relayed to the
    // same server): refused too, verify-full checks the name.
    let pg = url::Url::parse(&bare).unwrap();
    let relay = Outage::start("127.0.0.2", format!("127.0.0.1:{}", pg.port().unwrap())).await;
    let mut other_host = pg.clone();
    other_host.set_host(Some("127.0.0.2")).unwrap();
    other_host.set_port(Some(relay.port)).unwrap();
    let trusted = std::env::var("GALLERY_TEST_POSTGRES_CA").unwrap();
    let url = gallery::config::DatabaseUrl::parse(other_host.as_str())
        .unwrap()
        .verified_by(std::path::Path::new(&trusted));
    let err = gallery::db::Db::connect_lazy(&url)
        .unwrap()
        .ping()
        .await
        .expect_err("a certificate for another host is refused");
    assert!(
        format!("{err}").to_lowercase().contains("certificate")
            || format!("{err}").to_lowercase().contains("name"),
        "{err}"
    );

    // And the server itself, started with the wrong CA, never becomes ready.
    let mut argv: Vec<String> = vec!["gallery".into()];
    argv.extend([
        "--database-url".into(),
        bare,
        "--storage".into(),
        data.storage.clone(),
    ]);
    if let Some(ep) = &data.s3_endpoint {
        argv.extend([
            "--s3-endpoint".into(),
            ep.clone(),
            "--aws-region".into(),
            "us-east-1".into(),
        ]);
    }
    argv.extend(["--database-ca-file".into(), wrong.display().to_string()]);
    argv.extend(
        [
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--admin-password",
            ADMIN_PASSWORD,
        ]
        .map(String::from),
    );
    let base = start_from_argv(&argv).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = browser()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A newer release migrated the database (an added table and column, and its row in
/// `_sqlx_migrations` that this release does not know), then was rolled back: this
/// release still starts, becomes ready and serves, uploads included.
async fn an_older_release_serves_a_database_a_newer_release_migrated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let blob = if backend == Backend::Postgres {
        "'\\x00'::bytea"
    } else {
        "X'00'"
    };
    app.data
        .execute(&format!(
            "CREATE TABLE stories (id BIGINT PRIMARY KEY, title TEXT NOT NULL);
             ALTER TABLE images ADD COLUMN rating INTEGER;
             INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (99990101000000, 'stories (a newer release)', TRUE, {blob}, 1);"
        ))
        .await;
    let base = TestApp::start_on(&app.data, &[]).await;
    let older = TestApp {
        base,
        data: app.data,
    };
    let admin = older.admin().await;
    let r = older
        .upload(&admin, &[("after.jpg", photo("rocket.jpg"))])
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "an upload on the newer schema"
    );
    assert_eq!(older.data.count("SELECT COUNT(*) FROM images").await, 1);
    assert_eq!(
        older
            .data
            .count("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 99990101000000")
            .await,
        1,
        "the newer release's migration is left as it is"
    );
}

both_backends!(an_older_release_serves_a_database_a_newer_release_migrated);
