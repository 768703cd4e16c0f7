//! Waiting and retrying, always bounded: for a resource to reach a state, for a
//! dependency to go away, for a new resource to become visible (AWS is eventually
//! consistent), and creating a resource exactly once when an answer may be lost.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::{code, explain, message, status, HttpStatus};

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
    /// How long a new resource may stay unknown to calls that name it (EC2's eventual
    /// consistency; a new instance profile reaching Auto Scaling takes longest).
    pub visibility: Duration,
    /// How long listings and tag-filtered describes may lag a change: waited out before
    /// concluding that something is absent (after a lost answer, a dead run, a delete).
    pub listing_lag: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(5),
            dependency_timeout: Duration::from_secs(20 * 60),
            wait_timeout: Duration::from_secs(40 * 60),
            lock_lease: Duration::from_secs(120),
            visibility: Duration::from_secs(5 * 60),
            listing_lag: Duration::from_secs(20),
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

/// Retry `op` while AWS answers an error `transient` accepts (code, message), backing
/// off from a quarter second up to the polling interval, for at most `bound`.
async fn retry_on<T, E, R, F, Fut>(
    what: &str,
    bound: Duration,
    timing: Timing,
    transient: impl Fn(&str, &str) -> bool,
    mut op: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
{
    let start = Instant::now();
    let cap = timing.poll.max(Duration::from_millis(250));
    let mut delay = Duration::from_millis(250).min(cap);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let c = code(&e).unwrap_or_default();
                let m = message(&e).unwrap_or_default();
                if transient(&c, &m) && start.elapsed() < bound {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(cap);
                    continue;
                }
                return Err(explain(what, e));
            }
        }
    }
}

/// Retry a deletion while AWS answers DependencyViolation (or another of `codes`), backing
/// off up to the polling interval (a longer step overshot the moment the dependency went
/// by up to its own length: docs/BENCHMARKS.md, part 6), for at most
/// `timing.dependency_timeout`.
pub async fn retry_while<T, E, R, F, Fut>(
    what: &str,
    codes: &[&str],
    timing: Timing,
    op: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
{
    retry_on(
        what,
        timing.dependency_timeout,
        timing,
        |c, _| codes.contains(&c),
        op,
    )
    .await
}

/// Retry a call that names something created moments ago while AWS does not know it yet
/// (`InvalidVpcID.NotFound` and the like, `codes`), for at most `timing.visibility`.
pub async fn until_visible<T, E, R, F, Fut>(
    what: &str,
    codes: &[&str],
    timing: Timing,
    op: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
{
    retry_on(
        what,
        timing.visibility,
        timing,
        |c, _| codes.contains(&c),
        op,
    )
    .await
}

/// As [`until_visible`], for errors told apart by their message too.
pub async fn until_visible_if<T, E, R, F, Fut>(
    what: &str,
    timing: Timing,
    transient: impl Fn(&str, &str) -> bool,
    op: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
{
    retry_on(what, timing.visibility, timing, transient, op).await
}

/// EC2's not-found codes for ids that may simply not be visible yet.
pub const EC2_NOT_YET: &[&str] = &[
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidAllocationID.NotFound",
    "InvalidVpcEndpointId.NotFound",
    "InvalidLaunchTemplateId.NotFound",
    "InvalidInstanceID.NotFound",
    "NatGatewayNotFound",
];

/// What a create without an idempotency token came to.
pub enum Created<O> {
    /// AWS answered: the new resource.
    New(O),
    /// The answer was lost, and the resource was found: this id.
    Found(String),
}

/// Throttling codes: the request was refused, not applied.
const THROTTLED: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "SlowDown",
];

/// Whether a failed request may have been applied anyway: no answer arrived (a timeout,
/// a cut connection) or the service failed on its side.
fn may_have_happened<E, R: HttpStatus>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) | SdkError::DispatchFailure(_) => {
            true
        }
        SdkError::ServiceError(_) => status(err).is_some_and(|s| s >= 500),
        _ => false,
    }
}

/// Create something that has no idempotency token, exactly once. `send` must not retry
/// by itself (use `Clients::ec2_once`): a blind retry after a lost answer makes a second
/// one. Throttling is retried here; after a failure that may have been applied, or an
/// answer in `exists` (the name or range is taken: by the lost create), `lookup` (by tag)
/// is polled for as long as listings may lag before trying again.
pub async fn create_once<O, E, R, F, Fut, L, LFut>(
    what: &str,
    timing: Timing,
    exists: &[&str],
    mut send: F,
    mut lookup: L,
) -> anyhow::Result<Created<O>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<O, SdkError<E, R>>>,
    L: FnMut() -> LFut,
    LFut: Future<Output = anyhow::Result<Option<String>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
{
    let mut delay = Duration::from_millis(250);
    let mut attempt = 0;
    let started = Instant::now();
    loop {
        attempt += 1;
        let err = match send().await {
            Ok(out) => return Ok(Created::New(out)),
            Err(e) => e,
        };
        // What it names (the VPC, say) is not known yet: refused, so nothing was made.
        if code(&err).is_some_and(|c| EC2_NOT_YET.contains(&c.as_str()))
            && started.elapsed() < timing.visibility
        {
            attempt -= 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(timing.poll.max(Duration::from_millis(250)));
            continue;
        }
        let last = attempt >= 8;
        if code(&err).is_some_and(|c| THROTTLED.contains(&c.as_str())) && !last {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
            continue;
        }
        let taken = code(&err).is_some_and(|c| exists.contains(&c.as_str()));
        if !(taken || may_have_happened(&err)) || last {
            return Err(explain(what, err));
        }
        // It may exist now, unseen: look before trying again.
        let start = Instant::now();
        loop {
            if let Some(id) = lookup().await? {
                return Ok(Created::Found(id));
            }
            if start.elapsed() >= timing.listing_lag {
                break;
            }
            tokio::time::sleep(timing.poll.min(Duration::from_secs(1))).await;
        }
    }
}
