//! One `SdkConfig` (region, endpoint override) and one client per service, all sharing a
//! call recorder; plus the error, retry and wait helpers every resource module uses.

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Every AWS call made, in order (`service:Operation`). With a kill point the run "dies"
/// at one of its resource writes: that call is not sent, or is sent and its answer lost
/// (AWS did it, the process never heard), and every call after it fails. That is how tests
/// kill a run at any moment and check that the next one finishes the job.
#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<Vec<String>>,
    kill: Option<(KillPoint, Kill)>,
    writes_made: AtomicUsize,
    dead: AtomicBool,
}

/// Where, around the fatal write, the simulated crash happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Before the request is sent: AWS never sees it.
    BeforeSend,
    /// After AWS answered, before the answer is read: the change happened unseen.
    ResponseLost,
}

/// Which call is the fatal one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KillPoint {
    /// Resource write number k (0-based; stack-lock writes don't count).
    Write(usize),
    /// The first call of this operation (`S3:CreateBucket`).
    Operation(String),
}

impl CallLog {
    /// Die at resource write number `k` (0-based; stack-lock writes don't count).
    pub fn killed_at_write(k: usize, how: Kill) -> Self {
        CallLog {
            kill: Some((KillPoint::Write(k), how)),
            ..Default::default()
        }
    }

    /// Die at the first call of `operation` (as logged: `S3:CreateBucket`).
    pub fn killed_at_operation(operation: &str, how: Kill) -> Self {
        CallLog {
            kill: Some((KillPoint::Operation(operation.to_string()), how)),
            ..Default::default()
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Calls that change something (anything not Describe/Get/List/Head).
    pub fn writes(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| !is_read(c)).collect()
    }

    /// Whether the simulated crash has happened.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }
}

pub fn is_read(call: &str) -> bool {
    let op = call.rsplit(':').next().unwrap_or(call);
    ["Describe", "Get", "List", "Head"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// Writes to the stack's resources (the lock lives in SSM and renews on a timer).
pub fn is_resource_write(call: &str) -> bool {
    !is_read(call) && !call.starts_with("SSM:")
}

#[derive(Debug, thiserror::Error)]
#[error("killed around {0} (simulated crash)")]
pub struct BudgetExhausted(pub String);

/// Marks the one call whose answer is to be lost.
#[derive(Debug, Clone)]
struct LoseAnswer(String);

impl Storable for LoseAnswer {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug, Clone)]
struct Recorder(Arc<CallLog>);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "gallery-call-recorder"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| format!("{}:{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".into());
        if let Some((point, how)) = &self.0.kill {
            if self.0.is_dead() {
                return Err(Box::new(BudgetExhausted(name)));
            }
            let fatal = match point {
                KillPoint::Write(k) => {
                    is_resource_write(&name)
                        && self.0.writes_made.fetch_add(1, Ordering::SeqCst) == *k
                }
                KillPoint::Operation(op) => *op == name,
            };
            if fatal {
                if *how == Kill::BeforeSend {
                    self.0.dead.store(true, Ordering::SeqCst);
                    return Err(Box::new(BudgetExhausted(name)));
                }
                cfg.interceptor_state().store_put(LoseAnswer(name.clone()));
            }
        }
        if let Ok(mut calls) = self.0.calls.lock() {
            calls.push(name);
        }
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(LoseAnswer(call)) = cfg.load::<LoseAnswer>() {
            self.0.dead.store(true, Ordering::SeqCst);
            return Err(Box::new(BudgetExhausted(format!(
                "{call}, its answer lost"
            ))));
        }
        Ok(())
    }
}

/// The service clients of one run.
#[derive(Clone, Debug)]
pub struct Clients {
    pub region: String,
    pub endpoint: Option<String>,
    pub log: Arc<CallLog>,
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Clients {
    pub async fn new(region: &str, endpoint: Option<&str>, log: Arc<CallLog>) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            // Throttling and 5xx are retried with jittered backoff, a bounded number of times.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_max_backoff(Duration::from_secs(10)),
            );
        if let Some(url) = endpoint {
            loader = loader.endpoint_url(url);
        }
        let shared: SdkConfig = loader.load().await;
        let rec = Recorder(log.clone());
        macro_rules! client {
            ($krate:ident) => {{
                let conf = $krate::config::Builder::from(&shared)
                    .interceptor(rec.clone())
                    .build();
                $krate::Client::from_conf(conf)
            }};
        }
        let s3 = {
            let conf = aws_sdk_s3::config::Builder::from(&shared)
                .interceptor(rec.clone())
                .force_path_style(endpoint.is_some())
                .build();
            aws_sdk_s3::Client::from_conf(conf)
        };
        Clients {
            region: region.to_string(),
            endpoint: endpoint.map(String::from),
            ec2: client!(aws_sdk_ec2),
            elb: client!(aws_sdk_elasticloadbalancingv2),
            rds: client!(aws_sdk_rds),
            iam: client!(aws_sdk_iam),
            secrets: client!(aws_sdk_secretsmanager),
            asg: client!(aws_sdk_autoscaling),
            ssm: client!(aws_sdk_ssm),
            sts: client!(aws_sdk_sts),
            s3,
            log,
        }
    }
}

/// The AWS error code of a failed call, if the service sent one.
pub fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<String> {
    match err {
        SdkError::ServiceError(e) => e.err().code().map(String::from),
        _ => None,
    }
}

/// Turn an SDK error into one that names what we were doing and, where known, the fix.
pub fn explain<E, R>(what: impl Display, err: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = code(&err).unwrap_or_default();
    let detail = aws_sdk_ec2::error::DisplayErrorContext(&err).to_string();
    let hint = if detail.contains("BudgetExhausted") || detail.contains("simulated crash") {
        ""
    } else if detail.contains("no credentials")
        || detail.contains("CredentialsNotLoaded")
        || detail.contains("failed to load credentials")
    {
        "\n  fix: no AWS credentials were found; set AWS_PROFILE (after `aws sso login`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    } else if code == "RequestLimitExceeded"
        || code == "Throttling"
        || code == "ThrottlingException"
    {
        "\n  fix: AWS is throttling these calls (after retries); wait a minute and run the command again"
    } else if code.contains("LimitExceeded")
        || code.contains("QuotaExceeded")
        || code.starts_with("TooMany")
    {
        "\n  fix: an account quota is reached; raise it in Service Quotas or remove unused resources"
    } else if code == "UnauthorizedOperation"
        || code == "AccessDenied"
        || code == "AccessDeniedException"
    {
        "\n  fix: these credentials lack permission for this call"
    } else if code == "DependencyViolation" {
        "\n  fix: something still uses this resource; run the command again once it is gone"
    } else {
        ""
    };
    anyhow!("{what}: {detail}{hint}")
}

/// `.await.aws("creating vpc gallery-vpc")?`
pub trait AwsResult<T> {
    fn aws(self, what: impl Display) -> anyhow::Result<T>;
}

impl<T, E, R> AwsResult<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    fn aws(self, what: impl Display) -> anyhow::Result<T> {
        self.map_err(|e| explain(what, e))
    }
}

/// Bounds for waits and retries; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub poll: Duration,
    /// How long a deletion may keep failing with DependencyViolation (ENIs linger).
    pub dependency_timeout: Duration,
    /// How long to wait for a resource to become available or go away.
    pub wait_timeout: Duration,
    /// A lock not renewed for this long belongs to a run that died.
    pub lock_lease: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(5),
            dependency_timeout: Duration::from_secs(20 * 60),
            wait_timeout: Duration::from_secs(40 * 60),
            lock_lease: Duration::from_secs(120),
        }
    }
}

/// Poll `check` until it returns `Some`, every `timing.poll`, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timing: Timing,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(anyhow!(
                "timed out after {}s waiting for {what}",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(timing.poll).await;
    }
}

/// Retry a deletion while AWS answers DependencyViolation (or another transient code),
/// backing off from half a second up to the polling interval (a longer step overshot the
/// moment the dependency went by up to its own length: docs/BENCHMARKS.md, part 6), for
/// at most `timing.dependency_timeout`.
pub async fn retry_while<T, E, R, F, Fut>(
    what: &str,
    codes: &[&str],
    timing: Timing,
    mut op: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let start = Instant::now();
    let cap = timing.poll.max(Duration::from_millis(500));
    let mut delay = Duration::from_millis(500).min(cap);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let c = code(&e).unwrap_or_default();
                if codes.contains(&c.as_str()) && start.elapsed() < timing.dependency_timeout {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(cap);
                    continue;
                }
                return Err(explain(what, e));
            }
        }
    }
}
