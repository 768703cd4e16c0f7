//! The command line and what each command prints; exit codes scripts can trust
//! (0 done, 1 failed, 2 bad usage or settings, 3 `down` left resources behind).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::aws::{CallLog, Clients, Timing};
use crate::commands::{down, status, up};
use crate::config::StackConfig;
use crate::context::{Ctx, Mode};
use crate::database::Teardown;

#[derive(Debug, Parser)]
#[command(
    name = "provision",
    version,
    about = "Build, inspect and remove the gallery's AWS stack."
)]
pub struct Cli {
    /// The stack's settings
    #[arg(
        long,
        env = "GALLERY_CONFIG",
        default_value = "config.toml",
        global = true
    )]
    pub config: PathBuf,
    /// Stack name (overrides stack.name)
    #[arg(long, global = true)]
    pub stack: Option<String>,
    /// AWS region (overrides stack.region)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint instead (an emulator such as moto)
    #[arg(long, env = "GALLERY_AWS_ENDPOINT", global = true)]
    pub endpoint: Option<String>,
    /// Seconds between status checks while waiting for AWS (RDS, load balancer, targets)
    #[arg(long, env = "GALLERY_POLL_SECS", default_value_t = 5.0, global = true)]
    pub poll_secs: f64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what `up` would create or change, and the order it walks
    Plan,
    /// Build the stack or converge it on config.toml, then print the gallery's URL
    Up {
        /// The gallery binary to boot (default: the stack's current release, or on a
        /// first `up` one built by scripts/release for Amazon Linux 2023)
        #[arg(long, value_name = "PATH")]
        artifact: Option<PathBuf>,
        /// Return once AWS has accepted the changes, without waiting for healthy targets
        #[arg(long)]
        no_wait: bool,
    },
    /// List every resource of the stack with its state, and target health
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Remove everything the stack owns (a final database snapshot is kept)
    Down {
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        /// Turn off the database's deletion protection
        #[arg(long)]
        force: bool,
        /// Delete the database without a final snapshot
        #[arg(long)]
        skip_final_snapshot: bool,
    },
    /// Roll a new release out to the running stack with no downtime (rolls back by itself
    /// when the new instances do not become healthy)
    Deploy {
        /// The gallery binary to deploy (default: build one with scripts/release)
        #[arg(long, value_name = "PATH")]
        artifact: Option<PathBuf>,
        #[command(flatten)]
        rolling: RollingArgs,
    },
    /// Roll the stack back to an earlier release, through the same rolling path
    Rollback {
        /// The release to return to (default: the one before the running one)
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        #[command(flatten)]
        rolling: RollingArgs,
    },
    /// Print the first admin's username and password (kept in Secrets Manager)
    AdminPassword,
    /// Break a lock left by a run that died
    Unlock,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RollingArgs {
    /// Instances replaced at a time (capacity never drops below the desired count)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub batch_size: u16,
    /// How long new instances may take to become healthy before the deploy rolls back
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..=7200))]
    pub healthy_timeout_secs: u64,
}

impl RollingArgs {
    fn rolling(&self) -> crate::deploy::Rolling {
        crate::deploy::Rolling {
            batch: usize::from(self.batch_size),
            healthy_timeout: std::time::Duration::from_secs(self.healthy_timeout_secs),
        }
    }
}

/// Load and check the settings, with the flags' overrides, before any AWS call.
pub fn settings(cli: &Cli) -> Result<StackConfig, crate::config::ConfigError> {
    let mut config = StackConfig::load(&cli.config)?;
    if let Some(s) = &cli.stack {
        config.stack.name = s.clone();
    }
    if let Some(r) = &cli.region {
        config.stack.region = r.clone();
    }
    config.validate()?;
    Ok(config)
}

pub async fn run(cli: Cli) -> i32 {
    let config = match settings(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if !(0.05..=600.0).contains(&cli.poll_secs) {
        eprintln!("error: --poll-secs (GALLERY_POLL_SECS) must be between 0.05 and 600");
        return 2;
    }
    let log = Arc::new(CallLog::default());
    let clients = Clients::new(&config.stack.region, cli.endpoint.as_deref(), log.clone()).await;
    let timing = Timing {
        poll: std::time::Duration::from_secs_f64(cli.poll_secs),
        ..Timing::default()
    };
    match execute(&cli.command, config, clients, timing).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Run one command with ready clients (tests call this with a counting or crashing log).
pub async fn execute(
    command: &Command,
    config: StackConfig,
    clients: Clients,
    timing: Timing,
) -> anyhow::Result<i32> {
    let ctx = |mode| Ctx::new(config.clone(), clients.clone(), mode, timing);
    match command {
        Command::Plan => {
            let planner = ctx(Mode::Plan);
            let outcome = up::plan(&planner).await?;
            up::print_plan(&outcome);
            Ok(0)
        }
        Command::Up { artifact, no_wait } => {
            let artifact = artifact
                .as_deref()
                .map(crate::release::inspect)
                .transpose()?;
            let (mut planner, mut applier) = (ctx(Mode::Plan), ctx(Mode::Apply));
            planner.artifact = artifact.clone();
            applier.artifact = artifact;
            let outcome = up::up(&planner, &applier, !no_wait).await?;
            let calls = clients.log.calls().len();
            if outcome.changes.is_empty() {
                println!(
                    "No changes ({calls} read calls, {:.1}s).",
                    planner.elapsed().as_secs_f64()
                );
            } else {
                println!(
                    "Applied {} change(s) in {:.1}s ({calls} AWS calls):",
                    outcome.changes.len(),
                    applier.elapsed().as_secs_f64()
                );
                for (node, change) in &outcome.changes {
                    println!("  {:<20} {}", node.label(), change.describe(false));
                }
            }
            if let Some(url) = outcome.url {
                println!("{url}");
            }
            Ok(0)
        }
        Command::Status { json } => {
            let mut c = ctx(Mode::Plan);
            c.quiet = *json;
            let s = status::status(&c).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                status::print(&s);
            }
            Ok(0)
        }
        Command::Down {
            yes,
            force,
            skip_final_snapshot,
        } => {
            let applier = ctx(Mode::Apply);
            if !yes
                && !confirm(&format!(
                    "Delete every resource of stack {} in {}",
                    config.stack.name, config.stack.region
                ))?
            {
                eprintln!("Not confirmed; nothing was deleted.");
                return Ok(2);
            }
            let how = Teardown {
                force: *force,
                skip_snapshot: *skip_final_snapshot,
            };
            let outcome = down::down(&applier, how).await?;
            for (node, change) in &outcome.deleted {
                if !matches!(change, crate::graph::Change::Absent) {
                    println!("  {:<20} {}", node.label(), change.describe(false));
                }
            }
            for e in &outcome.errors {
                eprintln!("error: {e}");
            }
            if outcome.left.is_empty() && outcome.errors.is_empty() {
                println!(
                    "Stack {} removed in {:.1}s: nothing tagged for it remains.",
                    config.stack.name,
                    applier.elapsed().as_secs_f64()
                );
                Ok(0)
            } else {
                eprintln!("Still tagged for stack {}:", config.stack.name);
                for r in &outcome.left {
                    eprintln!("  {:<20} {:<60} {}", r.kind, r.id, r.state);
                }
                eprintln!("Run `provision down` again once the errors above are dealt with.");
                Ok(3)
            }
        }
        Command::Deploy { artifact, rolling } => {
            let path = match artifact {
                Some(p) => p.clone(),
                None => crate::release::build().await?,
            };
            let target = crate::deploy::Target::Artifact(crate::release::inspect(&path)?);
            roll_out(ctx(Mode::Plan), ctx(Mode::Apply), target, rolling.rolling()).await
        }
        Command::Rollback { to, rolling } => {
            let target = match to {
                Some(v) => crate::deploy::Target::Release(v.clone()),
                None => crate::deploy::Target::Previous,
            };
            roll_out(ctx(Mode::Plan), ctx(Mode::Apply), target, rolling.rolling()).await
        }
        Command::AdminPassword => {
            let c = ctx(Mode::Plan);
            let secret = crate::secrets::read_admin(&c).await?;
            println!(
                "username: {}\npassword: {}",
                secret.username, secret.password
            );
            Ok(0)
        }
        Command::Unlock => {
            let c = ctx(Mode::Apply);
            match crate::lock::holder(&c).await? {
                Some(h) => {
                    crate::lock::release(&c).await?;
                    println!(
                        "Broke the lock held by {} (`provision {}`) since {}.",
                        h.who, h.command, h.since
                    );
                }
                None => println!("Stack {} is not locked.", config.stack.name),
            }
            Ok(0)
        }
    }
}

async fn roll_out(
    planner: Ctx,
    applier: Ctx,
    target: crate::deploy::Target,
    rolling: crate::deploy::Rolling,
) -> anyhow::Result<i32> {
    let r = crate::deploy::run(&planner, &applier, target, rolling).await?;
    println!(
        "Deployed {} (launch template version {}): replaced {} instance(s) in {:.1}s.",
        r.release,
        r.version,
        r.replaced,
        r.elapsed.as_secs_f64()
    );
    Ok(0)
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question}? Refusing without a terminal to ask on: pass --yes");
    }
    eprint!("{question}? Type 'yes' to continue: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}
