//! Tags and tag filters: ownership is by tag, so every finder filters on the stack tag.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::engine::context::{Ctx, ROLE_TAG, STACK_TAG};

pub fn ec2_tags(ctx: &Ctx, kind: ResourceType, role: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(Tag::builder().key(STACK_TAG).value(ctx.stack()).build())
        .tags(Tag::builder().key(ROLE_TAG).value(role).build())
        .tags(Tag::builder().key("Name").value(ctx.name(role)).build())
        .build()
}

/// Filters for EC2 describes: this stack's resources, optionally of one role.
pub fn ec2_filters(ctx: &Ctx, role: Option<&str>) -> Vec<Filter> {
    let mut f = vec![Filter::builder()
        .name(format!("tag:{STACK_TAG}"))
        .values(ctx.stack())
        .build()];
    if let Some(role) = role {
        f.push(
            Filter::builder()
                .name(format!("tag:{ROLE_TAG}"))
                .values(role)
                .build(),
        );
    }
    f
}

pub fn ec2_role(tags: &[Tag]) -> Option<&str> {
    tags.iter()
        .find(|t| t.key() == Some(ROLE_TAG))
        .and_then(|t| t.value())
}

pub fn elb_tags(ctx: &Ctx, role: &str) -> Vec<aws_sdk_elasticloadbalancingv2::types::Tag> {
    use aws_sdk_elasticloadbalancingv2::types::Tag;
    vec![
        Tag::builder().key(STACK_TAG).value(ctx.stack()).build(),
        Tag::builder().key(ROLE_TAG).value(role).build(),
        Tag::builder().key("Name").value(ctx.name(role)).build(),
    ]
}

pub fn rds_tags(ctx: &Ctx, role: &str) -> Vec<aws_sdk_rds::types::Tag> {
    use aws_sdk_rds::types::Tag;
    vec![
        Tag::builder().key(STACK_TAG).value(ctx.stack()).build(),
        Tag::builder().key(ROLE_TAG).value(role).build(),
        Tag::builder().key("Name").value(ctx.name(role)).build(),
    ]
}

pub fn iam_tags(ctx: &Ctx, role: &str) -> anyhow::Result<Vec<aws_sdk_iam::types::Tag>> {
    use aws_sdk_iam::types::Tag;
    Ok(vec![
        Tag::builder().key(STACK_TAG).value(ctx.stack()).build()?,
        Tag::builder().key(ROLE_TAG).value(role).build()?,
        Tag::builder().key("Name").value(ctx.name(role)).build()?,
    ])
}

pub fn secret_tags(ctx: &Ctx, role: &str) -> Vec<aws_sdk_secretsmanager::types::Tag> {
    use aws_sdk_secretsmanager::types::Tag;
    vec![
        Tag::builder().key(STACK_TAG).value(ctx.stack()).build(),
        Tag::builder().key(ROLE_TAG).value(role).build(),
        Tag::builder().key("Name").value(ctx.name(role)).build(),
    ]
}
