//! End to end on the local cloud (`localcloud/`, started by `scripts/test`): the real
//! `provision` binary builds a stack whose instances boot the real release binary from
//! their user-data, RDS is a real PostgreSQL, target health comes from real probes and
//! the load balancer really forwards. Tests that change the cloud's settings run alone.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use serde_json::{json, Value};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphorePermit};

/// Tests that change the local cloud's settings run alone (`alone`); the others, on its
/// defaults (the `instant` profile with every AWS behaviour on), two at a time (`shared`):
/// the machine has two cores, and most of a test's time is waiting for AWS.
static SETTINGS: RwLock<()> = RwLock::const_new(());
static SHARED: Semaphore = Semaphore::const_new(2);

async fn alone() -> RwLockWriteGuard<'static, ()> {
    SETTINGS.write().await
}

async fn shared() -> (RwLockReadGuard<'static, ()>, SemaphorePermit<'static>) {
    let read = SETTINGS.read().await;
    (
        read,
        SHARED
            .acquire()
            .await
            .expect("the semaphore is never closed"),
    )
}

/// Back to the defaults, after a test that changed them.
async fn defaults() {
    settings(json!({"profile": "instant", "throttle_rate": 0.0, "error_rate": 0.0})).await;
}

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

/// The same program as another release: the release binary with `suffix` appended.
fn another_release(dir: &tempfile::TempDir, suffix: &[u8]) -> PathBuf {
    let path = dir.path().join("gallery-v2");
    let mut bytes = std::fs::read(artifact()).unwrap();
    bytes.extend_from_slice(suffix);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn cloud(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut req = client.request(method, format!("{}/_localcloud/{path}", cloud_url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("local cloud control API");
    let status = resp.status();
    let text = resp.text().await.expect("local cloud control API answer");
    assert!(status.is_success(), "local cloud {path}: {status}: {text}");
    serde_json::from_str(&text).expect("local cloud control API answers JSON")
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
            .replace("deletion_protection = true", "deletion_protection = false")
            // The local cloud's load balancer is on no internet.
            .replace("allow_plain_http = false", "allow_plain_http = true");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), text).unwrap();
        Stack {
            name,
            dir,
            output: std::sync::Mutex::new(String::new()),
        }
    }

    /// Serve the gallery on `domain` (`balancer.domain`): a certificate, HTTPS, records.
    fn on_domain(self, domain: &str) -> Stack {
        let path = self.dir.path().join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "certificate_arn = \"\"",
            &format!("certificate_arn = \"\"\ndomain = \"{domain}\""),
        );
        std::fs::write(&path, text).unwrap();
        self
    }

    /// Run `min`/`desired`/`max` instances instead of config.toml's 2/2/4.
    fn sized(self, min: u32, desired: u32, max: u32) -> Stack {
        let path = self.dir.path().join("config.toml");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("min_size = 2", &format!("min_size = {min}"))
            .replace(
                "desired_capacity = 2",
                &format!("desired_capacity = {desired}"),
            )
            .replace("max_size = 4", &format!("max_size = {max}"));
        std::fs::write(&path, text).unwrap();
        self
    }

    /// A target-tracking policy holding `target` requests per instance a minute.
    fn scaling(self, target: u32) -> Stack {
        let path = self.dir.path().join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let (before, after) = text.split_once("[scaling]").unwrap();
        let after = after
            .replacen("enabled = false", "enabled = true", 1)
            .replacen(
                "# target_value = 1000",
                &format!("target_value = {target}"),
                1,
            );
        std::fs::write(&path, format!("{before}[scaling]{after}")).unwrap();
        self
    }

    /// `provision status`'s group line: (desired, running in service, min, max).
    async fn group_size(&self) -> (u32, u32, u32, u32) {
        let (code, stdout, stderr) = self.provision(&["status"]).await;
        assert_eq!(code, 0, "provision status failed:\n{stdout}\n{stderr}");
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("group: "))
            .unwrap_or_else(|| panic!("status shows no group line:\n{stdout}"));
        let n: Vec<u32> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(n.len(), 4, "{line}");
        (n[0], n[1], n[2], n[3])
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
            (url.starts_with("http://") && url.contains(".elb.amazonaws.com"))
                || url.starts_with("https://"),
            "up printed no URL:\n{stdout}"
        );
        eprintln!(
            "[{}] up: {:.1}s",
            self.name,
            started.elapsed().as_secs_f64()
        );
        url
    }

    /// Everything goes, the data too.
    async fn down(&self) {
        let (code, stdout, stderr) = self
            .provision(&[
                "down",
                "--yes",
                "--force",
                "--delete-data",
                "--yes-delete-data",
            ])
            .await;
        assert_eq!(code, 0, "provision down failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("nothing tagged for it remains"), "{stdout}");
    }

    /// `down` as a user runs it: everything goes but the data. Returns what it printed.
    async fn down_keeping_data(&self) -> String {
        let started = Instant::now();
        let (code, stdout, stderr) = self.provision(&["down", "--yes", "--force"]).await;
        assert_eq!(code, 0, "provision down failed:\n{stdout}\n{stderr}");
        eprintln!(
            "[{}] down keeping the data: {:.1}s",
            self.name,
            started.elapsed().as_secs_f64()
        );
        stdout
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
/// the local cloud gave it, as DNS would. An `https://` URL is a domain of the stack's:
/// it resolves through its alias record in Route 53, over TLS trusting the rig's CA.
async fn browser(url: &str) -> (reqwest::Client, String) {
    if let Some(domain) = url.strip_prefix("https://") {
        let domain = domain.trim_end_matches('/');
        let address = resolve(domain).await;
        return (
            https_client(domain, &address, true).await,
            format!("https://{domain}"),
        );
    }
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

/// The zone of the local cloud's Route 53 that holds `domain`.
async fn zone_of(domain: &str) -> Option<String> {
    let r53 = aws_sdk_route53::Client::new(&sdk_config().await);
    let zones = r53.list_hosted_zones().send().await.unwrap();
    zones
        .hosted_zones()
        .iter()
        .filter(|z| format!("{domain}.").ends_with(&format!(".{}", z.name())))
        .max_by_key(|z| z.name().len())
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
}

/// The records of a zone: (name, type, alias target or value).
async fn records(zone: &str) -> Vec<(String, String, String)> {
    let r53 = aws_sdk_route53::Client::new(&sdk_config().await);
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .map(|r| {
            (
                r.name().to_string(),
                r.r#type().as_str().to_string(),
                r.alias_target()
                    .map(|t| t.dns_name().to_string())
                    .or_else(|| r.resource_records().first().map(|v| v.value().to_string()))
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// What `domain` resolves to, as a resolver would: its alias record in Route 53 names a
/// load balancer, which the local cloud serves at an address.
async fn resolve(domain: &str) -> String {
    let zone = zone_of(domain)
        .await
        .expect("a hosted zone holds the domain");
    let name = format!("{domain}.");
    let target = records(&zone)
        .await
        .into_iter()
        .find(|r| r.0 == name && r.1 == "A")
        .unwrap_or_else(|| panic!("no A record for {domain} in zone {zone}"))
        .2;
    let target = target.trim_end_matches('.').to_string();
    let status = cloud(reqwest::Method::GET, "status", None).await;
    status["balancers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["dns_name"] == target.as_str())
        .unwrap_or_else(|| {
            panic!(
                "{domain} is an alias of {target}, which the local cloud does not serve: {status}"
            )
        })["address"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A client for `https://<name>` at `address`, trusting the rig's public CA (or, with
/// `trust` false, only the usual public roots).
async fn https_client(name: &str, address: &str, trust: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .tls_info(true)
        // Port 0: the URL's is used (443 for https, 80 for http).
        .resolve(name, SocketAddr::new(address.parse().unwrap(), 0))
        .timeout(Duration::from_secs(30));
    if trust {
        let ca = cloud(reqwest::Method::GET, "ca", None).await;
        let pem = ca["pem"].as_str().unwrap().to_string();
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// `balancer.domain`: the load balancer serves `https://<domain>` with a certificate for
/// that name (signed by the CA the client trusts; no other name's), and `http://` is
/// redirected there.
async fn the_domain_is_served_over_https(domain: &str) {
    let address = resolve(domain).await;
    let client = https_client(domain, &address, true).await;
    let r = client
        .get(format!("https://{domain}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("the answer came over TLS");
    let der = info
        .peer_certificate()
        .expect("the server sent its certificate");
    assert!(
        der.windows(domain.len()).any(|w| w == domain.as_bytes()),
        "the certificate names {domain}"
    );
    let r = client
        .get(format!("http://{domain}/gallery?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301, "plain HTTP is redirected");
    // To the same path on https (with or without the default port written out).
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location == format!("https://{domain}/gallery?x=1")
            || location == format!("https://{domain}:443/gallery?x=1"),
        "{location}"
    );
    // Another name at the same address: the certificate is not for it.
    let other = format!("other.{}", domain.split_once('.').unwrap().1);
    let wrong = https_client(&other, &address, true).await;
    let err = wrong
        .get(format!("https://{other}/readyz"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.is_connect(),
        "a name the certificate lacks is refused: {err:?}"
    );
    // And without the rig's CA, nothing vouches for it.
    let untrusting = https_client(domain, &address, false).await;
    assert!(untrusting
        .get(format!("https://{domain}/readyz"))
        .send()
        .await
        .is_err());
}

/// The stack's certificates in ACM (those tagged for it).
async fn certificates_of(stack: &str) -> Vec<String> {
    let acm = aws_sdk_acm::Client::new(&sdk_config().await);
    let mut mine = Vec::new();
    for c in acm
        .list_certificates()
        .send()
        .await
        .unwrap()
        .certificate_summary_list()
    {
        let arn = c.certificate_arn().unwrap_or_default();
        let tags = acm
            .list_tags_for_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .unwrap();
        if tags
            .tags()
            .iter()
            .any(|t| t.key() == "gallery:stack" && t.value() == Some(stack))
        {
            mine.push(arn.to_string());
        }
    }
    mine
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

/// Logs in; returns the session cookie (`gallery_session=...`), for a test to present
/// it again from another client.
async fn login(client: &reqwest::Client, base: &str, user: &str, password: &str) -> String {
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
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gallery_session="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        r.status(),
        303,
        "login as {user}: {}",
        r.text().await.unwrap_or_default()
    );
    cookie
}

/// What `/gallery` answers to a client presenting only `cookie`.
async fn gallery_with(url: &str, cookie: &str) -> reqwest::StatusCode {
    let (fresh, base) = browser(url).await;
    fresh
        .get(format!("{base}/gallery"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// Uploads `testdata/photos/<file>` as `name` through the upload form.
async fn upload_photo(
    client: &reqwest::Client,
    base: &str,
    file: &str,
    name: &str,
    mime: &str,
) -> reqwest::Response {
    let page = client
        .get(format!("{base}/upload"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let photo = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/photos")
            .join(file),
    )
    .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf(&page))
        .part(
            "files",
            reqwest::multipart::Part::bytes(photo)
                .file_name(name.to_string())
                .mime_str(mime)
                .unwrap(),
        );
    client
        .post(format!("{base}/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Through the load balancer: the admin adds a user, who uploads an image and sees it.
/// Returns her session cookie.
async fn use_the_gallery(stack: &Stack, url: &str) -> String {
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
    let session = login(&alice, &base, "alice", "correct horse battery").await;
    let r = upload_photo(&alice, &base, "rocket.jpg", "holiday.jpg", "image/jpeg").await;
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
    // The local cloud throttles a share of all requests in the throttling test, this
    // download included; S3 answers 503 SlowDown then, and a client tries again.
    let mut image = reqwest::get(&location).await.unwrap();
    for _ in 0..5 {
        if image.status() != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        image = reqwest::get(&location).await.unwrap();
    }
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
    session
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
        printed.contains("://"),
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
async fn the_same_with_realistic_delays_and_ten_percent_throttling() {
    let _alone = alone().await;
    settings(json!({"profile": "realistic", "throttle_rate": 0.1, "error_rate": 0.0})).await;
    full_cycle("slow").await;
    let status = cloud(reqwest::Method::GET, "status", None).await;
    defaults().await;
    assert!(
        status["injected"]["throttle"].as_u64().unwrap() > 0,
        "no throttling was injected: {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gallery_becomes_ready_by_itself_when_rds_comes_up_after_the_instances() {
    let _alone = alone().await;
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
    defaults().await;
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
async fn a_killed_instance_is_replaced_and_load_scales_the_group_out_and_back_in() {
    let _shared = shared().await;
    // 600 requests per instance a minute: the polling below (5 a second over two
    // instances) stays under it; the load at the end is far over.
    let stack = Stack::new("kill", 20).sized(2, 2, 3).scaling(600);
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
    // Requests through the load balancer (round-robin over both), each with the request
    // id the gallery answered; a few seconds for their access lines to be shipped (every
    // second), then the plug is pulled.
    let mut request_ids = Vec::new();
    for _ in 0..6 {
        let r = client.get(format!("{base}/login")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let id = r
            .headers()
            .get("x-request-id")
            .expect("the gallery answers with its request id")
            .to_str()
            .unwrap()
            .to_string();
        request_ids.push(id);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
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

    // The logs outlive the instance: `provision logs` finds each request by its id, and
    // some of them in the killed instance's stream.
    let mut from_victim = 0;
    for id in &request_ids {
        let deadline = Instant::now() + Duration::from_secs(30);
        let line = loop {
            let (code, stdout, stderr) = stack
                .provision(&["logs", "--since", "15m", "--grep", id])
                .await;
            assert_eq!(code, 0, "provision logs failed:\n{stdout}\n{stderr}");
            if let Some(line) = stdout.lines().find(|l| l.contains(id.as_str())) {
                break line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "request {id} never showed in provision logs:\n{stdout}\n{stderr}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        assert!(line.contains("GET") && line.contains("/login"), "{line}");
        if line.contains(victim.as_str()) {
            from_victim += 1;
        }
    }
    assert!(
        from_victim > 0,
        "none of {request_ids:?} was shown from the killed instance {victim}"
    );

    scales_out_under_load_and_back_in(&stack, &client, &base).await;
    stack.down().await;
}

/// The policy at work: load through the load balancer raises the group's desired count to
/// `app.max_size` (3), never past it, and the third instance serves; once the load falls
/// to a trickle (a few requests a second: without requests ELB reports no datapoint and
/// the policy does nothing) the group comes back to `app.min_size` (2), the instance it
/// retires drained first: no request of the trickle fails.
async fn scales_out_under_load_and_back_in(stack: &Stack, client: &reqwest::Client, base: &str) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let (_, _, min, max) = stack.group_size().await;
    assert_eq!((min, max), (2, 3));
    let before: Vec<String> = in_service(stack).await;
    let heavy = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (client, base) = (client.clone(), base.to_string());
        let (heavy, stop) = (heavy.clone(), stop.clone());
        let (ok, failed, failures) = (ok.clone(), failed.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let light = !heavy.load(Ordering::Relaxed);
                if light && worker > 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                match client.get(format!("{base}/login")).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        let why = match other {
                            Ok(r) => format!("GET /login: {}", r.status()),
                            Err(e) => format!("GET /login: {e}"),
                        };
                        if light {
                            failures.lock().unwrap().push(why);
                        }
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                if light {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }));
    }

    let started = Instant::now();
    let added = loop {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "the group did not scale out under load within 150 s: {:?}, {} requests served",
            stack.group_size().await,
            ok.load(Ordering::Relaxed)
        );
        let (desired, _, _, _) = stack.group_size().await;
        assert!(desired <= 3, "desired {desired} above app.max_size 3");
        let healthy: Vec<String> = stack
            .target_health()
            .await
            .into_iter()
            .filter(|(id, s)| s == "healthy" && !before.contains(id))
            .map(|(id, _)| id)
            .collect();
        if desired == 3 && !healthy.is_empty() {
            break healthy[0].clone();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!(
        "[{}] scaled out to 3 under load: {added} healthy after {:.1}s ({} requests served)",
        stack.name,
        started.elapsed().as_secs_f64(),
        ok.load(Ordering::Relaxed)
    );

    heavy.store(false, Ordering::Relaxed);
    let calm = Instant::now();
    let failed_under_load = failed.load(Ordering::Relaxed);
    loop {
        assert!(
            calm.elapsed() < Duration::from_secs(150),
            "the group did not scale back in within 150 s of the load ending: {:?}",
            stack.group_size().await
        );
        let (desired, running, _, _) = stack.group_size().await;
        assert!(desired >= 2, "desired {desired} below app.min_size 2");
        let healthy = stack
            .target_health()
            .await
            .into_iter()
            .filter(|(_, s)| s == "healthy")
            .count();
        let gone = stack
            .instances()
            .await
            .into_iter()
            .filter(|(_, s)| s == "terminated")
            .count();
        // The killed instance earlier, and now the one retired.
        if desired == 2 && running == 2 && healthy == 2 && gone >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "[{}] back to 2 {:.1}s after the load ended; {} requests served, {} failed under load",
        stack.name,
        calm.elapsed().as_secs_f64(),
        ok.load(Ordering::Relaxed),
        failed_under_load
    );
    assert_eq!(
        failed_under_load, 0,
        "requests failed while the group scaled out"
    );
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "requests failed while the group scaled in: {failures:?}"
    );
    let (code, stdout, _) = stack.provision(&["status"]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("scaling: ALBRequestCountPerTarget held at 600"),
        "{stdout}"
    );
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
    /// When each failure happened, with what.
    failed_at: std::sync::Mutex<Vec<(Instant, String)>>,
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
                            // Bytes of its own (a JPEG comment after the start marker):
                            // the gallery skips a photo its owner has already.
                            let tag = format!("load {c} {n}");
                            let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xFE];
                            bytes.extend_from_slice(&(tag.len() as u16 + 2).to_be_bytes());
                            bytes.extend_from_slice(tag.as_bytes());
                            bytes.extend_from_slice(&photo[2..]);
                            let form = reqwest::multipart::Form::new().text("csrf", token).part(
                                "files",
                                reqwest::multipart::Part::bytes(bytes)
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
                                Ok(r)
                                    if r.status() == 303
                                        && location_of(&r) == "/gallery?uploaded=1" =>
                                {
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
                        load.failed_at
                            .lock()
                            .unwrap()
                            .push((Instant::now(), why.clone()));
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
    let _shared = shared().await;
    let stack = Stack::new("roll", 600);
    let url = stack.up().await;
    let v1 = provision::release::inspect(&artifact()).unwrap().version;
    all_run(&stack, &v1).await;
    // v2: the same program, another binary (a byte appended); v3: exits at once.
    let dir = tempfile::tempdir().unwrap();
    let v2_path = another_release(&dir, b"\0");
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
        .provision(&[
            "deploy",
            "--artifact",
            v3_path.to_str().unwrap(),
            "--allow-breaking",
        ])
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
    // v2 adds a column (an additive migration, as `deploy` requires): applied here as v2
    // would at its start, a migration v1 does not know and a column it never names. The
    // rollback below then boots v1 on that schema, under load, with no failed request.
    psql(
        &stack,
        "ALTER TABLE images ADD COLUMN caption TEXT NOT NULL DEFAULT '';
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (20991231000001, 'images caption (v2)', TRUE, '\\x00'::bytea, 1);",
    )
    .await;
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
            // It cannot even list its migrations (it is /bin/false).
            "--allow-breaking",
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
    assert_eq!(
        psql(
            &stack,
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 20991231000001"
        )
        .await,
        "1",
        "v1 left v2's migration as it is"
    );

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
    let _shared = shared().await;
    let stack = Stack::new("batch", 600);
    stack.up().await;
    let v1 = provision::release::inspect(&artifact()).unwrap().version;
    let initial = all_run(&stack, &v1).await;
    assert_eq!(initial.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let v2_path = another_release(&dir, b"v2");

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

/// The whole life of a stack, twice: `up` serves the gallery end to end, `down` leaves
/// nothing, and `up` again at once with the same name works, although AWS keeps a
/// force-deleted secret's name and a deleted bucket's name busy for a while and remembers
/// client tokens. The instances of both stacks boot although their role's credentials
/// appear seconds late (IMDS answers 404 meanwhile). No secret in any output or console.
#[tokio::test(flavor = "multi_thread")]
async fn up_serves_end_to_end_then_down_and_up_again_at_once_with_late_credentials() {
    let _alone = alone().await;
    settings(json!({"profile": "instant", "throttle_rate": 0.0, "aws": {"imds_credentials_delay": 8, "name_reuse_lag": 8, "listing_lag": 8}})).await;
    // The stack serves its own domain, in a zone of the account.
    let domain = "photos.example.test";
    let zone = match zone_of(domain).await {
        Some(zone) => zone,
        None => {
            let r53 = aws_sdk_route53::Client::new(&sdk_config().await);
            let made = r53
                .create_hosted_zone()
                .name("example.test")
                .caller_reference(format!("test-{:08x}", rand::random::<u32>()))
                .send()
                .await
                .unwrap();
            made.hosted_zone()
                .unwrap()
                .id()
                .trim_start_matches("/hostedzone/")
                .to_string()
        }
    };
    let stack = Stack::new("again", 60).on_domain(domain);
    let url = stack.up().await;
    assert_eq!(
        url,
        format!("https://{domain}/"),
        "the gallery's URL is its domain"
    );
    the_domain_is_served_over_https(domain).await;
    let certificates = certificates_of(&stack.name).await;
    assert_eq!(certificates.len(), 1, "one certificate: {certificates:?}");
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk_config().await);
    let lb = elb
        .describe_load_balancers()
        .names(format!("{}-alb", stack.name))
        .send()
        .await
        .unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb.load_balancers()[0].load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .expect("a 443 listener");
    assert_eq!(https.protocol().map(|p| p.as_str()), Some("HTTPS"));
    assert_eq!(
        https.ssl_policy(),
        Some("ELBSecurityPolicy-TLS13-1-2-2021-06")
    );
    assert_eq!(
        https.certificates()[0].certificate_arn(),
        Some(certificates[0].as_str())
    );
    let alice = use_the_gallery(&stack, &url).await;
    assert_eq!(
        gallery_with(&url, &alice).await,
        200,
        "alice's session cookie is a live session"
    );
    // Instances whose credentials came late have registered with SSM by now.
    exec_runs_a_command_on_an_instance(&stack).await;
    for id in in_service(&stack).await {
        let console = stack.console(&id).await;
        assert!(
            console.contains("waiting for the instance role's credentials"),
            "{id} did not wait for its credentials:\n{console}"
        );
    }
    let first: Vec<String> = stack
        .instances()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    // `down` keeps the data (and says what it costs); `up` at once brings it back.
    let said = stack.down_keeping_data().await;
    assert!(said.contains("Kept, the data of stack"), "{said}");
    assert_eq!(
        certificates_of(&stack.name).await,
        Vec::<String>::new(),
        "the certificate is not data: down removes it"
    );
    assert!(said.contains("1 image(s) of 1 user(s)"), "{said}");
    assert!(said.contains("db-snapshot"), "{said}");
    assert!(said.contains("a month"), "{said}");
    let (code, plan, _) = stack.provision(&["plan"]).await;
    assert_eq!(code, 0);
    assert!(
        plan.contains("will be restored from snapshot"),
        "plan shows the restore:\n{plan}"
    );
    let started = Instant::now();
    let url = stack.up().await;
    eprintln!(
        "[{}] up again at once after down, restoring the data: {:.1}s",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    the_gallery_came_back(&stack, &url).await;
    assert_eq!(
        gallery_with(&url, &alice).await,
        303,
        "the sessions the snapshot held ended with the restore (alice is sent to log in)"
    );
    let serving = in_service(&stack).await;
    assert!(
        serving.iter().all(|id| !first.contains(id)),
        "the new stack runs new instances: {serving:?}, the old were {first:?}"
    );
    let ids: Vec<String> = stack
        .instances()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let (code, _, _) = stack.provision(&["status", "--json"]).await;
    assert_eq!(code, 0);
    assert_no_secret_in_output(&stack, &ids).await;
    restore_to_a_time_brings_back_what_was_deleted(&stack, &url).await;
    let ids: Vec<String> = stack
        .instances()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    stack.down().await;
    assert_nothing_runs(&ids).await;
    // The certificate and the records it made went with it; the zone (the user's) stays.
    assert_eq!(certificates_of(&stack.name).await, Vec::<String>::new());
    let left = records(&zone).await;
    assert!(
        left.iter().all(|r| r.1 == "NS" || r.1 == "SOA"),
        "records left in the zone: {left:?}"
    );
    defaults().await;
}

/// `provision exec`: the gallery's own CLI reaches the database as the service does, a
/// failing command's exit code is reported and fails the run, and a command that outlives
/// `--timeout` is cancelled with a message naming the instance.
async fn exec_runs_a_command_on_an_instance(stack: &Stack) {
    let serving = in_service(stack).await;
    let (code, stdout, stderr) = stack
        .provision(&["exec", "--", "gallery", "users", "list"])
        .await;
    assert_eq!(code, 0, "exec failed:\n{stdout}\n{stderr}");
    assert_eq!(
        stdout.matches("=== i-").count(),
        1,
        "one instance by default:\n{stdout}"
    );
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        serving.iter().any(|id| header.contains(id.as_str()))
            && header.contains("(exit 0, Success)"),
        "labelled with an InService instance and its exit code:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("admin ") && l.contains("yes")),
        "the admin user is listed:\n{stdout}"
    );
    assert!(stdout.contains("USERNAME"), "{stdout}");

    // Every InService instance, a failing command, arguments quoted as given.
    let (code, stdout, stderr) = stack
        .provision(&[
            "exec",
            "--all",
            "--",
            "sh",
            "-c",
            "echo \"as $(id -un): $1\"; echo oops >&2; exit 3",
            "sh",
            "it's $HOME",
        ])
        .await;
    assert_eq!(code, 1, "a failed command fails exec:\n{stdout}\n{stderr}");
    for id in &serving {
        assert!(
            stdout.contains(&format!("=== {id} (exit 3, Failed) ===")),
            "{id}'s exit code:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.matches("as gallery: it's $HOME").count(),
        serving.len(),
        "run as the service user, argument unchanged:\n{stdout}"
    );
    assert!(stdout.contains("oops"), "{stdout}");
    assert!(stderr.contains("the command failed on"), "{stderr}");

    let started = Instant::now();
    let (code, stdout, stderr) = stack
        .provision(&["exec", "--timeout", "2", "--", "sleep", "30"])
        .await;
    assert_eq!(
        code, 1,
        "a timed-out command fails exec:\n{stdout}\n{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "exec waited {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("timed out after 2s") && stderr.contains("did not finish"),
        "{stderr}"
    );
    assert!(
        stdout.contains("did not finish within 2s, cancelled (Cancelled)"),
        "{stdout}"
    );
}

/// After `down` and `up`: the users `use_the_gallery` made log in with the same
/// passwords, and alice's photo is there, byte for byte.
async fn the_gallery_came_back(stack: &Stack, url: &str) {
    let (admin, base) = browser(url).await;
    wait_ready(&admin, &base, Duration::from_secs(240)).await;
    login(&admin, &base, "admin", &stack.admin_password().await).await;
    let (alice, _) = browser(url).await;
    login(&alice, &base, "alice", "correct horse battery").await;
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
        .unwrap_or_else(|| panic!("alice's photo is back in her gallery:\n{gallery}"))
        + 10;
    let id = gallery[at..]
        .split('"')
        .next()
        .unwrap()
        .trim_start_matches("/images/")
        .trim_end_matches("/thumb")
        .to_string();
    let r = alice
        .get(format!("{base}/images/{id}/original"))
        .send()
        .await
        .unwrap();
    let r = if r.status().is_redirection() {
        let location = r.headers()["location"].to_str().unwrap().to_string();
        reqwest::get(&location).await.unwrap()
    } else {
        r
    };
    assert_eq!(r.status(), 200);
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/photos/rocket.jpg"
    ))
    .unwrap();
    assert!(
        r.bytes().await.unwrap() == photo,
        "the original came back byte for byte"
    );
}

/// `restore --to-time`: after T alice deletes her photo, the admin deletes bob and alice
/// uploads another; the restore brings the database and the images back as they were at
/// T, serving a 503 page (and nothing else wrong) meanwhile.
async fn restore_to_a_time_brings_back_what_was_deleted(stack: &Stack, url: &str) {
    let (admin, base) = browser(url).await;
    login(&admin, &base, "admin", &stack.admin_password().await).await;
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
            ("username", "bob"),
            ("password", "bob's long password"),
            ("full_name", "Bob"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // A backup now, for `restore --snapshot` below.
    let (code, taken, err) = stack.provision(&["backup", "--json"]).await;
    assert_eq!(code, 0, "backup: {err}");
    let taken: Value = serde_json::from_str(&taken).unwrap();
    let snapshot = taken["snapshot"]["id"].as_str().unwrap().to_string();
    let (alice, _) = browser(url).await;
    login(&alice, &base, "alice", "correct horse battery").await;
    let gallery = alice
        .get(format!("{base}/gallery"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = gallery.find("<img src=\"/images/").expect("alice's photo") + 10;
    let id = gallery[at..]
        .split('"')
        .next()
        .unwrap()
        .trim_start_matches("/images/")
        .trim_end_matches("/thumb")
        .to_string();

    // T: a restore point is taken every second here (AWS: the logs of the last 5 minutes).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let page = alice
        .get(format!("{base}/images/{id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = alice
        .post(format!("{base}/images/{id}/delete"))
        .form(&[("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "alice moves her photo to the trash");
    // ...and deletes it for good from there: its objects go (the bucket's versions keep
    // them for the restore).
    let r = alice
        .post(format!("{base}/images/{id}/purge"))
        .form(&[("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "alice deletes her photo for good");
    let bob = psql(stack, "SELECT id FROM users WHERE username = 'bob'").await;
    let confirm = admin
        .get(format!("{base}/admin/users/{bob}/delete"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = admin
        .post(format!("{base}/admin/users/{bob}/delete"))
        .form(&[("csrf", csrf(&confirm).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the admin deletes bob");
    let r = upload_photo(&alice, &base, "camera.png", "after.png", "image/png").await;
    assert_eq!(r.status(), 303, "alice uploads another photo after T");
    assert_eq!(
        psql(stack, "SELECT COUNT(*) FROM users WHERE username = 'bob'").await,
        "0"
    );

    // Meanwhile a visitor keeps asking: the gallery's page, or the 503 page, never another.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = {
        let (visitor, base) = browser(url).await;
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut restoring, mut wrong) = (0u32, 0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match visitor.get(format!("{base}/login")).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) if r.status() == 503 => {
                        let body = r.text().await.unwrap_or_default();
                        if body.contains("The gallery is being restored") {
                            restoring += 1;
                        } else {
                            wrong.push(format!("503: {body}"));
                        }
                    }
                    Ok(r) => wrong.push(format!("{}", r.status())),
                    Err(e) => wrong.push(format!("{e}")),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (ok, restoring, wrong)
        })
    };
    let when = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let started = Instant::now();
    let restore_args = [
        "restore",
        "--to-time",
        &when,
        "--yes",
        "--healthy-timeout-secs",
        "300",
    ];
    // Killed right after its first rename (the stack then has no `<stack>-db`), ...
    let killed_output = {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_provision"))
            .arg("--config")
            .arg(stack.dir.path().join("config.toml"))
            .args(["--endpoint", &cloud_url(), "--poll-secs", "0.5"])
            .args(restore_args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push_str(&line);
            said.push('\n');
            if line.contains("renamed to") {
                child.start_kill().unwrap();
                break;
            }
        }
        let _ = child.wait().await;
        said
    };
    assert!(
        killed_output.contains("renamed to")
            && killed_output.contains("1 brought back, 1 added since hidden"),
        "the first run got as far as its first rename:\n{killed_output}"
    );
    // ... the gallery still answers 503, `up` refuses to touch the stack, ...
    let (code, _, err) = stack.provision(&["up", "--no-wait"]).await;
    assert_eq!(code, 1, "up during an interrupted restore: {err}");
    assert!(err.contains("was interrupted"), "{err}");
    // ... and the same command (once the dead run's lock is broken) finishes it.
    let (code, _, _) = stack.provision(&["unlock"]).await;
    assert_eq!(code, 0);
    let (code, out, err) = stack.provision(&restore_args).await;
    eprintln!(
        "[{}] restore --to-time, killed after its first rename and run again: {:.1}s",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, restoring, wrong) = seen.await.unwrap();
    assert_eq!(code, 0, "restore run again:\n{out}\n{err}");
    assert!(err.contains("resuming the restore under way"), "{err}");
    assert!(out.contains("Removed the previous database"), "{out}");
    assert!(
        wrong.is_empty(),
        "answers during the restore that were neither the gallery nor the 503 page: {wrong:?}"
    );
    assert!(
        restoring > 0 && ok > 0,
        "the visitor saw the 503 page {restoring} time(s), the gallery {ok}"
    );

    // As at T: bob is back, alice's photo is back byte for byte, the later one is not.
    let (bob_again, _) = browser(url).await;
    login(&bob_again, &base, "bob", "bob's long password").await;
    let (alice, _) = browser(url).await;
    login(&alice, &base, "alice", "correct horse battery").await;
    let gallery = alice
        .get(format!("{base}/gallery"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        gallery.matches("<img src=\"/images/").count(),
        1,
        "only the photo of T:\n{gallery}"
    );
    assert!(
        gallery.contains(&format!("/images/{id}/thumb")),
        "{gallery}"
    );
    let r = alice
        .get(format!("{base}/images/{id}/original"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let bytes = reqwest::get(&location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/photos/rocket.jpg"
    ))
    .unwrap();
    assert!(bytes == photo, "alice's original is back byte for byte");
    let (code, backups, _) = stack.provision(&["backups"]).await;
    assert_eq!(code, 0);
    assert!(
        backups.contains("-prev-"),
        "the previous database's final snapshot is listed:\n{backups}"
    );

    // `restore --snapshot` of the backup, keeping the database it replaces: a photo
    // uploaded since is hidden again; the previous database stays until `down`.
    let r = upload_photo(&alice, &base, "camera.png", "later.png", "image/png").await;
    assert_eq!(r.status(), 303);
    let started = Instant::now();
    let (code, out, err) = stack
        .provision(&[
            "restore",
            "--snapshot",
            &snapshot,
            "--keep-old",
            "--yes",
            "--healthy-timeout-secs",
            "300",
        ])
        .await;
    eprintln!(
        "[{}] restore --snapshot --keep-old: {:.1}s",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "restore --snapshot:\n{out}\n{err}");
    assert!(
        out.contains("0 image(s) brought back, 1 added since hidden"),
        "{out}"
    );
    assert!(out.contains("Kept the previous database"), "{out}");
    let (alice, _) = browser(url).await;
    login(&alice, &base, "alice", "correct horse battery").await;
    let gallery = alice
        .get(format!("{base}/gallery"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        gallery.matches("<img src=\"/images/").count(),
        1,
        "as the backup holds it:\n{gallery}"
    );
    let (code, status, _) = stack.provision(&["status", "--json"]).await;
    assert_eq!(code, 0);
    assert!(
        status.contains("-db-prev-"),
        "the kept previous database is the stack's: {status}"
    );
}

/// The zone of each in-service instance of the group.
async fn zones(stack: &Stack) -> std::collections::BTreeMap<String, usize> {
    let asg = aws_sdk_autoscaling::Client::new(&sdk_config().await);
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(format!("{}-asg", stack.name))
        .send()
        .await
        .unwrap();
    let mut count = std::collections::BTreeMap::new();
    for i in out.auto_scaling_groups().iter().flat_map(|g| g.instances()) {
        if i.lifecycle_state().map(|s| s.as_str()) == Some("InService") {
            *count
                .entry(i.availability_zone().unwrap_or_default().to_string())
                .or_insert(0) += 1;
        }
    }
    count
}

/// Four instances over two zones (chosen among those offering the instance type: the
/// local cloud's `us-east-1a` offers no t3), a deploy one at a time under load while
/// AZRebalance is on: the roll suspends it, keeps the zones balanced, resumes it, and
/// ends with exactly four instances, all on the new release, two per zone.
#[tokio::test(flavor = "multi_thread")]
async fn a_four_instance_deploy_across_two_zones_is_not_disturbed_by_az_rebalance() {
    use std::sync::atomic::Ordering;
    let _shared = shared().await;
    let stack = Stack::new("zones", 600).sized(4, 4, 6);
    let url = stack.up().await;
    let v1 = provision::release::inspect(&artifact()).unwrap().version;
    assert_eq!(all_run(&stack, &v1).await.len(), 4);
    let before = zones(&stack).await;
    assert_eq!(
        before.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{before:?}"
    );
    assert!(
        !before.contains_key("us-east-1a"),
        "a zone without t3: {before:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let v2_path = another_release(&dir, b"zones");
    let v2 = provision::release::inspect(&v2_path).unwrap().version;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let password = stack.admin_password().await;
    let load = generate_load(&url, &password, 10, stop.clone()).await;
    let started = Instant::now();
    let (code, stdout, stderr) = stack
        .provision(&[
            "deploy",
            "--artifact",
            v2_path.to_str().unwrap(),
            "--batch-size",
            "1",
            "--healthy-timeout-secs",
            "120",
        ])
        .await;
    assert_eq!(code, 0, "deploy:\n{stdout}\n{stderr}");
    eprintln!(
        "[{}] deploy over 4 instances in 2 zones: {:.1}s",
        stack.name,
        started.elapsed().as_secs_f64()
    );
    assert!(
        stderr.contains("suspended AZRebalance") && stderr.contains("resumed AZRebalance"),
        "{stderr}"
    );
    // AZRebalance is back on: give it time to act on any imbalance, then count.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = all_run(&stack, &v2).await;
    assert_eq!(after.len(), 4, "exactly the desired count: {after:?}");
    assert_eq!(
        group_instances(&stack, &["Pending", "InService", "Terminating"])
            .await
            .len(),
        4
    );
    let balanced = zones(&stack).await;
    assert_eq!(
        balanced.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{balanced:?}"
    );
    let asg = aws_sdk_autoscaling::Client::new(&sdk_config().await);
    let group = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(format!("{}-asg", stack.name))
        .send()
        .await
        .unwrap();
    assert!(
        group.auto_scaling_groups()[0]
            .suspended_processes()
            .is_empty(),
        "processes left suspended"
    );
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, failed) = (
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
    );
    eprintln!("[{}] load: {ok} requests ok, {failed} failed", stack.name);
    assert!(ok > 50, "the load generator hardly ran: {ok}");
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        load.failures.lock().unwrap()
    );
    stack.down().await;
}

/// A two-minute database outage (a maintenance reboot) under 20 browsing clients: no
/// instance is terminated (readiness is about the instance, not its database), pages
/// answer 503 only while the database is down, and none fails once it has been back for
/// 30 s. A wedged instance (its process up, answering nothing) is still replaced.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_terminates_no_instance_while_a_wedged_one_is_replaced() {
    use std::sync::atomic::Ordering;
    let _shared = shared().await;
    let stack = Stack::new("blink", 20);
    let url = stack.up().await;
    let (client, base) = browser(&url).await;
    wait_ready(&client, &base, Duration::from_secs(120)).await;
    let before = in_service(&stack).await;
    assert_eq!(before.len(), 2);
    let password = stack.admin_password().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = generate_load(&url, &password, 20, stop.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let db = format!("{}-db", stack.name);
    let outage_secs = 120;
    let down_at = Instant::now();
    cloud(
        reqwest::Method::POST,
        &format!("databases/{db}/outage"),
        Some(json!({"seconds": outage_secs})),
    )
    .await;
    // Back once the local cloud reports the database available again.
    let back_at = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = cloud(reqwest::Method::GET, "status", None).await;
        let state = status["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == db.as_str())
            .map(|d| d["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        if down_at.elapsed() > Duration::from_secs(5) && state == "available" {
            break Instant::now();
        }
        assert!(
            down_at.elapsed() < Duration::from_secs(outage_secs + 60),
            "the database never came back"
        );
    };
    // Serving again within 30 s, then nothing fails for 20 s.
    let deadline = back_at + Duration::from_secs(30);
    loop {
        let r = client.get(format!("{base}/gallery")).send().await;
        if r.is_ok_and(|r| r.status() == 302 || r.status() == 200 || r.status() == 303) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not serving 30 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let quiet_from = Instant::now().max(back_at + Duration::from_secs(30));
    tokio::time::sleep(quiet_from + Duration::from_secs(20) - Instant::now()).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures = load.failed_at.lock().unwrap().clone();
    let during: Vec<&(Instant, String)> = failures
        .iter()
        .filter(|(t, _)| *t < back_at + Duration::from_secs(30))
        .collect();
    let after: Vec<&(Instant, String)> =
        failures.iter().filter(|(t, _)| *t >= quiet_from).collect();
    eprintln!(
        "[{}] outage {outage_secs}s: {} requests ok, {} failed during it (all 503), {} after",
        stack.name,
        load.ok.load(Ordering::Relaxed),
        during.len(),
        after.len()
    );
    assert!(!during.is_empty(), "the outage was not seen");
    for (t, why) in &during {
        assert!(
            why.contains(": 503 ") && *t >= down_at,
            "only 503 pages while the database is down, got: {why}"
        );
    }
    assert!(
        after.is_empty(),
        "failures once the database was back: {after:?}"
    );
    assert_eq!(
        in_service(&stack).await,
        before,
        "an instance was replaced during the outage"
    );
    assert!(stack
        .instances()
        .await
        .iter()
        .all(|(id, s)| !before.contains(id) || s == "running"));

    // A wedged instance: its process stopped, answering nothing. Its target turns
    // unhealthy and Auto Scaling replaces it.
    let victim = before[0].clone();
    let frozen = cloud(
        reqwest::Method::POST,
        &format!("instances/{victim}/freeze"),
        Some(json!({"match": "gallery serve"})),
    )
    .await;
    assert!(frozen["stopped"].as_u64().unwrap() > 0, "{frozen}");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let states = stack.instances().await;
        let replaced = states
            .iter()
            .any(|(id, s)| id == &victim && (s == "terminated" || s == "shutting-down"));
        let fresh = stack
            .target_health()
            .await
            .into_iter()
            .any(|(id, s)| !before.contains(&id) && s == "healthy");
        if replaced && fresh {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the wedged instance was not replaced: {states:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stack.down().await;
}
