//! Integration tests: the real server on port 0 over real HTTP, each test run against
//! both backends (SQLite + disk, Postgres + S3 on the moto emulator).
//! Run through `scripts/test`, which starts Postgres and moto.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

#[macro_use]
mod helpers;

mod abuse;
mod account;
mod admin;
mod auth;
mod bulk;
mod database;
mod details;
mod failures;
mod gallery;
mod health;
mod logs;
mod processes;
mod sharing;
mod trash;
mod upload;
