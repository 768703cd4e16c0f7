//! Health and readiness, including a database that appears after the server starts.

use reqwest::StatusCode;
use sqlx::Connection;

use crate::helpers::*;

async fn health_and_readiness_answer_without_login(b: Backend) {
    let app = TestApp::spawn(b).await;
    let c = app.client();
    let r = app.get(&c, "/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get(&c, "/readyz").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "ready");
}

both_backends!(health_and_readiness_answer_without_login);

/// The server starts and answers `/healthz` before its database exists, and becomes
/// ready by itself once it does (as on AWS while RDS is still being created).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_becomes_ready_when_the_database_appears() {
    let data = Data::new(Backend::Postgres).await;
    let name = format!("late_{}", uuid::Uuid::new_v4().simple());
    let mut url = url::Url::parse(&data.database_url).unwrap();
    url.set_path(&name);
    let late = Data {
        database_url: url.to_string(),
        ..data
    };

    let mut argv: Vec<String> = vec!["gallery".into()];
    argv.extend(late.args());
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

    let c = browser();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let r = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "pages say the gallery is starting"
    );
    assert!(r.text().await.unwrap().contains("waiting for its database"));

    let admin_url = std::env::var("GALLERY_TEST_POSTGRES_URL").unwrap();
    let mut conn = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();

    wait_ready(&base).await;
    let c = browser();
    assert_eq!(
        login(&base, &c, "admin", ADMIN_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

/// On AWS the app finds its database in a Secrets Manager secret that `provision` fills
/// in once RDS has an address: until then it runs, answers `/healthz`, is not ready; then
/// it connects (over TLS) and takes the first admin's password from another secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_admin_password_come_from_secrets_that_fill_in_later() {
    let data = Data::new(Backend::Postgres).await;
    let endpoint = data.s3_endpoint.clone().unwrap();
    let pg = url::Url::parse(&data.database_url).unwrap();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&shared)
            .endpoint_url(&endpoint)
            .build(),
    );
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dbname = pg.path().trim_start_matches('/').to_string();
    let pending = serde_json::json!({"engine": "postgres", "username": "postgres", "password": "unused-by-trust-auth", "dbname": dbname, "port": pg.port()});
    let db_arn = sm
        .create_secret()
        .name(format!("test-{id}/db"))
        .secret_string(pending.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let admin_arn = sm
        .create_secret()
        .name(format!("test-{id}/admin"))
        .secret_string(
            serde_json::json!({"username": "admin", "password": "from-the-secret-1"}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();

    let spawn = || {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = std::process::Command::new(env!("CARGO_BIN_EXE_gallery"))
            .args([
                "--database-secret-arn",
                &db_arn,
                "--aws-endpoint",
                &endpoint,
                "--aws-region",
                "us-east-1",
                "--database-ca-file",
                &std::env::var("GALLERY_TEST_POSTGRES_CA").unwrap(),
            ])
            .args(["--storage", &data.storage])
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--admin-secret-arn",
                &admin_arn,
            ])
            .env_remove("GALLERY_ADMIN_PASSWORD")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        (server, format!("http://127.0.0.1:{port}"))
    };
    let (server, base) = spawn();
    let c = browser();
    let mut alive = false;
    for _ in 0..100 {
        if c.get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            alive = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(alive, "healthz answers while the database is unknown");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        c.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    let put = |value: serde_json::Value| {
        sm.put_secret_value()
            .secret_id(&db_arn)
            .secret_string(value.to_string())
            .send()
    };
    let mut ready = pending.clone();
    ready["host"] = serde_json::json!(pg.host_str().unwrap());
    put(ready.clone()).await.unwrap();
    wait_ready(&base).await;
    let before = browser();
    assert_eq!(
        login(&base, &before, "admin", "from-the-secret-1")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let mut printed = String::new();
    let mut stop = |server: std::process::Child| {
        let mut server = server;
        let _ = server.kill();
        let out = server.wait_with_output().unwrap();
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
    };
    let logged_in = |client: reqwest::Client, base: String| async move {
        let r = client.get(format!("{base}/gallery")).send().await.unwrap();
        r.status() == StatusCode::OK
    };
    assert!(logged_in(before.clone(), base.clone()).await);

    // `provision` restored the database from a snapshot and said so in the secret: the
    // sessions the snapshot held end once, sessions made after that restore live on.
    ready["restored"] = serde_json::json!("snapshot-1 at 2026-12-03T08:00:00Z");
    put(ready.clone()).await.unwrap();
    stop(server);
    // Two instances boot on the restored database at once, as a fleet does.
    let ((server, base), (twin, twin_base)) = (spawn(), spawn());
    wait_ready(&base).await;
    wait_ready(&twin_base).await;
    assert!(
        !logged_in(before.clone(), base.clone()).await,
        "a session from before the restore is ended"
    );
    let after = browser();
    assert_eq!(
        login(&base, &after, "admin", "from-the-secret-1")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert!(
        logged_in(after.clone(), twin_base.clone()).await,
        "the other instance honours the session made since"
    );
    stop(server);
    stop(twin);
    let (server, base) = spawn();
    wait_ready(&base).await;
    assert!(
        logged_in(after.clone(), base.clone()).await,
        "the next boot on the same restore keeps the sessions made since"
    );
    stop(server);
    assert!(
        !printed.contains("from-the-secret-1") && !printed.contains("unused-by-trust-auth"),
        "a secret reached the output"
    );
}
