//! The `[scaling]` and `[alarms]` settings of `config.toml`, their validation (each error
//! names the setting), and the pure decisions built on them: the target-tracking policy's
//! metric and resource label, the alarms' definitions, and the group's desired capacity
//! while a policy owns it.

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, StackConfig};

/// A target-tracking policy on the Auto Scaling group, between `app.min_size` and
/// `app.max_size`. Off unless `enabled`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScalingSection {
    #[serde(default)]
    pub enabled: bool,
    /// `requests`: requests per instance per minute through the load balancer
    /// (ALBRequestCountPerTarget); `cpu`: the group's average CPU percent
    /// (ASGAverageCPUUtilization).
    #[serde(default = "default_metric")]
    pub metric: String,
    /// The value the policy holds the metric at (requests per instance per minute, or
    /// percent). Empty: 1000 requests, or 50 percent.
    #[serde(default)]
    pub target_value: Option<f64>,
}

fn default_metric() -> String {
    "requests".into()
}

impl Default for ScalingSection {
    fn default() -> Self {
        ScalingSection {
            enabled: false,
            metric: default_metric(),
            target_value: None,
        }
    }
}

/// CloudWatch alarms on the stack, notifying `email` (through an SNS topic) when set.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlarmsSection {
    #[serde(default)]
    pub enabled: bool,
    /// Where alarms and their recovery are sent (the address must confirm the
    /// subscription first). Empty: the alarms only show in `provision status`.
    #[serde(default)]
    pub email: String,
    /// 5xx answers in 5 minutes (the instances' and the load balancer's own, each an
    /// alarm) at or above which the alarm fires.
    #[serde(default = "default_http_5xx")]
    pub http_5xx_per_5min: u32,
    /// Unhealthy targets, for 2 minutes in a row, at or above which the alarm fires.
    #[serde(default = "default_unhealthy")]
    pub unhealthy_hosts: u32,
    /// The database's CPU percent, averaged over 5 minutes twice in a row.
    #[serde(default = "default_db_cpu")]
    pub db_cpu_percent: u32,
    /// The database's free storage (GB) below which the alarm fires.
    #[serde(default = "default_db_free")]
    pub db_free_storage_gb: u32,
}

fn default_http_5xx() -> u32 {
    10
}
fn default_unhealthy() -> u32 {
    1
}
fn default_db_cpu() -> u32 {
    80
}
fn default_db_free() -> u32 {
    2
}

impl Default for AlarmsSection {
    fn default() -> Self {
        AlarmsSection {
            enabled: false,
            email: String::new(),
            http_5xx_per_5min: default_http_5xx(),
            unhealthy_hosts: default_unhealthy(),
            db_cpu_percent: default_db_cpu(),
            db_free_storage_gb: default_db_free(),
        }
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// The predefined metric of each `scaling.metric`.
pub fn metric_type(metric: &str) -> Option<&'static str> {
    match metric {
        "requests" => Some("ALBRequestCountPerTarget"),
        "cpu" => Some("ASGAverageCPUUtilization"),
        _ => None,
    }
}

impl ScalingSection {
    /// The target the policy holds (the setting, or the metric's default).
    pub fn target(&self) -> f64 {
        self.target_value
            .unwrap_or(if self.metric == "cpu" { 50.0 } else { 1000.0 })
    }
}

pub fn validate(c: &StackConfig) -> Result<(), ConfigError> {
    let s = &c.scaling;
    if metric_type(&s.metric).is_none() {
        return Err(invalid(
            "scaling.metric",
            format!(
                "`{}`: use \"requests\" (requests per instance per minute) or \"cpu\" (average CPU percent)",
                s.metric
            ),
        ));
    }
    if let Some(v) = s.target_value {
        if !v.is_finite() || v <= 0.0 {
            return Err(invalid(
                "scaling.target_value",
                format!("{v}: must be above 0"),
            ));
        }
        if s.metric == "cpu" && v > 100.0 {
            return Err(invalid(
                "scaling.target_value",
                format!("{v}: a CPU percent is at most 100"),
            ));
        }
    }
    if s.enabled && c.app.max_size <= c.app.min_size {
        return Err(invalid(
            "scaling.enabled",
            format!(
                "the group cannot scale with app.max_size ({}) not above app.min_size ({}): raise app.max_size",
                c.app.max_size, c.app.min_size
            ),
        ));
    }
    let a = &c.alarms;
    if !a.email.is_empty() {
        let ok = a.email.len() <= 254
            && !a
                .email
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
            && a.email.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty()
                    && domain.contains('.')
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !ok {
            return Err(invalid(
                "alarms.email",
                format!(
                    "`{}` is not an e-mail address like ops@example.com",
                    a.email
                ),
            ));
        }
        if !a.enabled {
            return Err(invalid(
                "alarms.email",
                "set alarms.enabled = true too: the address is sent the alarms",
            ));
        }
    }
    if a.http_5xx_per_5min == 0 {
        return Err(invalid(
            "alarms.http_5xx_per_5min",
            "must be 1 or more (an alarm at 0 would always fire)",
        ));
    }
    if a.unhealthy_hosts == 0 {
        return Err(invalid(
            "alarms.unhealthy_hosts",
            "must be 1 or more (an alarm at 0 would always fire)",
        ));
    }
    if !(1..=100).contains(&a.db_cpu_percent) {
        return Err(invalid("alarms.db_cpu_percent", "must be 1 to 100"));
    }
    let storage = u32::try_from(c.database.allocated_storage_gb).unwrap_or(0);
    if a.db_free_storage_gb == 0 || a.db_free_storage_gb >= storage {
        return Err(invalid(
            "alarms.db_free_storage_gb",
            format!("must be 1 or more and below database.allocated_storage_gb ({storage})"),
        ));
    }
    Ok(())
}

/// The tail of an ELB ARN after `loadbalancer/` or at `targetgroup/`: the dimension
/// CloudWatch names it by (`app/<name>/<id>`, `targetgroup/<name>/<id>`).
pub fn lb_dimension(lb_arn: &str) -> Option<String> {
    let (_, rest) = lb_arn.split_once(":loadbalancer/")?;
    (rest.starts_with("app/") && rest.split('/').count() == 3).then(|| rest.to_string())
}

pub fn tg_dimension(tg_arn: &str) -> Option<String> {
    let (_, rest) = tg_arn.split_once(":targetgroup/")?;
    (rest.split('/').count() == 2).then(|| format!("targetgroup/{rest}"))
}

/// ALBRequestCountPerTarget's resource label:
/// `app/<lb-name>/<lb-id>/targetgroup/<tg-name>/<tg-id>`.
pub fn resource_label(lb_arn: &str, tg_arn: &str) -> Option<String> {
    Some(format!(
        "{}/{}",
        lb_dimension(lb_arn)?,
        tg_dimension(tg_arn)?
    ))
}

/// The desired capacity `up` sets on the group. Without a policy: config.toml's. With
/// one, the policy owns it: left as it is (None) while within min/max, else brought to
/// the nearest bound (AWS refuses a desired capacity outside them).
pub fn desired_to_set(
    scaling: bool,
    current: Option<i32>,
    min: i32,
    max: i32,
    configured: i32,
) -> Option<i32> {
    if !scaling {
        return (current != Some(configured)).then_some(configured);
    }
    match current {
        Some(d) if (min..=max).contains(&d) => None,
        Some(d) => Some(d.clamp(min, max)),
        None => Some(configured),
    }
}

/// How many instances the group should have in service: config.toml's desired capacity,
/// or, with a scaling policy, what the group wants now (within min/max).
pub fn wanted(c: &StackConfig, group_desired: Option<i32>) -> i32 {
    if c.scaling.enabled {
        group_desired
            .unwrap_or(c.app.desired_capacity)
            .clamp(c.app.min_size, c.app.max_size)
    } else {
        c.app.desired_capacity
    }
}

/// One CloudWatch alarm of the stack, as `PutMetricAlarm` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    /// After `<stack>-alarm-`.
    pub what: &'static str,
    pub description: &'static str,
    pub namespace: &'static str,
    pub metric: &'static str,
    pub dimensions: Vec<(&'static str, String)>,
    pub statistic: &'static str,
    pub period: i32,
    pub evaluation_periods: i32,
    pub threshold: f64,
    /// `GreaterThanOrEqualToThreshold` or `LessThanThreshold`.
    pub comparison: &'static str,
    /// `notBreaching`: no data (no traffic, no 5xx) is fine.
    pub missing_data: &'static str,
}

pub const ALARM_KINDS: [&str; 5] = [
    "target-5xx",
    "lb-5xx",
    "unhealthy-hosts",
    "db-cpu",
    "db-storage",
];

/// The stack's alarms, given its load balancer's and target group's ARNs and the database
/// identifier.
pub fn alarm_specs(
    c: &StackConfig,
    lb_arn: &str,
    tg_arn: &str,
    db: &str,
) -> Option<Vec<AlarmSpec>> {
    let a = &c.alarms;
    let lb = lb_dimension(lb_arn)?;
    let tg = tg_dimension(tg_arn)?;
    let five_xx = f64::from(a.http_5xx_per_5min);
    Some(vec![
        AlarmSpec {
            what: "target-5xx",
            description: "the gallery's instances answered with 5xx errors",
            namespace: "AWS/ApplicationELB",
            metric: "HTTPCode_Target_5XX_Count",
            dimensions: vec![("LoadBalancer", lb.clone())],
            statistic: "Sum",
            period: 300,
            evaluation_periods: 1,
            threshold: five_xx,
            comparison: "GreaterThanOrEqualToThreshold",
            missing_data: "notBreaching",
        },
        AlarmSpec {
            what: "lb-5xx",
            description:
                "the load balancer answered with 5xx errors (no healthy instance, or one failed)",
            namespace: "AWS/ApplicationELB",
            metric: "HTTPCode_ELB_5XX_Count",
            dimensions: vec![("LoadBalancer", lb.clone())],
            statistic: "Sum",
            period: 300,
            evaluation_periods: 1,
            threshold: five_xx,
            comparison: "GreaterThanOrEqualToThreshold",
            missing_data: "notBreaching",
        },
        AlarmSpec {
            what: "unhealthy-hosts",
            description: "instances fail the load balancer's health check",
            namespace: "AWS/ApplicationELB",
            metric: "UnHealthyHostCount",
            dimensions: vec![("LoadBalancer", lb), ("TargetGroup", tg)],
            statistic: "Maximum",
            period: 60,
            evaluation_periods: 2,
            threshold: f64::from(a.unhealthy_hosts),
            comparison: "GreaterThanOrEqualToThreshold",
            missing_data: "notBreaching",
        },
        AlarmSpec {
            what: "db-cpu",
            description: "the database's CPU is high",
            namespace: "AWS/RDS",
            metric: "CPUUtilization",
            dimensions: vec![("DBInstanceIdentifier", db.to_string())],
            statistic: "Average",
            period: 300,
            evaluation_periods: 2,
            threshold: f64::from(a.db_cpu_percent),
            comparison: "GreaterThanOrEqualToThreshold",
            missing_data: "missing",
        },
        AlarmSpec {
            what: "db-storage",
            description: "the database is running out of storage",
            namespace: "AWS/RDS",
            metric: "FreeStorageSpace",
            dimensions: vec![("DBInstanceIdentifier", db.to_string())],
            statistic: "Minimum",
            period: 300,
            evaluation_periods: 1,
            // Bytes.
            threshold: f64::from(a.db_free_storage_gb) * 1024.0 * 1024.0 * 1024.0,
            comparison: "LessThanThreshold",
            missing_data: "missing",
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../config.toml");

    fn example() -> StackConfig {
        StackConfig::parse(EXAMPLE).unwrap()
    }

    /// The shipped config with its `[scaling]` and `[alarms]` (its last sections) replaced.
    fn with(extra: &str) -> Result<StackConfig, ConfigError> {
        let (before, _) = EXAMPLE.split_once("\n[scaling]").unwrap();
        StackConfig::parse(&format!("{before}\n{extra}"))
    }

    fn setting_of(r: Result<StackConfig, ConfigError>) -> String {
        match r {
            Err(ConfigError::Invalid { setting, reason }) => format!("{setting}: {reason}"),
            other => panic!("expected a setting error, got {other:?}"),
        }
    }

    #[test]
    fn off_by_default() {
        let c = example();
        assert!(!c.scaling.enabled);
        assert!(!c.alarms.enabled);
        assert_eq!(c.scaling.target(), 1000.0);
    }

    #[test]
    fn scaling_settings_are_checked() {
        let e = setting_of(with("[scaling]\nenabled = true\nmetric = \"memory\"\n"));
        assert!(e.starts_with("scaling.metric:"), "{e}");
        let e = setting_of(with("[scaling]\nenabled = true\ntarget_value = 0\n"));
        assert!(e.starts_with("scaling.target_value:"), "{e}");
        let e = setting_of(with(
            "[scaling]\nenabled = true\nmetric = \"cpu\"\ntarget_value = 150\n",
        ));
        assert!(e.contains("at most 100"), "{e}");
        let c = with("[scaling]\nenabled = true\nmetric = \"cpu\"\n").unwrap();
        assert_eq!(c.scaling.target(), 50.0);
        let c = with("[scaling]\nenabled = true\ntarget_value = 30\n").unwrap();
        assert_eq!(c.scaling.target(), 30.0);
        // The group must have room to scale.
        let e = setting_of(with("[scaling]\nenabled = true\n").and_then(|_| {
            let text = EXAMPLE.replace("max_size = 4", "max_size = 2");
            let (before, _) = text.split_once("\n[scaling]").unwrap();
            StackConfig::parse(&format!("{before}\n[scaling]\nenabled = true\n"))
        }));
        assert!(
            e.starts_with("scaling.enabled:") && e.contains("app.max_size (2)"),
            "{e}"
        );
        let e = setting_of(
            with("[scaling]\nenabled = true\ntarget = 3\n").map_err(|e| match e {
                ConfigError::Parse { message, .. } => ConfigError::Invalid {
                    setting: "parse",
                    reason: message,
                },
                e => e,
            }),
        );
        assert!(e.contains("unknown field `target`"), "{e}");
    }

    #[test]
    fn alarm_settings_are_checked() {
        for (extra, setting) in [
            ("email = \"nobody\"", "alarms.email:"),
            ("email = \"a b@example.com\"", "alarms.email:"),
            ("email = \"ops@localhost\"", "alarms.email:"),
            ("http_5xx_per_5min = 0", "alarms.http_5xx_per_5min:"),
            ("unhealthy_hosts = 0", "alarms.unhealthy_hosts:"),
            ("db_cpu_percent = 101", "alarms.db_cpu_percent:"),
            ("db_free_storage_gb = 20", "alarms.db_free_storage_gb:"),
        ] {
            let e = setting_of(with(&format!("[alarms]\nenabled = true\n{extra}\n")));
            assert!(e.starts_with(setting), "{extra}: {e}");
        }
        let e = setting_of(with("[alarms]\nemail = \"ops@example.com\"\n"));
        assert!(e.contains("alarms.enabled = true"), "{e}");
        let c = with("[alarms]\nenabled = true\nemail = \"ops@example.com\"\n").unwrap();
        assert_eq!(c.alarms.unhealthy_hosts, 1);
    }

    const LB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/g-lb/50dc6c495c0c9188";
    const TG: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/g-tg/73e2d6bc24d8a067";

    #[test]
    fn resource_label_from_the_arns() {
        assert_eq!(
            resource_label(LB, TG).as_deref(),
            Some("app/g-lb/50dc6c495c0c9188/targetgroup/g-tg/73e2d6bc24d8a067")
        );
        assert_eq!(
            lb_dimension(LB).as_deref(),
            Some("app/g-lb/50dc6c495c0c9188")
        );
        assert_eq!(
            tg_dimension(TG).as_deref(),
            Some("targetgroup/g-tg/73e2d6bc24d8a067")
        );
        // Not ARNs of an ALB and a target group: no label (not a wrong one).
        assert_eq!(resource_label("(to be created)", TG), None);
        assert_eq!(
            resource_label(&LB.replace("/app/", "/net/"), TG),
            None,
            "a network load balancer has no request count"
        );
        assert_eq!(resource_label(LB, "arn:aws:elasticloadbalancing:x"), None);
    }

    #[test]
    fn desired_capacity_while_a_policy_owns_it() {
        // No policy: config.toml's, set when it differs.
        assert_eq!(desired_to_set(false, Some(3), 1, 4, 2), Some(2));
        assert_eq!(desired_to_set(false, Some(2), 1, 4, 2), None);
        // A policy: left where it scaled the group, within min/max...
        assert_eq!(desired_to_set(true, Some(3), 1, 4, 2), None);
        assert_eq!(desired_to_set(true, Some(1), 1, 4, 2), None);
        // ...brought into a changed range otherwise.
        assert_eq!(desired_to_set(true, Some(4), 1, 3, 2), Some(3));
        assert_eq!(desired_to_set(true, Some(1), 2, 3, 2), Some(2));
        assert_eq!(desired_to_set(true, None, 1, 3, 2), Some(2));
        let mut c = example();
        assert_eq!(wanted(&c, Some(3)), c.app.desired_capacity);
        c.scaling.enabled = true;
        assert_eq!(wanted(&c, Some(3)), 3);
        assert_eq!(wanted(&c, Some(9)), c.app.max_size);
        assert_eq!(wanted(&c, None), c.app.desired_capacity);
    }

    #[test]
    fn alarms_of_the_stack() {
        let mut c = example();
        c.alarms.enabled = true;
        let specs = alarm_specs(&c, LB, TG, "gallery-db").unwrap();
        let kinds: Vec<&str> = specs.iter().map(|s| s.what).collect();
        assert_eq!(kinds, ALARM_KINDS);
        let unhealthy = &specs[2];
        assert_eq!(unhealthy.metric, "UnHealthyHostCount");
        assert_eq!(
            unhealthy.dimensions,
            vec![
                ("LoadBalancer", "app/g-lb/50dc6c495c0c9188".to_string()),
                (
                    "TargetGroup",
                    "targetgroup/g-tg/73e2d6bc24d8a067".to_string()
                )
            ]
        );
        assert_eq!(unhealthy.threshold, 1.0);
        let storage = &specs[4];
        assert_eq!(storage.comparison, "LessThanThreshold");
        assert_eq!(storage.threshold, 2.0 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(specs[3].threshold, 80.0);
        assert_eq!(specs[0].threshold, 10.0);
        assert!(alarm_specs(&c, "(to be created)", TG, "db").is_none());
    }
}
