//! `deploy`'s schema check: while a release rolls out, and after a rollback, the old
//! release runs on the schema the new one migrated, so the new one's migrations must be
//! additive. A statement that drops, renames or retypes something, or makes an existing
//! column NOT NULL (or adds one without a default), would break the old release: it is
//! refused, naming the statement, unless `--allow-breaking`.
//!
//! The release says what its migrations are (`gallery migrations` prints them); this
//! reads SQL, not a parse tree: statements are split on `;` outside quotes and comments,
//! and judged by their leading words. Tables a migration creates itself are free to
//! change in that same migration.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub description: String,
    pub sql: String,
}

/// A statement that an older release could not live with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaking {
    pub version: i64,
    pub description: String,
    pub statement: String,
    pub why: &'static str,
}

/// The release's migrations, from `<artifact> migrations`. An artifact without its
/// execute bit (copied or downloaded) runs from an executable copy.
pub fn of_artifact(path: &Path) -> anyhow::Result<Vec<Migration>> {
    use std::os::unix::fs::PermissionsExt;
    let executable = std::fs::metadata(path)
        .with_context(|| format!("--artifact {}: cannot read it", path.display()))?
        .permissions()
        .mode()
        & 0o100
        != 0;
    let copy = (!executable)
        .then(|| -> anyhow::Result<std::path::PathBuf> {
            let copy = std::env::temp_dir().join(format!(
                "provision-release-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            std::fs::copy(path, &copy)
                .with_context(|| format!("copying {} to run it", path.display()))?;
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o700))?;
            Ok(copy)
        })
        .transpose()?;
    let run = copy.as_deref().unwrap_or(path);
    // A file just written may be busy for a moment (another thread's fork holding it open).
    let mut tries = 0;
    let out = loop {
        match Command::new(run).arg("migrations").output() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => break r,
        }
    };
    if let Some(copy) = &copy {
        let _ = std::fs::remove_file(copy);
    }
    let out = out.with_context(|| format!("running {} migrations", path.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} migrations failed ({}): {}; a release that cannot list its migrations cannot be checked (--allow-breaking skips the check)",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading the migrations {} printed", path.display()))
}

/// Every statement of `migrations` that is not additive.
pub fn breaking(migrations: &[Migration]) -> Vec<Breaking> {
    let mut found = Vec::new();
    for m in migrations {
        let statements = statements(&m.sql);
        let created: Vec<String> = statements
            .iter()
            .filter_map(|s| table_after(s, &["CREATE", "TABLE"]))
            .collect();
        for s in &statements {
            // `ALTER TABLE t a, b`: each action is judged on its own.
            if let Some(why) = actions(s).iter().find_map(|a| judge(a, &created)) {
                found.push(Breaking {
                    version: m.version,
                    description: m.description.clone(),
                    statement: s.clone(),
                    why,
                });
            }
        }
    }
    found
}

/// Refuse a release with a breaking migration (an error naming each statement), unless
/// the operator allows it.
pub fn check(migrations: &[Migration], allow_breaking: bool) -> anyhow::Result<()> {
    let found = breaking(migrations);
    if found.is_empty() || allow_breaking {
        return Ok(());
    }
    let mut text = String::from(
        "the release's migrations are not additive, so the running release (and a rollback) would break on the new schema:\n",
    );
    for b in &found {
        text.push_str(&format!(
            "  {} {}: {} ({})\n",
            b.version, b.description, b.statement, b.why
        ));
    }
    text.push_str(
        "Make the change in two releases (add now, remove once no release uses it), or pass --allow-breaking \
         to deploy it anyway (the old instances may fail until they are replaced; rollback is not safe).",
    );
    anyhow::bail!(text)
}

fn judge(statement: &str, created: &[String]) -> Option<&'static str> {
    let words = words(statement);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    if w.first() == Some(&"DROP") && w.get(1) != Some(&"INDEX") {
        return Some("drops what an older release uses");
    }
    if w.first() == Some(&"TRUNCATE") || (w.first() == Some(&"DELETE") && !w.contains(&"WHERE")) {
        return Some("empties a table");
    }
    if w.first() == Some(&"ALTER") && w.get(1) == Some(&"TABLE") {
        let table = table_after(statement, &["ALTER", "TABLE"])?;
        if created.contains(&table) {
            return None;
        }
        if w.contains(&"RENAME") {
            return Some("renames what an older release uses");
        }
        // Dropping a default, a NOT NULL or a constraint only relaxes the schema.
        let relaxes = w
            .windows(2)
            .any(|p| p[0] == "DROP" && ["DEFAULT", "NOT", "CONSTRAINT"].contains(&p[1]));
        if w.contains(&"DROP") && !relaxes {
            return Some("drops what an older release uses");
        }
        if w.windows(2).any(|p| p == ["SET", "NOT"]) {
            return Some("makes a column NOT NULL: an older release's inserts may leave it empty");
        }
        if w.contains(&"TYPE")
            && w.contains(&"ALTER")
            && w.iter().filter(|x| **x == "ALTER").count() > 1
        {
            return Some("changes a column's type");
        }
        if w.contains(&"ADD")
            && w.windows(2).any(|p| p == ["NOT", "NULL"])
            && !w.contains(&"DEFAULT")
            && !w.contains(&"CONSTRAINT")
            && !w.contains(&"INDEX")
        {
            return Some(
                "adds a NOT NULL column without a default: an older release's inserts fail",
            );
        }
    }
    None
}

/// An `ALTER TABLE` statement's actions, each as a statement of its own (split on the
/// commas outside parentheses and quotes); any other statement as it is.
fn actions(statement: &str) -> Vec<String> {
    let Some(table) = table_after(statement, &["ALTER", "TABLE"]) else {
        return vec![statement.to_string()];
    };
    let (mut parts, mut current, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    for c in statement.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 0 {
                p
            } else {
                format!("ALTER TABLE {table} {}", p.trim())
            }
        })
        .collect()
}

/// The statement's words, upper-cased, quotes and punctuation dropped.
fn words(statement: &str) -> Vec<String> {
    statement
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('"').to_ascii_uppercase())
        .collect()
}

/// The table named after `lead` (`ALTER TABLE [IF EXISTS] [ONLY] name`), lower-cased.
fn table_after(statement: &str, lead: &[&str]) -> Option<String> {
    let w = words(statement);
    if w.len() <= lead.len() || w[..lead.len()] != *lead {
        return None;
    }
    w[lead.len()..]
        .iter()
        .find(|x| !["IF", "NOT", "EXISTS", "ONLY"].contains(&x.as_str()))
        .map(|t| t.to_ascii_lowercase())
}

/// Statements of a migration, split on `;` outside quotes and comments, comments removed.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for n in chars.by_ref() {
                        if n == '\n' {
                            current.push(' ');
                            break;
                        }
                    }
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    let mut last = ' ';
                    for n in chars.by_ref() {
                        if last == '*' && n == '/' {
                            break;
                        }
                        last = n;
                    }
                    current.push(' ');
                }
                ';' => {
                    push(&mut out, &current);
                    current.clear();
                }
                c => current.push(c),
            },
        }
    }
    push(&mut out, &current);
    out
}

fn push(out: &mut Vec<String>, statement: &str) {
    let s = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if !s.is_empty() {
        out.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sql: &str) -> Vec<Migration> {
        vec![Migration {
            version: 20270101000000,
            description: "next".into(),
            sql: sql.into(),
        }]
    }

    fn why(sql: &str) -> Vec<&'static str> {
        breaking(&m(sql)).into_iter().map(|b| b.why).collect()
    }

    #[test]
    fn additive_changes_pass() {
        for sql in [
            "ALTER TABLE images ADD COLUMN rating INTEGER;",
            "ALTER TABLE images ADD COLUMN taken_at BIGINT NOT NULL DEFAULT 0;",
            "CREATE TABLE albums (id BIGINT PRIMARY KEY, title TEXT NOT NULL);\nCREATE INDEX albums_title ON albums (title);",
            "CREATE TABLE t (id INT); ALTER TABLE t ADD COLUMN x INT NOT NULL; ALTER TABLE t RENAME COLUMN x TO y;",
            "DROP INDEX IF EXISTS images_old_idx;",
            "ALTER TABLE images ALTER COLUMN note DROP DEFAULT;",
            "ALTER TABLE images ALTER COLUMN note DROP NOT NULL;",
            "ALTER TABLE images ADD COLUMN price NUMERIC(10,2), ADD COLUMN note TEXT DEFAULT 'a, b';",
            "-- DROP TABLE users; is only a comment\nUPDATE images SET rating = 0 WHERE rating IS NULL;",
            "INSERT INTO settings (k, v) VALUES ('note', 'DROP TABLE; is text');",
        ] {
            assert_eq!(why(sql), Vec::<&str>::new(), "{sql}");
        }
    }

    #[test]
    fn breaking_changes_are_named() {
        for (sql, want) in [
            ("ALTER TABLE images DROP COLUMN original_name;", "drops"),
            ("DROP TABLE sessions;", "drops"),
            (
                "ALTER TABLE images RENAME COLUMN original_name TO name;",
                "renames",
            ),
            ("ALTER TABLE images RENAME TO photos;", "renames"),
            ("ALTER TABLE images ALTER COLUMN bytes TYPE TEXT;", "type"),
            (
                "ALTER TABLE images ALTER COLUMN note SET NOT NULL;",
                "NOT NULL",
            ),
            (
                "ALTER TABLE images ADD COLUMN taken_at BIGINT NOT NULL;",
                "without a default",
            ),
            ("TRUNCATE sessions;", "empties"),
            (
                "ALTER TABLE images DROP COLUMN a, ALTER COLUMN b DROP DEFAULT;",
                "drops",
            ),
            (
                "ALTER TABLE images ADD COLUMN a INT NOT NULL, ADD COLUMN b INT DEFAULT 0;",
                "without a default",
            ),
        ] {
            let got = why(sql);
            assert_eq!(got.len(), 1, "{sql}: {got:?}");
            assert!(got[0].contains(want), "{sql}: {got:?}");
        }
    }

    #[test]
    fn the_refusal_names_the_statement_and_the_way_out() {
        let err = check(
            &m("ALTER TABLE images ADD COLUMN r INT;\nALTER TABLE images DROP COLUMN original_name;"),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ALTER TABLE images DROP COLUMN original_name")
                && err.contains("20270101000000 next")
                && err.contains("--allow-breaking"),
            "{err}"
        );
        assert!(!err.contains("ADD COLUMN r"), "{err}");
        assert!(check(&m("DROP TABLE x;"), true).is_ok());
    }

    #[test]
    fn this_repositorys_migrations_are_additive() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../app/migrations/postgres");
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            all.push(Migration {
                version: 0,
                description: path.display().to_string(),
                sql: std::fs::read_to_string(&path).unwrap(),
            });
        }
        assert!(!all.is_empty());
        assert_eq!(breaking(&all), Vec::new());
    }
}
