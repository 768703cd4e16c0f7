#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::*;

fn prices() -> Prices {
    Prices::shipped().unwrap()
}

fn shipped() -> StackConfig {
    StackConfig::parse(include_str!("../../../config.toml")).unwrap()
}

fn line<'a>(e: &'a Estimate, item: &str) -> &'a Line {
    e.lines.iter().find(|l| l.item == item).unwrap()
}

#[test]
fn the_table_parses_states_its_date_and_prices_the_shipped_config_everywhere_it_has() {
    let p = prices();
    assert_eq!(p.about.date, "2026-12-07");
    assert!(p.about.source.contains("aws.amazon.com"));
    assert!(p.about.checked.contains("unchecked"));
    for region in ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"] {
        let r = &p.region[region];
        assert!(r.ec2_hour.contains_key("t3.small"), "{region}");
        assert!(r.rds_hour.contains_key("db.t4g.micro"), "{region}");
        // Every region the table names is one the stack may use.
        assert!(crate::config::REGIONS.contains(&region));
    }
    for region in p.region.keys() {
        assert!(
            crate::config::REGIONS.contains(&region.as_str()),
            "{region}"
        );
    }
    let e = estimate(&p, "us-east-1", &Shape::configured(&shipped()));
    assert_eq!(e.unpriced(), 0, "{e:#?}");
    assert!(e.notes.is_empty());
}

#[test]
fn the_total_is_the_sum_of_the_printed_lines() {
    let e = estimate(&prices(), "us-east-1", &Shape::configured(&shipped()));
    let sum: i64 = e.lines.iter().map(|l| l.cents.unwrap()).sum();
    assert_eq!(e.total(), sum);
    // 2 x t3.small at $0.0208 for 730 hours.
    assert_eq!(line(&e, "EC2 instances").cents, Some(3037));
    // Two instances in public subnets and the load balancer's two zones, $0.005 an hour.
    assert_eq!(line(&e, "public IPv4 addresses").cents, Some(1460));
    assert_eq!(line(&e, "load balancer").cents, Some(1643));
    assert_eq!(line(&e, "RDS instance").cents, Some(1168));
    assert_eq!(line(&e, "RDS storage").cents, Some(230));
    assert_eq!(line(&e, "NAT gateway").cents, Some(0));
    assert_eq!(line(&e, "Secrets Manager").cents, Some(80));
    // With max_size = 4: two instances more, with their root volumes and addresses.
    let at_max = e.at_max.unwrap();
    assert_eq!(at_max - e.total(), 3037 + 128 + 730);
    let text = table::render("cost", &e, None);
    let total_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("total"))
        .unwrap();
    assert!(total_line.ends_with(&table::dollars(sum)), "{text}");
}

#[test]
fn each_region_is_priced_from_its_own_table() {
    let shape = Shape::configured(&shipped());
    let frankfurt = estimate(&prices(), "eu-central-1", &shape);
    // 2 x t3.small at $0.024 for 730 hours; the load balancer at $0.027 an hour.
    assert_eq!(line(&frankfurt, "EC2 instances").cents, Some(3504));
    assert_eq!(line(&frankfurt, "load balancer").cents, Some(1971));
    assert_eq!(frankfurt.region_name.as_deref(), Some("Europe (Frankfurt)"));
    let virginia = estimate(&prices(), "us-east-1", &shape);
    assert!(frankfurt.total() > virginia.total());
    // The same everywhere: public addresses and secrets.
    assert_eq!(
        line(&frankfurt, "public IPv4 addresses").cents,
        line(&virginia, "public IPv4 addresses").cents
    );
}

#[test]
fn a_changed_instance_type_shows_the_difference_per_line_and_in_total() {
    let running = Shape::configured(&shipped());
    let mut config = shipped();
    config.app.instance_type = "t3.medium".into();
    let wanted = Shape::configured(&config);
    let p = prices();
    let now = estimate(&p, "us-east-1", &running);
    let then = estimate(&p, "us-east-1", &wanted);
    assert_eq!(then.total() - now.total(), 6074 - 3037);
    let text = table::render("cost", &then, Some(&now));
    let ec2 = text.lines().find(|l| l.contains("EC2 instances")).unwrap();
    assert!(ec2.contains("2 x t3.medium"), "{ec2}");
    assert!(ec2.contains("; now 2 x t3.small"), "{ec2}");
    assert!(ec2.trim_end().ends_with("+$30.37"), "{ec2}");
    let rds = text.lines().find(|l| l.contains("RDS instance")).unwrap();
    assert!(rds.trim_end().ends_with("$0.00"), "{rds}");
    let total = text
        .lines()
        .find(|l| l.trim_start().starts_with("total"))
        .unwrap();
    assert!(total.trim_end().ends_with("+$30.37"), "{total}");
    // The amounts line up: every row's last column ends at the same place.
    let ends: Vec<usize> = text
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("  Up to") && !l.starts_with("  Prices"))
        .map(|l| l.trim_end().len())
        .collect();
    assert!(ends.windows(2).all(|w| w[0] == w[1]), "{text}");
}

#[test]
fn a_nat_gateway_costs_its_hours_data_and_address_and_takes_the_instances_addresses() {
    let p = prices();
    let mut config = shipped();
    let off = estimate(&p, "us-east-1", &Shape::configured(&config));
    config.network.nat_gateway = true;
    let on = estimate(&p, "us-east-1", &Shape::configured(&config));
    // $0.045 for 730 hours, and 5 GB at $0.045.
    assert_eq!(line(&on, "NAT gateway").cents, Some(3308));
    assert_eq!(line(&off, "NAT gateway").cents, Some(0));
    // Instances behind it have no public address; the NAT gateway has one.
    assert_eq!(line(&on, "public IPv4 addresses").cents, Some(1095));
    assert!(line(&on, "public IPv4 addresses")
        .detail
        .contains("1 NAT gateway"));
    assert_eq!(on.total() - off.total(), 3308 - 365);
}

#[test]
fn an_unknown_instance_type_or_region_leaves_that_line_unpriced_naming_the_setting() {
    let p = prices();
    let mut config = shipped();
    config.app.instance_type = "x9.huge".into();
    let e = estimate(&p, "us-east-1", &Shape::configured(&config));
    let ec2 = line(&e, "EC2 instances");
    assert_eq!(ec2.cents, None);
    assert_eq!(
        ec2.unpriced.as_deref(),
        Some("price unknown for x9.huge in us-east-1")
    );
    assert_eq!(e.unpriced(), 1);
    assert!(
        e.notes[0].starts_with("app.instance_type: provision/prices.toml has no price for x9.huge")
    );
    // The rest is still priced and added up.
    assert!(e.total() > 0);
    let text = table::render("cost", &e, None);
    assert!(
        text.contains("price unknown for x9.huge in us-east-1"),
        "{text}"
    );
    assert!(text.contains("priced lines only"), "{text}");
    assert!(text.contains("note: app.instance_type"), "{text}");

    let mut config = shipped();
    config.database.instance_class = "db.x9.huge".into();
    let e = estimate(&p, "us-east-1", &Shape::configured(&config));
    assert_eq!(line(&e, "RDS instance").cents, None);
    assert!(e.notes[0].starts_with("database.instance_class:"));

    // A region AWS has but the table does not: only what costs the same everywhere.
    let e = estimate(&p, "ap-south-1", &Shape::configured(&shipped()));
    assert_eq!(
        line(&e, "EC2 instances").unpriced.as_deref(),
        Some("price unknown for t3.small in ap-south-1")
    );
    assert_eq!(line(&e, "Secrets Manager").cents, Some(80));
    assert!(line(&e, "public IPv4 addresses").cents.is_some());
    assert_eq!(e.notes.len(), 1, "{:?}", e.notes);
    assert!(
        e.notes[0].starts_with("stack.region: provision/prices.toml has no prices for ap-south-1")
    );
    assert!(e.notes[0].contains("us-east-1"));
}

#[test]
fn nothing_running_costs_nothing_and_a_multi_az_database_costs_twice() {
    let e = estimate(&prices(), "us-east-1", &Shape::default());
    assert!(Shape::default().is_nothing());
    assert_eq!(e.total(), 0);
    assert_eq!(e.unpriced(), 0);
    let mut shape = Shape::configured(&shipped());
    let single = estimate(&prices(), "us-east-1", &shape);
    if let Some(db) = &mut shape.database {
        db.multi_az = true;
        db.storage_type = Some("gp3".into());
    }
    let multi = estimate(&prices(), "us-east-1", &shape);
    assert_eq!(line(&multi, "RDS instance").cents, Some(2 * 1168));
    assert_eq!(line(&multi, "RDS storage").cents, Some(460));
    assert!(line(&multi, "RDS instance").detail.contains("Multi-AZ"));
    assert!(multi.total() > single.total());
    if let Some(db) = &mut shape.database {
        db.storage_type = Some("io1".into());
    }
    let io1 = estimate(&prices(), "us-east-1", &shape);
    assert_eq!(line(&io1, "RDS storage").cents, None);
}

#[test]
fn kept_data_is_priced_at_the_regions_snapshot_and_s3_prices() {
    // A 20 GB database's final snapshot and a backup of it, 5 GB of images, two secrets.
    let kept = |snapshot_gb: &[u32], bucket_bytes, secrets, log_bytes| Kept {
        snapshot_gb: snapshot_gb.to_vec(),
        bucket_bytes,
        secrets,
        log_bytes,
    };
    // And 2 GB of log lines, stored at $0.03 a GB-month.
    let e = retained(
        &prices(),
        "us-east-1",
        &kept(&[20, 20], Some(5_000_000_000), 2, Some(2_000_000_000)),
    );
    assert_eq!(line(&e, "DB snapshots").cents, Some(190));
    assert_eq!(line(&e, "S3 bucket").cents, Some(12));
    assert_eq!(line(&e, "Secrets Manager").cents, Some(80));
    assert_eq!(line(&e, "CloudWatch Logs").cents, Some(6));
    assert_eq!(e.total(), 288);
    let e = retained(
        &prices(),
        "us-east-1",
        &kept(&[20, 20], Some(5_000_000_000), 2, None),
    );
    assert_eq!(e.total(), 282);
    let text = table::render_retained("kept", &e);
    assert!(text.contains("$2.82"), "{text}");
    assert!(!text.contains("Assumed"), "{text}");
    let frankfurt = retained(
        &prices(),
        "eu-central-1",
        &kept(&[20], Some(5_000_000_000), 2, None),
    );
    assert_eq!(line(&frankfurt, "S3 bucket").cents, Some(12));
    let none = retained(&prices(), "us-east-1", &Kept::default());
    assert_eq!(none.total(), 0);
}

#[test]
fn dollars_read_as_dollars() {
    assert_eq!(table::dollars(0), "$0.00");
    assert_eq!(table::dollars(5), "$0.05");
    assert_eq!(table::dollars(123_456_789), "$1,234,567.89");
    assert_eq!(table::signed(3037), "+$30.37");
    assert_eq!(table::signed(-3037), "-$30.37");
    assert_eq!(thousands(500_000.0), "500,000");
}

#[test]
fn the_shipped_configs_table_reads_as_printed() {
    // `cargo test -p provision --lib shipped_configs_table -- --nocapture` shows it.
    let p = prices();
    let e = estimate(&p, "us-east-1", &Shape::configured(&shipped()));
    let text = table::render(&title("gallery", &e, "as config.toml sets it"), &e, None);
    println!("{text}");
    assert!(text.starts_with("Monthly cost of stack gallery in us-east-1 (US East (N. Virginia)), as config.toml sets it:"));
    let mut running = Shape::configured(&shipped());
    running.instance_type = Some("t3.micro".into());
    let now = estimate(&p, "us-east-1", &running);
    println!(
        "{}",
        table::render(
            &title(
                "gallery",
                &e,
                "as config.toml sets it, beside what runs now"
            ),
            &e,
            Some(&now)
        )
    );
}

#[test]
fn the_log_group_is_priced_by_ingestion_and_its_retention() {
    let p = prices();
    let mut c = shipped();
    // us-east-1: 1 GB ingested at $0.50, 14 days of it stored (14/30 GB) at $0.03.
    let e = estimate(&p, "us-east-1", &Shape::configured(&c));
    let logs = line(&e, "CloudWatch Logs");
    assert_eq!(logs.cents, Some(51), "{logs:?}");
    assert!(logs.detail.contains("kept 14 days"), "{logs:?}");
    c.logs.retention_days = 365;
    let e = estimate(&p, "us-east-1", &Shape::configured(&c));
    // 365/30 GB stored at $0.03: $0.365 more.
    assert_eq!(line(&e, "CloudWatch Logs").cents, Some(87));
}

#[test]
fn alarms_and_the_scaling_policys_own_alarms_are_priced() {
    let p = prices();
    let mut c = shipped();
    let e = estimate(&p, "us-east-1", &Shape::configured(&c));
    assert_eq!(line(&e, "CloudWatch alarms").cents, Some(0));
    assert_eq!(line(&e, "CloudWatch alarms").detail, "none");
    // The stack's five alarms at $0.10 a month.
    c.alarms.enabled = true;
    let e = estimate(&p, "us-east-1", &Shape::configured(&c));
    assert_eq!(line(&e, "CloudWatch alarms").cents, Some(50));
    // And the two AWS makes for a target-tracking policy.
    c.scaling.enabled = true;
    let e = estimate(&p, "us-east-1", &Shape::configured(&c));
    let alarms = line(&e, "CloudWatch alarms");
    assert_eq!(alarms.cents, Some(70), "{alarms:?}");
    assert!(alarms.detail.starts_with("7 "), "{alarms:?}");
}

#[test]
fn with_a_scaling_policy_the_instances_are_priced_from_min_size() {
    let p = prices();
    let mut c = shipped();
    c.app.min_size = 1;
    c.scaling.enabled = true;
    let e = estimate(&p, "us-east-1", &Shape::configured(&c));
    // 1 x t3.small at $0.0208 for 730 hours; up to 4.
    let ec2 = line(&e, "EC2 instances");
    assert_eq!(ec2.cents, Some(1518), "{ec2:?}");
    assert!(ec2.detail.contains("(up to 4)"), "{ec2:?}");
    assert!(e.at_max.unwrap() > e.total());
}
