//! `provision`: builds the gallery's AWS stack from `config.toml`, converges it, reports
//! on it and removes it. One module per AWS resource; `graph` orders them; `commands`
//! holds what each subcommand does. See `docs/ARCHITECTURE.md`.

pub mod aws;
pub mod balancer;
pub mod bucket;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod database;
pub mod deploy;
pub mod fleet;
pub mod graph;
pub mod iam;
pub mod launch;
pub mod lock;
pub mod network;
pub mod release;
pub mod scan;
pub mod secrets;
pub mod security_groups;
pub mod tags;
pub mod templates;
