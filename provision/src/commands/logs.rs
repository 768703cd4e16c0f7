//! `provision logs`: the app's log lines from the stack's CloudWatch Logs group (every
//! instance's stream, including instances long gone), read with FilterLogEvents page by
//! page. `--follow` asks again every few seconds from a little before the newest line
//! seen (CloudWatch shows events seconds after they are sent, not always in send order)
//! and prints each event once, by its id.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;

use crate::engine::context::Ctx;
use crate::engine::errors::{code, explain};
use crate::resources::logs;

/// How far back `--follow` asks again for events that became visible late.
const LATE_WINDOW_MS: i64 = 60_000;
/// How often `--follow` asks.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Query {
    pub since: Duration,
    pub instance: Option<String>,
    pub grep: Option<String>,
    pub json: bool,
    pub follow: bool,
}

/// `--since`: a number and a unit, `30s`, `10m`, `2h`, `1d`.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write it like 30s, 10m, 2h or 1d"))?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number: write it like 10m"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{unit}` is not a unit: use s, m, h or d (e.g. 10m)"
            ))
        }
    };
    if n == 0 {
        return Err("must be more than 0 (e.g. 10m)".into());
    }
    n.checked_mul(secs)
        .filter(|s| *s <= 3653 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is longer than CloudWatch keeps logs (10 years)"))
}

/// `--grep TEXT` as a CloudWatch filter pattern: the text as one quoted term (it matches
/// events holding it exactly, case-sensitive). A double quote can't be written in one.
pub fn filter_pattern(grep: &str) -> Result<String, String> {
    if grep.is_empty() {
        return Err("must not be empty".into());
    }
    if grep.contains('"') {
        return Err(
            "a double quote cannot be searched for (CloudWatch's quoted terms can't hold one)"
                .into(),
        );
    }
    if grep.len() > 1000 {
        return Err("is longer than CloudWatch's 1,024-character filter pattern".into());
    }
    Ok(format!("\"{grep}\""))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every event of the group from `start_ms`, all pages (FilterLogEvents may answer an
/// empty page with a token: the search is not over until there is no token).
pub async fn fetch(
    ctx: &Ctx,
    start_ms: i64,
    instance: Option<&str>,
    pattern: Option<&str>,
    max_events: usize,
) -> anyhow::Result<Vec<FilteredLogEvent>> {
    let group = logs::group_name(ctx);
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let sent = ctx
            .aws
            .logs
            .filter_log_events()
            .log_group_name(&group)
            .start_time(start_ms)
            .set_log_stream_names(instance.map(|i| vec![i.to_string()]))
            .set_filter_pattern(pattern.map(String::from))
            .set_next_token(token.clone())
            .send()
            .await;
        let page = match sent {
            Ok(p) => p,
            Err(e) if code(&e).as_deref() == Some("ResourceNotFoundException") => {
                anyhow::bail!(
                    "stack {} has no log group {group} (or no stream {}): `provision up` makes the group; instances write to it once they run",
                    ctx.stack(),
                    instance.unwrap_or("-")
                )
            }
            Err(e) => return Err(explain(format!("reading log group {group}"), e)),
        };
        events.extend(page.events().iter().cloned());
        if events.len() >= max_events {
            break;
        }
        match page.next_token() {
            Some(t) if !t.is_empty() && Some(t) != token.as_deref() => token = Some(t.to_string()),
            _ => break,
        }
    }
    events.sort_by_key(|e| (e.timestamp().unwrap_or(0), e.event_id().map(String::from)));
    Ok(events)
}

fn rfc3339_ms(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ms.to_string())
}

/// A log line readably: the gallery's JSON lines as `LEVEL message key=value ...`,
/// anything else as it is.
pub fn readable_message(message: &str) -> String {
    let Ok(serde_json::Value::Object(line)) = serde_json::from_str::<serde_json::Value>(message)
    else {
        return message.to_string();
    };
    let level = line.get("level").and_then(|l| l.as_str()).unwrap_or("");
    let fields = line.get("fields").and_then(|f| f.as_object());
    let text = fields
        .and_then(|f| f.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let mut out = format!("{level:<5} {text}");
    if let Some(fields) = fields {
        for (k, v) in fields.iter().filter(|(k, _)| k.as_str() != "message") {
            match v {
                serde_json::Value::String(s) => out.push_str(&format!(" {k}={s}")),
                other => out.push_str(&format!(" {k}={other}")),
            }
        }
    }
    out
}

/// One event as `provision logs` prints it.
pub fn render(event: &FilteredLogEvent, json: bool) -> String {
    if json {
        return serde_json::json!({
            "timestamp": event.timestamp(),
            "ingestionTime": event.ingestion_time(),
            "logStreamName": event.log_stream_name(),
            "eventId": event.event_id(),
            "message": event.message(),
        })
        .to_string();
    }
    format!(
        "{} {} {}",
        rfc3339_ms(event.timestamp().unwrap_or(0)),
        event.log_stream_name().unwrap_or("-"),
        readable_message(event.message().unwrap_or(""))
    )
}

/// Events already printed, by id, forgotten once older than the window asked again.
#[derive(Default)]
pub struct Seen {
    ids: HashMap<String, i64>,
}

impl Seen {
    /// Whether the event is new (and remembers it).
    pub fn first_time(&mut self, event: &FilteredLogEvent) -> bool {
        let id = event
            .event_id()
            .map(String::from)
            .unwrap_or_else(|| format!("{:?}{:?}", event.timestamp(), event.message()));
        self.ids
            .insert(id, event.timestamp().unwrap_or(0))
            .is_none()
    }

    pub fn forget_before(&mut self, ms: i64) {
        self.ids.retain(|_, at| *at >= ms);
    }
}

/// Prints the events; with `follow`, keeps printing new ones until interrupted.
pub async fn logs(ctx: &Ctx, q: &Query) -> anyhow::Result<i32> {
    let pattern = match &q.grep {
        Some(g) => Some(filter_pattern(g).map_err(|e| anyhow::anyhow!("--grep: {e}"))?),
        None => None,
    };
    let since_ms = i64::try_from(q.since.as_millis()).unwrap_or(i64::MAX);
    let mut start = now_ms().saturating_sub(since_ms);
    let mut seen = Seen::default();
    loop {
        let events = fetch(
            ctx,
            start,
            q.instance.as_deref(),
            pattern.as_deref(),
            usize::MAX,
        )
        .await?;
        for e in &events {
            if seen.first_time(e) {
                println!("{}", render(e, q.json));
            }
        }
        if !q.follow {
            return Ok(0);
        }
        if let Some(newest) = events.iter().filter_map(|e| e.timestamp()).max() {
            start = start.max(newest.saturating_sub(LATE_WINDOW_MS));
        }
        seen.forget_before(start);
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// The last `n` lines an instance sent in the last hour, readable (a failed deploy's
/// evidence); empty when it sent none.
pub async fn last_lines(ctx: &Ctx, instance: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let start = now_ms() - 3_600_000;
    let events = fetch(ctx, start, Some(instance), None, 50_000).await?;
    Ok(events[events.len().saturating_sub(n)..]
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                rfc3339_ms(e.timestamp().unwrap_or(0)),
                readable_message(e.message().unwrap_or(""))
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_since("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_since("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_since("1d"), Ok(Duration::from_secs(86_400)));
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "1.5h",
            "-1m",
            "0m",
            "99999999999999999999d",
            "4000d",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grep_is_one_quoted_term() {
        assert_eq!(filter_pattern("abc-123").unwrap(), "\"abc-123\"");
        assert_eq!(filter_pattern("two words").unwrap(), "\"two words\"");
        assert!(filter_pattern("").is_err());
        assert!(filter_pattern("say \"hi\"").is_err());
    }

    fn event(id: &str, at: i64, message: &str) -> FilteredLogEvent {
        FilteredLogEvent::builder()
            .event_id(id)
            .timestamp(at)
            .log_stream_name("i-0abc")
            .message(message)
            .build()
    }

    #[test]
    fn the_gallerys_json_lines_print_readably_and_raw_with_json() {
        let line = r#"{"timestamp":"x","level":"INFO","fields":{"message":"request","request_id":"r-1","status":200},"target":"gallery::access"}"#;
        let e = event("1", 1_765_000_000_000, line);
        let text = render(&e, false);
        assert!(
            text.starts_with("2025-12-06T05:46:40Z i-0abc INFO  request"),
            "{text}"
        );
        assert!(
            text.contains("request_id=r-1") && text.contains("status=200"),
            "{text}"
        );
        assert_eq!(
            render(&event("2", 0, "plain text"), false),
            "1970-01-01T00:00:00Z i-0abc plain text"
        );
        let raw: serde_json::Value = serde_json::from_str(&render(&e, true)).unwrap();
        assert_eq!(raw["message"], line);
        assert_eq!(raw["logStreamName"], "i-0abc");
        assert_eq!(raw["eventId"], "1");
    }

    #[test]
    fn following_prints_each_event_once() {
        let mut seen = Seen::default();
        assert!(seen.first_time(&event("a", 10, "x")));
        assert!(!seen.first_time(&event("a", 10, "x")));
        assert!(seen.first_time(&event("b", 10, "x")));
        seen.forget_before(11);
        assert!(seen.first_time(&event("a", 10, "x")));
    }
}
