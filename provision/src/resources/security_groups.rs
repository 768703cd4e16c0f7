//! Security groups: the load balancer's (its listener ports from the allowed CIDRs), the
//! app's (its port from the load balancer only; no SSH), the database's (5432 from the
//! app only). Rules are converged exactly: missing ones added, extra ones removed.

use crate::resources::scan::{found, Found};
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup, UserIdGroupPair,
};

use crate::engine::context::{Ctx, PLANNED};
use crate::engine::errors::{already, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{create_once, retry_while, until_visible, Created, EC2_NOT_YET};
use crate::engine::tags::{ec2_filters, ec2_role, ec2_tags};
use crate::resources::network::{summarize, wait_interfaces_gone};

pub const ROLES: [&str; 3] = ["lb", "app", "db"];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Source {
    Cidr(String),
    Group(String),
    /// Only ever found (added by hand), never wanted: read so that `up` removes it.
    Ipv6(String),
    PrefixList(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Rule {
    pub egress: bool,
    pub protocol: String,
    pub from: i32,
    pub to: i32,
    pub source: Source,
}

fn tcp(egress: bool, port: i32, source: Source) -> Rule {
    Rule {
        egress,
        protocol: "tcp".into(),
        from: port,
        to: port,
        source,
    }
}

/// The rules each group must have, given the three group ids.
pub fn desired_rules(ctx: &Ctx, role: &str, lb: &str, app: &str, db: &str) -> Vec<Rule> {
    let port = i32::from(ctx.config.app.port);
    let mut rules = Vec::new();
    match role {
        "lb" => {
            let mut ports = vec![80];
            if ctx.config.https() {
                ports.push(443);
            }
            for cidr in &ctx.config.network.allowed_cidrs {
                for p in &ports {
                    rules.push(tcp(false, *p, Source::Cidr(cidr.clone())));
                }
            }
            rules.push(tcp(true, port, Source::Group(app.into())));
        }
        "app" => {
            rules.push(tcp(false, port, Source::Group(lb.into())));
            // HTTPS to AWS APIs (S3 through the gateway endpoint, Secrets Manager) and the database.
            rules.push(tcp(true, 443, Source::Cidr("0.0.0.0/0".into())));
            rules.push(tcp(true, 5432, Source::Group(db.into())));
        }
        _ => rules.push(tcp(false, 5432, Source::Group(app.into()))),
    }
    rules.sort();
    rules
}

pub fn actual_rules(sg: &SecurityGroup) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (egress, perms) in [
        (false, sg.ip_permissions()),
        (true, sg.ip_permissions_egress()),
    ] {
        for p in perms {
            let protocol = p.ip_protocol().unwrap_or("-1").to_string();
            let from = p.from_port().unwrap_or(-1);
            let to = p.to_port().unwrap_or(-1);
            for r in p.ip_ranges() {
                if let Some(c) = r.cidr_ip() {
                    rules.push(Rule {
                        egress,
                        protocol: protocol.clone(),
                        from,
                        to,
                        source: Source::Cidr(c.into()),
                    });
                }
            }
            let sources =
                p.user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id().map(|id| Source::Group(id.into())))
                    .chain(
                        p.ipv6_ranges()
                            .iter()
                            .filter_map(|r| r.cidr_ipv6().map(|c| Source::Ipv6(c.into()))),
                    )
                    .chain(p.prefix_list_ids().iter().filter_map(|l| {
                        l.prefix_list_id().map(|id| Source::PrefixList(id.into()))
                    }));
            for source in sources {
                rules.push(Rule {
                    egress,
                    protocol: protocol.clone(),
                    from,
                    to,
                    source,
                });
            }
        }
    }
    rules.sort();
    rules
}

fn permission(rule: &Rule) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(&rule.protocol);
    if rule.protocol != "-1" {
        b = b.from_port(rule.from).to_port(rule.to);
    }
    match &rule.source {
        Source::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
        Source::Group(g) => b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
        Source::Ipv6(c) => b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build()),
        Source::PrefixList(id) => {
            b.prefix_list_ids(PrefixListId::builder().prefix_list_id(id).build())
        }
    }
    .build()
}

async fn find(ctx: &Ctx) -> anyhow::Result<Vec<SecurityGroup>> {
    Ok(ctx
        .aws
        .ec2
        .describe_security_groups()
        .set_filters(Some(ec2_filters(ctx, None)))
        .send()
        .await
        .aws("finding security groups")?
        .security_groups()
        .to_vec())
}

pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let vpc = ctx.need("the VPC", |o| o.vpc.clone())?;
    let existing = if vpc == PLANNED {
        Vec::new()
    } else {
        find(ctx).await?
    };
    let nothing_existed = existing.is_empty();
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    for role in ROLES {
        let id = match existing.iter().find(|g| ec2_role(g.tags()) == Some(role)) {
            Some(g) => g.group_id().unwrap_or_default().to_string(),
            None if ctx.planning() => {
                changes.push(format!("create {role} group"));
                PLANNED.to_string()
            }
            None => {
                let name = ctx.name(&format!("{role}-sg"));
                let lookup = || async {
                    Ok(find(ctx)
                        .await?
                        .iter()
                        .find(|g| ec2_role(g.tags()) == Some(role))
                        .and_then(|g| g.group_id().map(String::from)))
                };
                let id = match create_once(
                    &format!("creating security group {name}"),
                    ctx.timing,
                    // The name is taken in the VPC: by this create, its answer lost.
                    &["InvalidGroup.Duplicate"],
                    || {
                        ctx.aws
                            .ec2_once
                            .create_security_group()
                            .group_name(&name)
                            .description(format!("gallery {} ({role})", ctx.stack()))
                            .vpc_id(&vpc)
                            .tag_specifications(ec2_tags(ctx, ResourceType::SecurityGroup, role))
                            .send()
                    },
                    lookup,
                )
                .await?
                {
                    Created::New(out) => out.group_id().unwrap_or_default().to_string(),
                    Created::Found(id) => id,
                };
                ctx.progress("security-group", &id, &format!("created ({role})"));
                changes.push(format!("create {role} group"));
                id
            }
        };
        ids.push(id);
    }
    ctx.set(|o| {
        o.lb_sg = Some(ids[0].clone());
        o.app_sg = Some(ids[1].clone());
        o.db_sg = Some(ids[2].clone());
    });
    // Groups created just now have only the default egress rule; re-read them, by id (a
    // listing by tag may not show them yet).
    let current = if ctx.planning() || ids.iter().any(|i| i == PLANNED) || changes.is_empty() {
        existing
    } else {
        until_visible(
            "reading the new security groups",
            EC2_NOT_YET,
            ctx.timing,
            || {
                ctx.aws
                    .ec2
                    .describe_security_groups()
                    .set_group_ids(Some(ids.clone()))
                    .send()
            },
        )
        .await?
        .security_groups()
        .to_vec()
    };
    for (role, id) in ROLES.iter().zip(&ids) {
        let want = desired_rules(ctx, role, &ids[0], &ids[1], &ids[2]);
        let have = current
            .iter()
            .find(|g| g.group_id() == Some(id.as_str()))
            .map(actual_rules)
            .unwrap_or_default();
        let missing: Vec<&Rule> = want.iter().filter(|r| !have.contains(r)).collect();
        let extra: Vec<&Rule> = if id == PLANNED {
            Vec::new()
        } else {
            have.iter().filter(|r| !want.contains(r)).collect()
        };
        if missing.is_empty() && extra.is_empty() {
            continue;
        }
        changes.push(format!(
            "{role} group: +{} -{} rules",
            missing.len(),
            extra.len()
        ));
        if ctx.planning() {
            continue;
        }
        for r in extra {
            revoke(ctx, id, r).await?;
        }
        for r in missing {
            authorize(ctx, id, r).await?;
        }
    }
    Ok(summarize(changes, nothing_existed))
}

async fn authorize(ctx: &Ctx, group: &str, rule: &Rule) -> anyhow::Result<()> {
    let what = format!("adding a rule to security group {group}");
    let ec2 = &ctx.aws.ec2;
    // A rule already there was added by this call, its first answer lost.
    let there = &["InvalidPermission.Duplicate"];
    if rule.egress {
        until_visible(&what, EC2_NOT_YET, ctx.timing, || async {
            already(
                ec2.authorize_security_group_egress()
                    .group_id(group)
                    .ip_permissions(permission(rule))
                    .send()
                    .await,
                there,
            )
        })
        .await?;
    } else {
        until_visible(&what, EC2_NOT_YET, ctx.timing, || async {
            already(
                ec2.authorize_security_group_ingress()
                    .group_id(group)
                    .ip_permissions(permission(rule))
                    .send()
                    .await,
                there,
            )
        })
        .await?;
    }
    Ok(())
}

async fn revoke(ctx: &Ctx, group: &str, rule: &Rule) -> anyhow::Result<()> {
    let what = format!("removing a rule from security group {group}");
    let ec2 = &ctx.aws.ec2;
    let gone = &["InvalidPermission.NotFound"];
    if rule.egress {
        ec2.revoke_security_group_egress()
            .group_id(group)
            .ip_permissions(permission(rule))
            .send()
            .await
            .aws_unless(what, gone)?;
    } else {
        ec2.revoke_security_group_ingress()
            .group_id(group)
            .ip_permissions(permission(rule))
            .send()
            .await
            .aws_unless(what, gone)?;
    }
    Ok(())
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let groups = find(ctx).await?;
    if groups.is_empty() {
        return Ok(Change::Absent);
    }
    // Rules that name another group would keep it alive: remove them first.
    for g in &groups {
        let id = g.group_id().unwrap_or_default();
        for r in actual_rules(g)
            .iter()
            .filter(|r| matches!(r.source, Source::Group(_)))
        {
            revoke(ctx, id, r).await?;
        }
    }
    let ids: Vec<String> = groups
        .iter()
        .filter_map(|g| g.group_id().map(String::from))
        .collect();
    wait_interfaces_gone(ctx, "group-id", &ids).await?;
    for id in &ids {
        retry_while(
            &format!("deleting security group {id}"),
            &["DependencyViolation"],
            ctx.timing,
            || async {
                already(
                    ctx.aws
                        .ec2
                        .delete_security_group()
                        .group_id(id)
                        .send()
                        .await,
                    &["InvalidGroup.NotFound"],
                )
            },
        )
        .await?;
        ctx.progress("security-group", id, "deleted");
    }
    Ok(Change::Delete)
}

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let mut all = Vec::new();
    let ec2 = &ctx.aws.ec2;
    let f = || Some(ec2_filters(ctx, None));
    for g in ec2
        .describe_security_groups()
        .set_filters(f())
        .send()
        .await
        .aws("scanning security groups")?
        .security_groups()
    {
        all.push(found(
            "security-group",
            g.group_id().unwrap_or_default(),
            g.group_name().unwrap_or_default(),
        ));
    }
    Ok(all)
}
