//! The context of one run: settings, clients, tags, what has been found or created so far,
//! and the progress printer.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::anyhow;

use crate::config::StackConfig;
use crate::engine::aws::Clients;
use crate::engine::retry::Timing;

pub const STACK_TAG: &str = "gallery:stack";
/// Which of several same-kind resources this is (`public-a`, `app`, ...).
pub const ROLE_TAG: &str = "gallery:role";
/// On data `down` kept (the bucket, the final snapshot): when it was kept, for `up`.
pub const RETAINED_TAG: &str = "gallery:retained";

/// `Plan` only reads and reports; `Apply` changes AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
}

/// Ids of the stack's resources, filled in as nodes find or create them.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Outputs {
    pub account: String,
    pub azs: Vec<String>,
    pub vpc: Option<String>,
    pub public_subnets: Vec<String>,
    pub private_subnets: Vec<String>,
    pub igw: Option<String>,
    pub nat: Option<String>,
    pub public_route_table: Option<String>,
    pub private_route_table: Option<String>,
    pub s3_endpoint: Option<String>,
    pub lb_sg: Option<String>,
    pub app_sg: Option<String>,
    pub db_sg: Option<String>,
    pub db_subnet_group: Option<String>,
    pub db_secret_arn: Option<String>,
    pub admin_secret_arn: Option<String>,
    pub db_endpoint: Option<String>,
    pub bucket: Option<String>,
    pub role_arn: Option<String>,
    pub instance_profile_arn: Option<String>,
    pub target_group_arn: Option<String>,
    pub load_balancer_arn: Option<String>,
    pub load_balancer_dns: Option<String>,
    pub launch_template_id: Option<String>,
    pub launch_template_version: Option<i64>,
    pub asg: Option<String>,
    /// The SNS topic the alarms notify (`alarms.email`).
    pub alarm_topic_arn: Option<String>,
    /// What the plan found running, as AWS bills it (each resource's `ensure` fills in its
    /// part): the cost `plan` and `up` print beside config.toml's.
    pub running: crate::cost::Shape,
    /// `balancer.domain`'s Route 53 zone (its id), when the account has one.
    pub hosted_zone: Option<String>,
    /// The certificate requested for `balancer.domain`.
    pub certificate_arn: Option<String>,
}

pub struct Ctx {
    pub config: StackConfig,
    pub aws: Clients,
    pub mode: Mode,
    pub timing: Timing,
    pub out: Mutex<Outputs>,
    started: Instant,
    /// `--json`: keep stderr quiet of progress lines.
    pub quiet: bool,
    /// `--artifact`: the release this run installs (otherwise the stack's current one).
    pub artifact: Option<crate::release::Artifact>,
    /// `up --from-snapshot`: restore the database from this snapshot, not the newest.
    pub from_snapshot: Option<String>,
    /// `restore` itself is planning: a restore under way is its own, not a reason to stop.
    pub restoring: bool,
}

impl Ctx {
    pub fn new(config: StackConfig, aws: Clients, mode: Mode, timing: Timing) -> Ctx {
        Ctx {
            config,
            aws,
            mode,
            timing,
            out: Mutex::new(Outputs::default()),
            started: Instant::now(),
            quiet: false,
            artifact: None,
            from_snapshot: None,
            restoring: false,
        }
    }

    pub fn stack(&self) -> &str {
        &self.config.stack.name
    }

    /// `<stack>-<what>`: every resource's `Name`.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.stack())
    }

    pub fn planning(&self) -> bool {
        self.mode == Mode::Plan
    }

    /// Read the outputs.
    pub fn out(&self) -> Outputs {
        self.out.lock().map(|o| o.clone()).unwrap_or_default()
    }

    pub fn set(&self, f: impl FnOnce(&mut Outputs)) {
        if let Ok(mut o) = self.out.lock() {
            f(&mut o);
        }
    }

    /// A required output of an earlier node (the graph guarantees it ran first).
    pub fn need<T>(
        &self,
        what: &str,
        get: impl FnOnce(&Outputs) -> Option<T>,
    ) -> anyhow::Result<T> {
        get(&self.out())
            .ok_or_else(|| anyhow!("{what} is not known yet (an earlier step did not finish)"))
    }

    /// One progress line: elapsed time, resource, id, state.
    pub fn progress(&self, resource: &str, id: &str, state: &str) {
        if !self.quiet {
            eprintln!(
                "[{:>6.1}s] {resource:<22} {id:<40} {state}",
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

/// The ids in a scan.
pub fn ids(found: &[crate::resources::scan::Found]) -> std::collections::HashSet<String> {
    found.iter().map(|f| f.id.clone()).collect()
}

/// A placeholder id used while planning for resources that don't exist yet.
pub const PLANNED: &str = "(to be created)";

/// `512 B`, `3.4 MB`, `1.20 GB`: a size at a glance (decimal units, as AWS bills).
pub fn bytes_text(bytes: u64) -> String {
    match bytes {
        b if b < 1_000 => format!("{b} B"),
        b if b < 1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        b if b < 1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.2} GB", b as f64 / 1e9),
    }
}
