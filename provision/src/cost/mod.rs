//! What the stack costs a month: its billed parts (`Shape`, from `config.toml` or from what
//! `plan` found running) priced from the table in `provision/prices.toml` (`prices`) into
//! lines, each in whole cents so the printed total is the sum of the printed lines, and
//! printed as a table (`table`), beside what runs now when the stack exists. What `down`
//! keeps is priced here too (`retained`). Pure: no AWS call, no clock.

pub mod prices;
pub mod table;

use serde::Serialize;

use crate::config::StackConfig;
pub use prices::Prices;

/// AWS's month for hourly prices.
pub const HOURS: f64 = 730.0;
/// The stack spans two zones (`network::zones`): the load balancer has a node, and a
/// public IPv4 address, in each.
pub const ZONES: u32 = 2;
/// The instances' root volume: Amazon Linux 2023's AMI default (gp3); the launch template
/// sets none of its own.
pub const ROOT_VOLUME_GB: u32 = 8;
/// The secrets the stack makes (`resources::secrets`): the database's, the first admin's.
pub const SECRETS: u32 = 2;

/// A small gallery's month, for what is billed by use. Printed under every table.
pub const LCU_AVERAGE: f64 = 0.1;
pub const TRAFFIC_GB: f64 = 73.0;
pub const NAT_GB: f64 = 5.0;
pub const S3_GB: f64 = 20.0;
pub const S3_WRITES: f64 = 20_000.0;
pub const S3_READS: f64 = 500_000.0;
pub const LOGS_GB: f64 = 1.0;

pub fn assumptions() -> Vec<String> {
    vec![
        format!("a {HOURS:.0}-hour month, and a small gallery's use:"),
        format!("{LCU_AVERAGE} LCU on average at the load balancer (about {TRAFFIC_GB:.0} GB a month through it), as much out to the internet;"),
        format!("{S3_GB:.0} GB in the bucket (images, thumbnails, releases, kept versions), {} writes and {} reads a month;", thousands(S3_WRITES), thousands(S3_READS)),
        format!("{NAT_GB:.0} GB a month through a NAT gateway; the database's backups within the free amount (its storage size);"),
        format!("{LOGS_GB:.0} GB of log lines a month into CloudWatch Logs (about 3 million requests' access lines at ~300 bytes), kept logs.retention_days;"),
        "instances at or below their CPU baseline (T3 unlimited bills surplus CPU at $0.05 a vCPU-hour).".into(),
        "the first 100 GB a month out to the internet free (AWS's allowance per account, across its services: taken as unused elsewhere);".into(),
        "Not counted: tax, the 12-month free tier, discounts, data between zones (app to database), Secrets Manager".into(),
        "API calls ($0.05 per 10,000, a few per boot).".into(),
        "alarms.email: SNS sends the first 1,000 e-mails a month free ($2 per 100,000 after), far more than alarms send.".into(),
        "balancer.domain's certificate: ACM's public certificates are free; its Route 53 zone is yours ($0.50 a month, queries of an alias to the load balancer free).".into(),
    ]
}

fn thousands(n: f64) -> String {
    let digits = format!("{n:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The parts of a stack AWS bills, as far as the cost goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Shape {
    /// The instance type new instances get (None: no launch template).
    pub instance_type: Option<String>,
    /// The group's desired count, and its maximum.
    pub instances: u32,
    pub max_instances: u32,
    pub nat_gateway: bool,
    /// The load balancer's zones (0: no load balancer).
    pub load_balancer_zones: u32,
    pub database: Option<Database>,
    pub bucket: bool,
    pub secrets: u32,
    /// Days the app's logs are kept in CloudWatch Logs; None: it sends none there.
    pub log_retention_days: Option<u32>,
    /// CloudWatch alarms: the stack's own (`[alarms]`) and the two a target-tracking
    /// policy makes for itself (`[scaling]`).
    pub alarms: u32,
}

/// The alarms `[alarms]` makes (`ops_config::ALARM_KINDS`), and those AWS makes for a
/// target-tracking policy (one to scale out, one to scale in).
pub const STACK_ALARMS: u32 = crate::ops_config::ALARM_KINDS.len() as u32;
pub const POLICY_ALARMS: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Database {
    pub class: String,
    pub storage_gb: u32,
    pub multi_az: bool,
    /// As RDS names it (gp2, gp3, io1, ...); None: RDS's default, General Purpose SSD.
    pub storage_type: Option<String>,
}

impl Shape {
    /// What `config.toml` asks for.
    pub fn configured(c: &StackConfig) -> Shape {
        Shape {
            instance_type: Some(c.app.instance_type.clone()),
            // With a scaling policy the count moves between min and max: the floor is the
            // base, the total at max beside it.
            instances: u32::try_from(if c.scaling.enabled {
                c.app.min_size
            } else {
                c.app.desired_capacity
            })
            .unwrap_or(0),
            max_instances: u32::try_from(c.app.max_size).unwrap_or(0),
            nat_gateway: c.network.nat_gateway,
            load_balancer_zones: ZONES,
            database: Some(Database {
                class: c.database.instance_class.clone(),
                storage_gb: u32::try_from(c.database.allocated_storage_gb).unwrap_or(0),
                // The stack makes a Single-AZ database; no setting asks for a standby.
                multi_az: false,
                storage_type: None,
            }),
            bucket: true,
            secrets: SECRETS,
            // The app's lines in the stack's log group (`resources::logs`).
            log_retention_days: u32::try_from(c.logs.retention_days).ok(),
            alarms: if c.alarms.enabled { STACK_ALARMS } else { 0 }
                + if c.scaling.enabled { POLICY_ALARMS } else { 0 },
        }
    }

    /// Nothing of the stack exists.
    pub fn is_nothing(&self) -> bool {
        *self == Shape::default()
    }
}

/// One billed item: what it is, the figures it is priced from, and its monthly price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub item: &'static str,
    pub detail: String,
    /// Cents a month; None when the table has no price (`unpriced` says which).
    pub cents: Option<i64>,
    pub unpriced: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub region: String,
    pub lines: Vec<Line>,
    /// Why some line has no price, naming the setting (once each).
    pub notes: Vec<String>,
    /// The total with the group at its maximum (`app.max_size`), when that differs.
    pub at_max: Option<i64>,
    /// The region's name in the table ("US East (N. Virginia)"), if it has the region.
    pub region_name: Option<String>,
    /// The table's date.
    pub prices_of: String,
}

impl Estimate {
    /// Cents a month of the priced lines.
    pub fn total(&self) -> i64 {
        self.lines.iter().filter_map(|l| l.cents).sum()
    }

    pub fn unpriced(&self) -> usize {
        self.lines.iter().filter(|l| l.cents.is_none()).count()
    }
}

/// "Monthly cost of stack NAME in REGION (its name), WHAT:", a table's first line.
pub fn title(stack: &str, e: &Estimate, what: &str) -> String {
    let region = match &e.region_name {
        Some(name) => format!("{} ({name})", e.region),
        None => e.region.clone(),
    };
    format!("Monthly cost of stack {stack} in {region}, {what}:")
}

/// Dollars to whole cents (half a cent up).
pub fn cents(dollars: f64) -> i64 {
    (dollars * 100.0).round() as i64
}

/// Prices a `Shape` in `region`. A region or type the table lacks leaves that line
/// unpriced (and says so in `notes`) rather than failing: the rest still helps.
pub fn estimate(prices: &Prices, region: &str, shape: &Shape) -> Estimate {
    let mut e = Pricing::new(prices, region);
    let everywhere = &prices.everywhere;
    let n = shape.instances;

    match (&shape.instance_type, n) {
        (_, 0) => e.free("EC2 instances", "none"),
        (None, _) => e.unknown(
            "EC2 instances",
            format!("{n} of a type not known"),
            "price unknown: the launch template's instance type could not be read".into(),
            None,
        ),
        (Some(t), _) => {
            let hour = e.region.and_then(|r| r.ec2_hour.get(t)).copied();
            let mut detail = format!("{n} x {t}");
            if shape.max_instances > n {
                detail.push_str(&format!(" (up to {})", shape.max_instances));
            }
            match hour {
                Some(h) => e.priced("EC2 instances", detail, h * HOURS * f64::from(n)),
                None => {
                    let why = Some(e.missing_note("app.instance_type", t));
                    e.unknown(
                        "EC2 instances",
                        detail,
                        format!("price unknown for {t} in {region}"),
                        why,
                    )
                }
            }
        }
    }
    e.regional(
        "EBS root volumes",
        if n == 0 {
            "none".into()
        } else {
            format!("{n} x {ROOT_VOLUME_GB} GB gp3")
        },
        |r| r.ebs_gp3_gb_month * f64::from(n * ROOT_VOLUME_GB),
    );

    let instance_ips = if shape.nat_gateway { 0 } else { n };
    let nat_ips = u32::from(shape.nat_gateway);
    let lb_ips = shape.load_balancer_zones;
    let mut ips = Vec::new();
    if instance_ips > 0 {
        ips.push(format!("{instance_ips} instances"));
    }
    if nat_ips > 0 {
        ips.push("1 NAT gateway".into());
    }
    if lb_ips > 0 {
        ips.push(format!("{lb_ips} load balancer (one a zone)"));
    }
    let addresses = instance_ips + nat_ips + lb_ips;
    e.priced(
        "public IPv4 addresses",
        if ips.is_empty() {
            "none".into()
        } else {
            ips.join(" + ")
        },
        everywhere.public_ipv4_hour * HOURS * f64::from(addresses),
    );

    if shape.load_balancer_zones > 0 {
        e.regional("load balancer", "1 ALB".into(), |r| r.alb_hour * HOURS);
        e.regional(
            "load balancer LCUs",
            format!("{LCU_AVERAGE} LCU on average"),
            |r| r.alb_lcu_hour * HOURS * LCU_AVERAGE,
        );
        let billed_gb = (TRAFFIC_GB - everywhere.data_out_free_gb).max(0.0);
        e.regional(
            "data out to internet",
            format!(
                "{TRAFFIC_GB:.0} GB (first {:.0} GB free per account)",
                everywhere.data_out_free_gb
            ),
            |r| r.data_out_gb * billed_gb,
        );
    } else {
        e.free("load balancer", "none");
        e.free("load balancer LCUs", "none");
        e.free("data out to internet", "none");
    }

    match &shape.database {
        Some(db) => {
            let copies = if db.multi_az { 2.0 } else { 1.0 };
            let az = if db.multi_az { "Multi-AZ" } else { "Single-AZ" };
            let detail = format!("{}, {az}", db.class);
            match e.region.and_then(|r| r.rds_hour.get(&db.class)).copied() {
                Some(h) => e.priced("RDS instance", detail, h * HOURS * copies),
                None => {
                    let why = Some(e.missing_note("database.instance_class", &db.class));
                    e.unknown(
                        "RDS instance",
                        detail,
                        format!("price unknown for {} in {region}", db.class),
                        why,
                    )
                }
            }
            let gb = f64::from(db.storage_gb) * copies;
            match db.storage_type.as_deref() {
                None | Some("gp2") | Some("gp3") => e.regional(
                    "RDS storage",
                    // gp2 or gp3 (RDS's default), one price: named alike.
                    format!(
                        "{} GB General Purpose SSD{}",
                        db.storage_gb,
                        if db.multi_az { ", twice" } else { "" }
                    ),
                    |r| r.rds_storage_gb_month * gb,
                ),
                Some(other) => e.unknown(
                    "RDS storage",
                    format!("{} GB {other}", db.storage_gb),
                    format!("price unknown for {other} storage in {region}"),
                    Some(format!(
                        "the database's storage is {other}: {} prices General Purpose SSD only",
                        prices::PATH
                    )),
                ),
            }
            e.free(
                "RDS backup storage",
                &format!("within the free {} GB", db.storage_gb),
            );
        }
        None => {
            e.free("RDS instance", "none");
            e.free("RDS storage", "none");
            e.free("RDS backup storage", "none");
        }
    }

    if shape.nat_gateway {
        e.regional(
            "NAT gateway",
            format!("1, {NAT_GB:.0} GB through it"),
            |r| r.nat_hour * HOURS + r.nat_gb * NAT_GB,
        );
    } else {
        e.free("NAT gateway", "none (network.nat_gateway = false)");
    }

    if shape.bucket {
        e.regional("S3 storage", format!("{S3_GB:.0} GB Standard"), |r| {
            r.s3_gb_month * S3_GB
        });
        e.regional(
            "S3 requests",
            format!(
                "{} writes, {} reads",
                thousands(S3_WRITES),
                thousands(S3_READS)
            ),
            |r| r.s3_put_1k * S3_WRITES / 1000.0 + r.s3_get_1k * S3_READS / 1000.0,
        );
    } else {
        e.free("S3 storage", "none");
        e.free("S3 requests", "none");
    }

    match shape.log_retention_days {
        Some(days) => {
            // Each month's logs stay `days`: that many days of logs are stored at a time.
            let stored = LOGS_GB * f64::from(days) / 30.0;
            e.regional(
                "CloudWatch Logs",
                format!("{LOGS_GB:.0} GB a month, kept {days} days"),
                |r| r.logs_ingest_gb * LOGS_GB + r.logs_storage_gb_month * stored,
            );
        }
        None => e.free("CloudWatch Logs", "none (the stack sends no logs there)"),
    }

    match shape.alarms {
        0 => e.free("CloudWatch alarms", "none"),
        n => e.priced(
            "CloudWatch alarms",
            format!("{n} (standard resolution)"),
            everywhere.alarm_month * f64::from(n),
        ),
    }

    e.priced(
        "Secrets Manager",
        match shape.secrets {
            0 => "none".into(),
            1 => "1 secret".into(),
            s => format!("{s} secrets"),
        },
        everywhere.secret_month * f64::from(shape.secrets),
    );

    let mut out = e.finish();
    if shape.max_instances > shape.instances {
        let bigger = Shape {
            instances: shape.max_instances,
            ..shape.clone()
        };
        let at_max = estimate(prices, region, &bigger);
        out.at_max = Some(at_max.total());
    }
    out
}

/// The data `down` keeps, as it is billed.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// Each snapshot's size (at most its database's allocated size).
    pub snapshot_gb: Vec<u32>,
    /// The bucket's bytes, every version (None: no bucket kept).
    pub bucket_bytes: Option<u64>,
    pub secrets: u32,
    /// The log group's stored bytes (None: no log group kept).
    pub log_bytes: Option<u64>,
}

/// What keeping the data `down` leaves costs a month.
pub fn retained(prices: &Prices, region: &str, kept: &Kept) -> Estimate {
    let Kept {
        snapshot_gb,
        bucket_bytes,
        secrets,
        log_bytes,
    } = kept;
    let (bucket_bytes, secrets) = (*bucket_bytes, *secrets);
    let mut e = Pricing::new(prices, region);
    // Snapshots of one database are incremental: the first holds its blocks, later ones
    // only the blocks changed since. The largest is counted, at its full allocated size:
    // a floor, as snapshots of another database (before a restore) hold their own blocks.
    let largest = snapshot_gb.iter().copied().max().unwrap_or(0);
    if snapshot_gb.is_empty() {
        e.free("DB snapshots", "none");
    } else {
        e.regional(
            "DB snapshots",
            format!(
                "{} snapshot(s): at least the largest, {largest} GB (others add what changed)",
                snapshot_gb.len()
            ),
            |r| r.rds_backup_gb_month * f64::from(largest),
        );
    }
    match bucket_bytes {
        Some(bytes) => e.regional(
            "S3 bucket",
            format!(
                "{} Standard, every version",
                crate::engine::context::bytes_text(bytes)
            ),
            |r| r.s3_gb_month * bytes as f64 / 1e9,
        ),
        None => e.free("S3 bucket", "none"),
    }
    e.priced(
        "Secrets Manager",
        format!("{secrets} secret(s)"),
        prices.everywhere.secret_month * f64::from(secrets),
    );
    match log_bytes {
        // Kept until its retention expires each line: stored bytes, no more ingestion.
        Some(bytes) => e.regional(
            "CloudWatch Logs",
            format!(
                "{} stored (each line kept logs.retention_days)",
                crate::engine::context::bytes_text(*bytes)
            ),
            |r| r.logs_storage_gb_month * *bytes as f64 / 1e9,
        ),
        None => e.free("CloudWatch Logs", "none"),
    }
    e.finish()
}

/// Lines being priced in one region.
struct Pricing<'a> {
    prices: &'a Prices,
    region_name: &'a str,
    region: Option<&'a prices::Region>,
    lines: Vec<Line>,
    notes: Vec<String>,
}

impl<'a> Pricing<'a> {
    fn new(prices: &'a Prices, region: &'a str) -> Pricing<'a> {
        Pricing {
            prices,
            region_name: region,
            region: prices.region.get(region),
            lines: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn priced(&mut self, item: &'static str, detail: String, dollars: f64) {
        self.lines.push(Line {
            item,
            detail,
            cents: Some(cents(dollars)),
            unpriced: None,
        });
    }

    fn free(&mut self, item: &'static str, detail: &str) {
        self.priced(item, detail.to_string(), 0.0);
    }

    fn unknown(
        &mut self,
        item: &'static str,
        detail: String,
        unpriced: String,
        note: Option<String>,
    ) {
        if let Some(n) = note {
            if !self.notes.contains(&n) {
                self.notes.push(n);
            }
        }
        self.lines.push(Line {
            item,
            detail,
            cents: None,
            unpriced: Some(unpriced),
        });
    }

    /// A line priced from the region's table; unpriced when the table has no region.
    fn regional(
        &mut self,
        item: &'static str,
        detail: String,
        price: impl FnOnce(&prices::Region) -> f64,
    ) {
        match self.region {
            Some(r) => self.priced(item, detail, price(r)),
            None => {
                let note = self.no_region_note();
                self.unknown(
                    item,
                    detail,
                    format!("price unknown for {} in {}", item, self.region_name),
                    Some(note),
                )
            }
        }
    }

    fn no_region_note(&self) -> String {
        format!(
            "stack.region: {} has no prices for {} (it has {}); those lines are left out of the total",
            prices::PATH,
            self.region_name,
            self.prices.regions().join(", ")
        )
    }

    /// Why `setting`'s `value` has no price: the region, or the type, is not in the table.
    fn missing_note(&self, setting: &str, value: &str) -> String {
        match self.region {
            None => self.no_region_note(),
            Some(_) => format!(
                "{setting}: {} has no price for {value} in {}; add it there (AWS's on-demand price page has it), the total leaves it out",
                prices::PATH,
                self.region_name
            ),
        }
    }

    fn finish(self) -> Estimate {
        Estimate {
            region: self.region_name.to_string(),
            lines: self.lines,
            notes: self.notes,
            at_max: None,
            region_name: self.region.map(|r| r.name.clone()),
            prices_of: self.prices.about.date.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
