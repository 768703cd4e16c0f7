//! The command line and what each command prints; exit codes scripts can trust
//! (0 done, 1 failed, 2 bad usage or settings, 3 `down` left resources behind).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::commands::{backup, down, exec, logs, restore, status, up};
use crate::config::StackConfig;
use crate::engine::aws::{CallLog, Clients};
use crate::engine::context::{Ctx, Mode};
use crate::engine::retry::Timing;
use crate::resources::database::Teardown;

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
        /// Restore the database from this snapshot of the stack (default: the newest one
        /// kept, when the stack has no database; `provision backups` lists them)
        #[arg(long, value_name = "ID")]
        from_snapshot: Option<String>,
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
        /// Destroy the data too: the bucket with every image, the database's snapshots
        /// and its secret (asks for the stack's name to be typed)
        #[arg(long)]
        delete_data: bool,
        /// With --delete-data: do not ask (for scripts)
        #[arg(long, requires = "delete_data")]
        yes_delete_data: bool,
    },
    /// Roll a new release out to the running stack with no downtime (rolls back by itself
    /// when the new instances do not become healthy)
    Deploy {
        /// The gallery binary to deploy (default: build one with scripts/release)
        #[arg(long, value_name = "PATH")]
        artifact: Option<PathBuf>,
        /// Deploy even if the release's migrations are not additive (a drop, rename,
        /// type change or new NOT NULL): the running release may fail on the new schema
        /// until it is replaced, and a rollback is no longer safe
        #[arg(long)]
        allow_breaking: bool,
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
    /// Take a snapshot of the running database now, then prune those older than
    /// database.snapshot_retention_days (never the newest)
    Backup {
        /// Return once RDS is taking it, without waiting until it is available
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the stack's database snapshots (automated, backup, final) with time and size
    Backups {
        #[arg(long)]
        json: bool,
    },
    /// Bring the running stack's data back as it was: the database (restored beside it,
    /// then switched in) and the images (from the bucket's versions). The gallery answers
    /// 503 meanwhile, and every instance boots again on the restored data
    #[command(group(clap::ArgGroup::new("to").required(true).args(["to_time", "snapshot"])))]
    Restore {
        /// The moment to go back to, within the backup retention: 2026-12-03T08:00:00Z
        /// or 2026-12-03 08:00:00 (UTC); `provision backups` shows the window
        #[arg(long, value_name = "TIME")]
        to_time: Option<String>,
        /// A snapshot of the stack (`provision backups` lists them): the database as it
        /// holds it, the images as they were when it was taken
        #[arg(long, value_name = "ID")]
        snapshot: Option<String>,
        /// Keep the previous database (renamed `<stack>-db-prev-<time>`) instead of
        /// removing it; `provision down` removes it with the stack
        #[arg(long)]
        keep_old: bool,
        /// Do not ask (for scripts): restore, and remove the previous database (a final
        /// snapshot of it is kept) unless --keep-old
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        rolling: RollingArgs,
    },
    /// Run a command on the stack's instances through SSM Run Command (no SSH, no open
    /// port), as the gallery's service user with its environment: by default on one
    /// healthy InService instance (`provision exec -- gallery users list`). Prints each
    /// instance's output and exit code; exits 1 if any failed or did not finish in time
    #[command(group(clap::ArgGroup::new("where").args(["instance", "all"])))]
    Exec {
        /// Run on this instance (one of the stack's group)
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
        /// Run on every InService instance
        #[arg(long)]
        all: bool,
        /// Seconds to wait for the command; then it is cancelled where it still runs
        #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// The gallery's log lines from CloudWatch Logs (every instance, gone ones too):
    /// time, instance and the line (`provision logs --since 1h --grep <request-id>`)
    Logs {
        /// Keep printing new lines as they arrive (Ctrl-C to stop)
        #[arg(long)]
        follow: bool,
        /// How far back to start: 30s, 10m, 2h, 1d
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = logs::parse_since)]
        since: std::time::Duration,
        /// Only this instance's lines (its stream)
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
        /// Only lines holding this text exactly (case-sensitive), e.g. a request id
        #[arg(long, value_name = "TEXT")]
        grep: Option<String>,
        /// Print the raw events as JSON lines
        #[arg(long)]
        json: bool,
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
    fn rolling(&self) -> crate::commands::deploy::Rolling {
        crate::commands::deploy::Rolling {
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
    // `up` would open the load balancer: refused here, before any AWS call. `plan` only
    // reads, so it warns and goes on to show the rest (changes, cost) in the same run,
    // then exits 2 as `up` would (a CI gate on `plan` fails too).
    let mut plan_refused = false;
    if let Command::Up { .. } | Command::Plan = cli.command {
        if let Some(refusal) = config.plain_http_refusal() {
            if let Command::Plan = cli.command {
                eprintln!("warning: `provision up` will refuse this config: {refusal}");
                plan_refused = true;
            } else {
                eprintln!("error: {refusal}");
                return 2;
            }
        }
        if let Some(note) = config.plain_http_allowed() {
            eprintln!("note: {note}");
        }
    }
    let log = Arc::new(CallLog::default());
    let clients = Clients::new(&config.stack.region, cli.endpoint.as_deref(), log.clone()).await;
    let timing = Timing {
        poll: std::time::Duration::from_secs_f64(cli.poll_secs),
        ..Timing::default()
    };
    match execute(&cli.command, config, clients, timing).await {
        Ok(0) if plan_refused => {
            eprintln!(
                "error: the plan above is of a config `provision up` refuses (see the warning)"
            );
            2
        }
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
        Command::Up {
            artifact,
            no_wait,
            from_snapshot,
        } => {
            let artifact = artifact
                .as_deref()
                .map(crate::release::inspect)
                .transpose()?;
            let (mut planner, mut applier) = (ctx(Mode::Plan), ctx(Mode::Apply));
            planner.artifact = artifact.clone();
            applier.artifact = artifact;
            planner.from_snapshot = from_snapshot.clone();
            applier.from_snapshot = from_snapshot.clone();
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
            delete_data,
            yes_delete_data,
        } => {
            let applier = ctx(Mode::Apply);
            let question = format!(
                "Delete every resource of stack {} in {}{}",
                config.stack.name,
                config.stack.region,
                match (*delete_data, *skip_final_snapshot) {
                    (true, _) => ", and its data",
                    (false, false) => " (its data is kept)",
                    (false, true) =>
                        " (the bucket is kept; the database goes without a final snapshot)",
                }
            );
            if !yes && !confirm(&question)? {
                eprintln!("Not confirmed; nothing was deleted.");
                return Ok(2);
            }
            if *delete_data && !yes_delete_data && !confirm_data_deletion(&applier).await? {
                eprintln!("Not confirmed; nothing was deleted.");
                return Ok(2);
            }
            let how = Teardown {
                force: *force,
                skip_snapshot: *skip_final_snapshot,
                delete_data: *delete_data,
            };
            let outcome = down::down(&applier, how).await?;
            for (node, change) in &outcome.deleted {
                if !matches!(change, crate::engine::graph::Change::Absent) {
                    println!("  {:<20} {}", node.label(), change.describe(false));
                }
            }
            for e in &outcome.errors {
                eprintln!("error: {e}");
            }
            if outcome.left.is_empty() && outcome.errors.is_empty() {
                if outcome.kept.is_empty() {
                    println!(
                        "Stack {} removed in {:.1}s: nothing tagged for it remains.",
                        config.stack.name,
                        applier.elapsed().as_secs_f64()
                    );
                } else {
                    print_kept(&config.stack.name, &config.stack.region, &outcome);
                    println!(
                        "Stack {} removed in {:.1}s but for its data; `provision up` brings it back, \
                         `provision down --delete-data` destroys it.",
                        config.stack.name,
                        applier.elapsed().as_secs_f64()
                    );
                }
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
        Command::Deploy {
            artifact,
            allow_breaking,
            rolling,
        } => {
            let path = match artifact {
                Some(p) => p.clone(),
                None => crate::release::build().await?,
            };
            // Before anything changes: the running release must live on the new schema.
            if *allow_breaking {
                eprintln!("--allow-breaking: the release's migrations are not checked.");
            } else {
                crate::migrations::check(&crate::migrations::of_artifact(&path)?, false)?;
            }
            let target = crate::commands::deploy::Target::Artifact(crate::release::inspect(&path)?);
            roll_out(ctx(Mode::Plan), ctx(Mode::Apply), target, rolling.rolling()).await
        }
        Command::Rollback { to, rolling } => {
            let target = match to {
                Some(v) => crate::commands::deploy::Target::Release(v.clone()),
                None => crate::commands::deploy::Target::Previous,
            };
            roll_out(ctx(Mode::Plan), ctx(Mode::Apply), target, rolling.rolling()).await
        }
        Command::Backup { no_wait, json } => {
            let mut c = ctx(Mode::Apply);
            c.quiet = *json;
            let taken = backup::backup(&c, !no_wait).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&taken)?);
            } else {
                backup::print_taken(&taken);
            }
            Ok(0)
        }
        Command::Backups { json } => {
            let mut c = ctx(Mode::Plan);
            c.quiet = *json;
            let b = backup::backups(&c).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                backup::print(&b);
            }
            Ok(0)
        }
        Command::Exec {
            instance,
            all,
            timeout,
            command,
        } => {
            let targets = match (instance, all) {
                (Some(id), _) => exec::Targets::Instance(id.clone()),
                (None, true) => exec::Targets::All,
                (None, false) => exec::Targets::One,
            };
            let timeout = std::time::Duration::from_secs(*timeout);
            let outcomes = exec::exec(&ctx(Mode::Plan), &targets, command, timeout).await?;
            Ok(exec::report(&outcomes, timeout))
        }
        Command::Logs {
            follow,
            since,
            instance,
            grep,
            json,
        } => {
            let query = logs::Query {
                since: *since,
                instance: instance.clone(),
                grep: grep.clone(),
                json: *json,
                follow: *follow,
            };
            logs::logs(&ctx(Mode::Plan), &query).await
        }
        Command::Restore {
            to_time,
            snapshot,
            keep_old,
            yes,
            rolling,
        } => {
            let source = match (to_time, snapshot) {
                (Some(t), None) => {
                    crate::resources::db_restore::Source::Time(restore::parse_time(t)?)
                }
                (None, Some(s)) => crate::resources::db_restore::Source::Snapshot(s.clone()),
                _ => anyhow::bail!("give --to-time or --snapshot"),
            };
            let question = format!(
                "Restore stack {} to {}: the database and the images as they were then, everything since is set aside (the gallery answers 503 for a few minutes)",
                config.stack.name,
                source.label()
            );
            if !yes && !confirm(&question)? {
                eprintln!("Not confirmed; nothing was changed.");
                return Ok(2);
            }
            let yes = *yes;
            let (mut planner, mut applier) = (ctx(Mode::Plan), ctx(Mode::Apply));
            planner.restoring = true;
            applier.restoring = true;
            let report = restore::restore(
                &planner,
                &applier,
                source,
                *keep_old,
                rolling.rolling(),
                |previous| {
                    if yes {
                        return Ok(true);
                    }
                    confirm(&format!(
                        "The gallery serves the restored data. Remove the previous database {previous} (a final snapshot of it is kept)"
                    ))
                    .or(Ok(false))
                },
            )
            .await?;
            println!(
                "Restored stack {} to {} ({} UTC) in {:.1}s: {} image(s) brought back, {} added since hidden; {} instance(s) booted on it.",
                config.stack.name,
                report.source,
                backup::when(report.at),
                report.elapsed.as_secs_f64(),
                report.images.brought_back,
                report.images.hidden,
                report.replaced
            );
            if let Some(prev) = &report.removed {
                println!("Removed the previous database {prev}; its final snapshot is listed by `provision backups`.");
            }
            if let Some(prev) = &report.kept {
                println!("Kept the previous database {prev} (it costs as much as the stack's); `provision down` removes it with the stack.");
            }
            Ok(0)
        }
        Command::AdminPassword => {
            let c = ctx(Mode::Plan);
            let secret = crate::resources::secrets::read_admin(&c).await?;
            println!(
                "username: {}\npassword: {}",
                secret.username, secret.password
            );
            Ok(0)
        }
        Command::Unlock => {
            let c = ctx(Mode::Apply);
            match crate::engine::lock::holder(&c).await? {
                Some(h) => {
                    crate::engine::lock::release(&c).await?;
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
    target: crate::commands::deploy::Target,
    rolling: crate::commands::deploy::Rolling,
) -> anyhow::Result<i32> {
    let r = crate::commands::deploy::run(&planner, &applier, target, rolling).await?;
    println!(
        "Deployed {} (launch template version {}): replaced {} instance(s) in {:.1}s.",
        r.release,
        r.version,
        r.replaced,
        r.elapsed.as_secs_f64()
    );
    Ok(0)
}

fn print_kept(stack: &str, region: &str, outcome: &down::Outcome) {
    println!("Kept, the data of stack {stack}:");
    for f in &outcome.kept {
        let state = match (&outcome.usage, f.kind.as_str()) {
            (Some(u), "bucket") => format!(
                "{} image(s) of {} user(s), {} in all",
                u.images,
                u.owners,
                crate::engine::context::bytes_text(u.bytes)
            ),
            _ => f.state.clone(),
        };
        println!("  {:<12} {:<60} {}", f.kind, f.id, state);
    }
    match down::kept_cost(region, &outcome.kept, outcome.usage.as_ref()) {
        Ok(cost) => {
            let title = format!(
                "What keeping it costs a month in {}:",
                cost.region_name
                    .as_ref()
                    .map_or(cost.region.clone(), |n| format!("{} ({n})", cost.region))
            );
            println!(
                "{}",
                crate::cost::table::render_retained(&title, &cost).trim_end()
            );
        }
        Err(e) => println!("What keeping it costs a month is unknown: {e}"),
    }
}

/// `down --delete-data` without `--yes-delete-data`: say what will be destroyed, and
/// have the stack's name typed.
async fn confirm_data_deletion(ctx: &Ctx) -> anyhow::Result<bool> {
    let usage = crate::resources::bucket::usage(ctx)
        .await?
        .unwrap_or_default();
    let snapshots = crate::resources::snapshots::manual(ctx).await?.len();
    let has_db = crate::resources::database::find(ctx).await?.is_some();
    let stack = ctx.stack();
    eprintln!(
        "{}",
        data_deletion_warning(
            stack,
            &crate::resources::bucket::name(ctx),
            &usage,
            snapshots,
            has_db
        )
    );
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to destroy the data without a terminal to ask on: pass --yes-delete-data"
        );
    }
    eprint!("Type the stack's name ({stack}) to destroy it: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == stack)
}

/// What `down --delete-data` says it will destroy, before the stack's name is typed.
fn data_deletion_warning(
    stack: &str,
    bucket: &str,
    usage: &crate::resources::bucket::Usage,
    snapshots: usize,
    has_db: bool,
) -> String {
    format!(
        "This destroys the data of stack {stack}, for good: {} image(s) of {} user(s) ({} in bucket {bucket}), \
         {snapshots} database snapshot(s){}.",
        usage.images,
        usage.owners,
        crate::engine::context::bytes_text(usage.bytes),
        if has_db {
            ", and the database with every user, session and image record"
        } else {
            ""
        }
    )
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_data_deletion_warning_names_what_goes() {
        let usage = crate::resources::bucket::Usage {
            images: 12,
            owners: 3,
            bytes: 45_000_000,
            noncurrent_bytes: 0,
        };
        let text =
            super::data_deletion_warning("photos", "photos-images-1-us-east-1", &usage, 2, true);
        for part in [
            "stack photos",
            "12 image(s) of 3 user(s)",
            "in bucket photos-images-1-us-east-1",
            "2 database snapshot(s)",
            "the database with every user",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        let text = super::data_deletion_warning("photos", "b", &usage, 0, false);
        assert!(!text.contains("the database with"), "{text}");
    }

    #[test]
    fn restore_times_are_rfc3339_or_plain_utc() {
        use crate::commands::restore::parse_time;
        assert_eq!(parse_time("2026-12-03T08:00:00Z").unwrap(), 1_796_284_800);
        assert_eq!(
            parse_time("2026-12-03T09:00:00+01:00").unwrap(),
            1_796_284_800
        );
        assert_eq!(parse_time("2026-12-03 08:00:00").unwrap(), 1_796_284_800);
        let err = parse_time("yesterday").unwrap_err().to_string();
        assert!(err.starts_with("--to-time"), "{err}");
    }
}
