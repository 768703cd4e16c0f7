//! The network: VPC, a public and a private subnet in each of two AZs, internet gateway,
//! optional NAT gateway, route tables and the S3 gateway endpoint.

use crate::resources::scan::{found, Found};
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter, ResourceType, VpcEndpointType,
};

use crate::engine::context::{Ctx, PLANNED, STACK_TAG};
use crate::engine::errors::{already, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{
    create_once, retry_while, until_visible, wait_for, Created, EC2_NOT_YET,
};
use crate::engine::tags::{ec2_filters, ec2_role, ec2_tags};

const SUBNET_ROLES: [&str; 4] = ["public-a", "public-b", "private-a", "private-b"];

/// The first two available zones of the region that offer both the instance type and
/// the database class (not every zone offers every type), failing clearly with fewer.
pub async fn zones(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let out = ctx
        .aws
        .ec2
        .describe_availability_zones()
        .send()
        .await
        .aws("listing availability zones")?;
    let mut names: Vec<String> = out
        .availability_zones()
        .iter()
        .filter(|z| z.state().map(|s| s.as_str()) == Some("available"))
        // Local Zones and Wavelength Zones (opted in) sort before `<region>a` and lack
        // RDS and ALB support: only real availability zones.
        .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
        .filter_map(|z| z.zone_name().map(String::from))
        .collect();
    names.sort();
    let instance_type = &ctx.config.app.instance_type;
    let for_instances = instance_type_zones(ctx, instance_type).await?;
    let db_class = &ctx.config.database.instance_class;
    let for_database = database_zones(ctx).await?;
    let usable: Vec<String> = names
        .iter()
        .filter(|z| for_instances.contains(z) && for_database.contains(z))
        .cloned()
        .collect();
    if usable.len() < 2 {
        anyhow::bail!(
            "region {} has {} zone(s) offering both app.instance_type {instance_type} ({}) and database.instance_class {db_class} ({}); the stack needs two. Choose another instance type or class, or another region (stack.region)",
            ctx.aws.region,
            usable.len(),
            listed(&for_instances),
            listed(&for_database),
        );
    }
    Ok(usable.into_iter().take(2).collect())
}

fn listed(zones: &[String]) -> String {
    if zones.is_empty() {
        "offered in no zone".into()
    } else {
        format!("offered in {}", zones.join(", "))
    }
}

/// Zones that offer the instance type (DescribeInstanceTypeOfferings).
async fn instance_type_zones(ctx: &Ctx, instance_type: &str) -> anyhow::Result<Vec<String>> {
    let mut zones = Vec::new();
    let mut token = None;
    loop {
        let out = ctx
            .aws
            .ec2
            .describe_instance_type_offerings()
            .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
            .filters(
                Filter::builder()
                    .name("instance-type")
                    .values(instance_type)
                    .build(),
            )
            .set_next_token(token)
            .send()
            .await
            .aws(format!("finding the zones that offer {instance_type}"))?;
        zones.extend(
            out.instance_type_offerings()
                .iter()
                .filter_map(|o| o.location().map(String::from)),
        );
        token = out.next_token().filter(|t| !t.is_empty()).map(String::from);
        if token.is_none() {
            break;
        }
    }
    zones.sort();
    Ok(zones)
}

/// Zones where RDS offers the database class for the engine version.
async fn database_zones(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let d = &ctx.config.database;
    let mut zones = Vec::new();
    let mut marker = None;
    loop {
        let out = ctx
            .aws
            .rds
            .describe_orderable_db_instance_options()
            .engine("postgres")
            .engine_version(&d.engine_version)
            .db_instance_class(&d.instance_class)
            .set_marker(marker)
            .send()
            .await
            .aws(format!(
                "finding the zones that offer {} for PostgreSQL {}",
                d.instance_class, d.engine_version
            ))?;
        for o in out.orderable_db_instance_options() {
            for z in o.availability_zones() {
                if let Some(name) = z.name() {
                    zones.push(name.to_string());
                }
            }
        }
        marker = out.marker().filter(|m| !m.is_empty()).map(String::from);
        if marker.is_none() {
            break;
        }
    }
    zones.sort();
    zones.dedup();
    Ok(zones)
}

/// The stack's VPCs, found by their tags (one, unless a lost answer made a second).
async fn describe_vpcs(ctx: &Ctx) -> anyhow::Result<Vec<aws_sdk_ec2::types::Vpc>> {
    let out = ctx
        .aws
        .ec2
        .describe_vpcs()
        .set_filters(Some(ec2_filters(ctx, Some("vpc"))))
        .send()
        .await
        .aws("finding the VPC")?;
    Ok(out.vpcs().to_vec())
}

pub async fn find_vpc(ctx: &Ctx) -> anyhow::Result<Option<String>> {
    Ok(describe_vpcs(ctx)
        .await?
        .first()
        .and_then(|v| v.vpc_id().map(String::from)))
}

/// Of several VPCs tagged for the stack (a create whose answer was lost, made again by a
/// run that could not see the first yet), the one the stack is built in: the one with
/// subnets. The others are empty and go.
async fn pick_vpc(
    ctx: &Ctx,
    vpcs: Vec<aws_sdk_ec2::types::Vpc>,
) -> anyhow::Result<(aws_sdk_ec2::types::Vpc, Vec<String>)> {
    let mut scored = Vec::new();
    for v in vpcs {
        let id = v.vpc_id().unwrap_or_default().to_string();
        let subnets = ctx
            .aws
            .ec2
            .describe_subnets()
            .filters(Filter::builder().name("vpc-id").values(&id).build())
            .send()
            .await
            .aws(format!("listing the subnets of {id}"))?
            .subnets()
            .len();
        scored.push((std::cmp::Reverse(subnets), id, v));
    }
    scored.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut it = scored.into_iter();
    let (_, _, keep) = it
        .next()
        .ok_or_else(|| anyhow::anyhow!("no VPC to choose from"))?;
    Ok((keep, it.map(|(_, id, _)| id).collect()))
}

pub async fn ensure_vpc(ctx: &Ctx) -> anyhow::Result<Change> {
    let vpcs = describe_vpcs(ctx).await?;
    if !vpcs.is_empty() {
        let (vpc, extra) = pick_vpc(ctx, vpcs).await?;
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        let cidr = vpc.cidr_block().unwrap_or_default();
        if cidr != ctx.config.network.vpc_cidr {
            anyhow::bail!(
                "VPC {id} has CIDR {cidr} but network.vpc_cidr is {}: a VPC's CIDR can't change; set it back, or `provision down` and `up` to rebuild the stack",
                ctx.config.network.vpc_cidr
            );
        }
        ctx.set(|o| o.vpc = Some(id.clone()));
        let mut changes = Vec::new();
        for dup in &extra {
            changes.push(format!("remove duplicate VPC {dup}"));
            if !ctx.planning() {
                delete_vpc_id(ctx, dup).await?;
            }
        }
        // A run killed between CreateVpc and ModifyVpcAttribute leaves DNS hostnames off.
        let dns = until_visible(
            &format!("reading the DNS attributes of {id}"),
            EC2_NOT_YET,
            ctx.timing,
            || {
                ctx.aws
                    .ec2
                    .describe_vpc_attribute()
                    .vpc_id(&id)
                    .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
                    .send()
            },
        )
        .await?;
        if dns.enable_dns_hostnames().and_then(|a| a.value()) != Some(true) {
            changes.push("enable DNS hostnames".into());
            if !ctx.planning() {
                enable_dns_hostnames(ctx, &id).await?;
            }
        }
        if changes.is_empty() {
            ctx.progress("vpc", &id, "exists");
        }
        return Ok(summarize(changes, false));
    }
    if ctx.planning() {
        ctx.set(|o| o.vpc = Some(PLANNED.into()));
        return Ok(Change::Create);
    }
    let name = ctx.name("vpc");
    let id = match create_once(
        &format!("creating VPC {name}"),
        ctx.timing,
        &[],
        || {
            ctx.aws
                .ec2_once
                .create_vpc()
                .cidr_block(&ctx.config.network.vpc_cidr)
                .tag_specifications(ec2_tags(ctx, ResourceType::Vpc, "vpc"))
                .send()
        },
        || find_vpc(ctx),
    )
    .await?
    {
        Created::New(out) => out
            .vpc()
            .and_then(|v| v.vpc_id())
            .unwrap_or_default()
            .to_string(),
        Created::Found(id) => id,
    };
    enable_dns_hostnames(ctx, &id).await?;
    ctx.progress("vpc", &id, "created");
    ctx.set(|o| o.vpc = Some(id));
    Ok(Change::Create)
}

/// Instances and the database need DNS hostnames in the VPC.
async fn enable_dns_hostnames(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    until_visible(
        &format!("enabling DNS hostnames on {id}"),
        EC2_NOT_YET,
        ctx.timing,
        || {
            ctx.aws
                .ec2
                .modify_vpc_attribute()
                .vpc_id(id)
                .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
                .send()
        },
    )
    .await?;
    Ok(())
}

pub async fn ensure_subnets(ctx: &Ctx) -> anyhow::Result<Change> {
    let vpc = ctx.need("the VPC", |o| o.vpc.clone())?;
    let azs = ctx.out().azs;
    let cidrs = ctx.config.subnet_cidrs();
    let existing = if vpc == PLANNED {
        Vec::new()
    } else {
        ctx.aws
            .ec2
            .describe_subnets()
            .set_filters(Some(ec2_filters(ctx, None)))
            .send()
            .await
            .aws("finding subnets")?
            .subnets()
            .to_vec()
    };
    let mut ids = Vec::new();
    let mut changes = Vec::new();
    for (i, role) in SUBNET_ROLES.iter().enumerate() {
        let public = role.starts_with("public");
        let found = existing.iter().find(|s| ec2_role(s.tags()) == Some(role));
        let id = match found {
            Some(s) => {
                let id = s.subnet_id().unwrap_or_default().to_string();
                if public && s.map_public_ip_on_launch() != Some(true) {
                    changes.push(format!("{role}: assign public IPs"));
                    if !ctx.planning() {
                        set_public_ip(ctx, &id).await?;
                    }
                }
                id
            }
            None if ctx.planning() => {
                changes.push(format!("create {role} {}", cidrs[i]));
                PLANNED.to_string()
            }
            None => {
                let id = match create_once(
                    &format!("creating subnet {}", ctx.name(role)),
                    ctx.timing,
                    // Its range is taken: by this create, its answer lost.
                    &["InvalidSubnet.Conflict"],
                    || {
                        ctx.aws
                            .ec2_once
                            .create_subnet()
                            .vpc_id(&vpc)
                            .cidr_block(&cidrs[i])
                            .availability_zone(&azs[i % 2])
                            .tag_specifications(ec2_tags(ctx, ResourceType::Subnet, role))
                            .send()
                    },
                    || find_subnet(ctx, &vpc, &cidrs[i]),
                )
                .await?
                {
                    Created::New(out) => out
                        .subnet()
                        .and_then(|s| s.subnet_id())
                        .unwrap_or_default()
                        .to_string(),
                    Created::Found(id) => id,
                };
                if public {
                    set_public_ip(ctx, &id).await?;
                }
                ctx.progress("subnet", &id, &format!("created ({role}, {})", azs[i % 2]));
                changes.push(format!("create {role}"));
                id
            }
        };
        ids.push(id);
    }
    ctx.set(|o| {
        o.public_subnets = ids[..2].to_vec();
        o.private_subnets = ids[2..].to_vec();
    });
    Ok(summarize(changes, existing.is_empty()))
}

/// The subnet of the stack's VPC with this range (whatever its tags say yet).
async fn find_subnet(ctx: &Ctx, vpc: &str, cidr: &str) -> anyhow::Result<Option<String>> {
    let out = ctx
        .aws
        .ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(Filter::builder().name("cidr-block").values(cidr).build())
        .send()
        .await
        .aws(format!("finding subnet {cidr} of {vpc}"))?;
    Ok(out
        .subnets()
        .first()
        .and_then(|s| s.subnet_id().map(String::from)))
}

async fn set_public_ip(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    until_visible(
        &format!("assigning public IPs in subnet {id}"),
        EC2_NOT_YET,
        ctx.timing,
        || {
            ctx.aws
                .ec2
                .modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                .send()
        },
    )
    .await?;
    Ok(())
}

/// `Create` if nothing existed, `Update` for partial changes, `Unchanged` otherwise.
pub fn summarize(changes: Vec<String>, nothing_existed: bool) -> Change {
    if changes.is_empty() {
        Change::Unchanged
    } else if nothing_existed {
        Change::Create
    } else {
        Change::Update(changes.join("; "))
    }
}

async fn internet_gateways(ctx: &Ctx) -> anyhow::Result<Vec<aws_sdk_ec2::types::InternetGateway>> {
    Ok(ctx
        .aws
        .ec2
        .describe_internet_gateways()
        .set_filters(Some(ec2_filters(ctx, Some("igw"))))
        .send()
        .await
        .aws("finding the internet gateway")?
        .internet_gateways()
        .to_vec())
}

pub async fn ensure_internet_gateway(ctx: &Ctx) -> anyhow::Result<Change> {
    let vpc = ctx.need("the VPC", |o| o.vpc.clone())?;
    let mut found = internet_gateways(ctx).await?;
    let attached_to_vpc = |g: &aws_sdk_ec2::types::InternetGateway| {
        g.attachments()
            .iter()
            .any(|a| a.vpc_id() == Some(vpc.as_str()))
    };
    // The one attached to the VPC first: any other is a duplicate a lost answer made.
    found.sort_by_key(|g| {
        (
            !attached_to_vpc(g),
            g.internet_gateway_id().unwrap_or_default().to_string(),
        )
    });
    let mut changes = Vec::new();
    for dup in found.iter().skip(1) {
        let id = dup.internet_gateway_id().unwrap_or_default();
        changes.push(format!("remove duplicate internet gateway {id}"));
        if !ctx.planning() {
            delete_gateway(ctx, dup).await?;
        }
    }
    let (id, attached, created) = match found.first() {
        Some(g) => (
            g.internet_gateway_id().unwrap_or_default().to_string(),
            attached_to_vpc(g),
            false,
        ),
        None if ctx.planning() => {
            ctx.set(|o| o.igw = Some(PLANNED.into()));
            return Ok(Change::Create);
        }
        None => {
            let lookup = || async {
                Ok(internet_gateways(ctx)
                    .await?
                    .first()
                    .and_then(|g| g.internet_gateway_id().map(String::from)))
            };
            let id = match create_once(
                &format!("creating internet gateway {}", ctx.name("igw")),
                ctx.timing,
                &[],
                || {
                    ctx.aws
                        .ec2_once
                        .create_internet_gateway()
                        .tag_specifications(ec2_tags(ctx, ResourceType::InternetGateway, "igw"))
                        .send()
                },
                lookup,
            )
            .await?
            {
                Created::New(out) => out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .unwrap_or_default()
                    .to_string(),
                Created::Found(id) => id,
            };
            (id, false, true)
        }
    };
    ctx.set(|o| o.igw = Some(id.clone()));
    if attached {
        return Ok(summarize(changes, false));
    }
    if ctx.planning() {
        changes.push("attach to the VPC".into());
        return Ok(summarize(changes, false));
    }
    let what = format!("attaching internet gateway {id} to {vpc}");
    until_visible(&what, EC2_NOT_YET, ctx.timing, || async {
        // Attached already: by this call, its first answer lost.
        already(
            ctx.aws
                .ec2
                .attach_internet_gateway()
                .internet_gateway_id(&id)
                .vpc_id(&vpc)
                .send()
                .await,
            &["Resource.AlreadyAssociated"],
        )
    })
    .await?;
    ctx.progress("internet-gateway", &id, "attached");
    if created {
        return Ok(Change::Create);
    }
    changes.push("attached to the VPC".into());
    Ok(summarize(changes, false))
}

async fn live_nat_gateways(ctx: &Ctx) -> anyhow::Result<Vec<(String, String)>> {
    let out = ctx
        .aws
        .ec2
        .describe_nat_gateways()
        .set_filter(Some(ec2_filters(ctx, Some("nat"))))
        .send()
        .await
        .aws("finding the NAT gateway")?;
    Ok(out
        .nat_gateways()
        .iter()
        // Ours only, whatever the filter did: a delete must never reach another stack's.
        .filter(|n| {
            n.tags()
                .iter()
                .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()))
        })
        .filter(|n| {
            !matches!(
                n.state().map(|s| s.as_str()),
                Some("deleted") | Some("deleting") | Some("failed")
            )
        })
        .map(|n| {
            (
                n.nat_gateway_id().unwrap_or_default().to_string(),
                n.state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect())
}

pub async fn ensure_nat_gateway(ctx: &Ctx) -> anyhow::Result<Change> {
    let wanted = ctx.config.network.nat_gateway;
    let existing = if ctx.out().vpc.as_deref() == Some(PLANNED) {
        Vec::new()
    } else {
        live_nat_gateways(ctx).await?
    };
    ctx.set(|o| o.running.nat_gateway = !existing.is_empty());
    if !wanted {
        if existing.is_empty() {
            return Ok(Change::Unchanged);
        }
        if ctx.planning() {
            return Ok(Change::Delete);
        }
        delete_nat_gateways(ctx).await?;
        return Ok(Change::Delete);
    }
    if let Some((id, state)) = existing.first() {
        ctx.set(|o| o.nat = Some(id.clone()));
        if state != "available" && !ctx.planning() {
            wait_nat_available(ctx, id).await?;
        }
        return Ok(Change::Unchanged);
    }
    if ctx.planning() {
        ctx.set(|o| o.nat = Some(PLANNED.into()));
        return Ok(Change::Create);
    }
    let subnet = ctx.need("public subnet a", |o| o.public_subnets.first().cloned())?;
    // Reuse an address left by an interrupted run (or a lost answer) before allocating another.
    let free_address = || async {
        let addresses = ctx
            .aws
            .ec2
            .describe_addresses()
            .set_filters(Some(ec2_filters(ctx, Some("nat-ip"))))
            .send()
            .await
            .aws("finding the NAT gateway's address")?;
        Ok(addresses
            .addresses()
            .iter()
            .find(|a| a.association_id().is_none())
            .and_then(|a| a.allocation_id().map(String::from)))
    };
    let allocation = match free_address().await? {
        Some(a) => a,
        None => match create_once(
            "allocating an elastic IP for the NAT gateway",
            ctx.timing,
            &[],
            || {
                ctx.aws
                    .ec2_once
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(ec2_tags(ctx, ResourceType::ElasticIp, "nat-ip"))
                    .send()
            },
            free_address,
        )
        .await?
        {
            Created::New(out) => out.allocation_id().unwrap_or_default().to_string(),
            Created::Found(id) => id,
        },
    };
    // The token names this address and this run: a retry gets the same gateway, while a
    // later run (after a gateway that failed, whose address is free again) makes a new one.
    let out = until_visible(
        &format!("creating NAT gateway {}", ctx.name("nat")),
        EC2_NOT_YET,
        ctx.timing,
        || {
            ctx.aws
                .ec2
                .create_nat_gateway()
                .subnet_id(&subnet)
                .allocation_id(&allocation)
                .client_token(format!("{}-nat-{allocation}-{}", ctx.stack(), ctx.aws.run))
                .tag_specifications(ec2_tags(ctx, ResourceType::Natgateway, "nat"))
                .send()
        },
    )
    .await?;
    let id = out
        .nat_gateway()
        .and_then(|n| n.nat_gateway_id())
        .unwrap_or_default()
        .to_string();
    ctx.progress("nat-gateway", &id, "creating");
    wait_nat_available(ctx, &id).await?;
    ctx.progress("nat-gateway", &id, "available");
    ctx.set(|o| o.nat = Some(id));
    Ok(Change::Create)
}

/// The NAT gateway's state, `None` when AWS does not know it (not yet, or no more).
async fn nat_state(ctx: &Ctx, id: &str) -> anyhow::Result<Option<String>> {
    let Some(out) = ctx
        .aws
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(id)
        .send()
        .await
        .aws_unless(
            format!("checking NAT gateway {id}"),
            &["NatGatewayNotFound"],
        )?
    else {
        return Ok(None);
    };
    Ok(out
        .nat_gateways()
        .first()
        .and_then(|n| n.state())
        .map(|s| s.as_str().to_string()))
}

async fn wait_nat_available(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    wait_for(
        &format!("NAT gateway {id} to become available"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async {
            match nat_state(ctx, id).await?.as_deref() {
                Some("available") => Ok(Some(())),
                Some("failed") => anyhow::bail!("NAT gateway {id} failed to start"),
                _ => Ok(None),
            }
        },
    )
    .await
}

pub async fn ensure_route_tables(ctx: &Ctx) -> anyhow::Result<Change> {
    let o = ctx.out();
    let vpc = ctx.need("the VPC", |o| o.vpc.clone())?;
    let igw = ctx.need("the internet gateway", |o| o.igw.clone())?;
    let existing = if vpc == PLANNED {
        Vec::new()
    } else {
        ctx.aws
            .ec2
            .describe_route_tables()
            .set_filters(Some(ec2_filters(ctx, None)))
            .send()
            .await
            .aws("finding route tables")?
            .route_tables()
            .to_vec()
    };
    let mut changes = Vec::new();
    let nat = if ctx.config.network.nat_gateway {
        o.nat.clone()
    } else {
        None
    };
    for (role, subnets, target) in [
        (
            "public-rt",
            o.public_subnets.clone(),
            Some(("gateway", igw.clone())),
        ),
        (
            "private-rt",
            o.private_subnets.clone(),
            nat.map(|n| ("nat", n)),
        ),
    ] {
        let found = existing.iter().find(|t| ec2_role(t.tags()) == Some(role));
        let id = match found {
            Some(t) => t.route_table_id().unwrap_or_default().to_string(),
            None if ctx.planning() => {
                changes.push(format!("create {role}"));
                continue;
            }
            None => {
                // The SDK fills in a client token, so its own retries make one table.
                let out = until_visible(
                    &format!("creating route table {}", ctx.name(role)),
                    EC2_NOT_YET,
                    ctx.timing,
                    || {
                        ctx.aws
                            .ec2
                            .create_route_table()
                            .vpc_id(&vpc)
                            .tag_specifications(ec2_tags(ctx, ResourceType::RouteTable, role))
                            .send()
                    },
                )
                .await?;
                let id = out
                    .route_table()
                    .and_then(|t| t.route_table_id())
                    .unwrap_or_default()
                    .to_string();
                ctx.progress("route-table", &id, &format!("created ({role})"));
                changes.push(format!("create {role}"));
                id
            }
        };
        let routes = found.map(|t| t.routes().to_vec()).unwrap_or_default();
        let default_route = routes
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
        let current = default_route
            .and_then(|r| r.gateway_id().or(r.nat_gateway_id()))
            .map(String::from);
        match (&target, current) {
            (Some((_, want)), Some(have)) if *want == have => {}
            (Some((kind, want)), have) => {
                changes.push(format!("{role}: default route via {kind}"));
                if !ctx.planning() {
                    let what = format!("routing {role} via the {kind} gateway");
                    set_default_route(ctx, &what, &id, kind, want, have.is_some()).await?;
                }
            }
            (None, Some(_)) => {
                changes.push(format!("{role}: remove default route"));
                if !ctx.planning() {
                    ctx.aws
                        .ec2
                        .delete_route()
                        .route_table_id(&id)
                        .destination_cidr_block("0.0.0.0/0")
                        .send()
                        .await
                        .aws_unless(
                            format!("removing the default route of {role}"),
                            &["InvalidRoute.NotFound"],
                        )?;
                }
            }
            (None, None) => {}
        }
        let associated: Vec<String> = found
            .map(|t| {
                t.associations()
                    .iter()
                    .filter_map(|a| a.subnet_id().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for subnet in subnets.iter().filter(|s| !associated.contains(s)) {
            changes.push(format!("{role}: associate {subnet}"));
            if !ctx.planning() && subnet != PLANNED {
                until_visible(
                    &format!("associating {subnet} with {role}"),
                    EC2_NOT_YET,
                    ctx.timing,
                    || async {
                        already(
                            ctx.aws
                                .ec2
                                .associate_route_table()
                                .route_table_id(&id)
                                .subnet_id(subnet)
                                .send()
                                .await,
                            &["Resource.AlreadyAssociated"],
                        )
                    },
                )
                .await?;
            }
        }
        ctx.set(|o| {
            if role == "public-rt" {
                o.public_route_table = Some(id.clone());
            } else {
                o.private_route_table = Some(id.clone());
            }
        });
    }
    Ok(summarize(changes, existing.is_empty()))
}

/// Point the table's default route at the internet or NAT gateway (create or replace). A
/// repeated create after a lost answer finds the route there: that is success.
async fn set_default_route(
    ctx: &Ctx,
    what: &str,
    table: &str,
    kind: &str,
    target: &str,
    replace: bool,
) -> anyhow::Result<()> {
    let ec2 = &ctx.aws.ec2;
    let nat = kind == "nat";
    if replace {
        until_visible(what, EC2_NOT_YET, ctx.timing, || {
            let r = ec2
                .replace_route()
                .route_table_id(table)
                .destination_cidr_block("0.0.0.0/0");
            if nat {
                r.nat_gateway_id(target).send()
            } else {
                r.gateway_id(target).send()
            }
        })
        .await?;
    } else {
        until_visible(what, EC2_NOT_YET, ctx.timing, || async {
            let r = ec2
                .create_route()
                .route_table_id(table)
                .destination_cidr_block("0.0.0.0/0");
            let r = if nat {
                r.nat_gateway_id(target)
            } else {
                r.gateway_id(target)
            };
            already(r.send().await, &["RouteAlreadyExists"])
        })
        .await?;
        // There already: this call's own (its answer lost), or a route to something else
        // (an interface, say, which reads as no gateway): point it where it belongs.
        let there = ctx
            .aws
            .ec2
            .describe_route_tables()
            .route_table_ids(table)
            .send()
            .await
            .aws(format!("reading route table {table}"))?;
        let right = there
            .route_tables()
            .iter()
            .flat_map(|t| t.routes())
            .any(|r| {
                r.destination_cidr_block() == Some("0.0.0.0/0")
                    && (r.gateway_id() == Some(target) || r.nat_gateway_id() == Some(target))
            });
        if !right {
            until_visible(what, EC2_NOT_YET, ctx.timing, || {
                let r = ec2
                    .replace_route()
                    .route_table_id(table)
                    .destination_cidr_block("0.0.0.0/0");
                if nat {
                    r.nat_gateway_id(target).send()
                } else {
                    r.gateway_id(target).send()
                }
            })
            .await?;
        }
    }
    Ok(())
}

pub async fn ensure_s3_endpoint(ctx: &Ctx) -> anyhow::Result<Change> {
    let o = ctx.out();
    let vpc = ctx.need("the VPC", |o| o.vpc.clone())?;
    let tables: Vec<String> = [o.public_route_table.clone(), o.private_route_table.clone()]
        .into_iter()
        .flatten()
        .collect();
    let found = if vpc == PLANNED {
        None
    } else {
        ctx.aws
            .ec2
            .describe_vpc_endpoints()
            .set_filters(Some(ec2_filters(ctx, Some("s3-endpoint"))))
            .send()
            .await
            .aws("finding the S3 endpoint")?
            .vpc_endpoints()
            .iter()
            .find(|e| {
                !matches!(
                    e.state()
                        .map(|s| s.as_str().to_ascii_lowercase())
                        .as_deref(),
                    Some("deleted") | Some("deleting")
                )
            })
            .cloned()
    };
    match found {
        Some(e) => {
            let id = e.vpc_endpoint_id().unwrap_or_default().to_string();
            ctx.set(|o| o.s3_endpoint = Some(id.clone()));
            let missing: Vec<String> = tables
                .iter()
                .filter(|t| !e.route_table_ids().contains(t))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(Change::Unchanged);
            }
            if !ctx.planning() {
                until_visible(
                    &format!("adding route tables to S3 endpoint {id}"),
                    EC2_NOT_YET,
                    ctx.timing,
                    || {
                        ctx.aws
                            .ec2
                            .modify_vpc_endpoint()
                            .vpc_endpoint_id(&id)
                            .set_add_route_table_ids(Some(missing.clone()))
                            .send()
                    },
                )
                .await?;
            }
            Ok(Change::Update(format!(
                "route tables {}",
                missing.join(", ")
            )))
        }
        None if ctx.planning() => Ok(Change::Create),
        None => {
            // The token names the VPC and this run: a retried create (a lost answer) gets
            // the same endpoint; another run (after a `down` that stopped halfway, say)
            // never meets this one's, which AWS remembers.
            let out = until_visible(
                &format!("creating S3 gateway endpoint {}", ctx.name("s3-endpoint")),
                EC2_NOT_YET,
                ctx.timing,
                || {
                    ctx.aws
                        .ec2
                        .create_vpc_endpoint()
                        .vpc_id(&vpc)
                        .vpc_endpoint_type(VpcEndpointType::Gateway)
                        .service_name(format!("com.amazonaws.{}.s3", ctx.aws.region))
                        .set_route_table_ids(Some(tables.clone()))
                        .client_token(format!("{}-s3-{vpc}-{}", ctx.stack(), ctx.aws.run))
                        .tag_specifications(ec2_tags(ctx, ResourceType::VpcEndpoint, "s3-endpoint"))
                        .send()
                },
            )
            .await?;
            let id = out
                .vpc_endpoint()
                .and_then(|e| e.vpc_endpoint_id())
                .unwrap_or_default()
                .to_string();
            ctx.progress("s3-endpoint", &id, "created");
            ctx.set(|o| o.s3_endpoint = Some(id));
            Ok(Change::Create)
        }
    }
}

// ---- teardown ---------------------------------------------------------------------

pub async fn delete_s3_endpoint(ctx: &Ctx) -> anyhow::Result<Change> {
    let out = ctx
        .aws
        .ec2
        .describe_vpc_endpoints()
        .set_filters(Some(ec2_filters(ctx, Some("s3-endpoint"))))
        .send()
        .await
        .aws("finding the S3 endpoint")?;
    let ids: Vec<String> = out
        .vpc_endpoints()
        .iter()
        .filter(|e| {
            !matches!(
                e.state()
                    .map(|s| s.as_str().to_ascii_lowercase())
                    .as_deref(),
                Some("deleted")
            )
        })
        .filter_map(|e| e.vpc_endpoint_id().map(String::from))
        .collect();
    if ids.is_empty() {
        return Ok(Change::Absent);
    }
    ctx.aws
        .ec2
        .delete_vpc_endpoints()
        .set_vpc_endpoint_ids(Some(ids.clone()))
        .send()
        .await
        .aws("deleting the S3 endpoint")?;
    ctx.progress("s3-endpoint", &ids.join(","), "deleted");
    Ok(Change::Delete)
}

pub async fn delete_route_tables(ctx: &Ctx) -> anyhow::Result<Change> {
    let out = ctx
        .aws
        .ec2
        .describe_route_tables()
        .set_filters(Some(ec2_filters(ctx, None)))
        .send()
        .await
        .aws("finding route tables")?;
    if out.route_tables().is_empty() {
        return Ok(Change::Absent);
    }
    for table in out.route_tables() {
        let id = table.route_table_id().unwrap_or_default();
        for assoc in table
            .associations()
            .iter()
            .filter(|a| a.main() != Some(true))
        {
            if let Some(a) = assoc.route_table_association_id() {
                ctx.aws
                    .ec2
                    .disassociate_route_table()
                    .association_id(a)
                    .send()
                    .await
                    .aws_unless(
                        format!("disassociating route table {id}"),
                        &["InvalidAssociationID.NotFound"],
                    )?;
            }
        }
        retry_while(
            &format!("deleting route table {id}"),
            &["DependencyViolation"],
            ctx.timing,
            || async {
                already(
                    ctx.aws
                        .ec2
                        .delete_route_table()
                        .route_table_id(id)
                        .send()
                        .await,
                    &["InvalidRouteTableID.NotFound"],
                )
            },
        )
        .await?;
        ctx.progress("route-table", id, "deleted");
    }
    Ok(Change::Delete)
}

pub async fn delete_nat_gateways(ctx: &Ctx) -> anyhow::Result<Change> {
    let live = live_nat_gateways(ctx).await?;
    for (id, _) in &live {
        ctx.aws
            .ec2
            .delete_nat_gateway()
            .nat_gateway_id(id)
            .send()
            .await
            .aws_unless(
                format!("deleting NAT gateway {id}"),
                &["NatGatewayNotFound"],
            )?;
        wait_for(
            &format!("NAT gateway {id} to be deleted"),
            ctx.timing,
            ctx.timing.wait_timeout,
            || async {
                let state = nat_state(ctx, id).await?;
                Ok(
                    matches!(state.as_deref(), None | Some("deleted") | Some("failed"))
                        .then_some(()),
                )
            },
        )
        .await?;
        ctx.progress("nat-gateway", id, "deleted");
    }
    let addresses = ctx
        .aws
        .ec2
        .describe_addresses()
        .set_filters(Some(ec2_filters(ctx, Some("nat-ip"))))
        .send()
        .await
        .aws("finding the NAT gateway's address")?;
    let mut released = false;
    for a in addresses.addresses() {
        if let Some(alloc) = a.allocation_id() {
            // The address stays "in use" for a moment after its NAT gateway is gone.
            retry_while(
                &format!("releasing address {alloc}"),
                &["InvalidIPAddress.InUse", "AuthFailure"],
                ctx.timing,
                || async {
                    already(
                        ctx.aws
                            .ec2
                            .release_address()
                            .allocation_id(alloc)
                            .send()
                            .await,
                        &["InvalidAllocationID.NotFound"],
                    )
                },
            )
            .await?;
            ctx.progress("elastic-ip", alloc, "released");
            released = true;
        }
    }
    Ok(if live.is_empty() && !released {
        Change::Absent
    } else {
        Change::Delete
    })
}

pub async fn delete_internet_gateway(ctx: &Ctx) -> anyhow::Result<Change> {
    let found = internet_gateways(ctx).await?;
    if found.is_empty() {
        return Ok(Change::Absent);
    }
    for gw in &found {
        delete_gateway(ctx, gw).await?;
    }
    Ok(Change::Delete)
}

async fn delete_gateway(ctx: &Ctx, gw: &aws_sdk_ec2::types::InternetGateway) -> anyhow::Result<()> {
    let id = gw.internet_gateway_id().unwrap_or_default();
    for att in gw.attachments() {
        if let Some(vpc) = att.vpc_id() {
            // Fails with DependencyViolation while public addresses are still mapped.
            retry_while(
                &format!("detaching internet gateway {id}"),
                &["DependencyViolation"],
                ctx.timing,
                || async {
                    already(
                        ctx.aws
                            .ec2
                            .detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc)
                            .send()
                            .await,
                        &["Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"],
                    )
                },
            )
            .await?;
        }
    }
    retry_while(
        &format!("deleting internet gateway {id}"),
        &["DependencyViolation"],
        ctx.timing,
        || async {
            already(
                ctx.aws
                    .ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await,
                &["InvalidInternetGatewayID.NotFound"],
            )
        },
    )
    .await?;
    ctx.progress("internet-gateway", id, "deleted");
    Ok(())
}

/// Wait until no service-managed network interface remains (ALB and RDS leave some
/// behind for minutes after they are deleted). Instance interfaces go with their
/// instances, which `down` has terminated by then; a straggler is covered by the
/// DependencyViolation retries of the deletion itself.
pub(crate) async fn wait_interfaces_gone(
    ctx: &Ctx,
    filter: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let what = format!("network interfaces in {} to go away", ids.join(","));
    let waited = wait_for(
        &what,
        ctx.timing,
        ctx.timing.dependency_timeout / 2,
        || async {
            let out = ctx
                .aws
                .ec2
                .describe_network_interfaces()
                .filters(
                    Filter::builder()
                        .name(filter)
                        .set_values(Some(ids.to_vec()))
                        .build(),
                )
                .send()
                .await
                .aws("listing network interfaces")?;
            let lingering = out
                .network_interfaces()
                .iter()
                .filter(|i| i.attachment().and_then(|a| a.instance_id()).is_none())
                .count();
            Ok((lingering == 0).then_some(()))
        },
    )
    .await;
    if let Err(e) = waited {
        // The deletion itself is the authority: it is retried on DependencyViolation.
        ctx.progress("network-interfaces", "", &format!("{e}; deleting anyway"));
    }
    Ok(())
}

pub async fn delete_subnets(ctx: &Ctx) -> anyhow::Result<Change> {
    let out = ctx
        .aws
        .ec2
        .describe_subnets()
        .set_filters(Some(ec2_filters(ctx, None)))
        .send()
        .await
        .aws("finding subnets")?;
    let ids: Vec<String> = out
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id().map(String::from))
        .collect();
    if ids.is_empty() {
        return Ok(Change::Absent);
    }
    wait_interfaces_gone(ctx, "subnet-id", &ids).await?;
    for id in &ids {
        retry_while(
            &format!("deleting subnet {id}"),
            &["DependencyViolation"],
            ctx.timing,
            || async {
                already(
                    ctx.aws.ec2.delete_subnet().subnet_id(id).send().await,
                    &["InvalidSubnetID.NotFound"],
                )
            },
        )
        .await?;
        ctx.progress("subnet", id, "deleted");
    }
    Ok(Change::Delete)
}

pub async fn delete_vpc(ctx: &Ctx) -> anyhow::Result<Change> {
    let vpcs = describe_vpcs(ctx).await?;
    if vpcs.is_empty() {
        return Ok(Change::Absent);
    }
    for v in &vpcs {
        delete_vpc_id(ctx, v.vpc_id().unwrap_or_default()).await?;
    }
    Ok(Change::Delete)
}

async fn delete_vpc_id(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    retry_while(
        &format!("deleting VPC {id}"),
        &["DependencyViolation"],
        ctx.timing,
        || async {
            already(
                ctx.aws.ec2.delete_vpc().vpc_id(id).send().await,
                &["InvalidVpcID.NotFound"],
            )
        },
    )
    .await?;
    ctx.progress("vpc", id, "deleted");
    Ok(())
}

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let mut all = Vec::new();
    let ec2 = &ctx.aws.ec2;
    let f = || Some(ec2_filters(ctx, None));
    for v in ec2
        .describe_vpcs()
        .set_filters(f())
        .send()
        .await
        .aws("scanning VPCs")?
        .vpcs()
    {
        all.push(found(
            "vpc",
            v.vpc_id().unwrap_or_default(),
            v.state().map(|s| s.as_str()).unwrap_or_default(),
        ));
    }
    for s in ec2
        .describe_subnets()
        .set_filters(f())
        .send()
        .await
        .aws("scanning subnets")?
        .subnets()
    {
        all.push(found(
            "subnet",
            s.subnet_id().unwrap_or_default(),
            s.availability_zone().unwrap_or_default(),
        ));
    }
    for g in ec2
        .describe_internet_gateways()
        .set_filters(f())
        .send()
        .await
        .aws("scanning internet gateways")?
        .internet_gateways()
    {
        let state = if g.attachments().is_empty() {
            "detached"
        } else {
            "attached"
        };
        all.push(found(
            "internet-gateway",
            g.internet_gateway_id().unwrap_or_default(),
            state,
        ));
    }
    for t in ec2
        .describe_route_tables()
        .set_filters(f())
        .send()
        .await
        .aws("scanning route tables")?
        .route_tables()
    {
        all.push(found(
            "route-table",
            t.route_table_id().unwrap_or_default(),
            format!("{} routes", t.routes().len()),
        ));
    }
    for e in ec2
        .describe_vpc_endpoints()
        .set_filters(f())
        .send()
        .await
        .aws("scanning VPC endpoints")?
        .vpc_endpoints()
    {
        let state = e
            .state()
            .map(|s| s.as_str().to_ascii_lowercase())
            .unwrap_or_default();
        if state != "deleted" {
            all.push(found(
                "vpc-endpoint",
                e.vpc_endpoint_id().unwrap_or_default(),
                state,
            ));
        }
    }
    for n in ec2
        .describe_nat_gateways()
        .set_filter(f())
        .send()
        .await
        .aws("scanning NAT gateways")?
        .nat_gateways()
    {
        let state = n.state().map(|s| s.as_str()).unwrap_or_default();
        if state != "deleted" {
            all.push(found(
                "nat-gateway",
                n.nat_gateway_id().unwrap_or_default(),
                state,
            ));
        }
    }
    for a in ec2
        .describe_addresses()
        .set_filters(f())
        .send()
        .await
        .aws("scanning elastic IPs")?
        .addresses()
    {
        all.push(found(
            "elastic-ip",
            a.allocation_id().unwrap_or_default(),
            a.public_ip().unwrap_or_default(),
        ));
    }
    Ok(all)
}
