//! The Application Load Balancer, its target group (health check on the app's readiness
//! path, short deregistration delay) and its listeners (HTTP, or HTTPS + redirect).

use crate::resources::scan::{found, Found};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, LoadBalancer, LoadBalancerSchemeEnum,
    LoadBalancerTypeEnum, Matcher, ProtocolEnum, RedirectActionConfig,
    RedirectActionStatusCodeEnum, TargetGroup, TargetGroupAttribute, TargetTypeEnum,
};

use crate::engine::context::{Ctx, PLANNED, STACK_TAG};
use crate::engine::errors::{already, code, explain, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{retry_while, until_visible, until_visible_if, wait_for};
use crate::engine::tags::elb_tags;

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
                || tg.health_check_timeout_seconds()
                    != Some(health_check_timeout(b.health_check_interval_secs))
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
                        // Always with the interval: AWS refuses a timeout not below it.
                        .health_check_timeout_seconds(health_check_timeout(
                            b.health_check_interval_secs,
                        ))
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
            // A VPC created moments ago may be unknown to ELB yet ("The VPC ID ... is not
            // found"); a group of this name already was made by this call, its answer lost.
            let made = until_visible_if(
                &format!("creating target group {name}"),
                ctx.timing,
                |code, msg| code == "ValidationError" && msg.contains("not found"),
                || async {
                    already(
                        ctx.aws
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
                            .health_check_timeout_seconds(health_check_timeout(
                                b.health_check_interval_secs,
                            ))
                            .healthy_threshold_count(b.healthy_threshold)
                            .unhealthy_threshold_count(b.unhealthy_threshold)
                            .matcher(Matcher::builder().http_code("200").build())
                            .set_tags(Some(elb_tags(ctx, "tg")))
                            .send()
                            .await,
                        &["DuplicateTargetGroupName"],
                    )
                },
            )
            .await?;
            let arn = match made {
                Some(out) => out
                    .target_groups()
                    .first()
                    .and_then(|t| t.target_group_arn())
                    .unwrap_or_default()
                    .to_string(),
                None => find_target_group(ctx)
                    .await?
                    .and_then(|t| t.target_group_arn().map(String::from))
                    .ok_or_else(|| {
                        anyhow::anyhow!("target group {name} was created but cannot be found")
                    })?,
            };
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

/// The health check's timeout: 5 s, and always below the interval (AWS refuses otherwise).
pub fn health_check_timeout(interval: i32) -> i32 {
    5.min(interval - 1).max(2)
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
                o.running.load_balancer_zones =
                    u32::try_from(lb.availability_zones().len()).unwrap_or(0);
            });
            let mut changes = Vec::new();
            if sg != PLANNED && lb.security_groups() != [sg.clone()] {
                changes.push("security group".to_string());
                if !ctx.planning() {
                    until_visible(
                        &format!("setting the security group of {name}"),
                        &["InvalidSecurityGroup"],
                        ctx.timing,
                        || {
                            ctx.aws
                                .elb
                                .set_security_groups()
                                .load_balancer_arn(&arn)
                                .security_groups(&sg)
                                .send()
                        },
                    )
                    .await?;
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
            // Subnets and groups created moments ago may be unknown to ELB yet; a load
            // balancer of this name already was made by this call, its answer lost.
            let made = until_visible(
                &format!("creating load balancer {name}"),
                &["SubnetNotFound", "InvalidSecurityGroup", "InvalidSubnet"],
                ctx.timing,
                || async {
                    already(
                        ctx.aws
                            .elb
                            .create_load_balancer()
                            .name(&name)
                            .r#type(LoadBalancerTypeEnum::Application)
                            .scheme(LoadBalancerSchemeEnum::InternetFacing)
                            .set_subnets(Some(o.public_subnets.clone()))
                            .security_groups(&sg)
                            .set_tags(Some(elb_tags(ctx, "alb")))
                            .send()
                            .await,
                        &["DuplicateLoadBalancerName"],
                    )
                },
            )
            .await?;
            let lb = match made.and_then(|out| out.load_balancers().first().cloned()) {
                Some(lb) => lb,
                None => find_load_balancer(ctx).await?.ok_or_else(|| {
                    anyhow::anyhow!("load balancer {name} was created but cannot be found")
                })?,
            };
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
            // Not known yet right after its creation: keep waiting.
            let Some(out) = ctx
                .aws
                .elb
                .describe_load_balancers()
                .load_balancer_arns(arn)
                .send()
                .await
                .aws_unless("checking the load balancer", &["LoadBalancerNotFound"])?
            else {
                return Ok(None);
            };
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

/// The page every request gets while `provision restore` switches the data: a 503 from
/// the load balancer itself, so no instance answers from a database or a bucket half
/// switched. (ALB fixed responses hold at most 1024 characters.)
const MAINTENANCE_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Being restored</title><meta name=\"robots\" content=\"noindex\"></head><body style=\"font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em\"><h1>The gallery is being restored</h1><p>Its photos and accounts are being brought back to an earlier point in time. This takes a few minutes; nothing you do now is lost, because nothing can be done until it is back.</p><p>Please try again shortly.</p></body></html>";

async fn listeners_of(
    ctx: &Ctx,
    lb: &str,
) -> anyhow::Result<Vec<aws_sdk_elasticloadbalancingv2::types::Listener>> {
    Ok(ctx
        .aws
        .elb
        .describe_listeners()
        .load_balancer_arn(lb)
        .send()
        .await
        .aws("finding listeners")?
        .listeners()
        .to_vec())
}

/// The header of the rule that keeps the target group in use during a restore.
const MAINTENANCE_HEADER: &str = "X-Gallery-Restore-Probe";

/// `restore`: every listener that forwards answers the maintenance page instead (503).
/// A target group no listener forwards to is not health-checked by ELB (its targets go
/// `unused`, `Target.NotInUse`), so the restore could never see new instances healthy:
/// a rule forwarding on a header with a random value no visitor sends keeps it in use.
/// `end_maintenance` undoes both.
pub async fn maintenance(ctx: &Ctx) -> anyhow::Result<()> {
    let lb = ctx.need("the load balancer", |o| o.load_balancer_arn.clone())?;
    let tg = ctx.need("the target group", |o| o.target_group_arn.clone())?;
    let listeners = listeners_of(ctx, &lb).await?;
    let page = Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            aws_sdk_elasticloadbalancingv2::types::FixedResponseActionConfig::builder()
                .status_code("503")
                .content_type("text/html")
                .message_body(MAINTENANCE_PAGE)
                .build(),
        )
        .build();
    for l in listeners.iter().filter(|l| {
        l.default_actions()
            .iter()
            .any(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    }) {
        let token = format!("{:032x}", rand::random::<u128>());
        let condition = aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder()
            .field("http-header")
            .http_header_config(
                aws_sdk_elasticloadbalancingv2::types::HttpHeaderConditionConfig::builder()
                    .http_header_name(MAINTENANCE_HEADER)
                    .values(token)
                    .build(),
            )
            .build();
        // In use already (this call, its answer lost, or an earlier run): done.
        ctx.aws
            .elb
            .create_rule()
            .listener_arn(l.listener_arn().unwrap_or_default())
            .priority(1)
            .conditions(condition)
            .actions(forward(&tg))
            .set_tags(Some(elb_tags(ctx, "restore-probe")))
            .send()
            .await
            .aws_unless(
                format!(
                    "keeping the target group in use on listener {}",
                    l.port().unwrap_or(0)
                ),
                &["PriorityInUse"],
            )?;
        ctx.aws
            .elb
            .modify_listener()
            .listener_arn(l.listener_arn().unwrap_or_default())
            .default_actions(page.clone())
            .send()
            .await
            .aws(format!(
                "answering 503 on listener {}",
                l.port().unwrap_or(0)
            ))?;
        ctx.progress(
            "listener",
            &l.port().unwrap_or(0).to_string(),
            "answers 503 (being restored)",
        );
    }
    Ok(())
}

/// The restore's end: the listeners forward again, and the rules `maintenance` added go.
pub async fn end_maintenance(ctx: &Ctx) -> anyhow::Result<()> {
    ensure_listeners(ctx).await?;
    let lb = ctx.need("the load balancer", |o| o.load_balancer_arn.clone())?;
    let listeners = listeners_of(ctx, &lb).await?;
    for l in &listeners {
        let rules = ctx
            .aws
            .elb
            .describe_rules()
            .listener_arn(l.listener_arn().unwrap_or_default())
            .send()
            .await
            .aws("finding listener rules")?
            .rules()
            .to_vec();
        for r in rules.iter().filter(|r| {
            r.is_default() != Some(true)
                && r.conditions().iter().any(|c| {
                    c.http_header_config().and_then(|h| h.http_header_name())
                        == Some(MAINTENANCE_HEADER)
                })
        }) {
            already(
                ctx.aws
                    .elb
                    .delete_rule()
                    .rule_arn(r.rule_arn().unwrap_or_default())
                    .send()
                    .await,
                &["RuleNotFound"],
            )
            .map_err(|e| explain("removing the restore's listener rule", e))?;
        }
    }
    Ok(())
}

pub async fn ensure_listeners(ctx: &Ctx) -> anyhow::Result<Change> {
    let lb = ctx.need("the load balancer", |o| o.load_balancer_arn.clone())?;
    let tg = ctx.need("the target group", |o| o.target_group_arn.clone())?;
    let cert = crate::resources::certificate::arn(ctx);
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
        listeners_of(ctx, &lb).await?
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
                // The HTTPS listener serves the certificate wanted (a new one, a domain's).
                let certificate = l.certificates().first().and_then(|c| c.certificate_arn());
                if *port == 443 && same && certificate != Some(cert.as_str()) && cert != PLANNED {
                    changes.push(format!("listener {port} certificate"));
                    if !ctx.planning() {
                        ctx.aws
                            .elb
                            .modify_listener()
                            .listener_arn(l.listener_arn().unwrap_or_default())
                            .certificates(Certificate::builder().certificate_arn(&cert).build())
                            .send()
                            .await
                            .aws(format!("changing the certificate of listener {port}"))?;
                    }
                }
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
                    // There already: made by this call, its answer lost.
                    req.send()
                        .await
                        .aws_unless(format!("creating listener {port}"), &["DuplicateListener"])?;
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
                .aws_unless("removing a listener", &["ListenerNotFound"])?;
        }
    }
    Ok(crate::resources::network::summarize(
        changes,
        existing.is_empty(),
    ))
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
        .aws_unless(
            format!("deleting load balancer {}", lb_name(ctx)),
            &["LoadBalancerNotFound"],
        )?;
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
        || async {
            already(
                ctx.aws
                    .elb
                    .delete_target_group()
                    .target_group_arn(&arn)
                    .send()
                    .await,
                &["TargetGroupNotFound"],
            )
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

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let mut all = Vec::new();
    if let Some(lb) = find_load_balancer(ctx).await? {
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
    if let Some(tg) = find_target_group(ctx).await? {
        all.push(found(
            "target-group",
            tg.target_group_arn().unwrap_or_default(),
            "present",
        ));
    }
    Ok(all)
}
