//! End to end on the local cloud (`localcloud/`, started by `scripts/test`): the real
//! `provision` binary builds a stack whose instances boot the real release binary from
//! their user-data, RDS is a real PostgreSQL, target health comes from real probes and
//! the load balancer really forwards. One test at a time: they change the cloud's settings.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use serde_json::{json, Value};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn cloud_url() -> String {
    std::env::var("GALLERY_TEST_LOCALCLOUD").unwrap_or_else(|_| {
        panic!("GALLERY_TEST_LOCALCLOUD is not set: run the suite with `scripts/test`, which starts the local cloud (see localcloud/README.md)")
    })
}

fn artifact() -> PathBuf {
    let path = std::env::var("GALLERY_TEST_ARTIFACT").unwrap_or_else(|_| {
        panic!("GALLERY_TEST_ARTIFACT is not set: run the suite with `scripts/test`, which builds the release with scripts/release")
    });
    PathBuf::from(path)
}

async fn cloud(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut req = client.request(method, format!("{}/_localcloud/{path}", cloud_url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("local cloud control API");
    assert!(
        resp.status().is_success(),
        "local cloud {path}: {}",
        resp.status()
    );
    resp.json().await.unwrap()
}

async fn settings(value: Value) {
    cloud(reqwest::Method::POST, "settings", Some(value)).await;
}

/// A stack named for the test, with health checks fast enough for a test.
struct Stack {
    name: String,
    dir: tempfile::TempDir,
    /// Everything provision printed for this stack, except `admin-password` (which prints
    /// the password on request): checked for leaked secrets.
    output: std::sync::Mutex<String>,
}

impl Stack {
    fn new(prefix: &str, grace_secs: u32) -> Stack {
        let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml"))
            .unwrap()
            .replace("name = \"gallery\"", &format!("name = \"{name}\""))
            .replace(
                "health_check_grace_secs = 300",
                &format!("health_check_grace_secs = {grace_secs}"),
            )
            .replace(
                "health_check_interval_secs = 10",
                "health_check_interval_secs = 5",
            )
            .replace(
                "deregistration_delay_secs = 30",
                "deregistration_delay_secs = 5",
            )
            .replace("deletion_protection = true", "deletion_protection = false");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), text).unwrap();
        Stack {
            name,
            dir,
            output: std::sync::Mutex::new(String::new()),
        }
    }

    /// Run the real binary; returns (exit code, stdout, stderr).
    async fn provision(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(["--endpoint", &cloud_url(), "--poll-secs", "0.5"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        if args.first() != Some(&"admin-password") {
            let mut all = self.output.lock().unwrap();
            all.push_str(&stdout);
            all.push_str(&stderr);
        }
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    async fn up(&self) -> String {
        let art = artifact();
        let started = Instant::now();
        let (code, stdout, stderr) = self
            .provision(&["up", "--artifact", art.to_str().unwrap()])
            .await;
        assert_eq!(code, 0, "provision up failed:\n{stdout}\n{stderr}");
        let url = stdout.lines().last().unwrap_or_default().trim().to_string();
        assert!(
            url.starts_with("http://") && url.contains(".elb.amazonaws.com"),
            "up printed no URL:\n{stdout}"
        );
        eprintln!(
            "[{}] up: {:.1}s",
            self.name,
            started.elapsed().as_secs_f64()
        );
        url
    }

    async fn down(&self) {
        let (code, stdout, stderr) = self
            .provision(&["down", "--yes", "--force", "--skip-final-snapshot"])
            .await;
        assert_eq!(code, 0, "provision down failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("nothing tagged for it remains"), "{stdout}");
    }

    async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&sdk_config().await)
    }

    /// An instance's console output (its boot output and its units' last lines).
    async fn console(&self, id: &str) -> String {
        let out = self
            .ec2()
            .await
            .get_console_output()
            .instance_id(id)
            .send()
            .await
            .unwrap();
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            out.output().unwrap_or_default(),
        )
        .unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    }

    /// The stack's instances as EC2 reports them: (id, state).
    async fn instances(&self) -> Vec<(String, String)> {
        let out = self
            .ec2()
            .await
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("tag:gallery:stack")
                    .values(&self.name)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                (
                    i.instance_id().unwrap_or_default().to_string(),
                    i.state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn target_health(&self) -> Vec<(String, String)> {
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk_config().await);
        let groups = elb.describe_target_groups().send().await.unwrap();
        let Some(tg) = groups.target_groups().iter().find(|g| {
            g.target_group_name()
                .unwrap_or_default()
                .starts_with(&self.name)
        }) else {
            return vec![];
        };
        let health = elb
            .describe_target_health()
            .target_group_arn(tg.target_group_arn().unwrap_or_default())
            .send()
            .await
            .unwrap();
        health
            .target_health_descriptions()
            .iter()
            .map(|d| {
                (
                    d.target()
                        .and_then(|t| t.id())
                        .unwrap_or_default()
                        .to_string(),
                    d.target_health()
                        .and_then(|h| h.state())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn admin_password(&self) -> String {
        let (code, stdout, stderr) = self.provision(&["admin-password"]).await;
        assert_eq!(code, 0, "admin-password failed: {stderr}");
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .expect("admin-password prints the password")
            .to_string()
    }
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(cloud_url())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// A browser for the deployed gallery: the load balancer's name resolves to the address
/// the local cloud gave it, as DNS would.
async fn browser(url: &str) -> (reqwest::Client, String) {
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let status = cloud(reqwest::Method::GET, "status", None).await;
    let address = status["balancers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["dns_name"] == host.as_str())
        .unwrap_or_else(|| {
            panic!("the local cloud serves no load balancer named {host}: {status}")
        })["address"]
        .as_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, SocketAddr::new(address.parse().unwrap(), 80))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    (client, format!("http://{host}"))
}

async fn wait_ready(client: &reqwest::Client, base: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < timeout,
            "the gallery at {base} was not ready within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_string()
}

async fn login(client: &reqwest::Client, base: &str, user: &str, password: &str) {
    let page = client
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = client
        .post(format!("{base}/login"))
        .form(&[
            ("username", user),
            ("password", password),
            ("csrf", &csrf(&page)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "login as {user}: {}",
        r.text().await.unwrap_or_default()
    );
}

/// Through the load balancer: the admin adds a user, who uploads an image and sees it.
async fn use_the_gallery(stack: &Stack, url: &str) {
    let (admin, base) = browser(url).await;
    let waited = wait_ready(&admin, &base, Duration::from_secs(240)).await;
    eprintln!(
        "[{}] ready through the load balancer after {:.1}s more",
        stack.name,
        waited.as_secs_f64()
    );
    let password = stack.admin_password().await;
    login(&admin, &base, "admin", &password).await;
    let home = admin
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("Administrator"), "{home}");

    let form = admin
        .get(format!("{base}/admin/users/new"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = admin
        .post(format!("{base}/admin/users"))
        .form(&[
            ("csrf", csrf(&form).as_str()),
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("full_name", "Alice Liddell"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());

    let (alice, _) = browser(url).await;
    login(&alice, &base, "alice", "correct horse battery").await;
    let page = alice
        .get(format!("{base}/upload"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/photos/rocket.jpg"
    ))
    .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf(&page))
        .part(
            "files",
            reqwest::multipart::Part::bytes(photo)
                .file_name("holiday.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        );
    let r = alice
        .post(format!("{base}/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "upload: {}",
        r.text().await.unwrap_or_default()
    );

    let gallery = alice
        .get(format!("{base}/gallery"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = gallery
        .find("<img src=\"/images/")
        .expect("a thumbnail in the gallery")
        + 10;
    let thumb = gallery[at..].split('"').next().unwrap().to_string();
    let id = thumb
        .trim_start_matches("/images/")
        .trim_end_matches("/thumb")
        .to_string();
    // The thumbnail is a redirect to a presigned URL of the bucket (the local cloud's S3).
    let r = alice.get(format!("{base}{thumb}")).send().await.unwrap();
    assert!(r.status().is_redirection(), "thumbnail: {}", r.status());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let image = reqwest::get(&location).await.unwrap();
    assert_eq!(image.status(), 200, "{location}");
    assert!(
        image.bytes().await.unwrap().starts_with(&[0xff, 0xd8]),
        "a JPEG thumbnail"
    );
    let page = alice
        .get(format!("{base}/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("holiday.jpg"));

    // The object sits in the bucket under the user's folder, the row in Postgres.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    let buckets = s3.list_buckets().send().await.unwrap();
    let bucket = buckets
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .find(|n| n.starts_with(&stack.name))
        .expect("the stack's bucket")
        .to_string();
    let objects = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("images/alice/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys.len(),
        2,
        "original and thumbnail under images/alice/: {keys:?}"
    );
    assert_eq!(
        psql(stack, "SELECT original_name FROM images JOIN users ON users.id = images.owner_id WHERE users.username = 'alice'").await,
        "holiday.jpg"
    );
}

/// Query the stack's database (the local cloud's PostgreSQL behind the RDS endpoint) with
/// the credentials from its Secrets Manager secret.
async fn psql(stack: &Stack, sql: &str) -> String {
    let secret = db_secret(stack).await;
    let status = cloud(reqwest::Method::GET, "status", None).await;
    let host = secret["host"].as_str().unwrap();
    let address = status["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["hostname"] == host)
        .expect("the RDS endpoint is served by the local cloud")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let pg_bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let out = tokio::process::Command::new(format!("{pg_bin}/psql"))
        .arg(format!(
            "host={address} port={} user={} dbname={} sslmode=require",
            secret["port"],
            secret["username"].as_str().unwrap(),
            secret["dbname"].as_str().unwrap()
        ))
        .args(["-Atc", sql])
        .env("PGPASSWORD", secret["password"].as_str().unwrap())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The database credentials provision generated (only in Secrets Manager).
async fn db_secret(stack: &Stack) -> Value {
    let sm = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let arn = format!("{}/db", stack.name);
    serde_json::from_str(
        sm.get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap(),
    )
    .unwrap()
}

/// Neither the database password nor the first admin's appears in anything provision
/// printed (up, status --json) or in any instance's console (its boot output and the
/// gallery's log).
async fn assert_no_secret_in_output(stack: &Stack, ids: &[String]) {
    let db = db_secret(stack).await["password"]
        .as_str()
        .unwrap()
        .to_string();
    let admin = stack.admin_password().await;
    assert!(db.len() >= 16 && admin.len() >= 16);
    let printed = stack.output.lock().unwrap().clone();
    assert!(
        printed.contains("http://"),
        "the output was captured: {printed}"
    );
    for (what, secret) in [("database", &db), ("admin", &admin)] {
        assert!(
            !printed.contains(secret.as_str()),
            "the {what} password is in provision's output"
        );
    }
    for id in ids {
        let console = stack.console(id).await;
        assert!(console.contains("gallery"), "{id} has a console: {console}");
        for (what, secret) in [("database", &db), ("admin", &admin)] {
            assert!(
                !console.contains(secret.as_str()),
                "the {what} password is in {id}'s console output"
            );
        }
    }
}

/// After `down`: nothing of the stack's instances runs any more.
async fn assert_nothing_runs(ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = cloud(reqwest::Method::GET, "status", None).await;
        let live: Vec<_> = status["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| {
                ids.contains(&i["id"].as_str().unwrap().to_string())
                    && (i["state"] != "stopped" || i["processes"] != 0)
            })
            .cloned()
            .collect();
        let namespaces = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        let namespaces = String::from_utf8_lossy(&namespaces.stdout).to_string();
        let leftover = ids.iter().any(|id| namespaces.contains(id.as_str()));
        if live.is_empty() && !leftover {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "instances still running after down: {live:?}\n{namespaces}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn full_cycle(prefix: &str) {
    let stack = Stack::new(prefix, 60);
    let url = stack.up().await;
    use_the_gallery(&stack, &url).await;
    let ids: Vec<String> = stack
        .instances()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 2, "two instances: {ids:?}");
    let (code, _, _) = stack.provision(&["status", "--json"]).await;
    assert_eq!(code, 0);
    assert_no_secret_in_output(&stack, &ids).await;
    let started = Instant::now();
    stack.down().await;
    eprintln!(
        "[{}] down: {:.1}s",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    assert_nothing_runs(&ids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_the_gallery_end_to_end_and_down_leaves_nothing() {
    let _serial = SERIAL.lock().await;
    settings(json!({"profile": "instant", "throttle_rate": 0.0, "error_rate": 0.0})).await;
    full_cycle("e2e").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_with_realistic_delays_and_ten_percent_throttling() {
    let _serial = SERIAL.lock().await;
    settings(json!({"profile": "realistic", "throttle_rate": 0.1, "error_rate": 0.0})).await;
    full_cycle("slow").await;
    let status = cloud(reqwest::Method::GET, "status", None).await;
    settings(json!({"profile": "instant", "throttle_rate": 0.0})).await;
    assert!(
        status["injected"]["throttle"].as_u64().unwrap() > 0,
        "no throttling was injected: {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gallery_becomes_ready_by_itself_when_rds_comes_up_after_the_instances() {
    let _serial = SERIAL.lock().await;
    settings(json!({"profile": "instant", "delays": {"rds_create": 45}})).await;
    let stack = Stack::new("late", 120);
    let up = {
        let art = artifact();
        let stack_dir = stack.dir.path().to_path_buf();
        tokio::spawn(async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"))
                .arg("--config")
                .arg(stack_dir.join("config.toml"))
                .args([
                    "--endpoint",
                    &cloud_url(),
                    "--poll-secs",
                    "0.5",
                    "up",
                    "--artifact",
                ])
                .arg(art)
                .output()
                .await
                .unwrap()
        })
    };
    // While RDS is still creating, the instances boot and are up but not ready.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen_unready = false;
    while Instant::now() < deadline && !up.is_finished() {
        let status = cloud(reqwest::Method::GET, "status", None).await;
        let creating = status["databases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["state"] != "available");
        let health = stack.target_health().await;
        if creating && !health.is_empty() && health.iter().all(|(_, s)| s != "healthy") {
            let running = stack.instances().await;
            if running.len() == 2 && health.iter().any(|(_, s)| s == "unhealthy") {
                seen_unready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    settings(json!({"profile": "instant"})).await;
    assert!(
        seen_unready,
        "the instances never ran (unhealthy, not ready) while RDS was creating"
    );
    let out = up.await.unwrap();
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let (client, base) = browser(&url).await;
    let waited = wait_ready(&client, &base, Duration::from_secs(120)).await;
    eprintln!(
        "[{}] ready {:.1}s after up returned",
        stack.name,
        waited.as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack
        .target_health()
        .await
        .iter()
        .any(|(_, s)| s != "healthy")
    {
        assert!(
            Instant::now() < deadline,
            "targets did not all become healthy"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_instance_is_replaced_and_the_url_keeps_serving() {
    let _serial = SERIAL.lock().await;
    settings(json!({"profile": "instant", "throttle_rate": 0.0})).await;
    let stack = Stack::new("kill", 20);
    let url = stack.up().await;
    let (client, base) = browser(&url).await;
    wait_ready(&client, &base, Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while stack
        .target_health()
        .await
        .iter()
        .filter(|(_, s)| s == "healthy")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "two healthy targets never came");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before: Vec<String> = stack
        .instances()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let victim = before[0].clone();
    cloud(
        reqwest::Method::POST,
        &format!("instances/{victim}/kill"),
        None,
    )
    .await;

    // Poll the URL the whole time; once the dead target is marked unhealthy, nothing fails.
    let started = Instant::now();
    let (mut ok, mut failed_before_marked, mut failed_after_marked) = (0, 0, 0);
    let mut marked = false;
    let replacement = loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no healthy replacement within 180s"
        );
        let r = client.get(format!("{base}/login")).send().await;
        match r {
            Ok(r) if r.status() == 200 => ok += 1,
            _ if marked => failed_after_marked += 1,
            _ => failed_before_marked += 1,
        }
        let health = stack.target_health().await;
        if !marked && health.iter().any(|(id, s)| id == &victim && s != "healthy") {
            marked = true;
        }
        let fresh: Vec<_> = health
            .iter()
            .filter(|(id, s)| !before.contains(id) && s == "healthy")
            .collect();
        if let Some((id, _)) = fresh.first() {
            break id.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "[{}] {victim} killed, {replacement} healthy after {:.1}s; requests ok {ok}, failed before the target was marked {failed_before_marked}, after {failed_after_marked}",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        failed_after_marked, 0,
        "requests failed after the dead target was marked unhealthy"
    );
    assert!(ok > 0);
    let states = stack.instances().await;
    assert!(
        states
            .iter()
            .any(|(id, s)| id == &victim && s == "terminated"),
        "{states:?}"
    );
    let r = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    stack.down().await;
}

/// These instances are terminated (EC2's word) and nothing of theirs runs (the local
/// cloud's).
async fn assert_terminated(stack: &Stack, ids: &[String]) {
    let states = stack.instances().await;
    for id in ids {
        assert!(
            states
                .iter()
                .any(|(i, s)| i == id && (s == "terminated" || s == "shutting-down")),
            "{id} should be gone: {states:?}"
        );
    }
    assert_nothing_runs(ids).await;
}

/// The Auto Scaling group's instances that are in service.
async fn in_service(stack: &Stack) -> Vec<String> {
    group_instances(stack, &["InService"]).await
}

/// The group's instances in one of these lifecycle states.
async fn group_instances(stack: &Stack, states: &[&str]) -> Vec<String> {
    let asg = aws_sdk_autoscaling::Client::new(&sdk_config().await);
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(format!("{}-asg", stack.name))
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()
        .iter()
        .flat_map(|g| g.instances())
        .filter(|i| {
            i.lifecycle_state()
                .is_some_and(|s| states.contains(&s.as_str()))
        })
        .filter_map(|i| i.instance_id().map(String::from))
        .collect()
}

/// Every instance in service booted `release` (its boot output says so).
async fn all_run(stack: &Stack, release: &str) -> Vec<String> {
    let ids = in_service(stack).await;
    for id in &ids {
        let console = stack.console(id).await;
        assert!(
            console.contains(&format!("gallery {release} started")),
            "{id} does not run {release}:\n{console}"
        );
    }
    ids
}

#[derive(Default)]
struct Load {
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

fn location_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// `clients` users browsing the gallery and, every tenth request, uploading, until `stop`.
async fn generate_load(
    url: &str,
    password: &str,
    clients: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::sync::Arc<Load> {
    use std::sync::atomic::Ordering;
    let load = std::sync::Arc::new(Load::default());
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/photos/rocket.jpg"
    ))
    .unwrap();
    for c in 0..clients {
        let (client, base) = browser(url).await;
        login(&client, &base, "admin", password).await;
        let (load, stop, photo) = (load.clone(), stop.clone(), photo.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // What counts as success is exact: a page (200), an upload that lands in
                // the gallery (303 to /gallery). A redirect to the login page (a session
                // lost during the roll) is a failure.
                let outcome = if (n + c as u64) % 10 == 0 {
                    match client.get(format!("{base}/upload")).send().await {
                        Ok(r) if r.status() == 200 => {
                            let token = csrf(&r.text().await.unwrap_or_default());
                            let form = reqwest::multipart::Form::new().text("csrf", token).part(
                                "files",
                                reqwest::multipart::Part::bytes(photo.clone())
                                    .file_name("load.jpg")
                                    .mime_str("image/jpeg")
                                    .unwrap(),
                            );
                            match client
                                .post(format!("{base}/upload"))
                                .multipart(form)
                                .send()
                                .await
                            {
                                Ok(r) if r.status() == 303 && location_of(&r) == "/gallery" => {
                                    Ok(())
                                }
                                Ok(r) => Err(format!(
                                    "POST /upload: {} to {}",
                                    r.status(),
                                    location_of(&r)
                                )),
                                Err(e) => Err(format!("POST /upload: {e}")),
                            }
                        }
                        Ok(r) => Err(format!(
                            "GET /upload: {} to {}",
                            r.status(),
                            location_of(&r)
                        )),
                        Err(e) => Err(format!("GET /upload: {e}")),
                    }
                } else {
                    match client.get(format!("{base}/gallery")).send().await {
                        Ok(r) if r.status() == 200 => Ok(()),
                        Ok(r) => Err(format!(
                            "GET /gallery: {} to {}",
                            r.status(),
                            location_of(&r)
                        )),
                        Err(e) => Err(format!("GET /gallery: {e}")),
                    }
                };
                match outcome {
                    Ok(()) => {
                        load.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(why) => {
                        load.failed.fetch_add(1, Ordering::Relaxed);
                        load.failures.lock().unwrap().push(why);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    load
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_rolls_out_with_no_failed_request_rolls_back_a_broken_release_and_refuses_a_second_deploy(
) {
    use std::sync::atomic::Ordering;
    let _serial = SERIAL.lock().await;
    settings(json!({"profile": "instant", "throttle_rate": 0.0})).await;
    let stack = Stack::new("roll", 600);
    let url = stack.up().await;
    let v1 = provision::release::inspect(&artifact()).unwrap().version;
    all_run(&stack, &v1).await;
    // v2: the same program, another binary (a byte appended); v3: exits at once.
    let dir = tempfile::tempdir().unwrap();
    let v2_path = dir.path().join("gallery-v2");
    let mut bytes = std::fs::read(artifact()).unwrap();
    bytes.push(0);
    std::fs::write(&v2_path, bytes).unwrap();
    let v3_path = dir.path().join("gallery-v3");
    std::fs::copy("/bin/false", &v3_path).unwrap();
    let v2 = provision::release::inspect(&v2_path).unwrap().version;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let password = stack.admin_password().await;
    let load = generate_load(&url, &password, 20, stop.clone()).await;
    let rolling = ["--batch-size", "1", "--healthy-timeout-secs", "120"];

    // v2 over v1, while a second deploy is refused.
    let before_v2: Vec<String> = in_service(&stack).await;
    let started = Instant::now();
    let first = {
        let mut args = vec![
            "deploy".to_string(),
            "--artifact".into(),
            v2_path.to_str().unwrap().into(),
        ];
        args.extend(rolling.iter().map(|s| s.to_string()));
        let config = stack.dir.path().join("config.toml");
        tokio::spawn(async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"))
                .arg("--config")
                .arg(config)
                .args(["--endpoint", &cloud_url(), "--poll-secs", "0.5"])
                .args(args)
                .output()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, _, stderr) = stack
        .provision(&["deploy", "--artifact", v3_path.to_str().unwrap()])
        .await;
    assert_ne!(code, 0, "a second deploy ran during the first");
    assert!(
        stderr.contains("is locked by")
            && stderr.contains("`provision deploy`")
            && stderr.contains(" since "),
        "the refusal names the holder, its command and since when: {stderr}"
    );
    let out = first.await.unwrap();
    assert!(
        out.status.success(),
        "deploy v2: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "[{}] deploy v2 over v1 (2 instances, batch 1): {:.1}s",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(all_run(&stack, &v2).await.len(), 2);
    assert_terminated(&stack, &before_v2).await;
    let (code, status, _) = stack.provision(&["status", "--json"]).await;
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["release"], v2.as_str(), "{status}");
    let on: Vec<_> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["release"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(on, vec![v2.clone(), v2.clone()], "{status}");

    // A broken v3: rolled back by itself; v2 keeps serving.
    let started = Instant::now();
    let (code, stdout, stderr) = stack
        .provision(&[
            "deploy",
            "--artifact",
            v3_path.to_str().unwrap(),
            "--batch-size",
            "1",
            "--healthy-timeout-secs",
            "30",
        ])
        .await;
    assert_eq!(code, 1, "deploy of a broken release:\n{stdout}\n{stderr}");
    // Why, in the operator's terms: the target's state and reason, then its console.
    assert!(
        stderr.contains("did not become healthy")
            && stderr.contains("target unhealthy (")
            && stderr.contains("  | "),
        "the failure says why (target reason and console lines): {stderr}"
    );
    let v3_instances: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("instance "))
        .filter_map(|l| l.split(':').next())
        .map(String::from)
        .collect();
    assert!(!v3_instances.is_empty(), "{stderr}");
    eprintln!(
        "[{}] broken v3 rolled back after {:.1}s",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while in_service(&stack).await.len() != 2 {
        assert!(
            Instant::now() < deadline,
            "the group did not return to 2 instances"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(all_run(&stack, &v2).await.len(), 2);
    assert_terminated(&stack, &v3_instances).await;

    // Rollback to a release that was never uploaded: refused before anything changes.
    let (code, _, stderr) = stack
        .provision(&["rollback", "--to", "v0.0.0-000000000000"])
        .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("is not in s3://") && stderr.contains(&v1) && stderr.contains(&v2),
        "names the known releases: {stderr}"
    );

    // Rollback: back to v1 (the previous release by default).
    let started = Instant::now();
    let mut args = vec!["rollback"];
    args.extend(rolling);
    let (code, stdout, stderr) = stack.provision(&args).await;
    assert_eq!(code, 0, "rollback:\n{stdout}\n{stderr}");
    eprintln!(
        "[{}] rollback to v1: {:.1}s",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(all_run(&stack, &v1).await.len(), 2);

    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, failed) = (
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
    );
    eprintln!("[{}] load: {ok} requests ok, {failed} failed", stack.name);
    assert!(ok > 100, "the load generator hardly ran: {ok}");
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        load.failures.lock().unwrap()
    );
    stack.down().await;
}

/// A release that passes its first batch and fails in the second (here: every instance of
/// the second batch dies as it boots) is rolled back everywhere: the failed batch removed,
/// and the batch that had already replaced an old instance put back on the old release,
/// so the group ends on one release again.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_failing_in_a_later_batch_is_rolled_back_on_every_instance() {
    use tokio::io::AsyncBufReadExt;
    let _serial = SERIAL.lock().await;
    settings(json!({"profile": "instant", "throttle_rate": 0.0})).await;
    let stack = Stack::new("batch", 600);
    stack.up().await;
    let v1 = provision::release::inspect(&artifact()).unwrap().version;
    let initial = all_run(&stack, &v1).await;
    assert_eq!(initial.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let v2_path = dir.path().join("gallery-v2");
    let mut bytes = std::fs::read(artifact()).unwrap();
    bytes.extend_from_slice(b"v2");
    std::fs::write(&v2_path, bytes).unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("--config")
        .arg(stack.dir.path().join("config.toml"))
        .args([
            "--endpoint",
            &cloud_url(),
            "--poll-secs",
            "0.5",
            "deploy",
            "--artifact",
        ])
        .arg(&v2_path)
        .args(["--batch-size", "1", "--healthy-timeout-secs", "20"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Lines are read as they come (a separate task), so the decisions below are never
    // made on a backlog.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let mut first_batch: Vec<String> = Vec::new();
    let (mut killing, mut rolled_back, mut finished) = (false, false, false);
    let mut killed: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while !finished {
        assert!(Instant::now() < deadline, "deploy did not finish:\n{log}");
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    log.push_str(&line);
                    log.push('\n');
                    // Progress lines: "[  12.3s] <resource> <id> <state...>".
                    let words: Vec<&str> = line
                        .split_once(']')
                        .map(|(_, rest)| rest.split_whitespace().collect())
                        .unwrap_or_default();
                    // The first batch's new instance becomes a healthy target.
                    if !killing
                        && !rolled_back
                        && words.first() == Some(&"target")
                        && words.get(2) == Some(&"healthy")
                    {
                        let id = words[1].to_string();
                        if !initial.contains(&id) && !first_batch.contains(&id) {
                            first_batch.push(id);
                        }
                    }
                    // The first old instance is gone: from now on the second batch dies.
                    if !rolled_back
                        && words.first() == Some(&"instance")
                        && words.get(2) == Some(&"terminated")
                    {
                        killing = true;
                    }
                    if line.contains("rolling back") {
                        killing = false;
                        rolled_back = true;
                    }
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    finished = true;
                    break;
                }
            }
        }
        if killing {
            for id in group_instances(&stack, &["InService", "Pending"]).await {
                if !initial.contains(&id) && !first_batch.contains(&id) && !killed.contains(&id) {
                    let r = reqwest::Client::new()
                        .post(format!("{}/_localcloud/instances/{id}/kill", cloud_url()))
                        .send()
                        .await
                        .unwrap();
                    // 404: EC2 knows it but the local cloud has not seen it yet; next round.
                    if r.status().is_success() {
                        killed.push(id);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(1), "the deploy must fail:\n{log}");
    assert_eq!(
        first_batch.len(),
        1,
        "one instance replaced before the failure:\n{log}"
    );
    assert!(!killed.is_empty(), "the second batch never started:\n{log}");
    assert!(
        log.contains(&format!("were rolled back to {v1}")),
        "the replaced batch is rolled back too:\n{log}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while in_service(&stack).await.len() != 2 {
        assert!(
            Instant::now() < deadline,
            "the group did not return to 2 instances"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        all_run(&stack, &v1).await.len(),
        2,
        "every instance runs v1 again"
    );
    assert_terminated(&stack, &first_batch).await;
    let (code, status, _) = stack.provision(&["status", "--json"]).await;
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["release"], v1.as_str(), "{status}");
    // And `up` leaves it there: v1 is the version the stack runs.
    let (code, stdout, stderr) = stack.provision(&["plan"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("No changes"),
        "plan after the rollback:\n{stdout}\n{stderr}"
    );
    stack.down().await;
}
