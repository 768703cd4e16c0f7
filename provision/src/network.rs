//! The network: VPC, a public and a private subnet in each of two AZs, internet gateway,
//! optional NAT gateway, route tables and the S3 gateway endpoint.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter, ResourceType, VpcEndpointType,
};

use crate::aws::{retry_while, wait_for, AwsResult};
use crate::context::{Ctx, PLANNED};
use crate::graph::Change;
use crate::tags::{ec2_filters, ec2_role, ec2_tags};

const SUBNET_ROLES: [&str; 4] = ["public-a", "public-b", "private-a", "private-b"];

/// The first two available zones of the region (fails clearly with fewer).
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
    if names.len() < 2 {
        anyhow::bail!(
            "region {} has {} available availability zone(s); the stack needs two. Choose another region (stack.region or --region)",
            ctx.aws.region,
            names.len()
        );
    }
    names.truncate(2);
    Ok(names)
}

/// The stack's VPC, found by its tags.
async fn describe_vpc(ctx: &Ctx) -> anyhow::Result<Option<aws_sdk_ec2::types::Vpc>> {
    let out = ctx
        .aws
        .ec2
        .describe_vpcs()
        .set_filters(Some(ec2_filters(ctx, Some("vpc"))))
        .send()
        .await
        .aws("finding the VPC")?;
    Ok(out.vpcs().first().cloned())
}

pub async fn find_vpc(ctx: &Ctx) -> anyhow::Result<Option<String>> {
    Ok(describe_vpc(ctx)
        .await?
        .and_then(|v| v.vpc_id().map(String::from)))
}

pub async fn ensure_vpc(ctx: &Ctx) -> anyhow::Result<Change> {
    if let Some(vpc) = describe_vpc(ctx).await? {
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        let cidr = vpc.cidr_block().unwrap_or_default();
        if cidr != ctx.config.network.vpc_cidr {
            anyhow::bail!(
                "VPC {id} has CIDR {cidr} but network.vpc_cidr is {}: a VPC's CIDR can't change; set it back, or `provision down` and `up` to rebuild the stack",
                ctx.config.network.vpc_cidr
            );
        }
        ctx.set(|o| o.vpc = Some(id.clone()));
        // A run killed between CreateVpc and ModifyVpcAttribute leaves DNS hostnames off.
        let dns = ctx
            .aws
            .ec2
            .describe_vpc_attribute()
            .vpc_id(&id)
            .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
            .send()
            .await
            .aws(format!("reading the DNS attributes of {id}"))?;
        if dns.enable_dns_hostnames().and_then(|a| a.value()) == Some(true) {
            ctx.progress("vpc", &id, "exists");
            return Ok(Change::Unchanged);
        }
        if !ctx.planning() {
            enable_dns_hostnames(ctx, &id).await?;
        }
        return Ok(Change::Update("enable DNS hostnames".into()));
    }
    if ctx.planning() {
        ctx.set(|o| o.vpc = Some(PLANNED.into()));
        return Ok(Change::Create);
    }
    let name = ctx.name("vpc");
    let out = ctx
        .aws
        .ec2
        .create_vpc()
        .cidr_block(&ctx.config.network.vpc_cidr)
        .tag_specifications(ec2_tags(ctx, ResourceType::Vpc, "vpc"))
        .send()
        .await
        .aws(format!("creating VPC {name}"))?;
    let id = out
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
        .to_string();
    enable_dns_hostnames(ctx, &id).await?;
    ctx.progress("vpc", &id, "created");
    ctx.set(|o| o.vpc = Some(id));
    Ok(Change::Create)
}

/// Instances and the database need DNS hostnames in the VPC.
async fn enable_dns_hostnames(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    ctx.aws
        .ec2
        .modify_vpc_attribute()
        .vpc_id(id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .aws(format!("enabling DNS hostnames on {id}"))?;
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
                let out = ctx
                    .aws
                    .ec2
                    .create_subnet()
                    .vpc_id(&vpc)
                    .cidr_block(&cidrs[i])
                    .availability_zone(&azs[i % 2])
                    .tag_specifications(ec2_tags(ctx, ResourceType::Subnet, role))
                    .send()
                    .await
                    .aws(format!("creating subnet {}", ctx.name(role)))?;
                let id = out
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .unwrap_or_default()
                    .to_string();
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

async fn set_public_ip(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    ctx.aws
        .ec2
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .aws(format!("assigning public IPs in subnet {id}"))?;
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

pub async fn ensure_internet_gateway(ctx: &Ctx) -> anyhow::Result<Change> {
    let vpc = ctx.need("the VPC", |o| o.vpc.clone())?;
    let found = ctx
        .aws
        .ec2
        .describe_internet_gateways()
        .set_filters(Some(ec2_filters(ctx, Some("igw"))))
        .send()
        .await
        .aws("finding the internet gateway")?;
    let (id, attached, created) = match found.internet_gateways().first() {
        Some(g) => (
            g.internet_gateway_id().unwrap_or_default().to_string(),
            g.attachments()
                .iter()
                .any(|a| a.vpc_id() == Some(vpc.as_str())),
            false,
        ),
        None if ctx.planning() => {
            ctx.set(|o| o.igw = Some(PLANNED.into()));
            return Ok(Change::Create);
        }
        None => {
            let out = ctx
                .aws
                .ec2
                .create_internet_gateway()
                .tag_specifications(ec2_tags(ctx, ResourceType::InternetGateway, "igw"))
                .send()
                .await
                .aws(format!("creating internet gateway {}", ctx.name("igw")))?;
            let id = out
                .internet_gateway()
                .and_then(|g| g.internet_gateway_id())
                .unwrap_or_default()
                .to_string();
            (id, false, true)
        }
    };
    ctx.set(|o| o.igw = Some(id.clone()));
    if attached {
        return Ok(Change::Unchanged);
    }
    if ctx.planning() {
        return Ok(Change::Update("attach to the VPC".into()));
    }
    ctx.aws
        .ec2
        .attach_internet_gateway()
        .internet_gateway_id(&id)
        .vpc_id(&vpc)
        .send()
        .await
        .aws(format!("attaching internet gateway {id} to {vpc}"))?;
    ctx.progress("internet-gateway", &id, "attached");
    Ok(if created {
        Change::Create
    } else {
        Change::Update("attached to the VPC".into())
    })
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
    // Reuse an address left by an interrupted run before allocating another.
    let addresses = ctx
        .aws
        .ec2
        .describe_addresses()
        .set_filters(Some(ec2_filters(ctx, Some("nat-ip"))))
        .send()
        .await
        .aws("finding the NAT gateway's address")?;
    let allocation = match addresses
        .addresses()
        .iter()
        .find(|a| a.association_id().is_none())
    {
        Some(a) => a.allocation_id().unwrap_or_default().to_string(),
        None => ctx
            .aws
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(ec2_tags(ctx, ResourceType::ElasticIp, "nat-ip"))
            .send()
            .await
            .aws("allocating an elastic IP for the NAT gateway")?
            .allocation_id()
            .unwrap_or_default()
            .to_string(),
    };
    let out = ctx
        .aws
        .ec2
        .create_nat_gateway()
        .subnet_id(&subnet)
        .allocation_id(&allocation)
        .client_token(format!("{}-nat-{allocation}", ctx.stack()))
        .tag_specifications(ec2_tags(ctx, ResourceType::Natgateway, "nat"))
        .send()
        .await
        .aws(format!("creating NAT gateway {}", ctx.name("nat")))?;
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

/// The NAT gateway's state, `None` once AWS forgot it.
async fn nat_state(ctx: &Ctx, id: &str) -> anyhow::Result<Option<String>> {
    let out = ctx
        .aws
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(id)
        .send()
        .await
        .aws(format!("checking NAT gateway {id}"))?;
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
                let out = ctx
                    .aws
                    .ec2
                    .create_route_table()
                    .vpc_id(&vpc)
                    .tag_specifications(ec2_tags(ctx, ResourceType::RouteTable, role))
                    .send()
                    .await
                    .aws(format!("creating route table {}", ctx.name(role)))?;
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
                    let ec2 = &ctx.aws.ec2;
                    match (have.is_some(), *kind) {
                        (false, "nat") => ec2
                            .create_route()
                            .route_table_id(&id)
                            .destination_cidr_block("0.0.0.0/0")
                            .nat_gateway_id(want)
                            .send()
                            .await
                            .map(|_| ())
                            .aws(what)?,
                        (false, _) => ec2
                            .create_route()
                            .route_table_id(&id)
                            .destination_cidr_block("0.0.0.0/0")
                            .gateway_id(want)
                            .send()
                            .await
                            .map(|_| ())
                            .aws(what)?,
                        (true, "nat") => ec2
                            .replace_route()
                            .route_table_id(&id)
                            .destination_cidr_block("0.0.0.0/0")
                            .nat_gateway_id(want)
                            .send()
                            .await
                            .map(|_| ())
                            .aws(what)?,
                        (true, _) => ec2
                            .replace_route()
                            .route_table_id(&id)
                            .destination_cidr_block("0.0.0.0/0")
                            .gateway_id(want)
                            .send()
                            .await
                            .map(|_| ())
                            .aws(what)?,
                    }
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
                        .aws(format!("removing the default route of {role}"))?;
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
                ctx.aws
                    .ec2
                    .associate_route_table()
                    .route_table_id(&id)
                    .subnet_id(subnet)
                    .send()
                    .await
                    .aws(format!("associating {subnet} with {role}"))?;
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
            let missing: Vec<String> = tables
                .iter()
                .filter(|t| !e.route_table_ids().contains(t))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(Change::Unchanged);
            }
            if !ctx.planning() {
                ctx.aws
                    .ec2
                    .modify_vpc_endpoint()
                    .vpc_endpoint_id(&id)
                    .set_add_route_table_ids(Some(missing.clone()))
                    .send()
                    .await
                    .aws(format!("adding route tables to S3 endpoint {id}"))?;
            }
            Ok(Change::Update(format!(
                "route tables {}",
                missing.join(", ")
            )))
        }
        None if ctx.planning() => Ok(Change::Create),
        None => {
            let out = ctx
                .aws
                .ec2
                .create_vpc_endpoint()
                .vpc_id(&vpc)
                .vpc_endpoint_type(VpcEndpointType::Gateway)
                .service_name(format!("com.amazonaws.{}.s3", ctx.aws.region))
                .set_route_table_ids(Some(tables))
                .tag_specifications(ec2_tags(ctx, ResourceType::VpcEndpoint, "s3-endpoint"))
                .send()
                .await
                .aws(format!(
                    "creating S3 gateway endpoint {}",
                    ctx.name("s3-endpoint")
                ))?;
            let id = out
                .vpc_endpoint()
                .and_then(|e| e.vpc_endpoint_id())
                .unwrap_or_default()
                .to_string();
            ctx.progress("s3-endpoint", &id, "created");
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
                    .aws(format!("disassociating route table {id}"))?;
            }
        }
        retry_while(
            &format!("deleting route table {id}"),
            &["DependencyViolation"],
            ctx.timing,
            || ctx.aws.ec2.delete_route_table().route_table_id(id).send(),
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
            .aws(format!("deleting NAT gateway {id}"))?;
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
                || ctx.aws.ec2.release_address().allocation_id(alloc).send(),
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
    let out = ctx
        .aws
        .ec2
        .describe_internet_gateways()
        .set_filters(Some(ec2_filters(ctx, Some("igw"))))
        .send()
        .await
        .aws("finding the internet gateway")?;
    if out.internet_gateways().is_empty() {
        return Ok(Change::Absent);
    }
    for gw in out.internet_gateways() {
        let id = gw.internet_gateway_id().unwrap_or_default();
        for att in gw.attachments() {
            if let Some(vpc) = att.vpc_id() {
                // Fails with DependencyViolation while public addresses are still mapped.
                retry_while(
                    &format!("detaching internet gateway {id}"),
                    &["DependencyViolation"],
                    ctx.timing,
                    || {
                        ctx.aws
                            .ec2
                            .detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc)
                            .send()
                    },
                )
                .await?;
            }
        }
        retry_while(
            &format!("deleting internet gateway {id}"),
            &["DependencyViolation"],
            ctx.timing,
            || {
                ctx.aws
                    .ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
            },
        )
        .await?;
        ctx.progress("internet-gateway", id, "deleted");
    }
    Ok(Change::Delete)
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
            || ctx.aws.ec2.delete_subnet().subnet_id(id).send(),
        )
        .await?;
        ctx.progress("subnet", id, "deleted");
    }
    Ok(Change::Delete)
}

pub async fn delete_vpc(ctx: &Ctx) -> anyhow::Result<Change> {
    let Some(id) = find_vpc(ctx).await? else {
        return Ok(Change::Absent);
    };
    retry_while(
        &format!("deleting VPC {id}"),
        &["DependencyViolation"],
        ctx.timing,
        || ctx.aws.ec2.delete_vpc().vpc_id(&id).send(),
    )
    .await?;
    ctx.progress("vpc", &id, "deleted");
    Ok(Change::Delete)
}
