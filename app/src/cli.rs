//! The command line: `gallery serve` (the default), `gallery migrate`, `gallery users ...`.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::accounts::{self, NewAccount};
use crate::config::{Config, DataArgs, DataConfig, DatabaseSource, ServeArgs};
use crate::db::Db;
use crate::domain::{FullName, Password, Username};
use crate::startup::{shutdown_signal, Application};
use crate::store::users;

#[derive(Debug, Parser)]
#[command(
    name = "gallery",
    version,
    about = "An image gallery: log in, upload, browse, delete; admins manage users."
)]
pub struct Cli {
    #[command(flatten)]
    pub data: DataArgs,

    /// Log as JSON lines (for log collectors) instead of human-readable text
    #[arg(long, env = "GALLERY_LOG_JSON", global = true)]
    pub log_json: bool,

    /// Also send `serve`'s log lines to this CloudWatch Logs group (the deployed gallery:
    /// its stack's group), in the stream --log-stream; lines are batched, never waited for
    #[arg(long, env = "GALLERY_LOG_GROUP", global = true)]
    pub log_group: Option<String>,

    /// The CloudWatch Logs stream for --log-group (the deployed gallery: its instance id)
    #[arg(long, env = "GALLERY_LOG_STREAM", global = true)]
    pub log_stream: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (the default when no command is given)
    Serve(ServeArgs),
    /// Apply database migrations and exit
    Migrate,
    /// Print this release's PostgreSQL migrations as JSON (version, description, sql):
    /// `provision deploy` checks them before it rolls the release out
    Migrations,
    /// Manage users from the shell
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users with their role and image count
    List,
    /// Add a user; the password is read from standard input (prompted on a terminal)
    Add {
        username: String,
        #[arg(long)]
        full_name: String,
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password (read from standard input); ends their sessions
    Passwd { username: String },
    /// Delete a user and all their images
    Delete {
        username: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

/// Logs to standard error through `logship`'s non-blocking writer, and to CloudWatch Logs
/// with `ship`. Must run inside the Tokio runtime.
pub fn init_tracing(json: bool, ship: Option<crate::logship::ShipTo>) -> crate::logship::LogHandle {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,aws=warn"));
    let (writer, handle) = crate::logship::start(ship);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    handle
}

/// Where `serve` ships its logs: both `--log-group` and `--log-stream`, or neither.
fn ship_to(cli: &Cli) -> anyhow::Result<Option<crate::logship::ShipTo>> {
    let group = cli.log_group.as_deref().filter(|g| !g.is_empty());
    let stream = cli.log_stream.as_deref().filter(|s| !s.is_empty());
    match (group, stream) {
        (None, None) => Ok(None),
        (Some(group), Some(stream)) => Ok(Some(crate::logship::ShipTo {
            group: group.to_string(),
            stream: stream.to_string(),
            aws: DataConfig::from_args(&cli.data)?.aws,
        })),
        (Some(_), None) => {
            bail!("--log-group (GALLERY_LOG_GROUP) needs --log-stream (GALLERY_LOG_STREAM)")
        }
        (None, Some(_)) => {
            bail!("--log-stream (GALLERY_LOG_STREAM) needs --log-group (GALLERY_LOG_GROUP)")
        }
    }
}

/// How long a stopping server waits for its last log lines to be sent.
const LOG_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Only the server ships its logs: a `users` command run on an instance stays local.
    let serving = matches!(cli.command, None | Some(Command::Serve(_)));
    let ship = if serving { ship_to(&cli)? } else { None };
    let shipping = ship.is_some();
    let logs = init_tracing(cli.log_json, ship);
    let result = run_command(cli).await;
    if let (Err(e), true) = (&result, shipping) {
        // `main` prints it too; this copy reaches CloudWatch (a failed start's evidence).
        tracing::error!(error = %format!("{e:#}"), "gallery stopped with an error");
    }
    logs.flush(LOG_FLUSH_TIMEOUT).await;
    result
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Serve(args)) => serve(&cli.data, &args).await,
        None => serve(&cli.data, &default_serve_args()?).await,
        Some(Command::Migrate) => {
            let db = open_db(&cli.data).await?;
            db.migrate().await.context("applying migrations")?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::Users { command }) => users_command(&cli.data, command).await,
        Some(Command::Migrations) => {
            println!("{}", crate::db::migrations_json()?);
            Ok(())
        }
    }
}

/// `serve`'s settings from the environment and defaults, for a bare `gallery`.
fn default_serve_args() -> anyhow::Result<ServeArgs> {
    let matches =
        ServeArgs::augment_args(clap::Command::new("serve")).try_get_matches_from(["serve"])?;
    Ok(ServeArgs::from_arg_matches(&matches)?)
}

async fn serve(data: &DataArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let config = Config::from_args(data, args)?;
    let public_url = config.public_url.as_ref().map(|u| u.to_string());
    let first_admin = config.first_admin.clone();
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    // The bound address, so `--bind 127.0.0.1:0` prints the port it got.
    let public = public_url.unwrap_or_else(|| format!("http://{addr}/"));
    tracing::info!(%addr, "listening");
    println!("Gallery running at {public}");
    match &first_admin.password {
        Some(_) => println!(
            "Log in as `{}` with the password you configured (only used on an empty database).",
            first_admin.username
        ),
        None => println!(
            "On a new database the first admin `{}` is created and its password printed below.",
            first_admin.username
        ),
    }
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn open_db(data: &DataArgs) -> anyhow::Result<Db> {
    let config = DataConfig::from_args(data)?;
    match &config.database {
        DatabaseSource::Url(url) => Ok(Db::connect_lazy(url)?),
        DatabaseSource::Secret(arn) => {
            let found =
                crate::aws_secrets::database(&config.aws, arn, config.database_ca.as_deref())
                    .await?
                    .with_context(|| format!("secret {arn} names no database host yet"))?;
            Ok(Db::connect_lazy(&found.url)?)
        }
    }
}

fn read_password(prompt: &str) -> anyhow::Result<Password> {
    let raw = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    Password::parse(&raw).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn users_command(data: &DataArgs, command: UsersCommand) -> anyhow::Result<()> {
    let db = open_db(data).await?;
    db.migrate().await.context("applying migrations")?;
    match command {
        UsersCommand::List => {
            let list = users::list_with_counts(&db).await?;
            println!(
                "{:<24} {:<32} {:<6} {:>7}",
                "USERNAME", "FULL NAME", "ADMIN", "IMAGES"
            );
            for u in list {
                println!(
                    "{:<24} {:<32} {:<6} {:>7}",
                    u.username,
                    u.full_name,
                    if u.is_admin { "yes" } else { "no" },
                    u.image_count
                );
            }
        }
        UsersCommand::Add {
            username,
            full_name,
            admin,
        } => {
            let account = NewAccount {
                username: Username::parse(&username)
                    .map_err(|e| anyhow::anyhow!("username: {e}"))?,
                full_name: FullName::parse(&full_name)
                    .map_err(|e| anyhow::anyhow!("--full-name: {e}"))?,
                password: read_password("Password: ")?,
                is_admin: admin,
            };
            let pw = account.password.clone();
            let hash =
                tokio::task::spawn_blocking(move || crate::auth::password::hash(pw.expose()))
                    .await??;
            accounts::insert(&db, &account, &hash)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("added {}", account.username);
        }
        UsersCommand::Passwd { username } => {
            let name = Username::parse(&username).map_err(|e| anyhow::anyhow!("username: {e}"))?;
            let pw = read_password("New password: ")?;
            let hash =
                tokio::task::spawn_blocking(move || crate::auth::password::hash(pw.expose()))
                    .await??;
            if !users::set_password(&db, name.as_str(), &hash).await? {
                bail!("no user named {name}");
            }
            println!("password changed for {name}; their sessions are ended");
        }
        UsersCommand::Delete { username, yes } => {
            let name = Username::parse(&username).map_err(|e| anyhow::anyhow!("username: {e}"))?;
            let user = users::by_name(&db, name.as_str())
                .await?
                .with_context(|| format!("no user named {name}"))?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!("refusing to delete {name} without --yes (no terminal to ask on)");
                }
                eprint!("Delete {name} and all their images? Type the username to confirm: ");
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                if line.trim() != name.as_str() {
                    bail!("not confirmed; nothing deleted");
                }
            }
            let config = DataConfig::from_args(data)?;
            let storage = crate::storage::connect(&config).await?;
            accounts::delete(&db, storage.as_ref(), user.id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

/// For `--help` tests and docs.
pub fn command() -> clap::Command {
    Cli::command()
}
