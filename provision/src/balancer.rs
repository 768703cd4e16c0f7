//! The Application Load Balancer, its target group (health check on the app's readiness
//! path, short deregistration delay) and its listeners (HTTP, or HTTPS + redirect).

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, LoadBalancer, LoadBalancerSchemeEnum,
    LoadBalancerTypeEnum, Matcher, ProtocolEnum, RedirectActionConfig,
    RedirectActionStatusCodeEnum, TargetGroup, TargetGroupAttribute, TargetTypeEnum,
};

use crate::aws::{code, explain, retry_while, wait_for, AwsResult};
use crate::context::{Ctx, PLANNED, STACK_TAG};
use crate::graph::Change;
use crate::tags::elb_tags;

const DEREGISTRATION: &str = "deregistration_delay.timeout_seconds";

pub fn tg_name(ctx: &Ctx) -> String {
    ctx.name("tg")
}

pub fn lb_name(ctx: &Ctx) -> String {
    ctx.name("alb")
}

async fn is_ours(ctx: &Ctx, arn: &str) -> anyhow::Result<bool> {
    let out = ctx
        .aws
        .elb
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .aws(format!("reading tags of {arn}"))?;
    Ok(out
        .tag_descriptions()
        .iter()
        .flat_map(|d| d.tags())
        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(ctx.stack())))
}

pub async fn find_target_group(ctx: &Ctx) -> anyhow::Result<Option<TargetGroup>> {
    let name = tg_name(ctx);
    match ctx
        .aws
        .elb
        .describe_target_groups()
        .names(&name)
        .send()
        .await
    {
        Ok(out) => Ok(out.target_groups().first().cloned()),
        Err(e) if code(&e).as_deref() == Some("TargetGroupNotFound") => Ok(None),
        Err(e) => Err(explain(format!("finding target group {name}"), e)),
    }
}

pub async fn find_load_balancer(ctx: &Ctx) -> anyhow::Result<Option<LoadBalancer>> {
    let name = lb_name(ctx);
    match ctx
        .aws
        .elb
        .describe_load_balancers()
        .names(&name)
        .send()
        .await
    {
        Ok(out) => Ok(out.load_balancers().first().cloned()),
        Err(e) if code(&e).as_deref() == Some("LoadBalancerNotFound") => Ok(None),
        Err(e) => Err(explain(format!("finding load balancer {name}"), e)),
    }
}

pub async fn ensure_target_group(ctx: &Ctx) -> anyhow::Result<Change> {
    let name = tg_name(ctx);
    let b = ctx.config.balancer.clone();
    let port = i32::from(ctx.config.app.port);
    let (arn, mut changes, created) = match find_target_group(ctx).await? {
        Some(tg) => {
            let arn = tg.target_group_arn().unwrap_or_default().to_string();
            if !is_ours(ctx, &arn).await? {
                anyhow::bail!("target group {name} exists but is not tagged for this stack: refusing to use it");
            }
            let mut changes = Vec::new();
            if tg.port() != Some(port) {
                anyhow::bail!("target group {name} uses port {:?} but app.port is {port}: run `provision down` first (a target group's port can't change)", tg.port());
            }
            if tg.health_check_path() != Some(b.health_check_path.as_str())
                || tg.health_check_interval_seconds() != Some(b.health_check_interval_secs)
                || tg.healthy_threshold_count() != Some(b.healthy_threshold)
                || tg.unhealthy_threshold_count() != Some(b.unhealthy_threshold)
            {
                changes.push("health check".to_string());
                if !ctx.planning() {
                    ctx.aws
                        .elb
                        .modify_target_group()
                        .target_group_arn(&arn)
                        .health_check_path(&b.health_check_path)
                        .health_check_interval_seconds(b.health_check_interval_secs)
                        .healthy_threshold_count(b.healthy_threshold)
                        .unhealthy_threshold_count(b.unhealthy_threshold)
                        .send()
                        .await
                        .aws(format!("updating the health check of {name}"))?;
                }
            }
            (arn, changes, false)
        }
        None if ctx.planning() => {
            ctx.set(|o| o.target_group_arn = Some(PLANNED.into()));
            return Ok(Change::Create);
        }
        None => {
            let vpc = ctx.need("the VPC", |o| o.vpc.clone())?;
            let out = ctx
                .aws
                .elb
                .create_target_group()
                .name(&name)
                .protocol(ProtocolEnum::Http)
                .port(port)
                .vpc_id(&vpc)
                .target_type(TargetTypeEnum::Instance)
                .health_check_protocol(ProtocolEnum::Http)
                .health_check_path(&b.health_check_path)
                .health_check_interval_seconds(b.health_check_interval_secs)
                // AWS requires the timeout to be shorter than the interval (5 s at least).
                .health_check_timeout_seconds(5.min(b.health_check_interval_secs - 1))
                .healthy_threshold_count(b.healthy_threshold)
                .unhealthy_threshold_count(b.unhealthy_threshold)
                .matcher(Matcher::builder().http_code("200").build())
                .set_tags(Some(elb_tags(ctx, "tg")))
                .send()
                .await
                .aws(format!("creating target group {name}"))?;
            let arn = out
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .unwrap_or_default()
                .to_string();
            ctx.progress("target-group", &name, "created");
            (arn, Vec::new(), true)
        }
    };
    let want = b.deregistration_delay_secs.to_string();
    let attrs = ctx
        .aws
        .elb
        .describe_target_group_attributes()
        .target_group_arn(&arn)
        .send()
        .await
        .aws(format!("reading attributes of {name}"))?;
    let have = attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some(DEREGISTRATION))
        .and_then(|a| a.value())
        .map(String::from);
    if have.as_deref() != Some(want.as_str()) {
        if !created {
            changes.push(format!("deregistration delay {want}s"));
        }
        if !ctx.planning() {
            ctx.aws
                .elb
                .modify_target_group_attributes()
                .target_group_arn(&arn)
                .attributes(
                    TargetGroupAttribute::builder()
                        .key(DEREGISTRATION)
                        .value(&want)
                        .build(),
                )
                .send()
                .await
                .aws(format!("setting the deregistration delay of {name}"))?;
        }
    }
    ctx.set(|o| o.target_group_arn = Some(arn));
    Ok(if created {
        Change::Create
    } else if changes.is_empty() {
        Change::Unchanged
    } else {
        Change::Update(changes.join("; "))
    })
}

pub async fn ensure_load_balancer(ctx: &Ctx) -> anyhow::Result<Change> {
    let name = lb_name(ctx);
    let o = ctx.out();
    let sg = ctx.need("the load balancer security group", |o| o.lb_sg.clone())?;
    match find_load_balancer(ctx).await? {
        Some(lb) => {
            let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
            if !is_ours(ctx, &arn).await? {
                anyhow::bail!("load balancer {name} exists but is not tagged for this stack: refusing to use it");
            }
            ctx.set(|o| {
                o.load_balancer_arn = Some(arn.clone());
                o.load_balancer_dns = lb.dns_name().map(String::from);
            });
            let mut changes = Vec::new();
            if sg != PLANNED && lb.security_groups() != [sg.clone()] {
                changes.push("security group".to_string());
                if !ctx.planning() {
                    ctx.aws
                        .elb
                        .set_security_groups()
                        .load_balancer_arn(&arn)
                        .security_groups(&sg)
                        .send()
                        .await
                        .aws(format!("setting the security group of {name}"))?;
                }
            }
            if !ctx.planning() {
                wait_active(ctx, &arn).await?;
            }
            Ok(if changes.is_empty() {
                Change::Unchanged
            } else {
                Change::Update(changes.join("; "))
            })
        }
        None if ctx.planning() => {
            ctx.set(|o| o.load_balancer_arn = Some(PLANNED.into()));
            Ok(Change::Create)
        }
        None => {
            let out = ctx
                .aws
                .elb
                .create_load_balancer()
                .name(&name)
                .r#type(LoadBalancerTypeEnum::Application)
                .scheme(LoadBalancerSchemeEnum::InternetFacing)
                .set_subnets(Some(o.public_subnets.clone()))
                .security_groups(&sg)
                .set_tags(Some(elb_tags(ctx, "alb")))
                .send()
                .await
                .aws(format!("creating load balancer {name}"))?;
            let lb = out
                .load_balancers()
                .first()
                .cloned()
                .unwrap_or_else(|| LoadBalancer::builder().build());
            let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
            ctx.progress("load-balancer", &name, "provisioning");
            wait_active(ctx, &arn).await?;
            ctx.progress(
                "load-balancer",
                &name,
                &format!("active at {}", lb.dns_name().unwrap_or_default()),
            );
            ctx.set(|o| {
                o.load_balancer_arn = Some(arn);
                o.load_balancer_dns = lb.dns_name().map(String::from);
            });
            Ok(Change::Create)
        }
    }
}

async fn wait_active(ctx: &Ctx, arn: &str) -> anyhow::Result<()> {
    wait_for(
        &format!("load balancer {arn} to become active"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async {
            let out = ctx
                .aws
                .elb
                .describe_load_balancers()
                .load_balancer_arns(arn)
                .send()
                .await
                .aws("checking the load balancer")?;
            let state = out
                .load_balancers()
                .first()
                .and_then(|l| l.state())
                .and_then(|s| s.code())
                .map(|c| c.as_str().to_string());
            match state.as_deref() {
                Some("active") => Ok(Some(())),
                Some("failed") => anyhow::bail!("load balancer {arn} failed to provision"),
                _ => Ok(None),
            }
        },
    )
    .await
}

fn forward(tg: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(tg)
        .build()
}

fn redirect_to_https() -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Redirect)
        .redirect_config(
            RedirectActionConfig::builder()
                .protocol("HTTPS")
                .port("443")
                .status_code(RedirectActionStatusCodeEnum::Http301)
                .build(),
        )
        .build()
}

pub async fn ensure_listeners(ctx: &Ctx) -> anyhow::Result<Change> {
    let lb = ctx.need("the load balancer", |o| o.load_balancer_arn.clone())?;
    let tg = ctx.need("the target group", |o| o.target_group_arn.clone())?;
    let cert = ctx.config.balancer.certificate_arn.clone();
    // (port, action) wanted.
    let mut want: Vec<(i32, Action)> = Vec::new();
    if cert.is_empty() {
        want.push((80, forward(&tg)));
    } else {
        want.push((80, redirect_to_https()));
        want.push((443, forward(&tg)));
    }
    let existing = if lb == PLANNED {
        Vec::new()
    } else {
        ctx.aws
            .elb
            .describe_listeners()
            .load_balancer_arn(&lb)
            .send()
            .await
            .aws("finding listeners")?
            .listeners()
            .to_vec()
    };
    let mut changes = Vec::new();
    for (port, action) in &want {
        let found = existing.iter().find(|l| l.port() == Some(*port));
        match found {
            Some(l) => {
                let have = l.default_actions().first();
                let same = have.is_some_and(|a| {
                    a.r#type() == action.r#type()
                        && a.target_group_arn() == action.target_group_arn()
                        && a.redirect_config().map(|r| (r.protocol(), r.port()))
                            == action.redirect_config().map(|r| (r.protocol(), r.port()))
                });
                if !same {
                    changes.push(format!("listener {port}"));
                    if !ctx.planning() {
                        ctx.aws
                            .elb
                            .modify_listener()
                            .listener_arn(l.listener_arn().unwrap_or_default())
                            .default_actions(action.clone())
                            .send()
                            .await
                            .aws(format!("updating listener {port}"))?;
                    }
                }
            }
            None => {
                changes.push(format!("create listener {port}"));
                if !ctx.planning() {
                    let mut req = ctx
                        .aws
                        .elb
                        .create_listener()
                        .load_balancer_arn(&lb)
                        .port(*port)
                        .default_actions(action.clone())
                        .set_tags(Some(elb_tags(ctx, &format!("listener-{port}"))));
                    req = if *port == 443 {
                        req.protocol(ProtocolEnum::Https)
                            .certificates(Certificate::builder().certificate_arn(&cert).build())
                            .ssl_policy("ELBSecurityPolicy-TLS13-1-2-2021-06")
                    } else {
                        req.protocol(ProtocolEnum::Http)
                    };
                    req.send().await.aws(format!("creating listener {port}"))?;
                    ctx.progress("listener", &format!("{port}"), "created");
                }
            }
        }
    }
    for l in existing
        .iter()
        .filter(|l| !want.iter().any(|(p, _)| Some(*p) == l.port()))
    {
        changes.push(format!("remove listener {}", l.port().unwrap_or(0)));
        if !ctx.planning() {
            ctx.aws
                .elb
                .delete_listener()
                .listener_arn(l.listener_arn().unwrap_or_default())
                .send()
                .await
                .aws("removing a listener")?;
        }
    }
    Ok(crate::network::summarize(changes, existing.is_empty()))
}

pub async fn delete_load_balancer(ctx: &Ctx) -> anyhow::Result<Change> {
    let Some(lb) = find_load_balancer(ctx).await? else {
        return Ok(Change::Absent);
    };
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
    if !is_ours(ctx, &arn).await? {
        return Ok(Change::Absent);
    }
    ctx.aws
        .elb
        .delete_load_balancer()
        .load_balancer_arn(&arn)
        .send()
        .await
        .aws(format!("deleting load balancer {}", lb_name(ctx)))?;
    wait_for(
        "the load balancer to be deleted",
        ctx.timing,
        ctx.timing.wait_timeout,
        || async { Ok(find_load_balancer(ctx).await?.is_none().then_some(())) },
    )
    .await?;
    ctx.progress(
        "load-balancer",
        &lb_name(ctx),
        "deleted (listeners with it)",
    );
    Ok(Change::Delete)
}

pub async fn delete_target_group(ctx: &Ctx) -> anyhow::Result<Change> {
    let Some(tg) = find_target_group(ctx).await? else {
        return Ok(Change::Absent);
    };
    let arn = tg.target_group_arn().unwrap_or_default().to_string();
    if !is_ours(ctx, &arn).await? {
        return Ok(Change::Absent);
    }
    retry_while(
        &format!("deleting target group {}", tg_name(ctx)),
        &["ResourceInUse"],
        ctx.timing,
        || {
            ctx.aws
                .elb
                .delete_target_group()
                .target_group_arn(&arn)
                .send()
        },
    )
    .await?;
    ctx.progress("target-group", &tg_name(ctx), "deleted");
    Ok(Change::Delete)
}

/// Target health: (instance, state, reason).
pub async fn target_health(ctx: &Ctx) -> anyhow::Result<Vec<(String, String, String)>> {
    let Some(tg) = find_target_group(ctx).await? else {
        return Ok(Vec::new());
    };
    let out = ctx
        .aws
        .elb
        .describe_target_health()
        .target_group_arn(tg.target_group_arn().unwrap_or_default())
        .send()
        .await
        .aws("reading target health")?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let h = d.target_health();
            (
                d.target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_string(),
                h.and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                h.and_then(|h| h.description().or(h.reason().map(|r| r.as_str())))
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect())
}

/// Wait until `want` targets are healthy, printing each change of a target's state and
/// reason, so an operator sees why it is not (yet) serving.
pub async fn wait_healthy(ctx: &Ctx, want: usize) -> anyhow::Result<()> {
    let last = std::sync::Mutex::new(Vec::<(String, String, String)>::new());
    wait_for(
        &format!("{want} healthy target(s) behind the load balancer"),
        ctx.timing,
        ctx.timing.wait_timeout,
        || async {
            let mut health = target_health(ctx).await?;
            health.sort();
            if let Ok(mut seen) = last.lock() {
                for t in health.iter().filter(|t| !seen.contains(t)) {
                    let reason = if t.2.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", t.2)
                    };
                    ctx.progress("target", &t.0, &format!("{}{reason}", t.1));
                }
                *seen = health.clone();
            }
            let healthy = health.iter().filter(|t| t.1 == "healthy").count();
            Ok((healthy >= want).then_some(()))
        },
    )
    .await
}
