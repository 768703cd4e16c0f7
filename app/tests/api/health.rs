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
    use clap::Parser;
    let cli = gallery::cli::Cli::try_parse_from(&argv).unwrap();
    let Some(gallery::cli::Command::Serve(serve)) = cli.command else {
        unreachable!()
    };
    let config = gallery::config::Config::from_args(&cli.data, &serve).unwrap();
    let app = gallery::Application::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run_until_stopped(std::future::pending()));

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
