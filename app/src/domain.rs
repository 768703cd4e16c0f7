//! Values parsed at the boundary: once a `Username` exists it is valid everywhere.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A login name; also the name of the user's folder in storage, hence the strict alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim().to_ascii_lowercase();
        if !(2..=32).contains(&name.len()) {
            return Err(Invalid("Username must be 2 to 32 characters long.".into()));
        }
        let first_ok = name.as_bytes()[0].is_ascii_alphanumeric();
        let all_ok = name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
        if !first_ok || !all_ok {
            return Err(Invalid(
                "Username may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit."
                    .into(),
            ));
        }
        Ok(Username(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid("Full name must not be empty.".into()));
        }
        if name.chars().count() > 100 {
            return Err(Invalid("Full name must be at most 100 characters.".into()));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid(
                "Full name must not contain control characters.".into(),
            ));
        }
        Ok(FullName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password. Never printed by `Debug`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            return Err(Invalid(format!(
                "Password must be at least {} characters.",
                Self::MIN_LEN
            )));
        }
        if len > 256 {
            return Err(Invalid("Password must be at most 256 characters.".into()));
        }
        Ok(Password(raw.to_string()))
    }

    /// A random password for a generated first admin.
    pub fn generate() -> Self {
        use rand::distr::{Alphanumeric, SampleString};
        Password(Alphanumeric.sample_string(&mut rand::rng(), 20))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The name a file had on the uploader's machine, kept for display only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Browsers send a bare file name; a path, a control character or an absurd length
    /// means a hand-made request, which we refuse rather than guess at.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid("The file has no name.".into()));
        }
        if name.len() > 255 {
            return Err(Invalid("File names must be at most 255 bytes.".into()));
        }
        if name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(Invalid(format!(
                "File name `{name}` contains a path; send the bare file name."
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid(
                "File names must not contain control characters.".into(),
            ));
        }
        Ok(DisplayName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where to go after login: a path on this site only (no scheme, no `//host`).
pub fn safe_next(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && !p.chars().any(|c| c.is_control() || c == '\\') =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// "Firefox on Linux", "Safari on iPhone": a browser's User-Agent as a person reads it.
pub fn describe_agent(agent: Option<&str>) -> String {
    let Some(ua) = agent.filter(|a| !a.trim().is_empty()) else {
        return "Unknown device".to_string();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(mark, _)| ua.contains(mark))
    .map(|(_, name)| *name);
    let system = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| ua.contains(mark))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_string(),
        (None, Some(s)) => format!("A browser on {s}"),
        (None, None) => {
            let first: String = ua
                .split_whitespace()
                .next()
                .unwrap_or(ua)
                .chars()
                .take(40)
                .collect();
            first
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_read_as_browser_and_system() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(describe_agent(Some(firefox)), "Firefox on Linux");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_agent(Some(iphone)), "Safari on iPhone");
        let edge =
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                    Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        assert_eq!(describe_agent(Some(edge)), "Edge on Windows");
        let android = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) \
                       Chrome/131.0.0.0 Mobile Safari/537.36";
        assert_eq!(describe_agent(Some(android)), "Chrome on Android");
        assert_eq!(describe_agent(Some("reqwest/0.12")), "reqwest/0.12");
        assert_eq!(describe_agent(None), "Unknown device");
        assert_eq!(describe_agent(Some("  ")), "Unknown device");
    }

    #[test]
    fn usernames_are_normalised_and_restricted() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        for bad in ["", "a", "../x", "a/b", ".hidden", "x y", "é"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames_refuse_html_characters() {
        for bad in [
            "<b>x",
            "a\"b",
            "x>y",
            "<script>",
            "ab<",
            "a'b",
            "a&b",
            "a=b",
            "a`b",
            "\"><script>alert(1)</script>",
        ] {
            let err = Username::parse(bad).unwrap_err();
            assert!(err.0.contains("may contain only"), "{bad}: {err}");
        }
        // The same letters without the markup are fine.
        assert_eq!(Username::parse("b.x").unwrap().as_str(), "b.x");
    }

    #[test]
    fn full_names_and_file_names_keep_html_for_escaping_at_output() {
        // Not refused at input: they are data, and the templates escape them (claim 6).
        let name = "\"><script>alert(1)</script>";
        assert_eq!(FullName::parse(name).unwrap().as_str(), name);
        for file in [
            "x\" onerror=\"alert(1).jpg",
            "<img src=x onerror=alert(1)>.jpg",
        ] {
            assert_eq!(DisplayName::parse(file).unwrap().as_str(), file);
        }
        assert!(FullName::parse("a\nb").is_err());
        assert!(DisplayName::parse("a\r\nb.jpg").is_err());
    }

    #[test]
    fn display_names_refuse_paths() {
        assert!(DisplayName::parse("../../x.jpg").is_err());
        assert!(DisplayName::parse("a\\b.jpg").is_err());
        assert!(DisplayName::parse("bad\u{0}.jpg").is_err());
        assert_eq!(
            DisplayName::parse("Holiday 1.jpg").unwrap().as_str(),
            "Holiday 1.jpg"
        );
    }

    #[test]
    fn next_is_same_site_only() {
        assert_eq!(safe_next(Some("/gallery?page=2")), "/gallery?page=2");
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "evil",
            "/\\/x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
