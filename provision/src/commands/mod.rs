//! The commands: `plan`, `up`, `status`, `down`, `admin-password`, `unlock`.

pub mod down;
pub mod status;
pub mod up;

use crate::context::Ctx;
use crate::graph::{Change, Node, NodeFuture};
use crate::{balancer, bucket, database, fleet, iam, launch, network, secrets, security_groups};

/// Facts every command needs before touching resources: the account and two zones.
pub async fn preflight(ctx: &Ctx) -> anyhow::Result<()> {
    let who = ctx
        .aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| crate::aws::explain("checking AWS credentials", e))?;
    let account = who.account().unwrap_or_default().to_string();
    let azs = network::zones(ctx).await?;
    ctx.set(|o| {
        o.account = account;
        o.azs = azs;
    });
    Ok(())
}

/// Find, create or converge one node (reads only when planning).
pub fn ensure(ctx: &Ctx, node: Node) -> NodeFuture<'_> {
    Box::pin(async move {
        let result = match node {
            Node::Vpc => network::ensure_vpc(ctx).await,
            Node::Subnets => network::ensure_subnets(ctx).await,
            Node::InternetGateway => network::ensure_internet_gateway(ctx).await,
            Node::NatGateway => network::ensure_nat_gateway(ctx).await,
            Node::RouteTables => network::ensure_route_tables(ctx).await,
            Node::S3Endpoint => network::ensure_s3_endpoint(ctx).await,
            Node::SecurityGroups => security_groups::ensure(ctx).await,
            Node::DbSubnetGroup => database::ensure_subnet_group(ctx).await,
            Node::DbSecret => secrets::ensure_db(ctx).await,
            Node::AdminSecret => secrets::ensure_admin(ctx).await,
            Node::Database => database::ensure(ctx).await,
            Node::Bucket => bucket::ensure(ctx).await,
            Node::InstanceRole => iam::ensure(ctx).await,
            Node::TargetGroup => balancer::ensure_target_group(ctx).await,
            Node::LoadBalancer => balancer::ensure_load_balancer(ctx).await,
            Node::Listeners => balancer::ensure_listeners(ctx).await,
            Node::LaunchTemplate => launch::ensure(ctx).await,
            Node::AutoScalingGroup => fleet::ensure(ctx).await,
        };
        if let Ok(change) = &result {
            if change.is_change() || !ctx.planning() {
                ctx.progress(node.label(), "", &change.describe(ctx.planning()));
            }
        }
        result
    })
}

/// Delete one node's resources, found by tag (absent is success).
pub fn delete(ctx: &Ctx, node: Node, how: database::Teardown) -> NodeFuture<'_> {
    Box::pin(async move {
        match node {
            Node::Vpc => network::delete_vpc(ctx).await,
            Node::Subnets => network::delete_subnets(ctx).await,
            Node::InternetGateway => network::delete_internet_gateway(ctx).await,
            Node::NatGateway => network::delete_nat_gateways(ctx).await,
            Node::RouteTables => network::delete_route_tables(ctx).await,
            Node::S3Endpoint => network::delete_s3_endpoint(ctx).await,
            Node::SecurityGroups => security_groups::delete(ctx).await,
            Node::DbSubnetGroup => database::delete_subnet_group(ctx).await,
            Node::DbSecret => secrets::delete(ctx, "db", !how.skip_snapshot).await,
            Node::AdminSecret => secrets::delete(ctx, "admin", false).await,
            Node::Database => database::delete(ctx, how).await,
            Node::Bucket => bucket::delete(ctx).await,
            Node::InstanceRole => iam::delete(ctx).await,
            Node::TargetGroup => balancer::delete_target_group(ctx).await,
            Node::LoadBalancer => balancer::delete_load_balancer(ctx).await,
            // Listeners go with their load balancer.
            Node::Listeners => Ok(Change::Absent),
            Node::LaunchTemplate => launch::delete(ctx).await,
            Node::AutoScalingGroup => fleet::delete(ctx).await,
        }
    })
}

/// The gallery's URL, once the load balancer exists.
pub fn url(ctx: &Ctx) -> Option<String> {
    ctx.out()
        .load_balancer_dns
        .filter(|d| d != crate::context::PLANNED)
        .map(|d| format!("{}/", launch::public_url(ctx, &d)))
}
