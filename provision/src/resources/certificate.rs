//! The ACM certificate for `balancer.domain`: requested with DNS validation (tagged for
//! the stack, an idempotency token of this run), its validation record written in the
//! domain's Route 53 zone (or printed for the user to create), waited for until issued;
//! deleted by `down` once no listener uses it. A `balancer.certificate_arn` of the user's
//! is used as given and never deleted.

use std::time::{Duration, Instant};

use aws_sdk_acm::types::{
    CertificateDetail, CertificateStatus, DomainValidation, Tag, ValidationMethod,
};
use sha2::{Digest, Sha256};

use crate::engine::context::{Ctx, PLANNED, ROLE_TAG, STACK_TAG};
use crate::engine::errors::{already, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{retry_while, wait_for};
use crate::resources::dns;
use crate::resources::scan::{found, Found};

/// The certificate the HTTPS listener serves: the user's `balancer.certificate_arn`, or
/// the one this module requested for `balancer.domain` (none: plain HTTP).
pub fn arn(ctx: &Ctx) -> String {
    let given = &ctx.config.balancer.certificate_arn;
    if !given.is_empty() {
        return given.clone();
    }
    ctx.out().certificate_arn.unwrap_or_default()
}

/// The idempotency token of this run's request: ACM answers a repeat of it (the SDK's
/// retry after a lost answer) with the same certificate for an hour, so it is this run's
/// own, never an earlier one's (whose certificate `down` may have deleted since).
pub fn token(run: &str, stack: &str, domain: &str) -> String {
    let digest = Sha256::digest(format!("{stack}/{domain}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    // \w+, at most 32 characters.
    format!("{run}{hex}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect()
}

/// A certificate summary of the account: (arn, domain, status).
type Summary = (String, String, String);

/// Every certificate of the region, page by page (all statuses, every key type).
async fn all(ctx: &Ctx) -> anyhow::Result<Vec<Summary>> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = ctx
            .aws
            .acm
            .list_certificates()
            .set_next_token(next.clone())
            .max_items(100)
            .send()
            .await
            .aws("listing ACM certificates")?;
        out.extend(page.certificate_summary_list().iter().map(|c| {
            (
                c.certificate_arn().unwrap_or_default().to_string(),
                c.domain_name().unwrap_or_default().to_string(),
                c.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            )
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// Whether `arn` carries this stack's tag (a certificate deleted meanwhile: no).
async fn is_ours(ctx: &Ctx, arn: &str) -> anyhow::Result<bool> {
    let Some(out) = ctx
        .aws
        .acm
        .list_tags_for_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .aws_unless(
            format!("reading the tags of {arn}"),
            &["ResourceNotFoundException"],
        )?
    else {
        return Ok(false);
    };
    Ok(out
        .tags()
        .iter()
        .any(|t| t.key() == STACK_TAG && t.value() == Some(ctx.stack())))
}

/// This stack's certificates (any domain: teardown works from tags alone).
pub async fn find(ctx: &Ctx) -> anyhow::Result<Vec<Summary>> {
    let mut mine = Vec::new();
    for c in all(ctx).await? {
        if is_ours(ctx, &c.0).await? {
            mine.push(c);
        }
    }
    Ok(mine)
}

/// Whether another certificate of the account (not this stack's) is for `domain`: ACM
/// gives every certificate of a name the same validation record, which then stays.
pub async fn shared_with_another(ctx: &Ctx, domain: &str) -> anyhow::Result<bool> {
    for c in all(ctx).await? {
        if c.1.eq_ignore_ascii_case(domain) && !is_ours(ctx, &c.0).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn describe(ctx: &Ctx, arn: &str) -> anyhow::Result<Option<CertificateDetail>> {
    Ok(ctx
        .aws
        .acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .aws_unless(
            format!("reading certificate {arn}"),
            &["ResourceNotFoundException"],
        )?
        .and_then(|o| o.certificate().cloned()))
}

/// The validation record ACM asks for `domain`: (name, value). ACM fills it in some
/// seconds after the request; until then the option is there without its record.
pub fn validation_record(detail: &CertificateDetail, domain: &str) -> Option<(String, String)> {
    detail
        .domain_validation_options()
        .iter()
        .find(|v: &&DomainValidation| v.domain_name().eq_ignore_ascii_case(domain))
        .and_then(|v| v.resource_record())
        .map(|r| (r.name().to_string(), r.value().to_string()))
}

fn status_of(detail: &CertificateDetail) -> String {
    detail
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

/// The graph's `certificate`.
pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let domain = ctx.config.balancer.domain.clone();
    if !ctx.config.balancer.certificate_arn.is_empty() {
        return Ok(Change::Note(
            "balancer.certificate_arn is used as given".into(),
        ));
    }
    if domain.is_empty() {
        return Ok(Change::Absent);
    }
    let mine = find(ctx).await?;
    let for_domain: Vec<&Summary> = mine
        .iter()
        .filter(|c| c.1.eq_ignore_ascii_case(&domain))
        .collect();
    let usable = for_domain
        .iter()
        .find(|c| c.2 == CertificateStatus::Issued.as_str())
        .or_else(|| {
            for_domain
                .iter()
                .find(|c| c.2 == CertificateStatus::PendingValidation.as_str())
        })
        .map(|c| (c.0.clone(), c.2.clone()));
    match usable {
        Some((arn, status)) if status == CertificateStatus::Issued.as_str() => {
            ctx.set(|o| o.certificate_arn = Some(arn));
            Ok(Change::Unchanged)
        }
        Some((arn, _)) if ctx.planning() => {
            ctx.set(|o| o.certificate_arn = Some(arn));
            Ok(Change::Update("validation pending".into()))
        }
        Some((arn, _)) => {
            validate(ctx, &arn, &domain).await?;
            ctx.set(|o| o.certificate_arn = Some(arn));
            Ok(Change::Update("validated".into()))
        }
        None if ctx.planning() => {
            ctx.set(|o| o.certificate_arn = Some(PLANNED.into()));
            Ok(Change::Create)
        }
        None => {
            let arn = request(ctx, &domain).await?;
            validate(ctx, &arn, &domain).await?;
            ctx.set(|o| o.certificate_arn = Some(arn));
            Ok(Change::Create)
        }
    }
}

async fn request(ctx: &Ctx, domain: &str) -> anyhow::Result<String> {
    let tags = vec![
        Tag::builder().key(STACK_TAG).value(ctx.stack()).build()?,
        Tag::builder().key(ROLE_TAG).value("certificate").build()?,
        Tag::builder()
            .key("Name")
            .value(ctx.name("certificate"))
            .build()?,
    ];
    let out = ctx
        .aws
        .acm
        .request_certificate()
        .domain_name(domain)
        .validation_method(ValidationMethod::Dns)
        .idempotency_token(token(&ctx.aws.run, ctx.stack(), domain))
        .set_tags(Some(tags))
        .send()
        .await
        .aws(format!("requesting a certificate for {domain}"))?;
    let arn = out
        .certificate_arn()
        .ok_or_else(|| anyhow::anyhow!("ACM answered no ARN for the certificate of {domain}"))?
        .to_string();
    ctx.progress("certificate", domain, &format!("requested ({arn})"));
    Ok(arn)
}

/// Write (or print) the validation record and wait until ACM has issued the certificate,
/// saying how long it has been waiting.
async fn validate(ctx: &Ctx, arn: &str, domain: &str) -> anyhow::Result<()> {
    // ACM fills in the record some seconds after the request (and a new certificate may
    // be unknown for a moment).
    let (name, value) = wait_for(
        &format!("ACM to name the validation record of {domain}"),
        ctx.timing,
        ctx.timing.visibility,
        || async {
            Ok(describe(ctx, arn)
                .await?
                .and_then(|d| validation_record(&d, domain)))
        },
    )
    .await?;
    let zone = ctx.out().hosted_zone;
    let bound = ctx.timing.wait_timeout;
    match &zone {
        Some(zone) => {
            let record = dns::cname_record(&name, &value)?;
            if dns::upsert(ctx, zone, record, &format!("writing the validation record of {domain}")).await? {
                ctx.progress(
                    "certificate",
                    domain,
                    &format!("validation record {} written", dns::fqdn(&name)),
                );
            }
        }
        None => ctx.progress(
            "certificate",
            domain,
            &format!(
                "no Route 53 zone for {domain} in this account: create this DNS record where the domain \
                 is served, and ACM issues the certificate once it sees it: CNAME {} -> {} \
                 (waiting up to {} min; or set balancer.certificate_arn to a certificate of your own)",
                dns::fqdn(&name),
                value,
                bound.as_secs() / 60
            ),
        ),
    }
    let started = Instant::now();
    let last = std::sync::Mutex::new((String::new(), Instant::now()));
    let what = match zone {
        Some(_) => format!("ACM to issue the certificate for {domain}"),
        None => format!(
            "ACM to issue the certificate for {domain} (it needs the CNAME printed above; \
             balancer.domain has no Route 53 zone in this account)"
        ),
    };
    wait_for(&what, ctx.timing, bound, || async {
        let Some(detail) = describe(ctx, arn).await? else {
            return Ok(None);
        };
        let status = status_of(&detail);
        if let Ok(mut seen) = last.lock() {
            if seen.0 != status || seen.1.elapsed() >= Duration::from_secs(60) {
                ctx.progress(
                    "certificate",
                    domain,
                    &format!("{status} after {}s", started.elapsed().as_secs()),
                );
                *seen = (status.clone(), Instant::now());
            }
        }
        match detail.status() {
            Some(CertificateStatus::Issued) => Ok(Some(())),
            Some(CertificateStatus::PendingValidation) | None => Ok(None),
            Some(other) => anyhow::bail!(
                "the certificate for {domain} ({arn}) is {}{}: `provision down` removes it, then run `up` again",
                other.as_str(),
                detail
                    .failure_reason()
                    .map(|r| format!(" ({})", r.as_str()))
                    .unwrap_or_default()
            ),
        }
    })
    .await
}

/// `down`: this stack's certificates go once no load balancer uses them (ACM answers
/// ResourceInUseException until the listener's load balancer is gone, and for a while
/// after). The user's `certificate_arn` carries no tag of ours and stays.
pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let mine = find(ctx).await?;
    if mine.is_empty() {
        return Ok(Change::Absent);
    }
    for (arn, domain, _) in &mine {
        retry_while(
            &format!("deleting the certificate for {domain}"),
            &["ResourceInUseException"],
            ctx.timing,
            || async {
                already(
                    ctx.aws
                        .acm
                        .delete_certificate()
                        .certificate_arn(arn)
                        .send()
                        .await,
                    &["ResourceNotFoundException"],
                )
            },
        )
        .await?;
        ctx.progress("certificate", domain, "deleted");
    }
    Ok(Change::Delete)
}

/// This module's part of the scan: the stack's certificates.
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    Ok(find(ctx)
        .await?
        .into_iter()
        .map(|(arn, domain, status)| found("certificate", arn, format!("{domain} {status}")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_acm::types::ResourceRecord;

    #[test]
    fn tokens_are_this_runs_and_fit_acm() {
        let a = token("0a1b2c3d", "gallery", "photos.example.com");
        assert!(
            a.len() <= 32 && a.chars().all(|c| c.is_ascii_alphanumeric()),
            "{a}"
        );
        assert!(a.starts_with("0a1b2c3d"));
        assert_eq!(a, token("0a1b2c3d", "gallery", "photos.example.com"));
        assert_ne!(a, token("ffffffff", "gallery", "photos.example.com"));
        assert_ne!(a, token("0a1b2c3d", "other", "photos.example.com"));
    }

    #[test]
    fn the_validation_record_is_read_once_acm_has_named_it() {
        let option = |record: Option<ResourceRecord>| {
            CertificateDetail::builder()
                .domain_validation_options(
                    DomainValidation::builder()
                        .domain_name("photos.example.com")
                        .set_resource_record(record)
                        .build()
                        .unwrap(),
                )
                .build()
        };
        assert_eq!(validation_record(&option(None), "photos.example.com"), None);
        let named = option(Some(
            ResourceRecord::builder()
                .name("_a.photos.example.com.")
                .r#type(aws_sdk_acm::types::RecordType::Cname)
                .value("_b.c.acm-validations.aws.")
                .build()
                .unwrap(),
        ));
        assert_eq!(
            validation_record(&named, "Photos.example.com"),
            Some((
                "_a.photos.example.com.".into(),
                "_b.c.acm-validations.aws.".into()
            ))
        );
        assert_eq!(validation_record(&named, "other.example.com"), None);
    }
}
