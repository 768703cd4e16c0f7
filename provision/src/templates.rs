//! The files in `provision/templates/` and `userdata/`, compiled in, and the one
//! substitution that renders them (`{{name}}` placeholders; leftovers are an error).

pub const BUCKET_POLICY: &str = include_str!("../templates/bucket-policy.json");
pub const ASSUME_ROLE: &str = include_str!("../templates/assume-role.json");
pub const APP_POLICY: &str = include_str!("../templates/app-policy.json");
pub const USER_DATA: &str = include_str!("../../userdata/boot.sh");

pub fn render(template: &str, vars: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    if let Some(start) = out.find("{{") {
        let rest = &out[start..];
        let end = rest.find("}}").map(|e| e + 2).unwrap_or(rest.len().min(40));
        anyhow::bail!("template placeholder {} has no value", &rest[..end]);
    }
    Ok(out)
}

/// Render a JSON policy and parse it, so a bad template fails here, not at AWS.
pub fn policy(template: &str, vars: &[(&str, &str)]) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&render(template, vars)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_placeholders_are_errors() {
        assert!(render("a {{x}} b", &[]).is_err());
        assert_eq!(render("a {{x}} b", &[("x", "1")]).unwrap(), "a 1 b");
        assert!(policy(
            APP_POLICY,
            &[
                ("bucket", "b"),
                ("db_secret_arn", "arn:1"),
                ("admin_secret_arn", "arn:2"),
                ("log_group_arn", "arn:3")
            ]
        )
        .is_ok());
    }
}
