//! What a failed AWS call tells the user: the operation we were doing, AWS's error code
//! and message, and the fix where one is known, in a line or two. Never the SDK's debug
//! dump.

use std::error::Error as StdError;
use std::fmt::Display;

use anyhow::anyhow;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The AWS error code of a failed call, if the service sent one.
pub fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<String> {
    match err {
        SdkError::ServiceError(e) => e.err().code().map(String::from),
        _ => None,
    }
}

/// The AWS error message of a failed call, if the service sent one.
pub fn message<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<String> {
    match err {
        SdkError::ServiceError(e) => e.err().message().map(String::from),
        _ => None,
    }
}

/// The HTTP status of a service's answer, if one arrived.
pub fn status<E, R: HttpStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().map(|r| r.http_status())
}

pub trait HttpStatus {
    fn http_status(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn http_status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The innermost cause of an error without an AWS answer: "Connection refused (os error
/// 111)", "dns error: ...", "no providers in chain provided credentials".
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut current: &(dyn StdError + 'static) = err;
    let mut text = current.to_string();
    while let Some(next) = current.source() {
        let t = next.to_string();
        if !t.is_empty() {
            text = t;
        }
        current = next;
    }
    // One line: some causes (the credential chain's) list their attempts a line each.
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches(':')
        .to_string()
}

/// One or two lines for what went wrong and how to fix it.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(_) => {
            // A HEAD answer has no body, so no code: the status says what it was.
            let code =
                code(err).unwrap_or_else(|| match err.raw_response().map(|r| r.http_status()) {
                    Some(403) => "AccessDenied".into(),
                    Some(404) => "NotFound".into(),
                    Some(s) => format!("HTTP {s}"),
                    None => "UnknownError".into(),
                });
            let msg = message(err).unwrap_or_default();
            let head = if msg.is_empty() {
                code.clone()
            } else {
                format!("{code}: {msg}")
            };
            match service_fix(&code, &msg) {
                Some(fix) => format!("{head}\n  fix: {fix}"),
                None => head,
            }
        }
        SdkError::TimeoutError(_) => {
            "AWS did not answer in time\n  fix: check the network, then run the command again"
                .into()
        }
        SdkError::ResponseError(_) => format!(
            "AWS's answer could not be read ({})\n  fix: run the command again",
            root_cause(err)
        ),
        SdkError::DispatchFailure(_) => dispatch(&root_cause(err)),
        SdkError::ConstructionFailure(_) => {
            let cause = root_cause(err);
            if is_credentials(&cause) {
                no_credentials(&cause)
            } else {
                format!("the request could not be built ({cause})")
            }
        }
        _ => root_cause(err),
    }
}

fn is_credentials(cause: &str) -> bool {
    let c = cause.to_ascii_lowercase();
    c.contains("credentials") || c.contains("no providers in chain")
}

fn no_credentials(_cause: &str) -> String {
    // The SDK's cause lists every provider it tried, a line each: the fix says it shorter.
    "no AWS credentials were found (environment, profile, SSO, web identity, container and instance metadata were tried)\n  fix: set AWS_PROFILE (after `aws sso login`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_string()
}

/// A request that got no answer: no credentials, a name that does not resolve, nothing
/// listening, or the connection cut.
fn dispatch(cause: &str) -> String {
    let c = cause.to_ascii_lowercase();
    if is_credentials(cause) {
        return no_credentials(cause);
    }
    if c.contains("dns error")
        || c.contains("failed to lookup address")
        || c.contains("name or service not known")
    {
        return format!("could not reach AWS: the endpoint's name does not resolve ({cause})\n  fix: check stack.region (or --region) and --endpoint, and this machine's DNS");
    }
    if c.contains("connection refused") {
        return format!("could not reach AWS: connection refused ({cause})\n  fix: check --endpoint (GALLERY_AWS_ENDPOINT) and that it is running");
    }
    if c.contains("timed out") || c.contains("timeout") {
        return format!("could not reach AWS: no answer ({cause})\n  fix: check the network (a proxy or firewall?), then run the command again");
    }
    format!("could not reach AWS ({cause})\n  fix: check the network and --endpoint, then run the command again")
}

/// The fix for an AWS error code, where we know one.
fn service_fix(code: &str, msg: &str) -> Option<String> {
    let fix = match code {
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" | "TokenRefreshRequired" => {
            "the AWS credentials have expired: refresh them (`aws sso login`, or new keys) and run the command again"
        }
        "InvalidClientTokenId" | "UnrecognizedClientException" | "AuthFailure" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
            "AWS does not accept these credentials: check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and the clock)"
        }
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "Forbidden" => {
            "these credentials lack permission for this call: use a role or user allowed to manage the stack (docs/SECURITY.md lists what provision calls)"
        }
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "SlowDown" | "TooManyRequestsException" | "PriorRequestNotComplete" => {
            "AWS kept throttling these calls after retries: wait a minute and run the command again"
        }
        "DependencyViolation" => "something still uses this resource: run the command again once it is gone",
        "OptInRequired" => "the account is not subscribed to this service in this region: choose another stack.region or opt in",
        "InvalidClientToken" => "the credentials' session is not valid in this region: check stack.region",
        _ if code.contains("LimitExceeded")
            || code.contains("QuotaExceeded")
            || code.starts_with("TooMany")
            || code == "InstanceLimitExceeded" =>
        {
            "an account quota is reached: raise it in Service Quotas, or remove unused resources"
        }
        _ if msg.contains("not authorized") => {
            "these credentials lack permission for this call: use a role or user allowed to manage the stack"
        }
        _ => return None,
    };
    Some(fix.to_string())
}

/// Turn an SDK error into one that names what we were doing and, where known, the fix.
pub fn explain<E, R>(what: impl Display, err: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
{
    if let Some(dead) = simulated_crash(&err) {
        return anyhow!("{what}: {dead}");
    }
    anyhow!("{what}: {}", describe(&err))
}

/// A test's simulated crash (see `CallLog`) reads as itself.
fn simulated_crash<E, R>(err: &SdkError<E, R>) -> Option<String>
where
    E: StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(k) = e.downcast_ref::<super::aws::BudgetExhausted>() {
            return Some(k.to_string());
        }
        current = e.source();
    }
    None
}

/// A call's result with the listed codes read as "already so" (`Ok(None)`): inside a
/// retry loop, where a repeated delete finds the resource gone or a repeated attach finds
/// it attached (the first answer was lost).
pub fn already<T, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
    codes: &[&str],
) -> Result<Option<T>, SdkError<E, R>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if code(&e).is_some_and(|c| codes.contains(&c.as_str())) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `.await.aws("creating vpc gallery-vpc")?`
pub trait AwsResult<T> {
    fn aws(self, what: impl Display) -> anyhow::Result<T>;
    /// As `aws`, but the listed codes mean "already so" (a delete of what is gone, a
    /// create a lost answer already made): `Ok(None)`.
    fn aws_unless(self, what: impl Display, done: &[&str]) -> anyhow::Result<Option<T>>;
}

impl<T, E, R> AwsResult<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
{
    fn aws(self, what: impl Display) -> anyhow::Result<T> {
        self.map_err(|e| explain(what, e))
    }

    fn aws_unless(self, what: impl Display, done: &[&str]) -> anyhow::Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if code(&e).is_some_and(|c| done.contains(&c.as_str())) => Ok(None),
            Err(e) => Err(explain(what, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_without_an_answer_are_explained_in_two_lines() {
        for (cause, want) in [
            ("dns error: failed to lookup address information: Name or service not known", "does not resolve"),
            ("tcp connect error: Connection refused (os error 111)", "connection refused"),
            ("the credential provider was not enabled: no providers in chain provided credentials", "no AWS credentials"),
            ("operation timed out", "no answer"),
        ] {
            let text = dispatch(cause);
            assert!(text.contains(want), "{cause}: {text}");
            assert!(text.lines().count() <= 2, "{text}");
            assert!(text.contains("fix:"), "{text}");
        }
    }

    #[test]
    fn known_codes_have_fixes() {
        for code in [
            "ExpiredToken",
            "AccessDenied",
            "UnauthorizedOperation",
            "Throttling",
            "VpcLimitExceeded",
            "InvalidClientTokenId",
        ] {
            assert!(service_fix(code, "").is_some(), "{code}");
        }
        assert!(service_fix("InvalidParameterValue", "").is_none());
    }
}
