//! The price table, `provision/prices.toml`, compiled in: AWS's on-demand list prices per
//! region, with the date they were written and how each was checked.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The table as shipped.
pub const TABLE: &str = include_str!("../../prices.toml");
/// Where it lives, for messages.
pub const PATH: &str = "provision/prices.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub about: About,
    pub everywhere: Everywhere,
    pub region: BTreeMap<String, Region>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct About {
    /// When the figures were written down.
    pub date: String,
    pub source: String,
    /// Which figures were checked, how, and which not.
    pub checked: String,
}

/// Prices AWS charges the same in every commercial region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Everywhere {
    pub public_ipv4_hour: f64,
    pub secret_month: f64,
    pub secret_api_10k: f64,
    pub data_out_free_gb: f64,
    /// A standard-resolution CloudWatch alarm (one metric), a month.
    pub alarm_month: f64,
}

/// Dollars per hour, GB-month, GB or thousand requests, as each name says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    pub alb_hour: f64,
    pub alb_lcu_hour: f64,
    pub nat_hour: f64,
    pub nat_gb: f64,
    pub ebs_gp3_gb_month: f64,
    pub rds_storage_gb_month: f64,
    pub rds_backup_gb_month: f64,
    pub s3_gb_month: f64,
    pub s3_put_1k: f64,
    pub s3_get_1k: f64,
    pub logs_ingest_gb: f64,
    pub logs_storage_gb_month: f64,
    pub data_out_gb: f64,
    /// Linux on-demand, by instance type.
    pub ec2_hour: BTreeMap<String, f64>,
    /// PostgreSQL Single-AZ, by DB instance class.
    pub rds_hour: BTreeMap<String, f64>,
}

impl Prices {
    /// The compiled-in table (a unit test proves it parses; the error is for the build
    /// that ships a broken one all the same).
    pub fn shipped() -> Result<Prices, String> {
        Prices::parse(TABLE)
    }

    pub fn parse(text: &str) -> Result<Prices, String> {
        toml::from_str(text).map_err(|e| format!("{PATH}: {e}"))
    }

    pub fn regions(&self) -> Vec<&str> {
        self.region.keys().map(String::as_str).collect()
    }
}
