//! The launch template: AMI, instance type, instance profile, app security group,
//! IMDSv2 required, and the user-data rendered from `userdata/boot.sh`. A change makes
//! a new version; the Auto Scaling group is pinned to version numbers, never `$Latest`.
//! The template's *default* version is the one the stack should run: `up` compares
//! against it, and every change of the group's version (a deploy, its rollback) moves it,
//! so a deploy that rolled itself back leaves no newer broken version for `up` to adopt.

use crate::resources::scan::{found, Found};
use aws_sdk_ec2::types::{
    InstanceType, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType, Tag,
};
use base64::Engine;

use crate::engine::context::{Ctx, PLANNED, ROLE_TAG, STACK_TAG};
use crate::engine::errors::{code, explain, AwsResult};
use crate::engine::graph::Change;
use crate::engine::retry::{until_visible, EC2_NOT_YET};
use crate::engine::tags::{ec2_filters, ec2_tags};
use crate::release;
use crate::templates;

pub const AL2023_PARAMETER: &str =
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
/// EC2's limit on user-data.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

pub fn public_url(ctx: &Ctx, dns: &str) -> String {
    let domain = &ctx.config.balancer.domain;
    if !domain.is_empty() {
        return format!("https://{domain}");
    }
    if ctx.config.https() {
        format!("https://{dns}")
    } else {
        format!("http://{dns}")
    }
}

/// Render the boot script for a release.
pub fn user_data(ctx: &Ctx, release: &str) -> anyhow::Result<String> {
    let o = ctx.out();
    let dns = o
        .load_balancer_dns
        .clone()
        .unwrap_or_else(|| PLANNED.into());
    let rendered = templates::render(
        templates::USER_DATA,
        &[
            ("stack", ctx.stack()),
            ("region", &ctx.aws.region),
            ("bucket", &o.bucket.clone().unwrap_or_default()),
            ("release", release),
            ("port", &ctx.config.app.port.to_string()),
            (
                "db_secret_arn",
                &o.db_secret_arn.clone().unwrap_or_default(),
            ),
            (
                "admin_secret_arn",
                &o.admin_secret_arn.clone().unwrap_or_default(),
            ),
            ("public_url", &public_url(ctx, &dns)),
            (
                "drain_secs",
                &ctx.config.balancer.deregistration_delay_secs.to_string(),
            ),
            ("log_group", &crate::resources::logs::group_name(ctx)),
        ],
    )?;
    if rendered.len() > USER_DATA_LIMIT {
        anyhow::bail!(
            "rendered user-data is {} bytes; EC2 allows {USER_DATA_LIMIT}",
            rendered.len()
        );
    }
    Ok(rendered)
}

/// What the template's default version holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub id: String,
    pub version: i64,
    pub image: String,
    pub instance_type: String,
    pub user_data: String,
    pub profile: String,
    pub security_groups: Vec<String>,
    pub imdsv2: bool,
}

pub async fn find(ctx: &Ctx) -> anyhow::Result<Option<Current>> {
    let out = ctx
        .aws
        .ec2
        .describe_launch_templates()
        .set_filters(Some(ec2_filters(ctx, Some("app"))))
        .send()
        .await
        .aws("finding the launch template")?;
    let Some(lt) = out.launch_templates().first() else {
        return Ok(None);
    };
    let id = lt.launch_template_id().unwrap_or_default().to_string();
    let versions = until_visible(
        &format!("reading launch template {id}"),
        EC2_NOT_YET,
        ctx.timing,
        || {
            ctx.aws
                .ec2
                .describe_launch_template_versions()
                .launch_template_id(&id)
                .versions("$Default")
                .send()
        },
    )
    .await?;
    let Some(v) = versions.launch_template_versions().first() else {
        return Ok(None);
    };
    let data = v.launch_template_data();
    Ok(Some(Current {
        id,
        version: v.version_number().unwrap_or(1),
        image: data
            .and_then(|d| d.image_id())
            .unwrap_or_default()
            .to_string(),
        instance_type: data
            .and_then(|d| d.instance_type())
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        user_data: data
            .and_then(|d| d.user_data())
            .unwrap_or_default()
            .to_string(),
        profile: data
            .and_then(|d| d.iam_instance_profile())
            .and_then(|p| p.arn())
            .unwrap_or_default()
            .to_string(),
        security_groups: data
            .map(|d| d.security_group_ids().to_vec())
            .unwrap_or_default(),
        imdsv2: data
            .and_then(|d| d.metadata_options())
            .and_then(|m| m.http_tokens())
            .is_some_and(|t| t.as_str() == "required"),
    }))
}

async fn latest_ami(ctx: &Ctx) -> anyhow::Result<String> {
    match ctx.aws.ssm.get_parameter().name(AL2023_PARAMETER).send().await {
        Ok(out) => Ok(out.parameter().and_then(|p| p.value()).unwrap_or_default().to_string()),
        Err(e) if code(&e).as_deref() == Some("ParameterNotFound") => anyhow::bail!(
            "the public SSM parameter {AL2023_PARAMETER} is not available in {}: set app.ami in config.toml",
            ctx.aws.region
        ),
        Err(e) => Err(explain("looking up the latest Amazon Linux 2023 AMI", e)),
    }
}

fn request(ctx: &Ctx, image: &str, user_data: &str) -> anyhow::Result<RequestLaunchTemplateData> {
    let o = ctx.out();
    let tags = |kind: ResourceType| {
        LaunchTemplateTagSpecificationRequest::builder()
            .resource_type(kind)
            .tags(Tag::builder().key(STACK_TAG).value(ctx.stack()).build())
            .tags(Tag::builder().key(ROLE_TAG).value("app").build())
            .tags(Tag::builder().key("Name").value(ctx.name("app")).build())
            .build()
    };
    Ok(RequestLaunchTemplateData::builder()
        .image_id(image)
        .instance_type(InstanceType::from(ctx.config.app.instance_type.as_str()))
        .iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .arn(o.instance_profile_arn.clone().unwrap_or_default())
                .build(),
        )
        .security_group_ids(o.app_sg.clone().unwrap_or_default())
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::Required)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .http_put_response_hop_limit(1)
                .build(),
        )
        .user_data(base64::engine::general_purpose::STANDARD.encode(user_data))
        .tag_specifications(tags(ResourceType::Instance))
        .tag_specifications(tags(ResourceType::Volume))
        .tag_specifications(tags(ResourceType::NetworkInterface))
        .build())
}

/// The release the template currently boots (from its user-data), if any.
pub fn release_of(user_data_b64: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(user_data_b64)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("RELEASE='")
                .and_then(|r| r.strip_suffix('\''))
        })
        .map(String::from)
}

/// The release to boot: `--artifact`'s (uploaded first), else the one the stack runs,
/// else a new build from `scripts/release` (a first `up`).
pub async fn ensure(ctx: &Ctx) -> anyhow::Result<Change> {
    let current = find(ctx).await?;
    let running = current
        .as_ref()
        .and_then(|c| release_of(&c.user_data))
        .filter(|r| r != "none");
    let bucket = ctx.need("the bucket", |o| o.bucket.clone())?;
    let release = match (&ctx.artifact, running) {
        (Some(a), _) => {
            if !ctx.planning() {
                release::upload(ctx, &bucket, a).await?;
            }
            a.version.clone()
        }
        (None, Some(r)) => r,
        (None, None) if ctx.planning() => "(built by up)".into(),
        (None, None) => {
            let path = release::build().await?;
            let a = release::inspect(&path)?;
            release::upload(ctx, &bucket, &a).await?;
            a.version
        }
    };
    ensure_release(ctx, current, &release).await
}

/// Converge the template on the settings and `release`; a difference makes a new version.
pub async fn ensure_release(
    ctx: &Ctx,
    current: Option<Current>,
    release: &str,
) -> anyhow::Result<Change> {
    let o = ctx.out();
    let image = match (&ctx.config.app.ami, &current) {
        (ami, _) if !ami.is_empty() => ami.clone(),
        // Keep the AMI the stack runs; a new one arrives with a deploy, not silently.
        (_, Some(c)) if !c.image.is_empty() => c.image.clone(),
        _ => latest_ami(ctx).await?,
    };
    let script = user_data(ctx, release)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&script);
    match current {
        Some(c) => {
            let mut diff = Vec::new();
            if c.image != image {
                diff.push(format!("image {} -> {image}", c.image));
            }
            if c.instance_type != ctx.config.app.instance_type {
                diff.push(format!(
                    "instance type {} -> {}",
                    c.instance_type, ctx.config.app.instance_type
                ));
            }
            if c.user_data != encoded {
                diff.push("user-data".into());
            }
            if o.instance_profile_arn
                .as_deref()
                .is_some_and(|p| p != PLANNED && p != c.profile)
            {
                diff.push("instance profile".into());
            }
            if o.app_sg
                .as_ref()
                .is_some_and(|s| s != PLANNED && c.security_groups != [s.clone()])
            {
                diff.push("security group".into());
            }
            if !c.imdsv2 {
                diff.push("require IMDSv2".into());
            }
            ctx.set(|o| {
                o.launch_template_id = Some(c.id.clone());
                o.launch_template_version = Some(c.version);
                o.running.instance_type = Some(c.instance_type.clone());
            });
            if diff.is_empty() {
                return Ok(Change::Unchanged);
            }
            if ctx.planning() {
                ctx.set(|o| o.launch_template_version = Some(c.version + 1));
                return Ok(Change::Update(format!(
                    "new version {}: {}",
                    c.version + 1,
                    diff.join("; ")
                )));
            }
            let data = request(ctx, &image, &script)?;
            // The token names the version's base and content: a retry after a lost answer
            // gets the same version, never a second one.
            let token = client_token(ctx, &format!("{}:{}", c.id, c.version), &image, &script);
            let out = until_visible(
                &format!("creating a new version of launch template {}", c.id),
                EC2_NOT_YET,
                ctx.timing,
                || {
                    ctx.aws
                        .ec2
                        .create_launch_template_version()
                        .launch_template_id(&c.id)
                        .launch_template_data(data.clone())
                        .client_token(&token)
                        .send()
                },
            )
            .await?;
            let version = out
                .launch_template_version()
                .and_then(|v| v.version_number())
                .unwrap_or(c.version + 1);
            set_default(ctx, &c.id, version).await?;
            ctx.progress("launch-template", &c.id, &format!("version {version}"));
            ctx.set(|o| o.launch_template_version = Some(version));
            Ok(Change::Update(format!(
                "version {version}: {}",
                diff.join("; ")
            )))
        }
        None if ctx.planning() => {
            ctx.set(|o| {
                o.launch_template_id = Some(PLANNED.into());
                o.launch_template_version = Some(1);
            });
            Ok(Change::Create)
        }
        None => {
            let name = ctx.name("app");
            let data = request(ctx, &image, &script)?;
            // Derived from what is created (its security group and profile are this stack
            // incarnation's): a retried create is the same template, while a `down` and
            // `up` makes a new one without meeting the old token.
            let token = client_token(ctx, &name, &image, &script);
            let made = ctx
                .aws
                .ec2
                .create_launch_template()
                .launch_template_name(&name)
                .client_token(&token)
                .launch_template_data(data)
                .tag_specifications(ec2_tags(ctx, ResourceType::LaunchTemplate, "app"))
                .send()
                .await
                // Taken: made by a run that died before it was listed.
                .aws_unless(
                    format!("creating launch template {name}"),
                    &["InvalidLaunchTemplateName.AlreadyExistsException"],
                )?;
            let id = match made {
                Some(out) => out
                    .launch_template()
                    .and_then(|l| l.launch_template_id())
                    .unwrap_or_default()
                    .to_string(),
                None => ctx
                    .aws
                    .ec2
                    .describe_launch_templates()
                    .launch_template_names(&name)
                    .send()
                    .await
                    .aws(format!("finding launch template {name}"))?
                    .launch_templates()
                    .first()
                    .and_then(|l| l.launch_template_id().map(String::from))
                    .ok_or_else(|| {
                        anyhow::anyhow!("launch template {name} exists but cannot be read")
                    })?,
            };
            ctx.progress(
                "launch-template",
                &id,
                &format!("created ({} bytes of user-data)", script.len()),
            );
            ctx.set(|o| {
                o.launch_template_id = Some(id);
                o.launch_template_version = Some(1);
            });
            Ok(Change::Create)
        }
    }
}

/// Make `version` the template's default: the version the stack runs.
pub async fn set_default(ctx: &Ctx, template: &str, version: i64) -> anyhow::Result<()> {
    until_visible(
        &format!("making version {version} the default of launch template {template}"),
        EC2_NOT_YET,
        ctx.timing,
        || {
            ctx.aws
                .ec2
                .modify_launch_template()
                .launch_template_id(template)
                .default_version(version.to_string())
                .send()
        },
    )
    .await?;
    Ok(())
}

/// An EC2 client token for creating a template (version) as `what` from these inputs and
/// this run: the same request of this run (a retry after a lost answer) gets the same
/// token, anything else another. (Not the request's `Debug`: it redacts the user-data,
/// which is most of what differs between releases.)
fn client_token(ctx: &Ctx, what: &str, image: &str, user_data: &str) -> String {
    use sha2::{Digest, Sha256};
    let o = ctx.out();
    let mut h = Sha256::new();
    for part in [
        what,
        &ctx.aws.run,
        image,
        &ctx.config.app.instance_type,
        o.instance_profile_arn.as_deref().unwrap_or_default(),
        o.app_sg.as_deref().unwrap_or_default(),
        user_data,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("gallery-{hex}")
}

pub async fn delete(ctx: &Ctx) -> anyhow::Result<Change> {
    let out = ctx
        .aws
        .ec2
        .describe_launch_templates()
        .set_filters(Some(ec2_filters(ctx, None)))
        .send()
        .await
        .aws("finding launch templates")?;
    if out.launch_templates().is_empty() {
        return Ok(Change::Absent);
    }
    for lt in out.launch_templates() {
        let id = lt.launch_template_id().unwrap_or_default();
        ctx.aws
            .ec2
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
            .aws_unless(
                format!("deleting launch template {id}"),
                // Gone already (this call's first answer lost). Some emulators answer
                // with the name's code.
                &[
                    "InvalidLaunchTemplateId.NotFound",
                    "InvalidLaunchTemplateName.NotFoundException",
                ],
            )?;
        ctx.progress("launch-template", id, "deleted");
    }
    Ok(Change::Delete)
}

/// What of this module's resources is tagged for the stack (for `status`, and for
/// `down`'s final check).
pub async fn scan(ctx: &Ctx) -> anyhow::Result<Vec<Found>> {
    let mut all = Vec::new();
    let ec2 = &ctx.aws.ec2;
    let f = || Some(ec2_filters(ctx, None));
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
    Ok(all)
}
