//! One module per AWS resource of the stack. Each finds its resources (by tag or by a
//! name derived from the stack), creates them tagged, converges drift, deletes them
//! (absent is success) and lists what it owns for `scan`. This file maps each node of
//! the graph to its module.

pub mod alarms;
pub mod balancer;
pub mod bucket;
pub mod certificate;
pub mod database;
pub mod db_restore;
pub mod dns;
pub mod fleet;
pub mod iam;
pub mod launch;
pub mod logs;
pub mod network;
pub mod notifications;
pub mod scaling;
pub mod scan;
pub mod secrets;
pub mod security_groups;
pub mod snapshots;

use crate::engine::context::Ctx;
use crate::engine::graph::{Change, Node, NodeFuture};

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
            Node::LogGroup => logs::ensure(ctx).await,
            Node::InstanceRole => iam::ensure(ctx).await,
            Node::TargetGroup => balancer::ensure_target_group(ctx).await,
            Node::LoadBalancer => balancer::ensure_load_balancer(ctx).await,
            Node::Listeners => balancer::ensure_listeners(ctx).await,
            Node::HostedZone => dns::ensure_zone(ctx).await,
            Node::Certificate => certificate::ensure(ctx).await,
            Node::DnsRecords => dns::ensure_records(ctx).await,
            Node::LaunchTemplate => launch::ensure(ctx).await,
            Node::AutoScalingGroup => fleet::ensure(ctx).await,
            Node::ScalingPolicy => scaling::ensure(ctx).await,
            Node::Notifications => notifications::ensure(ctx).await,
            Node::Alarms => alarms::ensure(ctx).await,
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
            Node::DbSecret if how.delete_data => secrets::delete(ctx, "db", false).await,
            Node::DbSecret => secrets::keep(ctx, "db").await,
            Node::AdminSecret if how.delete_data => secrets::delete(ctx, "admin", false).await,
            Node::AdminSecret => secrets::keep(ctx, "admin").await,
            Node::Database => database::delete(ctx, how).await,
            Node::Bucket if how.delete_data => bucket::delete(ctx).await,
            Node::Bucket => bucket::keep(ctx).await,
            Node::LogGroup if how.delete_data => logs::delete(ctx).await,
            Node::LogGroup => logs::keep(ctx).await,
            Node::InstanceRole => iam::delete(ctx).await,
            Node::TargetGroup => balancer::delete_target_group(ctx).await,
            Node::LoadBalancer => balancer::delete_load_balancer(ctx).await,
            // Listeners go with their load balancer.
            Node::Listeners => Ok(Change::Absent),
            // The zone is the user's: only looked up.
            Node::HostedZone => Ok(Change::Absent),
            Node::Certificate => certificate::delete(ctx).await,
            Node::DnsRecords => dns::delete_records(ctx).await,
            Node::LaunchTemplate => launch::delete(ctx).await,
            Node::AutoScalingGroup => fleet::delete(ctx).await,
            Node::ScalingPolicy => scaling::delete(ctx).await,
            Node::Notifications => notifications::delete(ctx).await,
            Node::Alarms => alarms::delete(ctx).await,
        }
    })
}
