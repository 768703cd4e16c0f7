//! The dependency graph of the stack as data: which resource needs which. `up` walks it
//! forwards, starting every node as soon as its dependencies are done; `down` walks it
//! backwards. `plan` prints it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use futures::stream::{FuturesUnordered, StreamExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Node {
    Vpc,
    Subnets,
    InternetGateway,
    NatGateway,
    RouteTables,
    S3Endpoint,
    SecurityGroups,
    DbSubnetGroup,
    DbSecret,
    AdminSecret,
    Database,
    Bucket,
    LogGroup,
    InstanceRole,
    TargetGroup,
    LoadBalancer,
    HostedZone,
    Certificate,
    Listeners,
    DnsRecords,
    LaunchTemplate,
    AutoScalingGroup,
    ScalingPolicy,
    Notifications,
    Alarms,
}

use Node::*;

pub const ALL: [Node; 25] = [
    Vpc,
    Subnets,
    InternetGateway,
    NatGateway,
    RouteTables,
    S3Endpoint,
    SecurityGroups,
    DbSubnetGroup,
    DbSecret,
    AdminSecret,
    Database,
    Bucket,
    LogGroup,
    InstanceRole,
    TargetGroup,
    LoadBalancer,
    HostedZone,
    Certificate,
    Listeners,
    DnsRecords,
    LaunchTemplate,
    AutoScalingGroup,
    ScalingPolicy,
    Notifications,
    Alarms,
];

impl Node {
    pub fn deps(self) -> &'static [Node] {
        match self {
            Vpc | DbSecret | AdminSecret | Bucket | LogGroup | HostedZone => &[],
            Subnets | InternetGateway | SecurityGroups | TargetGroup => &[Vpc],
            NatGateway => &[Subnets, InternetGateway],
            RouteTables => &[Subnets, InternetGateway, NatGateway],
            S3Endpoint => &[RouteTables],
            DbSubnetGroup => &[Subnets],
            Database => &[DbSubnetGroup, SecurityGroups, DbSecret],
            InstanceRole => &[Bucket, DbSecret, AdminSecret],
            LoadBalancer => &[Subnets, SecurityGroups, InternetGateway],
            Listeners => &[LoadBalancer, TargetGroup, Certificate],
            Certificate => &[HostedZone],
            DnsRecords => &[LoadBalancer, HostedZone],
            LaunchTemplate => &[
                SecurityGroups,
                InstanceRole,
                Bucket,
                DbSecret,
                AdminSecret,
                LoadBalancer,
                LogGroup,
            ],
            AutoScalingGroup => &[
                LaunchTemplate,
                TargetGroup,
                Listeners,
                RouteTables,
                S3Endpoint,
            ],
            ScalingPolicy => &[AutoScalingGroup, LoadBalancer, TargetGroup],
            Notifications => &[],
            // The database's alarms name it by its identifier, known before it exists.
            Alarms => &[Notifications, LoadBalancer, TargetGroup],
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Vpc => "vpc",
            Subnets => "subnets",
            InternetGateway => "internet-gateway",
            NatGateway => "nat-gateway",
            RouteTables => "route-tables",
            S3Endpoint => "s3-endpoint",
            SecurityGroups => "security-groups",
            DbSubnetGroup => "db-subnet-group",
            DbSecret => "db-secret",
            AdminSecret => "admin-secret",
            Database => "database",
            Bucket => "bucket",
            LogGroup => "log-group",
            InstanceRole => "instance-role",
            TargetGroup => "target-group",
            LoadBalancer => "load-balancer",
            Listeners => "listeners",
            HostedZone => "hosted-zone",
            Certificate => "certificate",
            DnsRecords => "dns-records",
            LaunchTemplate => "launch-template",
            AutoScalingGroup => "auto-scaling-group",
            ScalingPolicy => "scaling-policy",
            Notifications => "notifications",
            Alarms => "alarms",
        }
    }

    /// Nodes that depend on this one (the order `down` must respect).
    pub fn dependents(self) -> Vec<Node> {
        ALL.iter()
            .copied()
            .filter(|n| n.deps().contains(&self))
            .collect()
    }
}

/// What a node did (or, when planning, would do).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", content = "detail", rename_all = "kebab-case")]
pub enum Change {
    Unchanged,
    Create,
    Update(String),
    Delete,
    Absent,
    /// A kept artefact or a note (e.g. the final DB snapshot's name).
    Note(String),
    /// Made again from kept data (the database from a snapshot): what from.
    Restore(String),
}

impl Change {
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Change::Create | Change::Update(_) | Change::Delete | Change::Restore(_)
        )
    }

    pub fn describe(&self, planning: bool) -> String {
        match (self, planning) {
            (Change::Unchanged, _) => "unchanged".into(),
            (Change::Create, true) => "will be created".into(),
            (Change::Create, false) => "created".into(),
            (Change::Update(d), true) => format!("will change: {d}"),
            (Change::Update(d), false) => format!("changed: {d}"),
            (Change::Delete, true) => "will be deleted".into(),
            (Change::Delete, false) => "deleted".into(),
            (Change::Absent, _) => "absent".into(),
            (Change::Note(n), _) => n.clone(),
            (Change::Restore(from), true) => format!("will be restored from {from}"),
            (Change::Restore(from), false) => format!("restored from {from}"),
        }
    }
}

pub type NodeFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Change>> + Send + 'a>>;

/// Run `step` for every node, each as soon as the nodes it waits for are done
/// (`reverse`: as soon as its dependents are done). Stops starting new nodes at the
/// first failure, lets the running ones finish, and returns every outcome.
pub async fn walk<'a, F>(reverse: bool, step: F) -> Vec<(Node, anyhow::Result<Change>)>
where
    F: Fn(Node) -> NodeFuture<'a>,
{
    let waits_for: HashMap<Node, Vec<Node>> = ALL
        .iter()
        .map(|&n| {
            (
                n,
                if reverse {
                    n.dependents()
                } else {
                    n.deps().to_vec()
                },
            )
        })
        .collect();
    let mut done: HashSet<Node> = HashSet::new();
    let mut started: HashSet<Node> = HashSet::new();
    let mut running = FuturesUnordered::new();
    let mut results = Vec::new();
    let mut failed = false;
    loop {
        if !failed {
            for &n in &ALL {
                if !started.contains(&n) && waits_for[&n].iter().all(|d| done.contains(d)) {
                    started.insert(n);
                    let fut = step(n);
                    running.push(async move { (n, fut.await) });
                }
            }
        }
        match running.next().await {
            None => break,
            Some((n, result)) => {
                if result.is_ok() {
                    done.insert(n);
                } else {
                    failed = true;
                }
                results.push((n, result));
            }
        }
    }
    results
}

/// The graph as text: each node with what it waits for.
pub fn describe() -> String {
    let mut s = String::new();
    for n in ALL {
        let deps: Vec<_> = n.deps().iter().map(|d| d.label()).collect();
        if deps.is_empty() {
            s.push_str(&format!("  {:<20} (starts at once)\n", n.label()));
        } else {
            s.push_str(&format!("  {:<20} after {}\n", n.label(), deps.join(", ")));
        }
    }
    s
}

/// The longest chain of dependencies, given each node's duration.
pub fn critical_path(duration: impl Fn(Node) -> f64) -> (f64, Vec<Node>) {
    fn finish(
        n: Node,
        duration: &dyn Fn(Node) -> f64,
        memo: &mut HashMap<Node, (f64, Vec<Node>)>,
    ) -> (f64, Vec<Node>) {
        if let Some(v) = memo.get(&n) {
            return v.clone();
        }
        let mut best = (0.0, Vec::new());
        for &d in n.deps() {
            let f = finish(d, duration, memo);
            if f.0 > best.0 {
                best = f;
            }
        }
        let mut path = best.1.clone();
        path.push(n);
        let v = (best.0 + duration(n), path);
        memo.insert(n, v.clone());
        v
    }
    let mut memo = HashMap::new();
    ALL.iter()
        .map(|&n| finish(n, &duration, &mut memo))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_is_acyclic_and_database_starts_early() {
        // Every node's deps come earlier in ALL: a topological order exists.
        for (i, n) in ALL.iter().enumerate() {
            for d in n.deps() {
                let j = ALL.iter().position(|x| x == d).unwrap();
                assert!(j < i, "{n:?} depends on later {d:?}");
            }
        }
        // The database waits only for its subnet group, security group and secret.
        assert_eq!(Database.deps(), &[DbSubnetGroup, SecurityGroups, DbSecret]);
    }

    #[test]
    fn critical_path_follows_the_database() {
        let (t, path) = critical_path(|n| if n == Database { 600.0 } else { 1.0 });
        assert_eq!(path.last(), Some(&Database));
        assert!(t > 600.0);
    }
}
