//! Settings: every knob of the server, each with a flag and an environment variable,
//! and the typed [`Config`] they are validated into before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use crate::domain::{Password, Username};

/// Where data lives. Shared by every subcommand. (`Debug` by hand: the database URL may
/// hold a password.)
#[derive(Clone, Args)]
pub struct DataArgs {
    /// Database: `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB` (add `?sslmode=require` for TLS)
    #[arg(
        long,
        env = "GALLERY_DATABASE_URL",
        default_value = "sqlite://data/gallery.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Image storage: `file://DIR` or `s3://BUCKET[/PREFIX]`
    #[arg(
        long,
        env = "GALLERY_STORAGE",
        default_value = "file://data/images",
        global = true
    )]
    pub storage: String,

    /// S3 endpoint override, e.g. an emulator (`http://127.0.0.1:5000`); implies path-style addressing
    #[arg(long, env = "GALLERY_S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,

    /// AWS region for S3 and Secrets Manager (default: the SDK's region chain, then us-east-1)
    #[arg(long, env = "GALLERY_AWS_REGION", global = true)]
    pub aws_region: Option<String>,

    /// Read the Postgres connection from this Secrets Manager secret instead of --database-url
    /// (JSON with username, password, host, port, dbname; TLS required). Until the secret
    /// names a host the server runs but is not ready.
    #[arg(long, env = "GALLERY_DATABASE_SECRET_ARN", global = true)]
    pub database_secret_arn: Option<String>,

    /// Endpoint override for every AWS service (S3 unless --s3-endpoint, Secrets Manager);
    /// unset, the AWS SDKs' standard AWS_ENDPOINT_URL is honoured the same way
    #[arg(long, env = "GALLERY_AWS_ENDPOINT", global = true)]
    pub aws_endpoint: Option<String>,

    /// PEM bundle of the certificate authorities the PostgreSQL server's certificate must
    /// chain to (on AWS, the RDS bundle the boot script fetches): the connection then
    /// verifies the certificate and the host name (`sslmode=verify-full`)
    #[arg(long, env = "GALLERY_DATABASE_CA_FILE", global = true)]
    pub database_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for DataArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataArgs")
            .field("database_url", &redacted_url(&self.database_url))
            .field("storage", &self.storage)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("aws_region", &self.aws_region)
            .field("database_secret_arn", &self.database_secret_arn)
            .field("aws_endpoint", &self.aws_endpoint)
            .field("database_ca_file", &self.database_ca_file)
            .finish()
    }
}

/// A database URL fit to print: the password, in the user part or as a `password=`
/// parameter, replaced.
pub fn redacted_url(raw: &str) -> String {
    let Ok(mut u) = Url::parse(raw) else {
        return "<unparsable>".to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("REDACTED"));
    }
    if u.query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "REDACTED".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Settings of the HTTP server. (`Debug` by hand: it must not print the admin password.)
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "GALLERY_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// The URL users reach the gallery at; `https://...` makes session cookies Secure
    #[arg(long, env = "GALLERY_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Username of the first admin, created when the database has no users
    #[arg(long, env = "GALLERY_ADMIN_USERNAME", default_value = "admin")]
    pub admin_username: String,

    /// Password of the first admin (only used on an empty database; generated and printed once if unset)
    #[arg(long, env = "GALLERY_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Take the first admin's password from this Secrets Manager secret (JSON with `password`)
    #[arg(long, env = "GALLERY_ADMIN_SECRET_ARN")]
    pub admin_secret_arn: Option<String>,

    /// Largest accepted upload request, in bytes
    #[arg(long, env = "GALLERY_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_upload_bytes: usize,

    /// Largest accepted image, in pixels (width x height, read from the header before decoding)
    #[arg(long, env = "GALLERY_MAX_PIXELS", default_value_t = 50_000_000)]
    pub max_pixels: u64,

    /// Thumbnails per gallery page
    #[arg(long, env = "GALLERY_PAGE_SIZE", default_value_t = 60)]
    pub page_size: u32,

    /// Seconds to keep serving after SIGTERM while reporting not-ready, so a load balancer drains us
    #[arg(long, env = "GALLERY_DRAIN_SECS", default_value_t = 5)]
    pub drain_secs: u64,

    /// Trust the last X-Forwarded-For hop as the client address (set behind a load balancer)
    #[arg(long, env = "GALLERY_BEHIND_PROXY")]
    pub behind_proxy: bool,

    /// Failed logins allowed per username and per client within the lockout window
    #[arg(long, env = "GALLERY_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Length of the login lockout window, in seconds
    #[arg(long, env = "GALLERY_LOGIN_LOCKOUT_SECS", default_value_t = 900)]
    pub login_lockout_secs: u64,

    /// Seconds a client may take to send a request's headers (slow clients are cut off)
    #[arg(long, env = "GALLERY_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds a request body may stall between two pieces before the request fails
    #[arg(long, env = "GALLERY_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,

    /// Seconds a whole upload may take to arrive (a body trickling in is cut off with 408)
    #[arg(long, env = "GALLERY_UPLOAD_TIMEOUT_SECS", default_value_t = 300)]
    pub upload_timeout_secs: u64,

    /// Sessions end after this many seconds without a request (default 12 hours)
    #[arg(long, env = "GALLERY_SESSION_IDLE_SECS", default_value_t = 12 * 3600)]
    pub session_idle_secs: u64,

    /// Folder uploads are received in, a file per photo, before they are checked and
    /// stored; on a disk, not a tmpfs (it holds up to the upload limit per upload in
    /// flight). Default: `.spool` in a `file://` storage folder (storing an original is
    /// then a rename), else `gallery-spool` in the system's temporary folder
    #[arg(long, env = "GALLERY_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Days a deleted image stays in the trash, restorable, before it is deleted for good
    /// (fractions allowed: 0.5 is twelve hours; 0 empties the trash at each purge run)
    #[arg(long, env = "GALLERY_TRASH_DAYS", default_value_t = 30.0)]
    pub trash_days: f64,

    /// Log one line per request (request id, method, path with share tokens blanked,
    /// status, latency): `--access-log false` turns it off (errors are still logged)
    #[arg(long, env = "GALLERY_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("admin_username", &self.admin_username)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("admin_secret_arn", &self.admin_secret_arn)
            .finish_non_exhaustive()
    }
}

/// A setting that failed validation; the message names the flag and the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {flag} ({env}): {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub env: &'static str,
    pub reason: String,
}

fn invalid(flag: &'static str, env: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        env,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
}

/// A database address. It may hold a password, so `Debug` prints it without one.
#[derive(Clone)]
pub struct DatabaseUrl {
    pub kind: DatabaseKind,
    pub url: String,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("kind", &self.kind)
            .field("url", &redacted_url(&self.url))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    Disk(PathBuf),
    S3 { bucket: String, prefix: String },
}

#[derive(Debug, Clone)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

/// Where the database connection comes from.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    Url(DatabaseUrl),
    /// A Secrets Manager secret (ARN) describing a Postgres server.
    Secret(String),
}

impl DatabaseSource {
    pub fn kind(&self) -> DatabaseKind {
        match self {
            DatabaseSource::Url(u) => u.kind.clone(),
            DatabaseSource::Secret(_) => DatabaseKind::Postgres,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DataConfig {
    pub database: DatabaseSource,
    pub storage: StorageUrl,
    pub s3: S3Options,
    /// Secrets Manager and other AWS APIs besides S3.
    pub aws: S3Options,
    /// The CAs a PostgreSQL server's certificate must chain to (verify-full), if given.
    pub database_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload_bytes: usize,
    pub max_pixels: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    pub max_failures: u32,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct FirstAdmin {
    pub username: Username,
    pub password: Option<Password>,
    /// Read the password from this secret instead.
    pub secret_arn: Option<String>,
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub data: DataConfig,
    pub bind: SocketAddr,
    pub public_url: Option<Url>,
    pub first_admin: FirstAdmin,
    pub limits: Limits,
    pub page_size: u32,
    pub drain: Duration,
    pub behind_proxy: bool,
    pub throttle: ThrottleConfig,
    pub session_idle: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub upload_timeout: Duration,
    /// Where uploads are received (see `spool`).
    pub spool_dir: PathBuf,
    /// How long a deleted image stays in the trash (see `trash`).
    pub trash_retention: Duration,
    /// One log line per request (see `access_log`).
    pub access_log: bool,
}

impl Config {
    /// Whether cookies must carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }

    pub fn from_args(data: &DataArgs, serve: &ServeArgs) -> Result<Self, ConfigError> {
        let data = DataConfig::from_args(data)?;
        let bind = serve.bind.parse().map_err(|_| {
            invalid(
                "--bind",
                "GALLERY_BIND",
                format!("`{}` is not an address like 127.0.0.1:8080", serve.bind),
            )
        })?;
        let public_url = match &serve.public_url {
            None => None,
            Some(raw) => {
                let url = Url::parse(raw).map_err(|e| {
                    invalid(
                        "--public-url",
                        "GALLERY_PUBLIC_URL",
                        format!("`{raw}`: {e}"),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(invalid(
                        "--public-url",
                        "GALLERY_PUBLIC_URL",
                        "must be an http:// or https:// URL with a host",
                    ));
                }
                Some(url)
            }
        };
        let username = Username::parse(&serve.admin_username)
            .map_err(|e| invalid("--admin-username", "GALLERY_ADMIN_USERNAME", e.to_string()))?;
        let password = match &serve.admin_password {
            None => None,
            Some(p) => Some(Password::parse(p).map_err(|e| {
                invalid("--admin-password", "GALLERY_ADMIN_PASSWORD", e.to_string())
            })?),
        };
        if serve.max_upload_bytes < 1024 {
            return Err(invalid(
                "--max-upload-bytes",
                "GALLERY_MAX_UPLOAD_BYTES",
                "must be at least 1024",
            ));
        }
        if serve.max_pixels == 0 {
            return Err(invalid(
                "--max-pixels",
                "GALLERY_MAX_PIXELS",
                "must be positive",
            ));
        }
        if !(1..=500).contains(&serve.page_size) {
            return Err(invalid(
                "--page-size",
                "GALLERY_PAGE_SIZE",
                "must be between 1 and 500",
            ));
        }
        if serve.login_max_failures == 0 {
            return Err(invalid(
                "--login-max-failures",
                "GALLERY_LOGIN_MAX_FAILURES",
                "must be positive",
            ));
        }
        for (value, flag, env) in [
            (
                serve.session_idle_secs,
                "--session-idle-secs",
                "GALLERY_SESSION_IDLE_SECS",
            ),
            (
                serve.login_lockout_secs,
                "--login-lockout-secs",
                "GALLERY_LOGIN_LOCKOUT_SECS",
            ),
            (
                serve.header_timeout_secs,
                "--header-timeout-secs",
                "GALLERY_HEADER_TIMEOUT_SECS",
            ),
            (
                serve.body_timeout_secs,
                "--body-timeout-secs",
                "GALLERY_BODY_TIMEOUT_SECS",
            ),
            (
                serve.upload_timeout_secs,
                "--upload-timeout-secs",
                "GALLERY_UPLOAD_TIMEOUT_SECS",
            ),
        ] {
            if value == 0 {
                return Err(invalid(flag, env, "must be positive"));
            }
        }
        if let Some(arn) = &serve.admin_secret_arn {
            if !arn.is_empty() && !arn.starts_with("arn:") {
                return Err(invalid(
                    "--admin-secret-arn",
                    "GALLERY_ADMIN_SECRET_ARN",
                    format!("`{arn}` is not an ARN (arn:aws:secretsmanager:...)"),
                ));
            }
        }
        if !(0.0..=36_500.0).contains(&serve.trash_days) {
            return Err(invalid(
                "--trash-days",
                "GALLERY_TRASH_DAYS",
                format!(
                    "`{}` is not a number of days from 0 to 36500",
                    serve.trash_days
                ),
            ));
        }
        let spool_dir = match (&serve.spool_dir, &data.storage) {
            (Some(dir), _) if dir.as_os_str().is_empty() => {
                return Err(invalid(
                    "--spool-dir",
                    "GALLERY_SPOOL_DIR",
                    "must not be empty",
                ))
            }
            (Some(dir), _) => dir.clone(),
            (None, StorageUrl::Disk(root)) => root.join(".spool"),
            (None, StorageUrl::S3 { .. }) => std::env::temp_dir().join("gallery-spool"),
        };
        Ok(Config {
            data,
            bind,
            public_url,
            first_admin: FirstAdmin {
                username,
                password,
                secret_arn: serve.admin_secret_arn.clone().filter(|a| !a.is_empty()),
            },
            limits: Limits {
                max_upload_bytes: serve.max_upload_bytes,
                max_pixels: serve.max_pixels,
            },
            page_size: serve.page_size,
            drain: Duration::from_secs(serve.drain_secs),
            behind_proxy: serve.behind_proxy,
            throttle: ThrottleConfig {
                max_failures: serve.login_max_failures,
                window: Duration::from_secs(serve.login_lockout_secs),
            },
            session_idle: Duration::from_secs(serve.session_idle_secs),
            header_timeout: Duration::from_secs(serve.header_timeout_secs),
            body_timeout: Duration::from_secs(serve.body_timeout_secs),
            upload_timeout: Duration::from_secs(serve.upload_timeout_secs),
            spool_dir,
            trash_retention: Duration::from_secs_f64(serve.trash_days * 86_400.0),
            access_log: serve.access_log,
        })
    }
}

fn endpoint(
    raw: &Option<String>,
    flag: &'static str,
    env: &'static str,
) -> Result<Option<String>, ConfigError> {
    match raw {
        Some(e) => {
            let url = Url::parse(e).map_err(|err| invalid(flag, env, format!("`{e}`: {err}")))?;
            Ok(Some(url.as_str().trim_end_matches('/').to_string()))
        }
        None => Ok(None),
    }
}

impl DataConfig {
    pub fn from_args(args: &DataArgs) -> Result<Self, ConfigError> {
        let standard = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|v| !v.is_empty());
        let aws_endpoint = match &args.aws_endpoint {
            Some(_) => endpoint(&args.aws_endpoint, "--aws-endpoint", "GALLERY_AWS_ENDPOINT")?,
            None => endpoint(&standard, "--aws-endpoint", "AWS_ENDPOINT_URL")?,
        };
        let s3_endpoint = endpoint(&args.s3_endpoint, "--s3-endpoint", "GALLERY_S3_ENDPOINT")?
            .or(aws_endpoint.clone());
        let database = match args
            .database_secret_arn
            .as_deref()
            .filter(|a| !a.is_empty())
        {
            Some(arn) if arn.starts_with("arn:") => DatabaseSource::Secret(arn.to_string()),
            Some(_) => {
                return Err(invalid(
                    "--database-secret-arn",
                    "GALLERY_DATABASE_SECRET_ARN",
                    "must be a Secrets Manager ARN (arn:aws:secretsmanager:...)",
                ))
            }
            None => DatabaseSource::Url(DatabaseUrl::parse(&args.database_url)?),
        };
        let database_ca = match &args.database_ca_file {
            Some(path) => Some(ca_bundle(path)?),
            None => None,
        };
        let database = match database {
            DatabaseSource::Url(u) => DatabaseSource::Url(match &database_ca {
                Some(ca) => u.verified_by(ca),
                None => u,
            }),
            other => other,
        };
        Ok(DataConfig {
            database,
            storage: StorageUrl::parse(&args.storage)?,
            s3: S3Options {
                endpoint: s3_endpoint,
                region: args.aws_region.clone(),
            },
            aws: S3Options {
                endpoint: aws_endpoint,
                region: args.aws_region.clone(),
            },
            database_ca,
        })
    }
}

/// A readable file holding PEM certificates.
fn ca_bundle(path: &std::path::Path) -> Result<PathBuf, ConfigError> {
    const FLAG: &str = "--database-ca-file";
    const ENV: &str = "GALLERY_DATABASE_CA_FILE";
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(FLAG, ENV, format!("cannot read {}: {e}", path.display())))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid(
            FLAG,
            ENV,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    // Absolute: the driver reads it when it connects, from wherever the process runs.
    std::fs::canonicalize(path).map_err(|e| invalid(FLAG, ENV, format!("{}: {e}", path.display())))
}

impl DatabaseUrl {
    /// The same PostgreSQL URL, verifying the server's certificate against `ca` and its
    /// host name (`sslmode=verify-full`). SQLite URLs are left as they are.
    pub fn verified_by(self, ca: &std::path::Path) -> Self {
        if self.kind != DatabaseKind::Postgres {
            return self;
        }
        let Ok(mut u) = Url::parse(&self.url) else {
            return self;
        };
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| k != "sslmode" && k != "sslrootcert")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("sslmode", "verify-full")
            .append_pair("sslrootcert", &ca.to_string_lossy());
        DatabaseUrl {
            kind: self.kind,
            url: u.to_string(),
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        const FLAG: &str = "--database-url";
        const ENV: &str = "GALLERY_DATABASE_URL";
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(invalid(
                    FLAG,
                    ENV,
                    "sqlite URL needs a file path, e.g. sqlite://data/gallery.db",
                ));
            }
            let url = if raw.contains('?') {
                raw.to_string()
            } else {
                format!("{raw}?mode=rwc")
            };
            Ok(DatabaseUrl {
                kind: DatabaseKind::Sqlite,
                url,
            })
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Url::parse(raw).map_err(|e| invalid(FLAG, ENV, format!("not a valid URL: {e}")))?;
            Ok(DatabaseUrl {
                kind: DatabaseKind::Postgres,
                url: raw.to_string(),
            })
        } else {
            Err(invalid(
                FLAG,
                ENV,
                "must start with sqlite:// or postgres://",
            ))
        }
    }

    /// The file a SQLite URL points at, so its folder can be created.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        if self.kind != DatabaseKind::Sqlite {
            return None;
        }
        let rest = self.url.strip_prefix("sqlite:")?.trim_start_matches("//");
        let path = rest.split('?').next()?;
        (path != ":memory:").then(|| PathBuf::from(path))
    }
}

impl StorageUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        const FLAG: &str = "--storage";
        const ENV: &str = "GALLERY_STORAGE";
        if let Some(dir) = raw.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(invalid(
                    FLAG,
                    ENV,
                    "file:// needs a directory, e.g. file://data/images",
                ));
            }
            Ok(StorageUrl::Disk(PathBuf::from(dir)))
        } else if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid_bucket {
                return Err(invalid(
                    FLAG,
                    ENV,
                    format!("`{bucket}` is not a valid S3 bucket name"),
                ));
            }
            let prefix = prefix.trim_matches('/');
            Ok(StorageUrl::S3 {
                bucket: bucket.to_string(),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
            })
        } else {
            Err(invalid(FLAG, ENV, "must start with file:// or s3://"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_parse() {
        assert_eq!(
            StorageUrl::parse("s3://my-bucket/imgs/").unwrap(),
            StorageUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: "imgs/".into()
            }
        );
        assert_eq!(
            StorageUrl::parse("file://data/images").unwrap(),
            StorageUrl::Disk("data/images".into())
        );
        let err = StorageUrl::parse("ftp://x").unwrap_err().to_string();
        assert!(
            err.contains("--storage") && err.contains("GALLERY_STORAGE"),
            "{err}"
        );
        assert!(StorageUrl::parse("s3://UPPER").is_err());
    }

    #[test]
    fn database_urls_parse() {
        let db = DatabaseUrl::parse("sqlite://data/g.db").unwrap();
        assert_eq!(db.url, "sqlite://data/g.db?mode=rwc");
        assert_eq!(db.sqlite_path(), Some(PathBuf::from("data/g.db")));
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap().kind,
            DatabaseKind::Postgres
        );
        let err = DatabaseUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(err.contains("GALLERY_DATABASE_URL"), "{err}");
    }

    #[test]
    fn debug_output_never_holds_a_database_password() {
        for raw in [
            "postgres://gallery:hunter2@db.example/gallery",
            "postgres://gallery@db.example/gallery?sslmode=require&password=hunter2",
        ] {
            let url = DatabaseUrl::parse(raw).unwrap();
            let shown = format!("{url:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("db.example"), "{shown}");
            let args = DataArgs {
                database_url: raw.to_string(),
                storage: "file://data/images".into(),
                s3_endpoint: None,
                aws_region: None,
                database_secret_arn: None,
                aws_endpoint: None,
                database_ca_file: None,
            };
            let shown = format!("{args:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("REDACTED"), "{shown}");
        }
    }
}
