//! `config.toml`: the stack's settings, parsed and checked before any AWS call.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    pub stack: StackSection,
    pub network: NetworkSection,
    pub app: AppSection,
    pub database: DatabaseSection,
    pub balancer: BalancerSection,
    /// A target-tracking policy on the group (`ops_config`); off unless enabled.
    #[serde(default)]
    pub scaling: crate::ops_config::ScalingSection,
    /// CloudWatch alarms and their e-mail (`ops_config`); off unless enabled.
    #[serde(default)]
    pub alarms: crate::ops_config::AlarmsSection,
    #[serde(default)]
    pub logs: LogsSection,
}

/// The app's logs in CloudWatch Logs (`resources/logs.rs`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsSection {
    /// Days CloudWatch keeps each log event: one of `LOG_RETENTION_DAYS`.
    #[serde(default = "default_log_retention_days")]
    pub retention_days: i32,
}

impl Default for LogsSection {
    fn default() -> Self {
        LogsSection {
            retention_days: default_log_retention_days(),
        }
    }
}

fn default_log_retention_days() -> i32 {
    14
}

/// The retention periods CloudWatch Logs accepts (PutRetentionPolicy).
pub const LOG_RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

impl LogsSection {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if LOG_RETENTION_DAYS.contains(&self.retention_days) {
            return Ok(());
        }
        let allowed: Vec<String> = LOG_RETENTION_DAYS.iter().map(|d| d.to_string()).collect();
        Err(invalid(
            "logs.retention_days",
            format!(
                "{} is not a retention CloudWatch Logs offers: one of {}",
                self.retention_days,
                allowed.join(", ")
            ),
        ))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StackSection {
    pub name: String,
    pub region: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    pub vpc_cidr: String,
    pub allowed_cidrs: Vec<String>,
    #[serde(default)]
    pub nat_gateway: bool,
    /// Serve plain HTTP (no certificate) to the whole internet anyway: `up` refuses to
    /// otherwise, since passwords and session cookies would cross it in clear.
    #[serde(default)]
    pub allow_plain_http: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    pub port: u16,
    pub instance_type: String,
    #[serde(default)]
    pub ami: String,
    pub min_size: i32,
    pub desired_capacity: i32,
    pub max_size: i32,
    pub health_check_grace_secs: i32,
    pub admin_username: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub instance_class: String,
    pub engine_version: String,
    pub allocated_storage_gb: i32,
    pub backup_retention_days: i32,
    pub deletion_protection: bool,
    /// How long `provision backup`'s snapshots, older final snapshots and the bucket's
    /// noncurrent object versions (deleted or overwritten images) are kept.
    #[serde(default = "default_snapshot_retention_days")]
    pub snapshot_retention_days: i32,
}

fn default_snapshot_retention_days() -> i32 {
    30
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BalancerSection {
    #[serde(default)]
    pub certificate_arn: String,
    pub health_check_path: String,
    pub health_check_interval_secs: i32,
    pub healthy_threshold: i32,
    pub unhealthy_threshold: i32,
    pub deregistration_delay_secs: i32,
    /// The gallery's own name (`photos.example.com`): an ACM certificate for it, the
    /// records in its Route 53 zone, HTTPS on 443 (see `resources::certificate`, `dns`).
    #[serde(default)]
    pub domain: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// AWS's commercial regions (as of 2026-12), the ones a stack may name. A region not here
/// would only fail later, with the SDK unable to reach an endpoint that does not exist.
pub const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

impl StackConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: StackConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "config.toml".into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = &self.stack.name;
        let name_ok = (2..=20).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            // S3 refuses `--` in bucket names and the `xn--` prefix; RDS refuses `--`.
            && !name.contains("--")
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            return Err(invalid(
                "stack.name",
                format!(
                    "`{name}`: use 2-20 lower-case letters, digits and single '-', starting with a letter"
                ),
            ));
        }
        // AWS refuses resource names with these prefixes: load balancers `internal-`,
        // security groups `sg-`, buckets `sthree-` and `amzn-s3-demo-` (`xn--` holds `--`).
        for (prefix, what) in [
            (
                "internal",
                "load balancer names may not start with `internal-`",
            ),
            ("sg", "security group names may not start with `sg-`"),
            ("sthree", "bucket names may not start with `sthree-`"),
            (
                "amzn-s3-demo",
                "bucket names may not start with `amzn-s3-demo-`",
            ),
        ] {
            if name == prefix || name.starts_with(&format!("{prefix}-")) {
                return Err(invalid(
                    "stack.name",
                    format!(
                        "`{name}`: resource names start with it, and {what}; choose another name"
                    ),
                ));
            }
        }
        let region = &self.stack.region;
        if !REGIONS.contains(&region.as_str()) {
            let shape_ok = region.split('-').count() >= 3
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            return Err(invalid(
                "stack.region",
                if shape_ok {
                    format!(
                        "`{region}` is not an AWS region this provision knows (it knows {})",
                        REGIONS.join(", ")
                    )
                } else {
                    format!("`{region}` is not a region like us-east-1")
                },
            ));
        }
        let (_, prefix) =
            parse_cidr(&self.network.vpc_cidr).map_err(|r| invalid("network.vpc_cidr", r))?;
        if !(16..=20).contains(&prefix) {
            return Err(invalid(
                "network.vpc_cidr",
                "the prefix must be /16 to /20 (four subnets are carved from it)",
            ));
        }
        if self.network.allowed_cidrs.is_empty() {
            return Err(invalid(
                "network.allowed_cidrs",
                "list at least one CIDR allowed to reach the load balancer",
            ));
        }
        for cidr in &self.network.allowed_cidrs {
            parse_cidr(cidr).map_err(|r| invalid("network.allowed_cidrs", r))?;
        }
        let a = &self.app;
        if a.port < 1024 {
            return Err(invalid(
                "app.port",
                "use an unprivileged port (1024 or higher)",
            ));
        }
        if !a.instance_type.contains('.') {
            return Err(invalid(
                "app.instance_type",
                format!(
                    "`{}` is not an instance type like t3.small",
                    a.instance_type
                ),
            ));
        }
        if !a.ami.is_empty() && !a.ami.starts_with("ami-") {
            return Err(invalid(
                "app.ami",
                "leave empty for Amazon Linux 2023, or give an ami-... id",
            ));
        }
        if a.min_size < 0
            || a.max_size < 1
            || a.min_size > a.desired_capacity
            || a.desired_capacity > a.max_size
        {
            return Err(invalid(
                "app.desired_capacity",
                format!("need 0 <= min_size ({}) <= desired_capacity ({}) <= max_size ({}), max_size >= 1", a.min_size, a.desired_capacity, a.max_size),
            ));
        }
        if a.health_check_grace_secs < 0 {
            return Err(invalid(
                "app.health_check_grace_secs",
                "must not be negative",
            ));
        }
        if a.admin_username.is_empty()
            || !a
                .admin_username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(
                "app.admin_username",
                "letters, digits, '.', '_' and '-' only",
            ));
        }
        let d = &self.database;
        if !d.instance_class.starts_with("db.") {
            return Err(invalid(
                "database.instance_class",
                format!("`{}` is not a class like db.t4g.micro", d.instance_class),
            ));
        }
        if !(20..=65536).contains(&d.allocated_storage_gb) {
            return Err(invalid(
                "database.allocated_storage_gb",
                "must be 20 to 65536",
            ));
        }
        if !(1..=35).contains(&d.backup_retention_days) {
            return Err(invalid(
                "database.backup_retention_days",
                "backups stay on: 1 to 35 days",
            ));
        }
        if !(1..=3650).contains(&d.snapshot_retention_days) {
            return Err(invalid(
                "database.snapshot_retention_days",
                "1 to 3650 days (backups and deleted images are kept that long)",
            ));
        }
        let b = &self.balancer;
        if !b.certificate_arn.is_empty() && !b.certificate_arn.starts_with("arn:") {
            return Err(invalid(
                "balancer.certificate_arn",
                "must be an ACM certificate ARN or empty",
            ));
        }
        if let Err(reason) = crate::resources::dns::check_domain(&b.domain) {
            return Err(invalid("balancer.domain", reason));
        }
        if !b.health_check_path.starts_with('/') {
            return Err(invalid("balancer.health_check_path", "must start with /"));
        }
        if !(5..=300).contains(&b.health_check_interval_secs) {
            return Err(invalid(
                "balancer.health_check_interval_secs",
                "must be 5 to 300",
            ));
        }
        if !(2..=10).contains(&b.healthy_threshold) || !(2..=10).contains(&b.unhealthy_threshold) {
            return Err(invalid(
                "balancer.healthy_threshold",
                "thresholds must be 2 to 10",
            ));
        }
        if !(0..=3600).contains(&b.deregistration_delay_secs) {
            return Err(invalid(
                "balancer.deregistration_delay_secs",
                "must be 0 to 3600",
            ));
        }
        crate::ops_config::validate(self)?;
        self.logs.validate()?;
        Ok(())
    }

    /// The four subnets carved from the VPC: public a/b then private a/b, each a quarter.
    pub fn subnet_cidrs(&self) -> [String; 4] {
        let (base, prefix) =
            parse_cidr(&self.network.vpc_cidr).unwrap_or((Ipv4Addr::new(10, 42, 0, 0), 16));
        let sub = prefix + 2;
        let step = 1u32 << (32 - sub);
        let start = u32::from(base);
        std::array::from_fn(|i| format!("{}/{sub}", Ipv4Addr::from(start + step * i as u32)))
    }

    /// The settings that put a certificate on the load balancer, each with whether it is
    /// set. A new way to get one (`balancer.domain`) is a line here: `https` and the plain
    /// HTTP refusal follow.
    fn tls_settings(&self) -> Vec<(&'static str, bool)> {
        vec![
            (
                "balancer.certificate_arn",
                !self.balancer.certificate_arn.is_empty(),
            ),
            ("balancer.domain", !self.balancer.domain.is_empty()),
        ]
    }

    /// The load balancer serves HTTPS on 443 (and redirects port 80 to it).
    pub fn https(&self) -> bool {
        self.tls_settings().iter().any(|(_, set)| *set)
    }

    /// Why `up` must not build this stack: plain HTTP open to the whole internet, with
    /// neither a certificate nor `network.allow_plain_http`. `up` refuses it (exit 2) and
    /// `plan` warns; other commands don't change what the load balancer serves. Checked,
    /// like `validate`, before any AWS call.
    pub fn plain_http_refusal(&self) -> Option<ConfigError> {
        if self.https() || self.network.allow_plain_http {
            return None;
        }
        let world = whole_internet(&self.network.allowed_cidrs)?;
        let certificate = self
            .tls_settings()
            .iter()
            .map(|(setting, _)| format!("set {setting}"))
            .collect::<Vec<_>>()
            .join(" or ");
        Some(invalid(
            "network.allowed_cidrs",
            format!(
                "{world} lets the whole internet reach the load balancer, which serves plain HTTP \
                 without a certificate: passwords and session cookies would cross the internet in clear. \
                 {} (a certificate: HTTPS on 443, port 80 redirected to it), or narrow network.allowed_cidrs to the \
                 addresses you use (e.g. [\"203.0.113.0/24\"]), or set network.allow_plain_http = true \
                 to serve plain HTTP anyway",
                capitalized(&certificate)
            ),
        ))
    }

    /// With `network.allow_plain_http`: the whole internet reaches the gallery over plain
    /// HTTP, deliberately. `plan` and `up` say so.
    pub fn plain_http_allowed(&self) -> Option<String> {
        if self.https() || !self.network.allow_plain_http {
            return None;
        }
        whole_internet(&self.network.allowed_cidrs).map(|world| {
            format!(
                "network.allow_plain_http = true: the load balancer serves plain HTTP to {world}, \
                 passwords and session cookies in clear"
            )
        })
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The range (or ranges, together) in `cidrs` that let every address in: `0.0.0.0/0`,
/// `::/0`, or IPv4 ranges that add up to all of it (`0.0.0.0/1` and `128.0.0.0/1`).
fn whole_internet(cidrs: &[String]) -> Option<String> {
    if let Some(all) = cidrs.iter().find(|c| c.ends_with("/0")) {
        return Some(format!("`{all}`"));
    }
    let mut ranges: Vec<(u64, u64)> = cidrs
        .iter()
        .filter_map(|c| parse_cidr(c).ok())
        .map(|(ip, prefix)| {
            let start = u64::from(u32::from(ip));
            (start, start + (1u64 << (32 - prefix)))
        })
        .collect();
    ranges.sort_unstable();
    let mut reached = 0u64;
    for (start, end) in ranges {
        if start > reached {
            return None;
        }
        reached = reached.max(end);
    }
    (reached == 1u64 << 32).then(|| format!("`{}` together", cidrs.join("`, `")))
}

fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u32), String> {
    let (ip, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("`{cidr}` is not a CIDR like 10.0.0.0/16"))?;
    if ip.contains(':') {
        return Err(format!(
            "`{cidr}`: IPv6 ranges are not supported (the load balancer is IPv4 only)"
        ));
    }
    let ip: Ipv4Addr = ip.parse().map_err(|_| format!("`{cidr}`: bad address"))?;
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("`{cidr}`: bad prefix"))?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    if u32::from(ip) & !mask != 0 {
        return Err(format!("`{cidr}`: address has bits set beyond the prefix"));
    }
    Ok((ip, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = include_str!("../../config.toml");

    #[test]
    fn the_shipped_config_is_valid() {
        let c = StackConfig::parse(EXAMPLE).unwrap();
        assert_eq!(
            c.subnet_cidrs(),
            [
                "10.42.0.0/18",
                "10.42.64.0/18",
                "10.42.128.0/18",
                "10.42.192.0/18"
            ]
        );
    }

    #[test]
    fn bad_settings_are_named() {
        for (from, to, setting) in [
            ("name = \"gallery\"", "name = \"Bad_Name\"", "stack.name"),
            ("name = \"gallery\"", "name = \"my--stack\"", "stack.name"),
            (
                "vpc_cidr = \"10.42.0.0/16\"",
                "vpc_cidr = \"10.42.0.0/8\"",
                "network.vpc_cidr",
            ),
            (
                "desired_capacity = 2",
                "desired_capacity = 9",
                "app.desired_capacity",
            ),
            (
                "backup_retention_days = 7",
                "backup_retention_days = 0",
                "database.backup_retention_days",
            ),
            (
                "snapshot_retention_days = 30",
                "snapshot_retention_days = 0",
                "database.snapshot_retention_days",
            ),
            ("port = 8080", "port = 80", "app.port"),
            ("name = \"gallery\"", "name = \"internal\"", "stack.name"),
            (
                "name = \"gallery\"",
                "name = \"internal-photos\"",
                "stack.name",
            ),
            ("name = \"gallery\"", "name = \"sg-photos\"", "stack.name"),
            (
                "name = \"gallery\"",
                "name = \"sthree-photos\"",
                "stack.name",
            ),
            (
                "region = \"us-east-1\"",
                "region = \"xx-nowhere-9\"",
                "stack.region",
            ),
            (
                "region = \"us-east-1\"",
                "region = \"Mars\"",
                "stack.region",
            ),
        ] {
            let err = StackConfig::parse(&EXAMPLE.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(setting), "{err}");
        }
        let err = StackConfig::parse(&format!("{EXAMPLE}\n[extra]\nx = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("extra"), "{err}");
    }

    fn with_network(cidrs: &str, allow: bool) -> StackConfig {
        StackConfig::parse(
            &EXAMPLE
                .replace(
                    "allowed_cidrs = [\"0.0.0.0/0\"]",
                    &format!("allowed_cidrs = {cidrs}"),
                )
                .replace(
                    "allow_plain_http = false",
                    &format!("allow_plain_http = {allow}"),
                ),
        )
        .unwrap()
    }

    #[test]
    fn plain_http_to_the_whole_internet_is_refused_with_why_and_the_settings() {
        let c = with_network("[\"0.0.0.0/0\"]", false);
        assert!(!c.https());
        let err = c.plain_http_refusal().unwrap().to_string();
        for part in [
            "network.allowed_cidrs: `0.0.0.0/0`",
            "plain HTTP",
            "passwords and session cookies would cross the internet in clear",
            "Set balancer.certificate_arn",
            "narrow network.allowed_cidrs",
            "network.allow_plain_http = true",
        ] {
            assert!(err.contains(part), "{part:?} missing from: {err}");
        }
        assert!(c.plain_http_allowed().is_none());
        // The shipped config refuses: a first `up` says what to set.
        let shipped = StackConfig::parse(EXAMPLE).unwrap();
        assert!(shipped.plain_http_refusal().is_some());
        // Halves that add up to the world are the world.
        let halves = with_network("[\"0.0.0.0/1\", \"128.0.0.0/1\"]", false);
        let err = halves.plain_http_refusal().unwrap().to_string();
        assert!(err.contains("`0.0.0.0/1`, `128.0.0.0/1` together"), "{err}");
    }

    #[test]
    fn plain_http_to_the_world_is_served_with_allow_plain_http() {
        let c = with_network("[\"0.0.0.0/0\"]", true);
        assert!(c.plain_http_refusal().is_none());
        let note = c.plain_http_allowed().unwrap();
        assert!(note.contains("network.allow_plain_http = true"), "{note}");
    }

    #[test]
    fn plain_http_to_narrower_ranges_needs_no_allowance() {
        for cidrs in [
            "[\"203.0.113.0/24\"]",
            "[\"10.0.0.0/8\", \"192.168.0.0/16\"]",
            "[\"0.0.0.0/1\"]",
            "[\"0.0.0.0/1\", \"128.0.0.0/2\"]",
        ] {
            let c = with_network(cidrs, false);
            assert!(c.plain_http_refusal().is_none(), "{cidrs}");
            assert!(c.plain_http_allowed().is_none(), "{cidrs}");
        }
    }

    #[test]
    fn a_certificate_serves_the_whole_internet_over_https() {
        let c = StackConfig::parse(&EXAMPLE.replace(
            "certificate_arn = \"\"",
            "certificate_arn = \"arn:aws:acm:us-east-1:123456789012:certificate/abc\"",
        ))
        .unwrap();
        assert!(c.https());
        assert!(c.plain_http_refusal().is_none());
        assert!(c.plain_http_allowed().is_none());
    }

    #[test]
    fn ipv6_ranges_are_refused_as_unsupported() {
        let err = StackConfig::parse(&EXAMPLE.replace(
            "allowed_cidrs = [\"0.0.0.0/0\"]",
            "allowed_cidrs = [\"::/0\"]",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("network.allowed_cidrs") && err.contains("IPv6"),
            "{err}"
        );
        // Should IPv6 be supported one day, `::/0` is already the whole internet.
        assert_eq!(whole_internet(&["::/0".into()]).as_deref(), Some("`::/0`"));
    }

    #[test]
    fn log_retention_defaults_to_14_days_and_must_be_a_period_cloudwatch_offers() {
        let c = StackConfig::parse(EXAMPLE).unwrap();
        assert_eq!(c.logs.retention_days, 14);
        let without = EXAMPLE.split("[logs]").next().unwrap();
        assert_eq!(StackConfig::parse(without).unwrap().logs.retention_days, 14);
        let set = |days: &str| {
            StackConfig::parse(
                &EXAMPLE.replace("retention_days = 14", &format!("retention_days = {days}")),
            )
        };
        assert_eq!(set("365").unwrap().logs.retention_days, 365);
        for bad in ["10", "0", "-1", "4000"] {
            let err = set(bad).unwrap_err().to_string();
            assert!(err.starts_with("logs.retention_days"), "{bad}: {err}");
            assert!(err.contains("one of 1, 3, 5, 7, 14, 30"), "{err}");
        }
    }

    fn with_domain(domain: &str) -> Result<StackConfig, ConfigError> {
        StackConfig::parse(&EXAMPLE.replace(
            "certificate_arn = \"\"",
            &format!("certificate_arn = \"\"\ndomain = \"{domain}\""),
        ))
    }

    #[test]
    fn a_domain_serves_the_whole_internet_over_https() {
        let c = with_domain("photos.example.com").unwrap();
        assert_eq!(c.balancer.domain, "photos.example.com");
        assert!(c.https());
        assert!(c.plain_http_refusal().is_none());
        assert!(c.plain_http_allowed().is_none());
        // The shipped config has none, and the refusal names it as a way out.
        let shipped = StackConfig::parse(EXAMPLE).unwrap();
        assert_eq!(shipped.balancer.domain, "");
        let err = shipped.plain_http_refusal().unwrap().to_string();
        assert!(err.contains("set balancer.domain"), "{err}");
    }

    #[test]
    fn a_bad_domain_is_named() {
        for bad in [
            "localhost",
            "*.example.com",
            "Photos.example.com",
            "a..b.com",
            "https://x.com",
        ] {
            let err = with_domain(bad).unwrap_err().to_string();
            assert!(err.starts_with("balancer.domain: "), "{bad}: {err}");
        }
    }
}
