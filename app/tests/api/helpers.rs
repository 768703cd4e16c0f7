//! Start the app on port 0 with a fresh database and storage; drive it like a browser.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gallery::cli::{Cli, Command};
use gallery::config::Config;
use gallery::storage::Storage;
use gallery::Application;
use reqwest::{redirect, Client, Response, StatusCode};
use sqlx::{Connection, Row};

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "user-password-1";

/// Run each named `async fn name(backend: Backend)` as two tests, one per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await }) *
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Postgres).await }) *
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + images on disk: the embedded default.
    Sqlite,
    /// PostgreSQL (TLS) + S3 on the moto emulator.
    Postgres,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with `scripts/test`, which starts PostgreSQL and the \
             moto AWS emulator and sets it (see README.md)"
        )
    })
}

/// Fresh, isolated data for one test: a database and a storage location.
pub struct Data {
    pub backend: Backend,
    pub database_url: String,
    pub storage: String,
    pub s3_endpoint: Option<String>,
    pub bucket: Option<String>,
    pub dir: tempfile::TempDir,
}

impl Data {
    pub async fn new(backend: Backend) -> Data {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => Data {
                backend,
                database_url: format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("gallery.db").display()
                ),
                storage: format!("file://{}", dir.path().join("images").display()),
                s3_endpoint: None,
                bucket: None,
                dir,
            },
            Backend::Postgres => {
                let admin_url = required_env("GALLERY_TEST_POSTGRES_URL");
                let endpoint = required_env("GALLERY_TEST_S3_ENDPOINT");
                let db_name = format!("gallery_test_{id}");
                sqlx::any::install_default_drivers();
                let mut conn = sqlx::AnyConnection::connect(&admin_url)
                    .await
                    .expect("connect to the test Postgres (is scripts/test running it?)");
                sqlx::query(&format!("CREATE DATABASE {db_name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("postgres url");
                url.set_path(&db_name);
                let bucket = format!("gallery-test-{id}");
                s3_client(&endpoint)
                    .await
                    .create_bucket()
                    .bucket(&bucket)
                    .send()
                    .await
                    .expect("create test bucket on moto");
                Data {
                    backend,
                    database_url: url.to_string(),
                    storage: format!("s3://{bucket}"),
                    s3_endpoint: Some(endpoint),
                    bucket: Some(bucket),
                    dir,
                }
            }
        }
    }

    /// The data flags, as the binary takes them.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--database-url".to_string(),
            self.database_url.clone(),
            "--storage".to_string(),
            self.storage.clone(),
        ];
        if let Some(ep) = &self.s3_endpoint {
            args.extend([
                "--s3-endpoint".to_string(),
                ep.clone(),
                "--aws-region".into(),
                "us-east-1".into(),
            ]);
        }
        args
    }

    /// Where uploads are received: the default in the storage folder on disk; with S3,
    /// the folder the tests name (`TestApp::config`).
    pub fn spool_dir(&self) -> std::path::PathBuf {
        match self.backend {
            Backend::Sqlite => self.dir.path().join("images").join(".spool"),
            Backend::Postgres => self.dir.path().join("spool"),
        }
    }

    /// Files left in the spool (none once every request has ended).
    pub fn spooled(&self) -> Vec<String> {
        let root = self.spool_dir();
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        files
    }

    /// Every stored object key, sorted.
    pub async fn objects(&self) -> Vec<String> {
        match self.backend {
            Backend::Sqlite => {
                let root = self.dir.path().join("images");
                let mut keys = Vec::new();
                walk(&root, &root, &mut keys);
                keys.sort();
                keys
            }
            Backend::Postgres => {
                let client = s3_client(self.s3_endpoint.as_deref().unwrap_or_default()).await;
                let out = client
                    .list_objects_v2()
                    .bucket(self.bucket.as_deref().unwrap_or_default())
                    .send()
                    .await
                    .expect("list objects");
                let mut keys: Vec<String> = out
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from))
                    .collect();
                keys.sort();
                keys
            }
        }
    }

    pub async fn object_bytes(&self, key: &str) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                std::fs::read(self.dir.path().join("images").join(key)).expect("read object")
            }
            Backend::Postgres => {
                let client = s3_client(self.s3_endpoint.as_deref().unwrap_or_default()).await;
                let out = client
                    .get_object()
                    .bucket(self.bucket.as_deref().unwrap_or_default())
                    .key(key)
                    .send()
                    .await
                    .expect("get object");
                out.body
                    .collect()
                    .await
                    .expect("object body")
                    .into_bytes()
                    .to_vec()
            }
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("connect");
        sqlx::query(sql)
            .fetch_one(&mut conn)
            .await
            .expect("count query")
            .get::<i64, _>(0)
    }

    /// Run a statement on the test's database (to set up a failure, say).
    pub async fn execute(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("connect");
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .expect("test statement");
    }

    pub async fn query_strings(&self, sql: &str) -> Vec<String> {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("connect");
        sqlx::query(sql)
            .fetch_all(&mut conn)
            .await
            .expect("query")
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A running app and the data behind it.
pub struct TestApp {
    pub base: String,
    pub data: Data,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    /// Start with extra `serve` flags.
    pub async fn spawn_with(backend: Backend, serve_args: &[&str]) -> TestApp {
        let data = Data::new(backend).await;
        let app = Self::start_on(&data, serve_args).await;
        TestApp { base: app, data }
    }

    /// Start with the configured storage wrapped by `wrap` (to make it fail on purpose).
    pub async fn spawn_wrapping_storage(
        backend: Backend,
        wrap: impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage>,
    ) -> TestApp {
        let data = Data::new(backend).await;
        let base = Self::start_wrapping_on(&data, &[], wrap).await;
        TestApp { base, data }
    }

    /// Start another server on the same data, with extra `serve` flags and its storage
    /// wrapped by `wrap`; returns its base URL.
    pub async fn start_wrapping_on(
        data: &Data,
        serve_args: &[&str],
        wrap: impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage>,
    ) -> String {
        let config = Self::config(data, serve_args);
        let storage = gallery::storage::connect(&config.data)
            .await
            .expect("test storage opens");
        let app = Application::build_with_storage(config, wrap(storage))
            .await
            .expect("app builds");
        Self::run(app).await
    }

    /// Start another server on the same data; returns its base URL.
    pub async fn start_on(data: &Data, serve_args: &[&str]) -> String {
        let config = Self::config(data, serve_args);
        let app = Application::build(config).await.expect("app builds");
        Self::run(app).await
    }

    async fn run(app: Application) -> String {
        let base = format!("http://{}", app.local_addr().expect("addr"));
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        wait_ready(&base).await;
        base
    }

    /// The configuration `gallery serve` would build from the test's flags.
    fn config(data: &Data, serve_args: &[&str]) -> Config {
        let mut argv: Vec<String> = vec!["gallery".into()];
        argv.extend(data.args());
        argv.extend(
            [
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--admin-password",
                ADMIN_PASSWORD,
                "--drain-secs",
                "0",
            ]
            .map(String::from),
        );
        argv.extend(serve_args.iter().map(|s| s.to_string()));
        if data.backend == Backend::Postgres && !serve_args.contains(&"--spool-dir") {
            argv.extend(["--spool-dir".into(), data.spool_dir().display().to_string()]);
        }
        let cli = Cli::try_parse_from(&argv).expect("test arguments parse");
        let Some(Command::Serve(serve)) = cli.command else {
            unreachable!()
        };
        Config::from_args(&cli.data, &serve).expect("valid test config")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn client(&self) -> Client {
        browser()
    }

    pub async fn admin(&self) -> Client {
        let c = self.client();
        let r = login(&self.base, &c, "admin", ADMIN_PASSWORD).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "admin login");
        c
    }

    /// Create a user through the admin page and return a client logged in as them.
    pub async fn user(&self, username: &str) -> Client {
        let admin = self.admin().await;
        let r = self
            .create_user(
                &admin,
                username,
                PASSWORD,
                &format!("{username} Full"),
                false,
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "creating {username}: {}",
            r.text().await.unwrap_or_default()
        );
        let c = self.client();
        let r = login(&self.base, &c, username, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login as {username}");
        c
    }

    pub async fn create_user(
        &self,
        admin: &Client,
        username: &str,
        password: &str,
        full_name: &str,
        is_admin: bool,
    ) -> Response {
        let token = self.csrf(admin, "/admin/users/new").await;
        let mut form = vec![
            ("csrf", token),
            ("username", username.to_string()),
            ("password", password.to_string()),
            ("full_name", full_name.to_string()),
        ];
        if is_admin {
            form.push(("admin", "on".into()));
        }
        admin
            .post(self.url("/admin/users"))
            .form(&form)
            .send()
            .await
            .expect("post")
    }

    pub async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.expect("get")
    }

    pub async fn page(&self, client: &Client, path: &str) -> String {
        let r = self.get(client, path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.expect("body")
    }

    pub async fn csrf(&self, client: &Client, path: &str) -> String {
        csrf_in(&self.page(client, path).await)
    }

    pub async fn post_form(&self, client: &Client, path: &str, form: &[(&str, &str)]) -> Response {
        client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("post")
    }

    /// Upload files through the upload form.
    pub async fn upload(&self, client: &Client, files: &[(&str, Vec<u8>)]) -> Response {
        let token = self.csrf(client, "/upload").await;
        let mut form = reqwest::multipart::Form::new().text("csrf", token);
        for (name, bytes) in files {
            let part = reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(name.to_string())
                .mime_str("image/jpeg")
                .expect("mime");
            form = form.part("files", part);
        }
        client
            .post(self.url("/upload"))
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    /// Ids of the images on a gallery page, in display order.
    pub async fn gallery_ids(&self, client: &Client, path: &str) -> Vec<String> {
        let html = self.page(client, path).await;
        html.match_indices("/thumb\"")
            .filter_map(|(end, _)| html[..end].rsplit("/images/").next().map(String::from))
            .collect()
    }
}

/// Start the server from a whole command line (`gallery ... serve ...`), without waiting
/// for it to be ready; returns its base URL.
pub async fn start_from_argv(argv: &[String]) -> String {
    let cli = Cli::try_parse_from(argv).expect("test arguments parse");
    let Some(Command::Serve(serve)) = cli.command else {
        unreachable!()
    };
    let config = Config::from_args(&cli.data, &serve).expect("valid test config");
    let app = Application::build(config).await.expect("app builds");
    let base = format!("http://{}", app.local_addr().expect("addr"));
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    base
}

pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in page: {html}"))
        + marker.len();
    let end = html[start..].find('"').expect("end of csrf value");
    html[start..start + end].to_string()
}

pub async fn login(base: &str, client: &Client, username: &str, password: &str) -> Response {
    let html = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("body");
    let token = csrf_in(&html);
    client
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .expect("post login")
}

pub async fn wait_ready(base: &str) {
    let client = Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready within 10 s");
}

pub fn photo(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "testdata", "photos", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A PNG that is only a header claiming `width` x `height` (plus a tiny IDAT and IEND).
pub fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend(crc32(&crc_input).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A logged-in session as its cookie alone (`gallery_session=...`), for requests sent by
/// hand: they carry none of a browser's other cookies, such as the marker a write sets
/// (`gallery_sync`) that makes every instance read the database for that browser.
pub struct RawSession {
    pub cookie: String,
}

impl RawSession {
    pub async fn login(base: &str, username: &str, password: &str) -> RawSession {
        let r = login(base, &browser(), username, password).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{username} logs in");
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("gallery_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_string();
        RawSession { cookie }
    }

    pub async fn get(&self, base: &str, path: &str) -> Response {
        raw_client()
            .get(format!("{base}{path}"))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get")
    }

    pub async fn post(&self, base: &str, path: &str, form: &[(&str, &str)]) -> Response {
        raw_client()
            .post(format!("{base}{path}"))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .expect("post")
    }

    /// Upload one photo through `base`'s upload form.
    pub async fn upload(&self, base: &str, name: &str, bytes: Vec<u8>) -> Response {
        let token = self.csrf(base).await;
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str("image/jpeg")
            .expect("mime");
        let form = reqwest::multipart::Form::new()
            .text("csrf", token)
            .part("files", part);
        raw_client()
            .post(format!("{base}/upload"))
            .header("cookie", &self.cookie)
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    /// The session's CSRF token, from a page of `base`.
    pub async fn csrf(&self, base: &str) -> String {
        let r = self.get(base, "/upload").await;
        assert_eq!(r.status(), StatusCode::OK, "the upload form");
        csrf_in(&r.text().await.expect("body"))
    }
}

fn raw_client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client")
}

/// A small PNG whose bytes differ for every `seed` (for batches of distinct photos).
pub fn distinct_png(seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(16, 12, |x, y| {
        let [a, b, c, d] = seed.to_le_bytes();
        image::Rgb([a ^ x as u8, b ^ y as u8, c.wrapping_add(d)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("a PNG encodes");
    out.into_inner()
}
