//! The request id and the access log of the real `gallery` binary (`--log-json`), and its
//! log lines shipped to CloudWatch Logs (the local cloud).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_gallery");

/// The binary on a free port with its standard error collected line by line.
struct Logged {
    child: Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Logged {
    fn start(data: &Data, before: &[&str], serve: &[&str]) -> Logged {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(BIN)
            .args(data.args())
            .args(["--log-json"])
            .args(before)
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--admin-password",
                ADMIN_PASSWORD,
                "--drain-secs",
                "0",
            ])
            .args(serve)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Logged {
            child,
            base: format!("http://127.0.0.1:{port}"),
            lines,
        }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The access line naming `id`, waited for (bounded).
    async fn access_line(&self, id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.lines.lock().unwrap().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["target"] == "gallery::access" && v["fields"]["request_id"] == id).then_some(v)
            });
            if let Some(v) = found {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no access line for {id} in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit (every line flushed).
    fn stop(&mut self) {
        assert!(Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .expect("every response has an x-request-id")
        .to_str()
        .unwrap()
        .to_string()
}

/// Each response carries a request id (the client's if plain and short, else a new
/// UUID), and one JSON access line names it with the method, the path, the status and
/// the latency; a share link's token and the session cookie never reach the log.
#[tokio::test]
async fn the_access_line_names_the_request_id_and_never_a_share_token_or_a_session_cookie() {
    let data = Data::new(Backend::Sqlite).await;
    let mut server = Logged::start(&data, &[], &[]);
    wait_ready(&server.base).await;
    let c = reqwest::Client::new();

    let given = c
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "client-chosen-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id(&given), "client-chosen-id-1");

    let odd = c
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "{\"injected\":true}")
        .send()
        .await
        .unwrap();
    let replaced = request_id(&odd);
    assert_ne!(replaced, "{\"injected\":true}");
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");

    let token = "SHARETOKENabcdefghijklmnopqrstuv0123456789";
    let cookie = "gallery_session=SESSIONCOOKIEvalue0123456789abcdef";
    let shared = c
        .get(format!("{}/s/{token}/i/42/thumb?key={token}", server.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let shared_status = shared.status().as_u16();
    let shared_id = request_id(&shared);

    let line = server.access_line("client-chosen-id-1").await;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["method"], "GET");
    assert_eq!(line["fields"]["path"], "/healthz");
    assert_eq!(line["fields"]["status"], 200);
    assert!(line["fields"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["timestamp"].is_string());
    server.access_line(&replaced).await;
    let line = server.access_line(&shared_id).await;
    assert_eq!(line["fields"]["path"], "/s/…/i/42/thumb");
    assert_eq!(line["fields"]["status"], shared_status);

    server.stop();
    let all = server.text();
    assert!(
        !all.contains(token),
        "a share token reached the log:\n{all}"
    );
    assert!(
        !all.contains("SESSIONCOOKIEvalue"),
        "a session cookie reached the log:\n{all}"
    );
    assert!(!all.contains("injected"), "{all}");
    // One line per request.
    let count = all.matches(&shared_id).count();
    assert_eq!(count, 1, "{all}");
}

/// `--access-log false`: the id is still returned, no access line is written.
#[tokio::test]
async fn the_access_log_can_be_turned_off() {
    let data = Data::new(Backend::Sqlite).await;
    let mut server = Logged::start(&data, &[], &["--access-log", "false"]);
    wait_ready(&server.base).await;
    let r = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    let id = request_id(&r);
    server.stop();
    let all = server.text();
    assert!(all.contains("\"stopped\""), "the log was flushed: {all}");
    assert!(!all.contains(&id), "{all}");
    assert!(!all.contains("gallery::access"), "{all}");
}

/// With `--log-group` and `--log-stream` the lines reach CloudWatch Logs: a request's
/// access line while the server runs, and the last line written on SIGTERM (flushed).
#[tokio::test]
async fn log_lines_are_shipped_to_cloudwatch_logs_and_flushed_on_stop() {
    let endpoint = std::env::var("GALLERY_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("GALLERY_TEST_AWS_ENDPOINT is not set: run the suite with `scripts/test`")
    });
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let logs = aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::from(&shared)
            .endpoint_url(&endpoint)
            .build(),
    );
    let group = format!("/gallery/test-{}", uuid::Uuid::new_v4().simple());
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();

    let data = Data::new(Backend::Sqlite).await;
    let mut server = Logged::start(
        &data,
        &[
            "--log-group",
            &group,
            "--log-stream",
            "i-0123456789abcdef0",
            "--aws-endpoint",
            &endpoint,
            "--aws-region",
            "us-east-1",
        ],
        &[],
    );
    wait_ready(&server.base).await;
    let r = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    let id = request_id(&r);

    let shipped = |pattern: String| {
        let logs = logs.clone();
        let group = group.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let out = logs
                    .filter_log_events()
                    .log_group_name(&group)
                    .log_stream_names("i-0123456789abcdef0")
                    .send()
                    .await
                    .unwrap();
                let hit = out
                    .events()
                    .iter()
                    .filter_map(|e| e.message())
                    .find(|m| m.contains(&pattern))
                    .map(str::to_string);
                if let Some(m) = hit {
                    return m;
                }
                assert!(
                    Instant::now() < deadline,
                    "{pattern} never reached CloudWatch"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let line: serde_json::Value = serde_json::from_str(&shipped(id.clone()).await).unwrap();
    assert_eq!(line["fields"]["path"], "/healthz");
    server.stop();
    shipped("\"stopped\"".into()).await;
}
