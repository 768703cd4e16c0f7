//! What a user sees when AWS says no, or says nothing: the real binary, against the local
//! cloud (`scripts/test` starts it) made to answer as AWS does for expired credentials,
//! missing permissions, throttling and quotas, and against nothing at all. Each failure
//! must read in a line or two: what provision was doing, AWS's code and message, the fix;
//! never the SDK's debug dump.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::json;

fn endpoint() -> String {
    std::env::var("GALLERY_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("GALLERY_TEST_AWS_ENDPOINT is not set: run the suite with `scripts/test`, which starts the local cloud")
    })
}

/// An access key of this test's own: the faults it asks for hit only its calls.
fn key() -> String {
    format!("AKIAERR{:08X}", rand::random::<u32>())
}

/// Make the local cloud answer `operation` with this error, for calls signed with `key`.
async fn fault(key: &str, operation: &str, code: &str, status: u16, message: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/_localcloud/faults", endpoint()))
        .json(&json!({
            "operation": operation, "code": code, "status": status, "message": message,
            "count": -1, "access_key": key,
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

fn config(dir: &tempfile::TempDir, region: &str) -> std::path::PathBuf {
    let name = format!("err-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml"))
        .unwrap()
        .replace("name = \"gallery\"", &format!("name = \"{name}\""))
        .replace("region = \"us-east-1\"", &format!("region = \"{region}\""))
        // These tests are about AWS's answers, not the plain-HTTP refusal (tested below).
        .replace("allow_plain_http = false", "allow_plain_http = true");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Run provision; returns (exit code, stderr).
fn provision(args: &[&str], env: &[(&str, &str)], endpoint: Option<&str>) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "us-east-1");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_provision"));
    cmd.arg("--config").arg(&cfg);
    if let Some(e) = endpoint {
        cmd.args(["--endpoint", e]);
    }
    cmd.args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Throttling and an unreachable endpoint are retried: quickly here.
        .env("AWS_MAX_ATTEMPTS", "2");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The failure reads in a few short lines, with the fix, and none of the SDK's insides.
fn assert_explained(stderr: &str, wants: &[&str]) {
    let error: String = stderr
        .lines()
        .skip_while(|l| !l.starts_with("error:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!error.is_empty(), "no error line:\n{stderr}");
    for w in wants {
        assert!(error.contains(w), "missing {w:?} in:\n{error}");
    }
    assert!(error.contains("fix:"), "no fix in:\n{error}");
    assert!(
        error.lines().count() <= 3 && error.len() <= 500,
        "{} lines, {} characters:\n{error}",
        error.lines().count(),
        error.len()
    );
    for inside in [
        "DispatchFailure",
        "ServiceError {",
        "ErrorMetadata",
        "ConnectorError",
        "Unhandled(",
    ] {
        assert!(
            !error.contains(inside),
            "the SDK's insides ({inside}):\n{error}"
        );
    }
}

fn signed(key: &str) -> [(&str, String); 2] {
    [
        ("AWS_ACCESS_KEY_ID", key.to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
    ]
}

fn env_of<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn no_credentials_are_explained() {
    let (code, err) = provision(&["plan"], &[], Some(&endpoint()));
    assert_eq!(code, 1);
    assert_explained(
        &err,
        &["checking AWS credentials", "no AWS credentials were found"],
    );
}

#[tokio::test]
async fn expired_credentials_are_explained() {
    let k = key();
    fault(
        &k,
        "sts:GetCallerIdentity",
        "ExpiredToken",
        403,
        "The security token included in the request is expired",
    )
    .await;
    let (code, err) = provision(&["plan"], &env_of(&signed(&k)), Some(&endpoint()));
    assert_eq!(code, 1);
    assert_explained(&err, &["ExpiredToken", "is expired", "have expired"]);
}

#[tokio::test]
async fn access_denied_is_explained() {
    let k = key();
    fault(
        &k,
        "ec2:DescribeAvailabilityZones",
        "UnauthorizedOperation",
        403,
        "You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ec2:DescribeAvailabilityZones",
    )
    .await;
    let (code, err) = provision(&["plan"], &env_of(&signed(&k)), Some(&endpoint()));
    assert_eq!(code, 1);
    assert_explained(
        &err,
        &[
            "listing availability zones",
            "UnauthorizedOperation",
            "lack permission",
        ],
    );
}

#[tokio::test]
async fn an_s3_access_denied_on_the_release_is_explained() {
    // A HEAD or GET answered 403 (the release checksum, a bucket check): no body, so no
    // code; the status says what it was.
    let k = key();
    fault(&k, "s3:HeadBucket", "AccessDenied", 403, "Access Denied").await;
    let (code, err) = provision(&["plan"], &env_of(&signed(&k)), Some(&endpoint()));
    assert_eq!(code, 1);
    assert_explained(&err, &["bucket", "AccessDenied", "lack permission"]);
}

#[tokio::test]
async fn throttling_is_explained_after_the_retries() {
    let k = key();
    fault(
        &k,
        "sts:GetCallerIdentity",
        "Throttling",
        400,
        "Rate exceeded",
    )
    .await;
    let (code, err) = provision(&["plan"], &env_of(&signed(&k)), Some(&endpoint()));
    assert_eq!(code, 1);
    assert_explained(&err, &["Throttling", "Rate exceeded", "wait a minute"]);
}

#[tokio::test]
async fn a_reached_quota_is_explained() {
    let k = key();
    fault(
        &k,
        "ec2:CreateVpc",
        "VpcLimitExceeded",
        400,
        "The maximum number of VPCs has been reached.",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "us-east-1");
    let artifact = dir.path().join("gallery");
    std::fs::write(&artifact, b"\x7fELF stand-in").unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
            .arg("--config")
            .arg(&cfg)
            .args(["--endpoint", &endpoint(), "--poll-secs", "0.25"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &k)
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_MAX_ATTEMPTS", "2")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["up", "--no-wait", "--artifact", artifact.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_explained(&err, &["creating VPC", "VpcLimitExceeded", "quota"]);
    // What the other branches of the graph made meanwhile goes with `down`.
    let (code, err) = run(&["down", "--yes", "--skip-final-snapshot"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_unreachable_endpoint_is_explained() {
    let (code, err) = provision(
        &["plan"],
        &env_of(&signed("AKIAUNREACHABLE")),
        Some("http://127.0.0.1:9"),
    );
    assert_eq!(code, 1);
    assert_explained(
        &err,
        &["could not reach AWS", "connection refused", "--endpoint"],
    );
}

#[test]
fn an_unknown_region_is_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, "xx-nowhere-9");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("--config")
        .arg(&cfg)
        // Nothing listens here: a call would fail differently.
        .args(["--endpoint", "http://127.0.0.1:9", "plan"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stack.region") && err.contains("xx-nowhere-9") && err.lines().count() <= 2,
        "{err}"
    );
}

#[test]
fn plain_http_to_the_whole_internet_is_refused_before_any_call() {
    // The shipped config: allowed_cidrs 0.0.0.0/0, no certificate, no allow_plain_http.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml");
    let run = |command: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
            .args(["--config", shipped])
            // Nothing listens here: a call would fail differently (exit 1, "could not reach AWS").
            .args(["--endpoint", "http://127.0.0.1:9", command])
            .env("AWS_ACCESS_KEY_ID", "AKIAPLAINHTTP")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap()
    };
    let out = run("up");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "error: network.allowed_cidrs: `0.0.0.0/0`",
        "passwords and session cookies would cross the internet in clear",
        "balancer.certificate_arn",
        "network.allow_plain_http = true",
    ] {
        assert!(err.contains(part), "{part:?} missing from:\n{err}");
    }
    assert!(
        !err.contains("could not reach AWS") && err.lines().count() == 1,
        "{err}"
    );
    // `plan` only reads: it warns, then goes on (here to the unreachable endpoint).
    let out = run("plan");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("warning: `provision up` will refuse this config: network.allowed_cidrs"),
        "{err}"
    );
    assert!(err.contains("could not reach AWS"), "{err}");
    // Against the local cloud the plan is shown whole, cost included, then it exits 2 as
    // `up` would, so a gate on `plan` fails too.
    let dir = tempfile::tempdir().unwrap();
    let name = format!("plain-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(shipped)
            .unwrap()
            .replace("name = \"gallery\"", &format!("name = \"{name}\"")),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("--config")
        .arg(&cfg)
        .args(["--endpoint", &endpoint(), "plan"])
        .env("AWS_ACCESS_KEY_ID", "AKIAPLAINHTTPPLAN")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{err}");
    assert!(stdout.contains("Monthly cost of stack"), "{stdout}");
    assert!(
        err.contains("error: the plan above is of a config `provision up` refuses"),
        "{err}"
    );
}
