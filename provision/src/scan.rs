//! Everything in the account that carries this stack's tag, service by service: what
//! `status` lists and what `down` checks is gone at the end.

use aws_sdk_ec2::types::Filter;

use crate::aws::{code, explain, AwsResult};
use crate::context::{Ctx, STACK_TAG};
use crate::tags::ec2_filters;
use crate::{bucket, database, fleet, iam, lock};

#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub kind: String,
    pub id: String,
    pub state: String,
}

fn found(kind: &str, id: impl Into<String>, state: impl Into<String>) -> Found {
    Found {
        kind: kind.into(),
        id: id.into(),
        state: state.into(),
    }
}

pub async fn tagged(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
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
    for l in ec2
        .describe_launch_templates()
        .set_filters(f())
        .send()
        .await
        .aws("scanning launch templates")?
        .launch_templates()
    {
        all.push(found(
            "launch-template",
            l.launch_template_id().unwrap_or_default(),
            format!("latest version {}", l.latest_version_number().unwrap_or(0)),
        ));
    }
    let instances = ec2
        .describe_instances()
        .set_filters(f())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .aws("scanning instances")?;
    for i in instances.reservations().iter().flat_map(|r| r.instances()) {
        all.push(found(
            "instance",
            i.instance_id().unwrap_or_default(),
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str())
                .unwrap_or_default(),
        ));
    }

    if let Some(lb) = crate::balancer::find_load_balancer(ctx).await? {
        let state = lb
            .state()
            .and_then(|s| s.code())
            .map(|c| c.as_str().to_string())
            .unwrap_or_default();
        all.push(found(
            "load-balancer",
            lb.load_balancer_arn().unwrap_or_default(),
            state,
        ));
    }
    if let Some(tg) = crate::balancer::find_target_group(ctx).await? {
        all.push(found(
            "target-group",
            tg.target_group_arn().unwrap_or_default(),
            "present",
        ));
    }
    if let Some(db) = database::find(ctx).await? {
        if db
            .tag_list()
            .iter()
            .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()))
        {
            all.push(found(
                "database",
                database::instance_id(ctx),
                db.db_instance_status().unwrap_or_default(),
            ));
        }
    }
    let subnet_group = ctx.name("db-subnets");
    match ctx
        .aws
        .rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(&subnet_group)
        .send()
        .await
    {
        Ok(groups) => {
            for g in groups.db_subnet_groups() {
                all.push(found(
                    "db-subnet-group",
                    g.db_subnet_group_name().unwrap_or_default(),
                    g.subnet_group_status().unwrap_or_default(),
                ));
            }
        }
        Err(e) if code(&e).as_deref() == Some("DBSubnetGroupNotFoundFault") => {}
        Err(e) => {
            return Err(explain(
                format!("scanning DB subnet group {subnet_group}"),
                e,
            ))
        }
    }
    let secrets = ctx
        .aws
        .secrets
        .list_secrets()
        .filters(
            aws_sdk_secretsmanager::types::Filter::builder()
                .key(aws_sdk_secretsmanager::types::FilterNameStringType::TagValue)
                .values(ctx.stack())
                .build(),
        )
        .send()
        .await
        .aws("scanning secrets")?;
    for s in secrets.secret_list() {
        let ours = s
            .tags()
            .iter()
            .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack()));
        if ours {
            all.push(found("secret", s.name().unwrap_or_default(), "present"));
        }
    }
    let buckets = ctx
        .aws
        .s3
        .list_buckets()
        .send()
        .await
        .aws("scanning buckets")?;
    let name = bucket::name(ctx);
    if buckets
        .buckets()
        .iter()
        .any(|b| b.name() == Some(name.as_str()))
    {
        all.push(found("bucket", name, "present"));
    }
    // Not found is "gone"; any other error (no permission, say) must not read as "gone".
    let role = iam::role_name(ctx);
    match ctx.aws.iam.get_role().role_name(&role).send().await {
        Ok(out) => {
            if out.role().is_some_and(|r| {
                r.tags()
                    .iter()
                    .any(|t| t.key() == STACK_TAG && t.value() == ctx.stack())
            }) {
                all.push(found("iam-role", role.clone(), "present"));
            }
        }
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {}
        Err(e) => return Err(explain(format!("scanning IAM role {role}"), e)),
    }
    match ctx
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(&role)
        .send()
        .await
    {
        Ok(out) => {
            if out.instance_profile().is_some() {
                all.push(found("instance-profile", role, "present"));
            }
        }
        Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {}
        Err(e) => return Err(explain(format!("scanning instance profile {role}"), e)),
    }
    if let Some(g) = fleet::find(ctx).await? {
        all.push(found(
            "auto-scaling-group",
            g.auto_scaling_group_name().unwrap_or_default(),
            format!("{} instances", g.instances().len()),
        ));
    }
    if let Some(h) = lock::holder(ctx).await? {
        all.push(found(
            "lock",
            lock::parameter(ctx),
            format!("held by {} since {}", h.who, h.since),
        ));
    }
    all.sort();
    Ok(all)
}
