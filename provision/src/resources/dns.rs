//! Route 53 for `balancer.domain`: the public hosted zone that holds it (the user's,
//! found, never made or removed), the alias records that point the domain at the load
//! balancer, and the certificate's DNS validation record (written for `certificate`).
//! Records carry no tags: ours are those that point at this stack's load balancer, and
//! the validation record of a certificate no other in the account shares.

use aws_sdk_route53::types::{
    AliasTarget, Change as R53Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord,
    ResourceRecordSet, RrType,
};

use crate::engine::context::{Ctx, PLANNED};
use crate::engine::errors::AwsResult;
use crate::engine::graph::Change;
use crate::engine::retry::{retry_while, wait_for};
use crate::resources::balancer;
use crate::resources::scan::{found, Found};

/// Where ACM's validation records point (`_x.acm-validations.aws.`).
const ACM_VALIDATIONS: &str = ".acm-validations.aws.";

/// A hosted zone as ListHostedZones reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Without the `/hostedzone/` prefix.
    pub id: String,
    /// With its trailing dot, lower case (`example.com.`).
    pub name: String,
    pub private: bool,
}

/// `balancer.domain`'s rules: a fully qualified name of two labels or more, each 1-63
/// letters, digits or hyphens (not first or last), 253 characters at most; no wildcard
/// (the gallery is one name), no trailing dot. Empty: no domain.
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Ok(());
    }
    if domain.len() > 253 {
        return Err("at most 253 characters".into());
    }
    if domain != domain.to_ascii_lowercase() {
        return Err(format!("`{domain}`: write it in lower case"));
    }
    if domain.starts_with("*.") {
        return Err(format!(
            "`{domain}`: one name, not a wildcard (the gallery answers on one name)"
        ));
    }
    if domain.ends_with('.') {
        return Err(format!("`{domain}`: leave out the trailing dot"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "`{domain}`: a fully qualified name such as photos.example.com"
        ));
    }
    for label in labels {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "`{domain}`: each part is 1 to 63 letters, digits or hyphens (not first or last)"
            ));
        }
    }
    if domain
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("`{domain}`: a name, not an address"));
    }
    Ok(())
}

/// A name as Route 53 writes it: lower case, with its trailing dot.
pub fn fqdn(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

/// The public zone that holds `domain`: the one of the longest name that is the domain
/// or a parent of it (a delegated `photos.example.com` zone wins over `example.com`).
pub fn best_zone<'a>(zones: &'a [Zone], domain: &str) -> Option<&'a Zone> {
    let domain = fqdn(domain);
    zones
        .iter()
        .filter(|z| !z.private)
        .filter(|z| {
            let zone = fqdn(&z.name);
            domain == zone || domain.ends_with(&format!(".{zone}"))
        })
        .max_by_key(|z| z.name.len())
}

/// Whether an alias record's target is this stack's load balancer: its DNS name is
/// `<lb name>-<digits>.<region>.elb.amazonaws.com` (with `dualstack.` in front for an
/// alias made so), which holds even once the load balancer is gone.
pub fn points_at(lb_name: &str, target: &str) -> bool {
    let target = target.to_ascii_lowercase();
    let target = target.strip_prefix("dualstack.").unwrap_or(&target);
    let Some(rest) = target.strip_prefix(&format!("{}-", lb_name.to_ascii_lowercase())) else {
        return false;
    };
    let Some((id, after)) = rest.split_once('.') else {
        return false;
    };
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && after.contains(".elb.")
}

/// Whether a record is an ACM validation record for `domain` (`_x.<domain>.` CNAME to
/// `_y.<...>.acm-validations.aws.`).
pub fn is_validation_record(domain: &str, r: &ResourceRecordSet) -> bool {
    let name = fqdn(r.name());
    r.r#type() == &RrType::Cname
        && name.starts_with('_')
        && name
            .split_once('.')
            .is_some_and(|(_, rest)| rest == fqdn(domain))
        && r.resource_records()
            .iter()
            .any(|v| fqdn(v.value()).ends_with(ACM_VALIDATIONS))
}

/// The alias record `name` -> the load balancer (`A`, or `AAAA` for a dualstack one).
pub fn alias_record(
    name: &str,
    kind: RrType,
    lb_dns: &str,
    lb_zone: &str,
) -> anyhow::Result<ResourceRecordSet> {
    Ok(ResourceRecordSet::builder()
        .name(fqdn(name))
        .r#type(kind)
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id(lb_zone)
                .dns_name(fqdn(lb_dns))
                // The load balancer answers for its targets itself (503 when none).
                .evaluate_target_health(false)
                .build()?,
        )
        .build()?)
}

/// The CNAME ACM asks for.
pub fn cname_record(name: &str, value: &str) -> anyhow::Result<ResourceRecordSet> {
    Ok(ResourceRecordSet::builder()
        .name(fqdn(name))
        .r#type(RrType::Cname)
        .ttl(300)
        .resource_records(ResourceRecord::builder().value(value).build()?)
        .build()?)
}

fn same_record(a: &ResourceRecordSet, b: &ResourceRecordSet) -> bool {
    let values = |r: &ResourceRecordSet| {
        let mut v: Vec<String> = r
            .resource_records()
            .iter()
            .map(|x| fqdn(x.value()))
            .collect();
        v.sort();
        v
    };
    fqdn(a.name()) == fqdn(b.name())
        && a.r#type() == b.r#type()
        && a.alias_target()
            .map(|t| (t.hosted_zone_id().to_string(), fqdn(t.dns_name())))
            == b.alias_target()
                .map(|t| (t.hosted_zone_id().to_string(), fqdn(t.dns_name())))
        && values(a) == values(b)
}

fn zone_id(id: &str) -> String {
    id.trim_start_matches("/hostedzone/").to_string()
}

/// Every hosted zone of the account, page by page.
pub async fn zones(ctx: &Ctx) -> anyhow::Result<Vec<Zone>> {
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = ctx
            .aws
            .route53
            .list_hosted_zones()
            .set_marker(marker.clone())
            .max_items(100)
            .send()
            .await
            .aws("listing Route 53 hosted zones")?;
        all.extend(out.hosted_zones().iter().map(|z| Zone {
            id: zone_id(z.id()),
            name: fqdn(z.name()),
            private: z.config().is_some_and(|c| c.private_zone()),
        }));
        match out.next_marker() {
            Some(m) if out.is_truncated() => marker = Some(m.to_string()),
            _ => return Ok(all),
        }
    }
}

/// The public zone holding `domain`, if the account has one.
pub async fn find_zone(ctx: &Ctx, domain: &str) -> anyhow::Result<Option<Zone>> {
    if domain.is_empty() {
        return Ok(None);
    }
    Ok(best_zone(&zones(ctx).await?, domain).cloned())
}

/// The graph's `hosted-zone`: looked up, never made (the zone is the user's).
pub async fn ensure_zone(ctx: &Ctx) -> anyhow::Result<Change> {
    let domain = ctx.config.balancer.domain.clone();
    if domain.is_empty() {
        return Ok(Change::Absent);
    }
    match find_zone(ctx, &domain).await? {
        Some(zone) => {
            let note = format!("{domain} is in zone {} ({})", zone.name, zone.id);
            ctx.set(|o| o.hosted_zone = Some(zone.id.clone()));
            Ok(Change::Note(note))
        }
        None => Ok(Change::Note(format!(
            "no public Route 53 zone holds {domain} in this account: the DNS records to create \
             are printed for you (balancer.domain)"
        ))),
    }
}

/// The records at `name` (all types).
pub async fn records_at(
    ctx: &Ctx,
    zone: &str,
    name: &str,
) -> anyhow::Result<Vec<ResourceRecordSet>> {
    let name = fqdn(name);
    let out = ctx
        .aws
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(&name)
        .max_items(20)
        .send()
        .await
        .aws(format!("reading the DNS records of {name}"))?;
    Ok(out
        .resource_record_sets()
        .iter()
        .filter(|r| fqdn(r.name()) == name)
        .cloned()
        .collect())
}

/// The records directly under `domain` (`_x.<domain>.`, where ACM's validation records
/// are), and the domain's own.
async fn records_under(
    ctx: &Ctx,
    zone: &str,
    domain: &str,
) -> anyhow::Result<Vec<ResourceRecordSet>> {
    let domain = fqdn(domain);
    let suffix = format!(".{domain}");
    let mut all = Vec::new();
    let mut start: Option<(String, RrType)> = None;
    // Route 53 lists in the order of reversed labels: the domain, then the names under it.
    loop {
        let mut req = ctx
            .aws
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .max_items(100);
        req = match &start {
            Some((name, kind)) => req.start_record_name(name).start_record_type(kind.clone()),
            None => req.start_record_name(&domain),
        };
        let out = req
            .send()
            .await
            .aws(format!("reading the DNS records under {domain}"))?;
        let mut past = false;
        for r in out.resource_record_sets() {
            let name = fqdn(r.name());
            if name == domain || name.ends_with(&suffix) {
                all.push(r.clone());
            } else {
                past = true;
            }
        }
        match (
            out.is_truncated(),
            out.next_record_name(),
            out.next_record_type(),
        ) {
            (true, Some(n), Some(t)) if !past => start = Some((n.to_string(), t.clone())),
            _ => return Ok(all),
        }
    }
}

/// Apply one change and wait until Route 53 has it on its name servers (`INSYNC`).
async fn change(
    ctx: &Ctx,
    zone: &str,
    action: ChangeAction,
    record: ResourceRecordSet,
    what: &str,
) -> anyhow::Result<()> {
    let batch = ChangeBatch::builder()
        .comment(format!("gallery stack {}", ctx.stack()))
        .changes(
            R53Change::builder()
                .action(action.clone())
                .resource_record_set(record)
                .build()?,
        )
        .build()?;
    // One change at a time per zone: another in flight answers PriorRequestNotComplete.
    let out = retry_while(what, &["PriorRequestNotComplete"], ctx.timing, || {
        ctx.aws
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch.clone())
            .send()
    })
    .await;
    let info = match out {
        Ok(out) => out.change_info().cloned(),
        Err(e) => return Err(e),
    };
    let Some(info) = info else { return Ok(()) };
    let id = info.id().to_string();
    wait_for(
        &format!("Route 53 to serve the change ({what})"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async {
            if info.status() == &ChangeStatus::Insync {
                return Ok(Some(()));
            }
            let out = ctx
                .aws
                .route53
                .get_change()
                .id(&id)
                .send()
                .await
                .aws(format!("checking Route 53 change {id}"))?;
            Ok(out
                .change_info()
                .is_some_and(|c| c.status() == &ChangeStatus::Insync)
                .then_some(()))
        },
    )
    .await
}

/// Write `record` (UPSERT) unless it is there already; true if written.
pub async fn upsert(
    ctx: &Ctx,
    zone: &str,
    record: ResourceRecordSet,
    what: &str,
) -> anyhow::Result<bool> {
    let have = records_at(ctx, zone, record.name()).await?;
    if have.iter().any(|r| same_record(r, &record)) {
        return Ok(false);
    }
    change(ctx, zone, ChangeAction::Upsert, record, what).await?;
    Ok(true)
}

/// Delete `record` as listed (Route 53 deletes only an exact match); one gone already
/// (a lost answer's retry) is success.
pub async fn delete(
    ctx: &Ctx,
    zone: &str,
    record: ResourceRecordSet,
    what: &str,
) -> anyhow::Result<()> {
    match change(ctx, zone, ChangeAction::Delete, record, what).await {
        Ok(()) => Ok(()),
        Err(e)
            if format!("{e:#}").contains("InvalidChangeBatch")
                && format!("{e:#}").contains("not found") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The load balancer's DNS name and its canonical zone, for an alias.
async fn balancer_target(ctx: &Ctx) -> anyhow::Result<Option<(String, String, bool)>> {
    Ok(balancer::find_load_balancer(ctx).await?.and_then(|lb| {
        let dns = lb.dns_name()?.to_string();
        let zone = lb.canonical_hosted_zone_id()?.to_string();
        let dualstack = lb
            .ip_address_type()
            .is_some_and(|t| t.as_str().starts_with("dualstack"));
        Some((dns, zone, dualstack))
    }))
}

/// The graph's `dns-records`: the domain's alias records to the load balancer (A, and
/// AAAA if it is dualstack). Without a zone, what to create is printed.
pub async fn ensure_records(ctx: &Ctx) -> anyhow::Result<Change> {
    let domain = ctx.config.balancer.domain.clone();
    if domain.is_empty() {
        return Ok(Change::Absent);
    }
    let zone = ctx.out().hosted_zone;
    let planned = ctx.out().load_balancer_arn.as_deref() == Some(PLANNED);
    let target = if planned {
        None
    } else {
        balancer_target(ctx).await?
    };
    let Some((dns, lb_zone, dualstack)) = target else {
        return Ok(match zone {
            Some(_) => Change::Create,
            None => Change::Note(format!(
                "point {domain} at the load balancer once it exists"
            )),
        });
    };
    let Some(zone) = zone else {
        let note = format!(
            "create this DNS record for {domain} where its domain is served: an alias (or CNAME) \
             {} -> {dns}",
            fqdn(&domain)
        );
        ctx.progress("dns-record", &domain, &note);
        return Ok(Change::Note(note));
    };
    let mut kinds = vec![RrType::A];
    if dualstack {
        kinds.push(RrType::Aaaa);
    }
    let mut changes = Vec::new();
    let have = records_at(ctx, &zone, &domain).await?;
    for kind in kinds {
        let record = alias_record(&domain, kind.clone(), &dns, &lb_zone)?;
        if have.iter().any(|r| same_record(r, &record)) {
            continue;
        }
        // A record of that name the user made (not an alias of ours) is not overwritten.
        if let Some(other) = have.iter().find(|r| {
            r.r#type() == &kind
                && !r
                    .alias_target()
                    .is_some_and(|t| points_at(&balancer::lb_name(ctx), t.dns_name()))
        }) {
            anyhow::bail!(
                "{} already has a {} record not made by this stack ({}): remove it, or choose another \
                 balancer.domain",
                fqdn(&domain),
                kind.as_str(),
                other
                    .alias_target()
                    .map(|t| t.dns_name().to_string())
                    .or_else(|| other.resource_records().first().map(|v| v.value().to_string()))
                    .unwrap_or_default()
            );
        }
        changes.push(format!("{} {}", kind.as_str(), fqdn(&domain)));
        if !ctx.planning() {
            let what = format!("pointing {domain} ({}) at the load balancer", kind.as_str());
            change(ctx, &zone, ChangeAction::Upsert, record, &what).await?;
            ctx.progress(
                "dns-record",
                &format!("{} {domain}", kind.as_str()),
                &format!("alias of {dns}"),
            );
        }
    }
    Ok(if changes.is_empty() {
        Change::Unchanged
    } else if have.is_empty() {
        Change::Create
    } else {
        Change::Update(changes.join("; "))
    })
}

/// What of the zone is ours: the domain's alias records to this stack's load balancer,
/// and the validation records under it that no other certificate shares.
async fn ours(ctx: &Ctx) -> anyhow::Result<Option<(Zone, Vec<ResourceRecordSet>)>> {
    let domain = ctx.config.balancer.domain.clone();
    let Some(zone) = find_zone(ctx, &domain).await? else {
        return Ok(None);
    };
    let lb = balancer::lb_name(ctx);
    let all = records_under(ctx, &zone.id, &domain).await?;
    let validation_is_ours =
        !crate::resources::certificate::shared_with_another(ctx, &domain).await?;
    let mine = all
        .into_iter()
        .filter(|r| {
            let alias = fqdn(r.name()) == fqdn(&domain)
                && matches!(r.r#type(), RrType::A | RrType::Aaaa)
                && r.alias_target()
                    .is_some_and(|t| points_at(&lb, t.dns_name()));
            alias || (validation_is_ours && is_validation_record(&domain, r))
        })
        .collect();
    Ok(Some((zone, mine)))
}

pub async fn delete_records(ctx: &Ctx) -> anyhow::Result<Change> {
    let Some((zone, mine)) = ours(ctx).await? else {
        return Ok(Change::Absent);
    };
    if mine.is_empty() {
        return Ok(Change::Absent);
    }
    for r in mine {
        let what = format!(
            "deleting the DNS record {} {}",
            r.r#type().as_str(),
            fqdn(r.name())
        );
        let label = format!("{} {}", r.r#type().as_str(), fqdn(r.name()));
        delete(ctx, &zone.id, r, &what).await?;
        ctx.progress("dns-record", &label, "deleted");
    }
    Ok(Change::Delete)
}

/// This module's part of the scan: the records `delete_records` removes.
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let Some((zone, mine)) = ours(ctx).await? else {
        return Ok(Vec::new());
    };
    Ok(mine
        .iter()
        .map(|r| {
            let to = r
                .alias_target()
                .map(|t| format!("alias of {}", t.dns_name()))
                .or_else(|| {
                    r.resource_records()
                        .first()
                        .map(|v| format!("-> {}", v.value()))
                })
                .unwrap_or_default();
            found(
                "dns-record",
                format!(
                    "{} {} (zone {})",
                    r.r#type().as_str(),
                    fqdn(r.name()),
                    zone.name
                ),
                to,
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(id: &str, name: &str, private: bool) -> Zone {
        Zone {
            id: id.into(),
            name: name.into(),
            private,
        }
    }

    #[test]
    fn the_longest_public_parent_zone_holds_the_domain() {
        let zones = [
            zone("Z1", "example.com.", false),
            zone("Z2", "photos.example.com.", true),
            zone("Z3", "sub.example.com.", false),
            zone("Z4", "ample.com.", false),
            zone("Z5", "com.", false),
        ];
        assert_eq!(best_zone(&zones, "photos.example.com").unwrap().id, "Z1");
        assert_eq!(best_zone(&zones, "a.sub.example.com").unwrap().id, "Z3");
        assert_eq!(best_zone(&zones, "sub.example.com").unwrap().id, "Z3");
        // A zone is a parent by whole labels: ample.com. does not hold example.com.
        assert_eq!(
            best_zone(&zones[..1], "photos.example.com").unwrap().id,
            "Z1"
        );
        assert_eq!(best_zone(&zones[3..4], "photos.example.com"), None);
        assert_eq!(best_zone(&zones, "example.org"), None);
        // A private zone is not what the internet resolves.
        assert_eq!(best_zone(&zones[1..2], "photos.example.com"), None);
        assert_eq!(best_zone(&zones, "PHOTOS.Example.com.").unwrap().id, "Z1");
    }

    #[test]
    fn domains_are_checked_with_the_reason() {
        for ok in ["", "photos.example.com", "a-b.c9.example.test", "x.io"] {
            assert_eq!(check_domain(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("localhost", "fully qualified"),
            ("Photos.example.com", "lower case"),
            ("*.example.com", "wildcard"),
            ("photos.example.com.", "trailing dot"),
            ("-a.example.com", "hyphens"),
            ("a..example.com", "1 to 63"),
            ("a_b.example.com", "letters, digits"),
            ("10.0.0.1", "address"),
        ] {
            let err = check_domain(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(check_domain(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn an_alias_is_ours_when_it_targets_this_stacks_load_balancer() {
        let lb = "gallery-alb";
        assert!(points_at(
            lb,
            "gallery-alb-1234567890.us-east-1.elb.amazonaws.com."
        ));
        assert!(points_at(
            lb,
            "dualstack.Gallery-ALB-1.us-east-1.elb.amazonaws.com"
        ));
        // Another stack whose name starts with ours.
        assert!(!points_at(
            lb,
            "gallery-alb-x-alb-1.us-east-1.elb.amazonaws.com"
        ));
        assert!(!points_at(lb, "other-alb-1.us-east-1.elb.amazonaws.com"));
        assert!(!points_at(lb, "gallery-alb-1.example.com"));
    }

    #[test]
    fn records_are_built_as_route_53_wants_them() {
        let a = alias_record(
            "photos.example.com",
            RrType::A,
            "gallery-alb-1.us-east-1.elb.amazonaws.com",
            "Z35SXDOTRQ7X7K",
        )
        .unwrap();
        assert_eq!(a.name(), "photos.example.com.");
        let t = a.alias_target().unwrap();
        assert_eq!(t.dns_name(), "gallery-alb-1.us-east-1.elb.amazonaws.com.");
        assert_eq!(t.hosted_zone_id(), "Z35SXDOTRQ7X7K");
        assert!(a.ttl().is_none(), "an alias has no TTL");
        let c = cname_record("_abc.photos.example.com.", "_def.xyz.acm-validations.aws.").unwrap();
        assert_eq!(c.r#type(), &RrType::Cname);
        assert_eq!(c.ttl(), Some(300));
        assert!(is_validation_record("photos.example.com", &c));
        assert!(!is_validation_record("example.com", &c));
        assert!(!is_validation_record("photos.example.com", &a));
        assert!(same_record(
            &c,
            &cname_record("_ABC.photos.example.com", "_def.xyz.acm-validations.aws").unwrap()
        ));
        assert!(!same_record(&c, &a));
    }
}
