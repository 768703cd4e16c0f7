//! Settings kept in AWS Secrets Manager, read with the instance role at startup: the
//! database connection (written by `provision`, which adds the host once RDS has one)
//! and the first admin's password. Nothing read here is logged.

use anyhow::{anyhow, Context};
use serde::Deserialize;

use crate::config::{DatabaseKind, DatabaseUrl, S3Options};
use crate::domain::Password;

pub async fn client(options: &S3Options) -> aws_sdk_secretsmanager::Client {
    let (shared, region) = crate::aws::sdk_config(options).await;
    let mut builder = aws_sdk_secretsmanager::config::Builder::from(&shared).region(region);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_secretsmanager::Client::from_conf(builder.build())
}

async fn fetch<T: for<'de> Deserialize<'de>>(options: &S3Options, arn: &str) -> anyhow::Result<T> {
    let out = client(options)
        .await
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "reading secret {arn}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    let text = out
        .secret_string()
        .ok_or_else(|| anyhow!("secret {arn} holds no text"))?;
    // The error names the secret, never its content.
    serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "secret {arn} is not the expected JSON ({})",
            e.classify_name()
        )
    })
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "missing or mistyped field",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[derive(Deserialize)]
struct DbSecret {
    username: String,
    password: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    dbname: Option<String>,
    /// `require` unless the secret says otherwise (RDS for PostgreSQL forces TLS).
    #[serde(default)]
    sslmode: Option<String>,
    /// Set by `provision` when it restored the database from a snapshot: names that
    /// restore, so the sessions in the snapshot are ended once (`store::sessions`).
    #[serde(default)]
    restored: Option<String>,
}

/// The database the secret names.
pub struct SecretDatabase {
    pub url: DatabaseUrl,
    /// The restore that made this database, if it was restored.
    pub restored: Option<String>,
}

/// The connection URL, or `None` while the secret has no host yet (RDS still creating).
/// With `ca`, the server's certificate and host name are verified against it.
pub async fn database(
    options: &S3Options,
    arn: &str,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<Option<SecretDatabase>> {
    let secret: DbSecret = fetch(options, arn).await?;
    let Some(host) = secret.host.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let mut url = url::Url::parse("postgres://localhost/").context("base URL")?;
    url.set_host(Some(&host))
        .map_err(|e| anyhow!("secret {arn}: bad host: {e}"))?;
    url.set_port(Some(secret.port.unwrap_or(5432)))
        .map_err(|_| anyhow!("secret {arn}: bad port"))?;
    url.set_username(&secret.username)
        .map_err(|_| anyhow!("secret {arn}: bad username"))?;
    url.set_password(Some(&secret.password))
        .map_err(|_| anyhow!("secret {arn}: bad password"))?;
    url.set_path(secret.dbname.as_deref().unwrap_or("postgres"));
    url.query_pairs_mut()
        .append_pair("sslmode", secret.sslmode.as_deref().unwrap_or("require"));
    let url = DatabaseUrl {
        kind: DatabaseKind::Postgres,
        url: url.to_string(),
    };
    let url = match ca {
        Some(ca) => url.verified_by(ca),
        None => {
            tracing::warn!("no --database-ca-file: the database connection is encrypted but its certificate is not verified");
            url
        }
    };
    Ok(Some(SecretDatabase {
        url,
        restored: secret.restored.filter(|r| !r.is_empty()),
    }))
}

#[derive(Deserialize)]
struct AdminSecret {
    password: String,
}

pub async fn admin_password(options: &S3Options, arn: &str) -> anyhow::Result<Password> {
    let secret: AdminSecret = fetch(options, arn).await?;
    Password::parse(&secret.password).map_err(|e| anyhow!("secret {arn}: {e}"))
}
