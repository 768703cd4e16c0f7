//! `provision`: builds the gallery's AWS stack from `config.toml`, converges it, reports
//! on it and removes it. `engine` holds what every resource shares (AWS clients and
//! calls, the run's context, the dependency graph, tags, the stack lock); `resources`
//! holds one module per AWS resource, each finding, creating, converging, deleting and
//! scanning its own; `commands` holds what each subcommand does. See
//! `docs/ARCHITECTURE.md`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod cost;
pub mod engine;
pub mod migrations;
pub mod ops_config;
pub mod release;
pub mod resources;
pub mod templates;
