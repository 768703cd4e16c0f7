//! The gallery web application: pages, storage, database, and the CLI that runs it.
//! See `docs/ARCHITECTURE.md` for the map.

pub mod accounts;
pub mod archive;
pub mod auth;
pub mod aws;
pub mod aws_secrets;
pub mod cache;
pub mod cli;
pub mod config;
pub mod cores;
pub mod db;
pub mod domain;
pub mod error;
pub mod images;
pub mod media;
pub mod routes;
pub mod security;
pub mod sharing;
pub mod spool;
pub mod startup;
pub mod state;
pub mod storage;
pub mod store;
pub mod templates;
pub mod trash;

// Logging: the per-request line and shipping to CloudWatch Logs.
pub mod access_log;
pub mod logship;

pub use startup::Application;
