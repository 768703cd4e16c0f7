//! `provision` against the moto AWS emulator started by `scripts/test`: the whole life of
//! a stack, idempotence, crashes at many points, partial teardown, and the security rules.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use provision::cli::{execute, Command};
use provision::commands::{status, up};
use provision::config::StackConfig;
use provision::engine::aws::{CallLog, Clients, Kill};
use provision::engine::context::{Ctx, Mode};
use provision::engine::graph::{Change, Node};
use provision::engine::retry::Timing;
use provision::resources::scan;

fn endpoint() -> String {
    std::env::var("GALLERY_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("GALLERY_TEST_AWS_ENDPOINT is not set: run the suite with `scripts/test`, which starts the moto AWS emulator (see README.md)")
    })
}

fn timing() -> Timing {
    Timing {
        poll: Duration::from_millis(250),
        dependency_timeout: Duration::from_secs(5),
        wait_timeout: Duration::from_secs(30),
        lock_lease: Duration::from_secs(1),
        // Above the local cloud's lags (localcloud/README.md), well below AWS's defaults.
        visibility: Duration::from_secs(30),
        listing_lag: Duration::from_secs(5),
    }
}

/// The shipped config.toml with a unique stack name.
fn config(prefix: &str) -> StackConfig {
    let mut c = StackConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config.toml"
    )))
    .unwrap();
    c.stack.name = format!("{prefix}-{}", &uuid_like()[..6]);
    c.validate().unwrap();
    c
}

fn uuid_like() -> String {
    format!("{:08x}", rand::random::<u32>())
}

async fn clients(log: Arc<CallLog>) -> Clients {
    Clients::new("us-east-1", Some(&endpoint()), log).await
}

async fn run(command: Command, config: &StackConfig) -> (anyhow::Result<i32>, Arc<CallLog>) {
    run_with(command, config, Arc::new(CallLog::default())).await
}

async fn run_with(
    command: Command,
    config: &StackConfig,
    log: Arc<CallLog>,
) -> (anyhow::Result<i32>, Arc<CallLog>) {
    let c = clients(log.clone()).await;
    (execute(&command, config.clone(), c, timing()).await, log)
}

/// A stand-in release binary: these tests check bookkeeping, not boot (see cloud.rs).
fn artifact() -> std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("gallery-fake-release-{}", std::process::id()));
        std::fs::write(&path, b"\x7fELF stand-in for the gallery release").unwrap();
        path
    })
    .clone()
}

fn up_cmd() -> Command {
    Command::Up {
        artifact: Some(artifact()),
        no_wait: true,
        from_snapshot: None,
    }
}

/// `down --delete-data --yes-delete-data`: these tests check that nothing is left.
fn down(force: bool) -> Command {
    Command::Down {
        yes: true,
        force,
        skip_final_snapshot: false,
        delete_data: true,
        yes_delete_data: true,
    }
}

/// `down` as a user runs it by default: the data is kept.
fn down_keeping_data() -> Command {
    Command::Down {
        yes: true,
        force: true,
        skip_final_snapshot: false,
        delete_data: false,
        yes_delete_data: false,
    }
}

/// The tests' own hands: clients whose calls the local cloud never faults (its
/// `spare` rule). What a test does by hand (delete a piece of a stack, put objects)
/// sets the scene; a lost answer there would make its retry fail, testing nothing.
async fn hands() -> Clients {
    static SPARED: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let key = SPARED
        .get_or_init(|| async {
            let key = format!("HANDS{:08X}", rand::random::<u32>());
            let resp = reqwest::Client::new()
                .post(format!("{}/_localcloud/faults", endpoint()))
                .json(&serde_json::json!({
                    "operation": "*", "spare": true, "count": -1, "access_key": key,
                }))
                .send()
                .await
                .unwrap();
            assert!(
                resp.status().is_success(),
                "local cloud faults: {}",
                resp.status()
            );
            key
        })
        .await;
    Clients::with_keys(
        "us-east-1",
        Some(&endpoint()),
        Arc::new(CallLog::default()),
        key,
        "testing",
    )
    .await
}

async fn ctx(config: &StackConfig) -> Ctx {
    let c = Ctx::new(config.clone(), hands().await, Mode::Plan, timing());
    provision::commands::preflight(&c).await.unwrap();
    c
}

/// Writes other than taking and releasing the stack lock.
fn resource_writes(log: &CallLog) -> Vec<String> {
    log.writes()
        .into_iter()
        .filter(|w| !w.starts_with("SSM:"))
        .collect()
}

async fn planned_changes(config: &StackConfig) -> Vec<(Node, Change)> {
    let planner = ctx(config).await;
    let planned = up::plan(&planner).await.unwrap();
    planned
        .changes
        .into_iter()
        .filter(|(_, c)| c.is_change())
        .collect()
}

/// How many of each kind of resource is tagged for the stack.
async fn counts(config: &StackConfig) -> std::collections::BTreeMap<String, usize> {
    let c = ctx(config).await;
    let mut m = std::collections::BTreeMap::new();
    for f in scan::tagged(&c).await.unwrap() {
        *m.entry(f.kind).or_insert(0) += 1;
    }
    m
}

async fn assert_nothing_left(config: &StackConfig) {
    let left = scan::tagged(&ctx(config).await).await.unwrap();
    assert!(
        left.is_empty(),
        "still tagged for {}: {left:?}",
        config.stack.name
    );
}

fn complete_stack(desired: usize) -> std::collections::BTreeMap<String, usize> {
    [
        ("vpc", 1),
        ("subnet", 4),
        ("internet-gateway", 1),
        ("route-table", 2),
        ("security-group", 3),
        ("vpc-endpoint", 1),
        ("launch-template", 1),
        ("instance", desired),
        ("load-balancer", 1),
        ("target-group", 1),
        ("database", 1),
        ("db-subnet-group", 1),
        ("secret", 2),
        ("bucket", 1),
        ("log-group", 1),
        ("iam-role", 1),
        ("instance-profile", 1),
        ("auto-scaling-group", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_status_noop_change_plan_apply_down_leaves_nothing() {
    let mut config = config("life");
    // Before it exists: config.toml's stack priced, nothing beside it.
    let fresh = up::plan(&ctx(&config).await).await.unwrap().cost;
    assert!(
        fresh.contains("as config.toml sets it:")
            && fresh.contains("2 x t3.small (up to 4)")
            && !fresh.contains("what runs now"),
        "{fresh}"
    );
    let started = std::time::Instant::now();
    let (r, log) = run(up_cmd(), &config).await;
    assert_eq!(r.unwrap(), 0);
    let full_up = started.elapsed();
    let full_up_calls = log.calls().len();
    assert_eq!(counts(&config).await, complete_stack(2));

    let c = ctx(&config).await;
    let s = status::status(&c).await.unwrap();
    assert!(
        s.url.as_deref().unwrap().starts_with("http://"),
        "{:?}",
        s.url
    );
    assert_eq!(
        s.targets.len(),
        2,
        "both instances registered in the target group"
    );
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"database\"") && json.contains("\"auto-scaling-group\""));

    // A second `up` on the complete stack: no change, only reads, few calls.
    let started = std::time::Instant::now();
    let (r, log) = run(up_cmd(), &config).await;
    assert_eq!(r.unwrap(), 0);
    let noop = started.elapsed();
    assert!(
        log.writes().is_empty(),
        "a no-op up must only read: {:?}",
        log.writes()
    );
    let calls = log.calls().len();
    assert!(
        // 40, the log group's two reads (DescribeLogGroups, ListTagsForResource), and one
        // each for the scaling policy, the alarms and their topic (off, they are still
        // looked for: turned off, what an earlier `up` made goes).
        calls <= 45,
        "no-op up made {calls} calls: {:?}",
        log.calls()
    );
    eprintln!(
        "MEASURED full up: {full_up_calls} calls in {:.2}s; no-op up: {calls} calls in {:.2}s",
        full_up.as_secs_f64(),
        noop.as_secs_f64()
    );

    // Change a setting: plan shows exactly that, up applies exactly that.
    config.app.desired_capacity = 3;
    let changed = planned_changes(&config).await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        matches!(&changed[0], (Node::AutoScalingGroup, Change::Update(d)) if d.contains("2/2/4 -> 2/3/4")),
        "{changed:?}"
    );
    let (r, log) = run(up_cmd(), &config).await;
    assert_eq!(r.unwrap(), 0);
    assert_eq!(
        resource_writes(&log),
        ["Auto Scaling:UpdateAutoScalingGroup"],
        "exactly that change"
    );
    assert_eq!(counts(&config).await["instance"], 3);

    // Another: the instance type makes a new launch template version, and the group is
    // pinned to its number.
    config.app.instance_type = "t3.medium".into();
    // The cost of that change, read from what runs: 3 x t3.small, $0.0208 an hour for
    // 730 hours, becomes 3 x t3.medium at $0.0416; nothing else changes.
    let cost = up::plan(&ctx(&config).await).await.unwrap().cost;
    let ec2 = cost.lines().find(|l| l.contains("EC2 instances")).unwrap();
    assert!(
        ec2.contains("3 x t3.medium (up to 4); now 3 x t3.small (up to 4)")
            && ec2.split_whitespace().rev().take(3).collect::<Vec<_>>()
                == ["+$45.55", "$91.10", "$45.55"],
        "{cost}"
    );
    let total = cost.lines().find(|l| l.starts_with("  total")).unwrap();
    assert!(total.ends_with("+$45.55"), "{cost}");
    let changed = planned_changes(&config).await;
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(
        matches!(&changed[0], (Node::LaunchTemplate, Change::Update(d)) if d.contains("instance type t3.small -> t3.medium")),
        "{changed:?}"
    );
    assert!(
        matches!(&changed[1], (Node::AutoScalingGroup, Change::Update(d)) if d.contains("version 1 -> 2")),
        "{changed:?}"
    );
    let (r, log) = run(up_cmd(), &config).await;
    assert_eq!(r.unwrap(), 0);
    assert_eq!(
        resource_writes(&log),
        [
            "EC2:CreateLaunchTemplateVersion",
            // The new version becomes the template's default: the version the stack runs.
            "EC2:ModifyLaunchTemplate",
            "Auto Scaling:UpdateAutoScalingGroup"
        ],
        "exactly that change"
    );
    let c = ctx(&config).await;
    let group = provision::resources::fleet::find(&c)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group.desired_capacity(), Some(3));
    assert_eq!(
        group.launch_template().and_then(|l| l.version()),
        Some("2"),
        "pinned to the new version number"
    );
    let (r, log) = run(up_cmd(), &config).await;
    assert_eq!(r.unwrap(), 0);
    assert!(log.writes().is_empty(), "{:?}", log.writes());

    // Deletion protection is honoured unless forced.
    let (r, _) = run(down(false), &config).await;
    let err = format!("{:#}", r.unwrap_err());
    assert!(
        err.contains("deletion protection")
            && err.contains("--force")
            && err.contains("nothing was deleted"),
        "{err}"
    );
    assert_eq!(
        counts(&config).await,
        complete_stack(3),
        "refused before touching anything"
    );
    let started = std::time::Instant::now();
    let (r, log) = run(down_keeping_data(), &config).await;
    assert_eq!(r.unwrap(), 0);
    eprintln!(
        "MEASURED down (keeping the data): {} calls in {:.2}s",
        log.calls().len(),
        started.elapsed().as_secs_f64()
    );
    // A final snapshot was kept, with a timestamped name.
    let snaps = c.aws.rds.describe_db_snapshots().send().await.unwrap();
    let prefix = format!("{}-db-final-", config.stack.name);
    assert!(snaps.db_snapshots().iter().any(|s| s
        .db_snapshot_identifier()
        .unwrap_or_default()
        .starts_with(&prefix)));
    let started = std::time::Instant::now();
    let (r, log) = run(down(true), &config).await;
    assert_eq!(r.unwrap(), 0);
    eprintln!(
        "MEASURED down --delete-data after it: {} calls in {:.2}s",
        log.calls().len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        counts(&config).await.is_empty(),
        "{:?}",
        counts(&config).await
    );
}

/// Kill points spread over every resource write of a reference run (the first and the
/// last included), alternating between "never sent" and "done by AWS, answer lost".
fn kill_points(writes: usize, n: usize) -> Vec<(usize, Kill)> {
    let n = n.min(writes).max(1);
    let mut points: Vec<usize> = (0..n)
        .map(|i| {
            if n == 1 {
                0
            } else {
                i * (writes - 1) / (n - 1)
            }
        })
        .collect();
    points.dedup();
    points
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let how = if i % 2 == 0 {
                Kill::ResponseLost
            } else {
                Kill::BeforeSend
            };
            (k, how)
        })
        .collect()
}

/// Ask the local cloud to lose the answers to a share of the writes signed with
/// `access_key` (applied, the answer never sent): the SDK then sends them again.
async fn lose_answers(access_key: &str, rate: f64) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_localcloud/faults", endpoint()))
        .json(&serde_json::json!({
            "operation": "*", "lose_answer": true, "rate": rate, "count": -1, "access_key": access_key,
        }))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "local cloud faults: {}",
        resp.status()
    );
}

async fn run_as(
    command: Command,
    config: &StackConfig,
    log: Arc<CallLog>,
    access_key: &str,
) -> (anyhow::Result<i32>, Arc<CallLog>) {
    let c = Clients::with_keys(
        "us-east-1",
        Some(&endpoint()),
        log.clone(),
        access_key,
        "testing",
    )
    .await;
    (execute(&command, config.clone(), c, timing()).await, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_killed_at_any_write_is_finished_by_the_next_up() {
    // The writes of a whole run, to spread the kill points over them.
    let reference = config("ref");
    let (r, log) = run(up_cmd(), &reference).await;
    r.unwrap();
    let writes = resource_writes(&log).len();
    run(down(true), &reference).await.0.unwrap();

    // Every run below also has a fifth of its answers lost (the SDK sends those again),
    // so no create may ever leave a duplicate.
    let key = format!("LOSSY{:08X}", rand::random::<u32>());
    lose_answers(&key, 0.2).await;
    let mut set = tokio::task::JoinSet::new();
    for (k, how) in kill_points(writes, 12) {
        let key = key.clone();
        set.spawn(async move {
            let config = config("kill");
            let log = Arc::new(CallLog::killed_at_write(k, how));
            let (r, log) = run_as(up_cmd(), &config, log, &key).await;
            // A run that retried less than the reference one may finish before its last
            // write numbers: then there was nothing left to kill.
            let made = resource_writes(&log).len();
            // Its writes vary from run to run (retries of calls naming what was just made
            // count as writes), so a run that needed fewer than k finished before its kill
            // point: then it must have finished cleanly.
            assert!(
                (r.is_err() && log.is_dead()) || (r.as_ref().is_ok_and(|c| *c == 0) && made <= k),
                "up killed at write {k} ({how:?}) should have died: {r:?} after {made} writes (the reference made {writes})"
            );
            // The dead run's lock lapses after one lease.
            tokio::time::sleep(timing().lock_lease + Duration::from_millis(1200)).await;
            let (r, _) = run_as(up_cmd(), &config, Arc::new(CallLog::default()), &key).await;
            assert_eq!(
                r.unwrap_or_else(|e| panic!("resume after a kill at write {k} ({how:?}): {e:#}")),
                0
            );
            assert_eq!(
                counts(&config).await,
                complete_stack(2),
                "exactly one of each after a kill at write {k} ({how:?}) and lost answers"
            );
            // Converged, not just complete: one more `up` changes nothing.
            let (r, log) = run(up_cmd(), &config).await;
            assert_eq!(r.unwrap(), 0);
            assert_eq!(
                resource_writes(&log),
                Vec::<String>::new(),
                "the stack resumed after a kill at write {k} ({how:?}) was not converged"
            );
            assert_eq!(
                run(down(true), &config).await.0.unwrap(),
                0,
                "down after the resumed up (kill at write {k}, {how:?})"
            );
            assert_nothing_left(&config).await;
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_killed_at_any_write_is_finished_by_the_next_down() {
    let reference = config("dref");
    run(up_cmd(), &reference).await.0.unwrap();
    let (r, log) = run(down(true), &reference).await;
    r.unwrap();
    let writes = resource_writes(&log).len();

    let mut set = tokio::task::JoinSet::new();
    for (k, how) in kill_points(writes, 8) {
        set.spawn(async move {
            let config = config("dkill");
            run(up_cmd(), &config).await.0.unwrap();
            let log = Arc::new(CallLog::killed_at_write(k, how));
            let (r, log) = run_with(down(true), &config, log).await;
            // `down` waits out dependencies (an ENI still attached, a group still in use)
            // by trying again, so its number of writes varies from run to run: one that
            // needed fewer than the reference finishes before a late kill point. Such a
            // run must have finished cleanly; most runs must have died (checked below).
            let died = log.is_dead();
            let made = resource_writes(&log).len();
            assert!(
                if died {
                    r.is_err() || r.as_ref().is_ok_and(|c| *c != 0)
                } else {
                    r.as_ref().is_ok_and(|c| *c == 0) && made <= k
                },
                "down killed at write {k} ({how:?}): {r:?} after {made} writes (the reference made {writes})"
            );
            tokio::time::sleep(timing().lock_lease + Duration::from_millis(1200)).await;
            let (r, _) = run(down(true), &config).await;
            assert_eq!(
                r.unwrap_or_else(|e| panic!("down after a kill at write {k} ({how:?}): {e:#}")),
                0
            );
            assert_nothing_left(&config).await;
            died
        });
    }
    let (mut died, mut runs) = (0, 0);
    while let Some(r) = set.join_next().await {
        runs += 1;
        died += usize::from(r.unwrap());
    }
    assert!(
        died * 2 >= runs,
        "only {died} of {runs} downs were killed: the kill points missed"
    );
}

/// S3 creates a bucket untagged and `up` tags it in the next call: killed in between,
/// `down` still removes the (empty, untagged) bucket of this stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_removes_the_untagged_bucket_of_an_up_killed_after_creating_it() {
    let config = config("bkill");
    let log = Arc::new(CallLog::killed_at_operation(
        "S3:CreateBucket",
        Kill::ResponseLost,
    ));
    let (r, log) = run_with(up_cmd(), &config, log).await;
    assert!(r.is_err() && log.is_dead());
    let c = ctx(&config).await;
    let bucket = provision::resources::bucket::name(&c);
    c.aws
        .s3
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the bucket was created");
    tokio::time::sleep(timing().lock_lease + Duration::from_millis(1200)).await;
    assert_eq!(run(down(true), &config).await.0.unwrap(), 0);
    assert!(
        c.aws.s3.head_bucket().bucket(&bucket).send().await.is_err(),
        "bucket removed"
    );
    assert_nothing_left(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_completes_on_a_stack_missing_pieces() {
    let config = config("holes");
    run(up_cmd(), &config).await.0.unwrap();
    let c = ctx(&config).await;
    // Pieces deleted by hand.
    let lb = provision::resources::balancer::find_load_balancer(&c)
        .await
        .unwrap()
        .unwrap();
    c.aws
        .elb
        .delete_load_balancer()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    c.aws
        .secrets
        .delete_secret()
        .secret_id(format!("{}/admin", config.stack.name))
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let lt = c
        .aws
        .ec2
        .describe_launch_templates()
        .launch_template_names(format!("{}-app", config.stack.name))
        .send()
        .await
        .unwrap();
    c.aws
        .ec2
        .delete_launch_template()
        .launch_template_id(lt.launch_templates()[0].launch_template_id().unwrap())
        .send()
        .await
        .unwrap();
    let bucket = provision::resources::bucket::name(&c);
    // moto applies the TLS-only Deny to every object call (it ignores the condition);
    // drop it to put objects, versions and a delete marker that `down` must clear.
    c.aws
        .s3
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    c.aws
        .s3
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for body in ["one", "two"] {
        c.aws
            .s3
            .put_object()
            .bucket(&bucket)
            .key("alice/x.jpg")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    c.aws
        .s3
        .delete_object()
        .bucket(&bucket)
        .key("alice/x.jpg")
        .send()
        .await
        .unwrap();

    let (r, _) = run(down(true), &config).await;
    assert_eq!(r.unwrap(), 0);
    assert!(
        counts(&config).await.is_empty(),
        "{:?}",
        counts(&config).await
    );
    // And `down` on nothing at all is fine too.
    assert_eq!(run(down(true), &config).await.0.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_names_only_the_stacks_own_arns_and_groups_open_only_the_listener() {
    let config = config("sec");
    run(up_cmd(), &config).await.0.unwrap();
    let c = ctx(&config).await;
    let role = provision::resources::iam::role_name(&c);
    assert!(
        role.contains("us-east-1"),
        "IAM is global: the role's name holds the region"
    );
    let doc = c
        .aws
        .iam
        .get_role_policy()
        .role_name(&role)
        .policy_name(&role)
        .send()
        .await
        .unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&urlencoding::decode(doc.policy_document()).unwrap()).unwrap();
    // That inline policy is the role's only grant: no other inline or managed policy.
    let inline = c
        .aws
        .iam
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    assert_eq!(inline.policy_names(), std::slice::from_ref(&role));
    let attached = c
        .aws
        .iam
        .list_attached_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty(), "{attached:?}");
    let bucket = provision::resources::bucket::name(&c);
    let secrets: Vec<String> = c
        .aws
        .secrets
        .list_secrets()
        .send()
        .await
        .unwrap()
        .secret_list()
        .iter()
        .filter(|s| {
            s.name()
                .is_some_and(|n| n.starts_with(&format!("{}/", config.stack.name)))
        })
        .map(|s| s.arn().unwrap().to_string())
        .collect();
    assert_eq!(secrets.len(), 2);
    // The stack's own log group (its ARN as DescribeLogGroups gives it, without `:*`).
    let log_group = c
        .aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(provision::resources::logs::group_name(&c))
        .send()
        .await
        .unwrap()
        .log_groups()[0]
        .arn()
        .unwrap()
        .trim_end_matches(":*")
        .to_string();
    let allowed: Vec<String> = [
        format!("arn:aws:s3:::{bucket}"),
        format!("arn:aws:s3:::{bucket}/images/*"),
        format!("arn:aws:s3:::{bucket}/releases/*"),
        log_group.clone(),
        format!("{log_group}:log-stream:*"),
    ]
    .into_iter()
    .chain(secrets)
    .collect();
    // The app writes images only; the releases every instance boots are read-only to it
    // (a compromised instance must not be able to plant a binary for the next boot).
    for st in doc["Statement"].as_array().unwrap() {
        let resource = st["Resource"].to_string();
        let actions = st["Action"].to_string();
        if resource.contains("/releases/") {
            assert_eq!(st["Action"], "s3:GetObject", "releases are read-only: {st}");
        }
        if actions.contains("s3:PutObject") || actions.contains("s3:DeleteObject") {
            assert_eq!(
                st["Resource"],
                format!("arn:aws:s3:::{bucket}/images/*"),
                "writes only under images/: {st}"
            );
        }
    }
    // The SSM agent's statement (for `provision exec`): exactly what Run Command needs, on
    // "*" since those actions take no resource ARN; the only statement on "*".
    let agent: Vec<&serde_json::Value> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["Resource"] == "*")
        .collect();
    assert_eq!(agent.len(), 1, "one statement on every resource: {agent:?}");
    assert_eq!(agent[0]["Sid"], "SsmAgentRunCommand");
    assert_eq!(
        agent[0]["Action"],
        serde_json::json!([
            "ssm:UpdateInstanceInformation",
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
            "ec2messages:AcknowledgeMessage",
            "ec2messages:DeleteMessage",
            "ec2messages:FailMessage",
            "ec2messages:GetEndpoint",
            "ec2messages:GetMessages",
            "ec2messages:SendReply"
        ])
    );
    // The instances ship their logs: streams and events in that group, nothing more.
    let logs: Vec<&serde_json::Value> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["Action"].to_string().contains("logs:"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(
        logs[0]["Action"],
        serde_json::json!(["logs:CreateLogStream", "logs:PutLogEvents"])
    );
    for st in doc["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow");
        let actions = st["Action"].to_string();
        assert!(!actions.contains('*'), "wildcard action: {actions}");
        if st["Resource"] == "*" {
            continue;
        }
        let resources: Vec<String> = match &st["Resource"] {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => {
                a.iter().map(|v| v.as_str().unwrap().to_string()).collect()
            }
            other => panic!("resource {other}"),
        };
        for r in resources {
            assert!(allowed.contains(&r), "policy names a foreign resource: {r}");
        }
    }

    let groups = c
        .aws
        .ec2
        .describe_security_groups()
        .set_filters(Some(provision::engine::tags::ec2_filters(&c, None)))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.security_groups().len(), 3);
    for g in groups.security_groups() {
        for rule in provision::resources::security_groups::actual_rules(g)
            .iter()
            .filter(|r| !r.egress)
        {
            if let provision::resources::security_groups::Source::Cidr(cidr) = &rule.source {
                assert_eq!(
                    provision::engine::tags::ec2_role(g.tags()),
                    Some("lb"),
                    "only the load balancer is open to addresses: {rule:?}"
                );
                assert!(
                    rule.from == 80 && rule.to == 80,
                    "world-open port other than the listener: {rule:?}"
                );
                assert_eq!(cidr, "0.0.0.0/0");
            }
            assert!(
                !matches!(
                    rule.source,
                    provision::resources::security_groups::Source::Ipv6(_)
                        | provision::resources::security_groups::Source::PrefixList(_)
                ),
                "only the configured IPv4 CIDRs: {rule:?}"
            );
            assert!(!(rule.from <= 22 && rule.to >= 22), "SSH open: {rule:?}");
        }
    }
    // A rule added by hand (SSH from all of IPv6) is seen, planned and removed by `up`.
    let app_sg = groups
        .security_groups()
        .iter()
        .find(|g| provision::engine::tags::ec2_role(g.tags()) == Some("app"))
        .and_then(|g| g.group_id())
        .unwrap()
        .to_string();
    c.aws
        .ec2
        .authorize_security_group_ingress()
        .group_id(&app_sg)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ipv6_ranges(
                    aws_sdk_ec2::types::Ipv6Range::builder()
                        .cidr_ipv6("::/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(run(up_cmd(), &config).await.0.unwrap(), 0);
    let after = c
        .aws
        .ec2
        .describe_security_groups()
        .group_ids(&app_sg)
        .send()
        .await
        .unwrap();
    let rules = provision::resources::security_groups::actual_rules(&after.security_groups()[0]);
    assert!(
        rules.iter().all(|r| !matches!(
            r.source,
            provision::resources::security_groups::Source::Ipv6(_)
        )),
        "the hand-added IPv6 rule is gone: {rules:?}"
    );

    // The user-data is rendered, stored in the template, small, and holds no secret.
    let lt = provision::resources::launch::find(&c)
        .await
        .unwrap()
        .unwrap();
    assert!(lt.imdsv2, "IMDSv2 required");
    let script = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&lt.user_data)
            .unwrap(),
    )
    .unwrap();
    assert!(script.len() < 16 * 1024, "{} bytes", script.len());
    assert!(script.contains(&bucket) && script.contains("GALLERY_DATABASE_SECRET_ARN=arn:"));
    let db = provision::resources::secrets::read_db(&c).await.unwrap();
    let admin = provision::resources::secrets::read_admin(&c).await.unwrap();
    assert!(!script.contains(&db.password) && !script.contains(&admin.password));
    assert!(
        db.host
            .as_deref()
            .unwrap_or_default()
            .contains(".rds.amazonaws.com"),
        "endpoint recorded in the secret"
    );
    let s = serde_json::to_string(&status::status(&c).await.unwrap()).unwrap();
    assert!(
        !s.contains(&db.password) && !s.contains(&admin.password),
        "status --json leaks a secret"
    );

    // The rest of what the stack promises, read back from the API.
    // Bucket: public access blocked, encrypted, TLS-only policy.
    let pab = c
        .aws
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let enc = c
        .aws
        .s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        !enc.server_side_encryption_configuration()
            .unwrap()
            .rules()
            .is_empty(),
        "bucket encrypted"
    );
    let policy = c
        .aws
        .s3
        .get_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let policy = policy.policy().unwrap();
    assert!(
        policy.contains("aws:SecureTransport") && policy.contains("Deny"),
        "TLS-only: {policy}"
    );
    // Database: encrypted, private, backed up, in the private subnets.
    let rds = provision::resources::database::find(&c)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rds.storage_encrypted(), Some(true));
    assert_eq!(rds.publicly_accessible(), Some(false));
    assert!(rds.backup_retention_period().unwrap_or(0) > 0);
    // Target group: health check on the readiness path, ~30 s deregistration delay.
    let tg = provision::resources::balancer::find_target_group(&c)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tg.health_check_path(), Some("/readyz"));
    let attrs = c
        .aws
        .elb
        .describe_target_group_attributes()
        .target_group_arn(tg.target_group_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        attrs
            .attributes()
            .iter()
            .any(|a| a.key() == Some("deregistration_delay.timeout_seconds")
                && a.value() == Some("30")),
        "{attrs:?}"
    );
    // Auto Scaling: ELB health checks with a grace period, over both AZs.
    let asg = provision::resources::fleet::find(&c)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(asg.health_check_type(), Some("ELB"));
    assert_eq!(asg.health_check_grace_period(), Some(300));
    assert_eq!(
        asg.vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .count(),
        2,
        "two subnets, two AZs"
    );
    assert_eq!(
        asg.target_group_arns(),
        &[tg.target_group_arn().unwrap().to_string()][..],
        "attached to the target group"
    );
    // The AMI comes from the public SSM parameter of the latest Amazon Linux 2023.
    let ami = c
        .aws
        .ssm
        .get_parameter()
        .name(provision::resources::launch::AL2023_PARAMETER)
        .send()
        .await
        .unwrap();
    assert_eq!(
        Some(lt.image.as_str()),
        ami.parameter().and_then(|p| p.value())
    );

    run(down(true), &config).await.0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_while_the_lock_is_held() {
    let config = config("lock");
    run(up_cmd(), &config).await.0.unwrap();
    let holder = Ctx::new(
        config.clone(),
        clients(Arc::new(CallLog::default())).await,
        Mode::Apply,
        Timing {
            lock_lease: Duration::from_secs(60),
            ..timing()
        },
    );
    let guard = provision::engine::lock::acquire(&holder, "deploy")
        .await
        .unwrap();
    let mut changed = config.clone();
    changed.app.desired_capacity = 3;
    let (r, _) = run(up_cmd(), &changed).await;
    let err = format!("{:#}", r.unwrap_err());
    assert!(
        err.contains("is locked by") && err.contains("`provision deploy`"),
        "{err}"
    );
    assert!(
        run(down(true), &config).await.0.is_err(),
        "down is refused too"
    );
    drop(guard);
    assert_eq!(run(Command::Unlock, &config).await.0.unwrap(), 0);
    assert_eq!(run(up_cmd(), &changed).await.0.unwrap(), 0);

    // A run that died holding the lock after its last write: the next `up` has nothing to
    // change, and still clears the lapsed lock instead of leaving it behind.
    let dying = Ctx::new(
        changed.clone(),
        clients(Arc::new(CallLog::default())).await,
        Mode::Apply,
        timing(),
    );
    drop(
        provision::engine::lock::acquire(&dying, "up")
            .await
            .unwrap(),
    );
    tokio::time::sleep(timing().lock_lease + Duration::from_millis(1200)).await;
    let (r, log) = run(up_cmd(), &changed).await;
    assert_eq!(r.unwrap(), 0);
    assert_eq!(
        resource_writes(&log),
        Vec::<String>::new(),
        "nothing to change"
    );
    assert!(
        !counts(&changed).await.contains_key("lock"),
        "the lapsed lock is cleared"
    );
    run(down(true), &config).await.0.unwrap();
}

#[test]
fn a_bad_config_is_rejected_before_any_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        include_str!("../../config.toml").replace("desired_capacity = 2", "desired_capacity = 7");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    // An endpoint nobody listens on: any AWS call would fail differently.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "--endpoint",
            "http://127.0.0.1:9",
            "up",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("app.desired_capacity"), "{err}");
}

/// A release whose migration drops a column is refused by `deploy` before anything else,
/// naming the statement; an additive one gets past the check.
#[test]
fn deploy_refuses_a_release_whose_migrations_are_not_additive() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let release = |name: &str, sql: &str| {
        let path = dir.path().join(name);
        let json = serde_json::json!([
            {"version": 20261125000001i64, "description": "init", "sql": "CREATE TABLE images (id BIGINT, original_name TEXT);"},
            {"version": 20270101000000i64, "description": "next", "sql": sql},
        ]);
        std::fs::write(
            &path,
            format!("#!/bin/sh\n[ \"$1\" = migrations ] && cat <<'EOF'\n{json}\nEOF\n"),
        )
        .unwrap();
        // Not executable, as an artifact copied or downloaded may be: deploy runs a copy.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    };
    let deploy = |artifact: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_provision"))
            .args([
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml"),
                "--endpoint",
                "http://127.0.0.1:9",
                "deploy",
                "--artifact",
                artifact.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = deploy(&release(
        "drops",
        "ALTER TABLE images DROP COLUMN original_name;",
    ));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("not additive")
            && err.contains("ALTER TABLE images DROP COLUMN original_name")
            && err.contains("--allow-breaking"),
        "{err}"
    );
    let (code, err) = deploy(&release(
        "adds",
        "ALTER TABLE images ADD COLUMN rating INTEGER;",
    ));
    assert_eq!(code, Some(1), "{err}");
    // Past the check (which read the release's list): stopped at the next one, since
    // this stand-in is a script, not the ELF binary a release is.
    assert!(
        !err.contains("not additive") && err.contains("not a Linux executable (ELF)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nat_gateway_puts_instances_in_private_subnets_and_goes_with_down() {
    let mut config = config("nat");
    config.network.nat_gateway = true;
    assert_eq!(run(up_cmd(), &config).await.0.unwrap(), 0);
    let mut expected = complete_stack(2);
    expected.insert("nat-gateway".into(), 1);
    expected.insert("elastic-ip".into(), 1);
    assert_eq!(counts(&config).await, expected);
    let c = ctx(&config).await;
    let group = provision::resources::fleet::find(&c)
        .await
        .unwrap()
        .unwrap();
    let subnets = c
        .aws
        .ec2
        .describe_subnets()
        .set_filters(Some(provision::engine::tags::ec2_filters(&c, None)))
        .send()
        .await
        .unwrap();
    let private: Vec<&str> = subnets
        .subnets()
        .iter()
        .filter(|s| {
            provision::engine::tags::ec2_role(s.tags()).is_some_and(|r| r.starts_with("private"))
        })
        .filter_map(|s| s.subnet_id())
        .collect();
    for zone in group.vpc_zone_identifier().unwrap().split(',') {
        assert!(
            private.contains(&zone),
            "instances must be in private subnets: {zone}"
        );
    }
    let tables = c
        .aws
        .ec2
        .describe_route_tables()
        .set_filters(Some(provision::engine::tags::ec2_filters(
            &c,
            Some("private-rt"),
        )))
        .send()
        .await
        .unwrap();
    let route = tables.route_tables()[0]
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .cloned();
    assert!(
        route
            .and_then(|r| r.nat_gateway_id().map(String::from))
            .is_some(),
        "private default route via the NAT gateway"
    );
    assert_eq!(run(down(true), &config).await.0.unwrap(), 0);
    assert_nothing_left(&config).await;
}

/// `down` by default keeps the data (the bucket with its objects, a final snapshot, the
/// secrets), says so and exits 0; `plan` then shows the database will be restored from
/// that snapshot, `up` brings the stack back around the kept data, converged; and
/// `down --delete-data` leaves nothing, snapshots included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_keeps_the_data_and_up_brings_it_back() {
    let config = config("keep");
    run(up_cmd(), &config).await.0.unwrap();
    let c = ctx(&config).await;
    let bucket = provision::resources::bucket::name(&c);
    let versioning = c
        .aws
        .s3
        .get_bucket_versioning()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        versioning.status().map(|s| s.as_str()),
        Some("Enabled"),
        "the bucket is versioned: a deleted or overwritten image stays recoverable"
    );
    let lifecycle = c
        .aws
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let noncurrent_days: Vec<Option<i32>> = lifecycle
        .rules()
        .iter()
        .map(|r| {
            r.noncurrent_version_expiration()
                .and_then(|n| n.noncurrent_days())
        })
        .collect();
    assert_eq!(
        noncurrent_days,
        vec![Some(config.database.snapshot_retention_days)],
        "replaced versions are pruned after database.snapshot_retention_days"
    );
    for body in [&b"a first version"[..], b"a photo"] {
        c.aws
            .s3
            .put_object()
            .bucket(&bucket)
            .key("images/alice/1.jpg")
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let versions = c
        .aws
        .s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix("images/alice/1.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(
        versions.versions().len(),
        2,
        "the overwritten bytes are kept"
    );

    // `backup` (through the lossy cloud, as a user runs it) and `backups`.
    let (r, _) = run(
        Command::Backup {
            no_wait: false,
            json: true,
        },
        &config,
    )
    .await;
    assert_eq!(r.unwrap(), 0, "backup succeeds");
    let listed = provision::commands::backup::backups(&c).await.unwrap();
    let backups: Vec<_> = listed
        .snapshots
        .iter()
        .filter(|s| s.kind == provision::resources::snapshots::Kind::Backup)
        .collect();
    assert_eq!(backups.len(), 1, "backups lists the backup: {listed:?}");
    assert_eq!(backups[0].status, "available");
    assert_eq!(backups[0].size_gb, config.database.allocated_storage_gb);
    assert!(
        backups[0]
            .taken
            .is_some_and(|t| (t - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 600),
        "timestamped: {:?}",
        backups[0]
    );

    let (r, _) = run(down_keeping_data(), &config).await;
    assert_eq!(r.unwrap(), 0, "a down keeping the data succeeds");
    let kept = counts(&config).await;
    let want: std::collections::BTreeMap<String, usize> = [
        ("bucket", 1),
        ("db-snapshot", 2),
        ("log-group", 1),
        ("secret", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(
        kept, want,
        "only the data is left (the backup and the final snapshot)"
    );
    let listed = provision::commands::backup::backups(&c).await.unwrap();
    let newest = &listed.snapshots[0];
    assert_eq!(
        (newest.kind, newest.retained),
        (provision::resources::snapshots::Kind::Final, true),
        "the final snapshot is tagged as the stack's retained data: {listed:?}"
    );
    let tags = c
        .aws
        .s3
        .get_bucket_tagging()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_set().iter().any(|t| t.key() == "gallery:retained"),
        "the bucket is tagged as retained data: {tags:?}"
    );
    let photo = c
        .aws
        .s3
        .get_object()
        .bucket(&bucket)
        .key("images/alice/1.jpg")
        .send()
        .await
        .expect("the photo is kept");
    assert_eq!(
        photo.body.collect().await.unwrap().into_bytes().as_ref(),
        b"a photo"
    );

    let planned = planned_changes(&config).await;
    let restore = planned
        .iter()
        .find(|(n, _)| *n == Node::Database)
        .map(|(_, c)| c.describe(true))
        .unwrap_or_default();
    assert!(
        restore.starts_with("will be restored from snapshot keep-") && restore.contains("ago"),
        "plan says the database comes from the kept snapshot: {restore:?}"
    );
    let adopt = planned
        .iter()
        .find(|(n, _)| *n == Node::Bucket)
        .map(|(_, c)| c.describe(true))
        .unwrap_or_default();
    assert!(
        adopt.contains("adopt the bucket kept by `down`") && !adopt.contains("versioning"),
        "the bucket is adopted as it is: {planned:?}"
    );

    assert_eq!(run(up_cmd(), &config).await.0.unwrap(), 0);
    let mut whole = complete_stack(2);
    whole.insert("db-snapshot".into(), 2);
    assert_eq!(counts(&config).await, whole, "the stack is whole again");
    let secret = provision::resources::secrets::read_db(&c).await.unwrap();
    let marker = secret.restored.clone().unwrap_or_default();
    assert!(
        marker.starts_with(&newest.id) && marker.contains(" into "),
        "the secret names the restore, so the app ends the snapshot's sessions once: {marker:?}"
    );
    let (r, log) = run(up_cmd(), &config).await;
    assert_eq!(r.unwrap(), 0);
    assert_eq!(
        resource_writes(&log),
        Vec::<String>::new(),
        "a restored stack is converged"
    );

    // An `up` killed between the restore and its follow-up left the secret without the
    // restore: the next `plan` says so and `up` finishes it.
    let mut unfinished = secret.clone();
    unfinished.restored = None;
    c.aws
        .secrets
        .put_secret_value()
        .secret_id(provision::resources::secrets::name(&c, "db"))
        .secret_string(serde_json::to_string(&unfinished).unwrap())
        .send()
        .await
        .unwrap();
    let planned = planned_changes(&config).await;
    assert!(
        planned
            .iter()
            .any(|(n, ch)| *n == Node::Database
                && ch.describe(true).contains("finish the restore from")),
        "plan: {planned:?}"
    );
    assert_eq!(run(up_cmd(), &config).await.0.unwrap(), 0);
    assert_eq!(
        provision::resources::secrets::read_db(&c)
            .await
            .unwrap()
            .restored,
        Some(marker),
        "the same restore is recorded again"
    );

    assert_eq!(run(down(true), &config).await.0.unwrap(), 0);
    assert_nothing_left(&config).await;
}

/// `balancer.domain` with a Route 53 zone for it in the account: `up` requests the
/// certificate (DNS validation), writes its validation record and the domain's alias to
/// the load balancer, and serves HTTPS with port 80 redirected; the URL is the domain's.
/// A second `up` changes nothing; `down` removes the records and the certificate, and
/// leaves the zone (the user's) as it found it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_gets_its_certificate_records_and_https_and_down_removes_them() {
    let mut config = config("dom");
    let zone_name = format!("{}.test", config.stack.name);
    let domain = format!("photos.{zone_name}");
    config.balancer.domain = domain.clone();
    config.validate().unwrap();
    assert!(config.plain_http_refusal().is_none());
    let hands = hands().await;
    let zone = hands
        .route53
        .create_hosted_zone()
        .name(&zone_name)
        .caller_reference(uuid_like())
        .send()
        .await
        .unwrap()
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let planned = planned_changes(&config).await;
    for node in [Node::Certificate, Node::DnsRecords, Node::Listeners] {
        assert!(
            planned
                .iter()
                .any(|(n, c)| *n == node && *c == Change::Create),
            "{node:?} planned: {planned:?}"
        );
    }
    let (r, _) = run(up_cmd(), &config).await;
    assert_eq!(r.unwrap(), 0);
    let counts = counts(&config).await;
    assert_eq!(counts.get("certificate"), Some(&1), "{counts:?}");
    // The alias A record and the validation CNAME.
    assert_eq!(counts.get("dns-record"), Some(&2), "{counts:?}");
    let c = ctx(&config).await;
    let s = status::status(&c).await.unwrap();
    assert_eq!(
        s.url.as_deref(),
        Some(format!("https://{domain}/").as_str())
    );
    let records = hands
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    let lb = provision::resources::balancer::find_load_balancer(&c)
        .await
        .unwrap()
        .unwrap();
    let alias = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == format!("{domain}.") && r.r#type().as_str() == "A")
        .expect("an A record for the domain");
    assert_eq!(
        alias
            .alias_target()
            .unwrap()
            .dns_name()
            .trim_end_matches('.'),
        lb.dns_name().unwrap()
    );
    assert_eq!(
        alias.alias_target().unwrap().hosted_zone_id(),
        lb.canonical_hosted_zone_id().unwrap()
    );
    assert!(
        !records
            .resource_record_sets()
            .iter()
            .any(|r| r.r#type().as_str() == "AAAA"),
        "an IPv4 load balancer gets no AAAA record"
    );
    let certificate = hands
        .acm
        .describe_certificate()
        .certificate_arn(
            provision::resources::certificate::find(&c).await.unwrap()[0]
                .0
                .clone(),
        )
        .send()
        .await
        .unwrap();
    let certificate = certificate.certificate().unwrap();
    assert_eq!(certificate.domain_name(), Some(domain.as_str()));
    assert_eq!(certificate.status().unwrap().as_str(), "ISSUED");
    let listeners = hands
        .elb
        .describe_listeners()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let by_port = |p: i32| {
        listeners
            .listeners()
            .iter()
            .find(|l| l.port() == Some(p))
            .unwrap()
            .clone()
    };
    let https = by_port(443);
    assert_eq!(
        https.certificates()[0].certificate_arn(),
        certificate.certificate_arn()
    );
    assert_eq!(
        by_port(80).default_actions()[0]
            .redirect_config()
            .and_then(|r| r.protocol()),
        Some("HTTPS")
    );
    // Converged: a second run would change nothing.
    assert_eq!(planned_changes(&config).await, Vec::new());

    let (r, _) = run(down(true), &config).await;
    assert_eq!(r.unwrap(), 0);
    assert_nothing_left(&config).await;
    let left = hands
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    assert!(
        left.resource_record_sets()
            .iter()
            .all(|r| matches!(r.r#type().as_str(), "NS" | "SOA")),
        "the zone is as it was: {left:?}"
    );
    hands
        .route53
        .delete_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap();
}

/// `balancer.domain` with no Route 53 zone for it: `up` prints the validation record to
/// create and waits for ACM, bounded, then fails naming the setting; `down` removes the
/// certificate it requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_without_a_zone_waits_for_its_record_then_fails_naming_the_setting() {
    let mut config = config("nozone");
    config.balancer.domain = format!("photos.{}.invalid", config.stack.name);
    config.validate().unwrap();
    let started = std::time::Instant::now();
    let (r, _) = run(up_cmd(), &config).await;
    let err = format!("{:#}", r.unwrap_err());
    assert!(
        err.contains("timed out") && err.contains("balancer.domain") && err.contains("CNAME"),
        "{err}"
    );
    assert!(started.elapsed() >= timing().wait_timeout, "it waited");
    let c = ctx(&config).await;
    let mine = provision::resources::certificate::find(&c).await.unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].2, "PENDING_VALIDATION");
    let (r, _) = run(down(true), &config).await;
    assert_eq!(r.unwrap(), 0);
    assert_nothing_left(&config).await;
}

/// `[scaling]` and `[alarms]`: `up` puts a target-tracking policy on the group, counting
/// the requests of the stack's own load balancer and target group, five alarms (tagged,
/// watching the stack's load balancer, target group and database, notifying the stack's
/// topic) and the topic with the e-mail subscribed (pending its confirmation). The policy
/// then owns the desired count: a group it scaled to 3 stays at 3 through `plan` and `up`.
/// `status` shows the group's size, the policy and an alarm in ALARM. Turning both off
/// removes them and gives the group back config.toml's count; `down` leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_and_alarms_are_made_left_to_the_policy_and_removed() {
    use aws_sdk_cloudwatch::types::StateValue;
    use provision::resources::{alarms, balancer, database, fleet, notifications, scaling};

    let mut config = config("scale");
    config.scaling.enabled = true;
    config.scaling.target_value = Some(600.0);
    config.alarms.enabled = true;
    config.alarms.email = "ops@example.com".into();
    config.validate().unwrap();
    assert_eq!(run(up_cmd(), &config).await.0.unwrap(), 0);
    let mut expected = complete_stack(2);
    expected.insert("scaling-policy".into(), 1);
    expected.insert("sns-topic".into(), 1);
    expected.insert("alarm".into(), 5);
    assert_eq!(counts(&config).await, expected);

    let c = ctx(&config).await;
    let lb = balancer::find_load_balancer(&c).await.unwrap().unwrap();
    let tg = balancer::find_target_group(&c).await.unwrap().unwrap();
    let lb_arn = lb.load_balancer_arn().unwrap();
    let tg_arn = tg.target_group_arn().unwrap();
    let lb_dim = lb_arn.split_once(":loadbalancer/").unwrap().1.to_string();
    let tg_dim = format!(
        "targetgroup/{}",
        tg_arn.split_once(":targetgroup/").unwrap().1
    );

    let policy = scaling::find(&c).await.unwrap().unwrap();
    assert_eq!(policy.policy_type(), Some("TargetTrackingScaling"));
    let tracking = policy.target_tracking_configuration().unwrap();
    let metric = tracking.predefined_metric_specification().unwrap();
    assert_eq!(
        metric.predefined_metric_type().unwrap().as_str(),
        "ALBRequestCountPerTarget"
    );
    assert_eq!(
        metric.resource_label(),
        Some(format!("{lb_dim}/{tg_dim}").as_str())
    );
    assert_eq!(tracking.target_value(), Some(600.0));
    assert_ne!(tracking.disable_scale_in(), Some(true));

    let topic = notifications::find(&c).await.unwrap().unwrap();
    let subs = c
        .aws
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    let emails: Vec<_> = subs
        .subscriptions()
        .iter()
        .filter(|s| s.protocol() == Some("email"))
        .filter_map(|s| s.endpoint())
        .collect();
    assert_eq!(emails, ["ops@example.com"]);

    let found = alarms::find(&c).await.unwrap();
    assert_eq!(found.len(), 5);
    let db = database::instance_id(&c);
    let mut watched = Vec::new();
    for a in &found {
        assert_eq!(a.alarm_actions(), std::slice::from_ref(&topic), "{a:?}");
        assert_eq!(a.ok_actions(), std::slice::from_ref(&topic), "{a:?}");
        for d in a.dimensions() {
            watched.push((
                d.name().unwrap().to_string(),
                d.value().unwrap().to_string(),
            ));
        }
    }
    for (name, value) in [
        ("LoadBalancer", lb_dim.as_str()),
        ("TargetGroup", tg_dim.as_str()),
        ("DBInstanceIdentifier", db.as_str()),
    ] {
        assert!(
            watched.iter().any(|(n, v)| n == name && v == value),
            "no alarm watches {name}={value}: {watched:?}"
        );
    }

    // The policy scales the group (here by hand): plan and up leave its count alone.
    c.aws
        .asg
        .set_desired_capacity()
        .auto_scaling_group_name(fleet::name(&c))
        .desired_capacity(3)
        .send()
        .await
        .unwrap();
    let planned = planned_changes(&config).await;
    assert!(planned.is_empty(), "{planned:?}");
    assert_eq!(run(up_cmd(), &config).await.0.unwrap(), 0);
    let group = fleet::find(&c).await.unwrap().unwrap();
    assert_eq!(group.desired_capacity(), Some(3));

    // status: the group's size, the policy, an alarm in ALARM with its reason.
    let firing = alarms::name(&c, "db-cpu");
    c.aws
        .cloudwatch
        .set_alarm_state()
        .alarm_name(&firing)
        .state_value(StateValue::Alarm)
        .state_reason("Threshold Crossed: 1 datapoint [93.0] >= 80.0")
        .send()
        .await
        .unwrap();
    let s = provision::commands::status::status(&c).await.unwrap();
    let size = s.group.as_ref().unwrap();
    assert_eq!((size.desired, size.min, size.max), (3, 2, 4));
    assert_eq!(
        s.scaling_policy.as_deref(),
        Some("ALBRequestCountPerTarget held at 600")
    );
    assert_eq!(
        s.alarms_firing,
        [(
            firing.clone(),
            "Threshold Crossed: 1 datapoint [93.0] >= 80.0".to_string()
        )]
    );

    // Both off: the policy, alarms and topic go; the group gets config.toml's count back.
    config.scaling.enabled = false;
    config.alarms.enabled = false;
    assert_eq!(run(up_cmd(), &config).await.0.unwrap(), 0);
    let left = counts(&config).await;
    for kind in ["scaling-policy", "sns-topic", "alarm"] {
        assert!(!left.contains_key(kind), "{kind} left: {left:?}");
    }
    assert!(scaling::find(&c).await.unwrap().is_none());
    assert!(notifications::find(&c).await.unwrap().is_none());
    assert!(alarms::find(&c).await.unwrap().is_empty());
    let group = fleet::find(&c).await.unwrap().unwrap();
    assert_eq!(group.desired_capacity(), Some(2));
    assert_eq!(run(down(true), &config).await.0.unwrap(), 0);
    assert_nothing_left(&config).await;
}
