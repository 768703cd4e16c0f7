//! One `SdkConfig` (region, endpoint override) and one client per service, all sharing a
//! call recorder that counts calls and can simulate a crash. Errors: `errors`; retries
//! and waits: `retry`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

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
    ["Describe", "Get", "List", "Head", "Filter"]
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

    /// The fatal call whose every attempt failed before an answer (the local cloud lost
    /// it) still ends the run, as a crash there would.
    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(LoseAnswer(call)) = cfg.load::<LoseAnswer>() {
            if !self.0.dead.swap(true, Ordering::SeqCst) {
                return Err(Box::new(BudgetExhausted(format!(
                    "{call}, its answer lost"
                ))));
            }
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
    /// This run's own: part of every client token it derives, so that a token is reused
    /// by this run's retries only and never meets one of an earlier run's (AWS remembers
    /// them, and would answer with what that run made, deleted since).
    pub run: String,
    pub ec2: aws_sdk_ec2::Client,
    /// EC2 without the SDK's retries, for creates that have no idempotency token (see
    /// `retry::create_once`): a blind retry after a lost answer makes a second resource.
    pub ec2_once: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sts: aws_sdk_sts::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sns: aws_sdk_sns::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub acm: aws_sdk_acm::Client,
    pub route53: aws_sdk_route53::Client,
}

impl Clients {
    pub async fn new(region: &str, endpoint: Option<&str>, log: Arc<CallLog>) -> Clients {
        Self::build(region, endpoint, log, None).await
    }

    /// Clients signing with these keys instead of the usual chain's (tests tell their
    /// calls apart on the local cloud by the access key).
    pub async fn with_keys(
        region: &str,
        endpoint: Option<&str>,
        log: Arc<CallLog>,
        access_key: &str,
        secret_key: &str,
    ) -> Clients {
        let keys =
            aws_sdk_ec2::config::Credentials::new(access_key, secret_key, None, None, "provision");
        Self::build(region, endpoint, log, Some(keys)).await
    }

    async fn build(
        region: &str,
        endpoint: Option<&str>,
        log: Arc<CallLog>,
        keys: Option<aws_sdk_ec2::config::Credentials>,
    ) -> Clients {
        // Throttling, 5xx and lost connections are retried with jittered backoff, a bounded
        // number of times (AWS_MAX_ATTEMPTS, the SDKs' standard variable, changes it).
        let attempts = std::env::var("AWS_MAX_ATTEMPTS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| (1..=20).contains(n))
            .unwrap_or(8);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(attempts)
                    .with_max_backoff(Duration::from_secs(10)),
            );
        if let Some(url) = endpoint {
            loader = loader.endpoint_url(url);
        }
        if let Some(keys) = keys {
            loader = loader.credentials_provider(keys);
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
            ec2_once: {
                let conf = aws_sdk_ec2::config::Builder::from(&shared)
                    .interceptor(rec.clone())
                    .retry_config(RetryConfig::disabled())
                    .build();
                aws_sdk_ec2::Client::from_conf(conf)
            },
            elb: client!(aws_sdk_elasticloadbalancingv2),
            rds: client!(aws_sdk_rds),
            iam: client!(aws_sdk_iam),
            secrets: client!(aws_sdk_secretsmanager),
            asg: client!(aws_sdk_autoscaling),
            ssm: client!(aws_sdk_ssm),
            sts: client!(aws_sdk_sts),
            cloudwatch: client!(aws_sdk_cloudwatch),
            sns: client!(aws_sdk_sns),
            logs: client!(aws_sdk_cloudwatchlogs),
            acm: client!(aws_sdk_acm),
            route53: client!(aws_sdk_route53),
            s3,
            log,
            run: format!("{:08x}", rand::random::<u32>()),
        }
    }
}
