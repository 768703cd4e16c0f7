//! `provision exec`: a command on the stack's instances through SSM Run Command
//! (AWS-RunShellScript; no SSH, no open port), run as the gallery's service user with its
//! environment (`/usr/local/bin/gallery-exec`, installed by the boot script), its output
//! and exit code printed per instance, the wait bounded and what did not finish cancelled.

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::InstanceInformationStringFilter;

use crate::engine::context::Ctx;
use crate::engine::errors::{code, explain, AwsResult};
use crate::resources::fleet;

/// GetCommandInvocation holds the first 24,000 characters of the output and the first
/// 8,000 of the error output; the agent counts bytes, so a stream this long in bytes may
/// have been cut.
pub const OUTPUT_LIMIT: usize = 24_000;
pub const ERROR_LIMIT: usize = 8_000;
/// SendCommand and CancelCommand take at most 50 instance ids; DescribeInstanceInformation
/// answers at most 50 a page.
const IDS_AT_ONCE: usize = 50;
/// The wrapper the boot script installs: the service's user, EnvironmentFile and PATH.
pub const WRAPPER: &str = "/usr/local/bin/gallery-exec";
/// How long an instance's agent may take to register before exec gives up on it.
const REGISTER_WAIT: Duration = Duration::from_secs(60);

/// Which instances to run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// One healthy InService instance of the group (commands such as `gallery users
    /// list` act on the shared database: once is enough).
    One,
    /// Every InService instance.
    All,
    /// This instance, which must be one of the group's.
    Instance(String),
}

/// How one instance's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub instance: String,
    /// SSM's status: Success, Failed, Cancelled, TimedOut, ... or `NotRegistered`.
    pub status: String,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Still running at the deadline (then cancelled).
    pub unfinished: bool,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status == "Success" && self.exit_code == Some(0)
    }
}

/// One argument for `sh`, quoted only when it must be: `'...'` with `'` as `'\''`.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A command exec can pass on unchanged: one is given, and no argument holds `{{`, as SSM
/// replaces `{{ssm:name}}` in a command's parameters before the shell reads them.
pub fn check_command(argv: &[String]) -> anyhow::Result<()> {
    if argv.is_empty() {
        anyhow::bail!("no command given: `provision exec -- gallery users list`");
    }
    if let Some(arg) = argv.iter().find(|a| a.contains("{{")) {
        anyhow::bail!(
            "argument {arg:?} holds '{{{{', which SSM Run Command would read as a parameter \
             reference ({{{{ssm:name}}}}) before the command sees it"
        );
    }
    Ok(())
}

/// The script AWS-RunShellScript runs (as root): the wrapper with each argument quoted.
pub fn script(argv: &[String]) -> String {
    let args: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    format!(
        "if [ ! -x {WRAPPER} ]; then echo 'this instance has no {WRAPPER}: it booted from a boot script older than provision exec; `provision deploy` replaces it' >&2; exit 127; fi\nexec {WRAPPER} {}",
        args.join(" ")
    )
}

/// What exec prints for one instance: a header naming it and how it ended, its output,
/// its error output under a rule, and a note where SSM cut a stream short.
pub fn format_outcome(o: &Outcome, timeout: Duration) -> String {
    let how = if o.unfinished {
        format!(
            "did not finish within {}s, cancelled ({})",
            timeout.as_secs(),
            o.status
        )
    } else if o.status == "NotRegistered" {
        "not registered with SSM: not run".to_string()
    } else {
        match o.exit_code {
            Some(c) if c >= 0 => format!("exit {c}, {}", o.status),
            _ => o.status.clone(),
        }
    };
    let mut text = format!("=== {} ({how}) ===\n", o.instance);
    for (name, stream, limit) in [
        ("", &o.stdout, OUTPUT_LIMIT),
        ("stderr", &o.stderr, ERROR_LIMIT),
    ] {
        if stream.is_empty() {
            continue;
        }
        if !name.is_empty() {
            text.push_str(&format!("--- {} {name} ---\n", o.instance));
        }
        text.push_str(stream);
        if !stream.ends_with('\n') {
            text.push('\n');
        }
        if stream.len() >= limit {
            text.push_str(&format!(
                "[output may be cut: SSM keeps the first {limit} characters of it]\n"
            ));
        }
    }
    text
}

/// The exit code for the whole run: 0 only if every instance succeeded.
pub fn exit_code(outcomes: &[Outcome]) -> i32 {
    if !outcomes.is_empty() && outcomes.iter().all(Outcome::ok) {
        0
    } else {
        1
    }
}

/// The instances to run on, from the stack's Auto Scaling group.
async fn pick(ctx: &Ctx, targets: &Targets) -> anyhow::Result<Vec<String>> {
    let group = fleet::find(ctx).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "stack {} has no Auto Scaling group: run `provision up` first",
            ctx.stack()
        )
    })?;
    let in_service: Vec<(String, bool)> = group
        .instances()
        .iter()
        .filter(|i| {
            i.lifecycle_state()
                .is_some_and(|s| s.as_str() == "InService")
        })
        .filter_map(|i| {
            i.instance_id()
                .map(|id| (id.to_string(), i.health_status() == Some("Healthy")))
        })
        .collect();
    let mut ids: Vec<String> = match targets {
        Targets::Instance(id) => {
            if !group
                .instances()
                .iter()
                .any(|i| i.instance_id() == Some(id.as_str()))
            {
                anyhow::bail!(
                    "instance {id} is not one of stack {}'s (group {}): `provision status` lists them",
                    ctx.stack(),
                    fleet::name(ctx)
                );
            }
            vec![id.clone()]
        }
        Targets::All => in_service.iter().map(|(id, _)| id.clone()).collect(),
        Targets::One => {
            let mut healthy: Vec<String> = in_service
                .iter()
                .filter(|(_, h)| *h)
                .map(|(id, _)| id.clone())
                .collect();
            // Every healthy one is a candidate: exec takes the first whose agent is Online.
            healthy.sort();
            healthy
        }
    };
    ids.sort();
    if ids.is_empty() {
        anyhow::bail!(
            "stack {} has no healthy InService instance to run on (group {})",
            ctx.stack(),
            fleet::name(ctx)
        );
    }
    Ok(ids)
}

/// Which of `ids` SSM lists Online (its agent registered and pinging), every page read:
/// a filtered listing may answer short pages.
async fn online(ctx: &Ctx, ids: &[String]) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for batch in ids.chunks(IDS_AT_ONCE) {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .set_values(Some(batch.to_vec()))
            .build()
            .map_err(|e| anyhow::anyhow!("building the SSM filter: {e}"))?;
        let mut next: Option<String> = None;
        loop {
            let out = ctx
                .aws
                .ssm
                .describe_instance_information()
                .filters(filter.clone())
                .max_results(IDS_AT_ONCE as i32)
                .set_next_token(next.take())
                .send()
                .await
                .aws("listing the instances registered with SSM")?;
            found.extend(
                out.instance_information_list()
                    .iter()
                    .filter(|i| i.ping_status().is_some_and(|p| p.as_str() == "Online"))
                    .filter_map(|i| i.instance_id().map(String::from)),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
    }
    Ok(found)
}

/// Run `argv` on the targets; each instance's outcome, in instance order.
pub async fn exec(
    ctx: &Ctx,
    targets: &Targets,
    argv: &[String],
    timeout: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    check_command(argv)?;
    let ids = pick(ctx, targets).await?;
    let poll = ctx.timing.poll.min(Duration::from_secs(1));
    // A new instance's agent registers once its role's credentials arrive: wait, bounded.
    let started = Instant::now();
    // One target: any registered candidate will do. Otherwise every target must be.
    let enough = |ready: &[String]| match targets {
        Targets::One => !ready.is_empty(),
        _ => ready.len() == ids.len(),
    };
    let mut ready = online(ctx, &ids).await?;
    while !enough(&ready) && started.elapsed() < REGISTER_WAIT.min(timeout.max(poll)) {
        eprintln!(
            "waiting for the SSM agent of {} to register",
            ids.iter()
                .filter(|i| !ready.contains(i))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        tokio::time::sleep(poll.max(Duration::from_millis(500))).await;
        ready = online(ctx, &ids).await?;
    }
    ready.sort();
    let ids = match targets {
        Targets::One => {
            // The first registered candidate, or (none registered) the first, reported.
            let chosen = ready.first().or(ids.first()).cloned();
            ready.truncate(1);
            chosen.into_iter().collect()
        }
        _ => ids,
    };
    let mut outcomes: Vec<Outcome> = ids
        .iter()
        .filter(|i| !ready.contains(i))
        .map(|i| Outcome {
            instance: i.clone(),
            status: "NotRegistered".into(),
            exit_code: None,
            stdout: String::new(),
            stderr: format!(
                "{i} is not Online in SSM (DescribeInstanceInformation): its agent needs the \
                 instance role's SSM permissions and outbound HTTPS to the SSM endpoints\n"
            ),
            unfinished: false,
        })
        .collect();
    if ready.is_empty() {
        return Ok(outcomes);
    }
    if ready.len() > IDS_AT_ONCE {
        anyhow::bail!(
            "exec runs on at most {IDS_AT_ONCE} instances at once (SendCommand's limit); {} are registered: name one with --instance",
            ready.len()
        );
    }
    // The agent's own limit, a backstop should the cancel below never arrive.
    let backstop = (timeout.as_secs() + 30).min(172_800);
    let sent = ctx
        .aws
        .ssm
        .send_command()
        .document_name("AWS-RunShellScript")
        .set_instance_ids(Some(ready.clone()))
        .parameters("commands", vec![script(argv)])
        .parameters("executionTimeout", vec![backstop.to_string()])
        .comment(format!("provision exec, stack {}", ctx.stack()))
        .timeout_seconds(30)
        .send()
        .await
        .aws(format!("sending the command to {}", ready.join(", ")))?;
    let command_id = sent
        .command()
        .and_then(|c| c.command_id())
        .ok_or_else(|| anyhow::anyhow!("SendCommand answered without a command id"))?
        .to_string();
    match follow(ctx, &command_id, &ready, timeout, poll).await {
        Ok(done) => outcomes.extend(done),
        Err(e) => {
            // Not left running unwatched: cancel it where it may still run (best effort).
            let _ = ctx
                .aws
                .ssm
                .cancel_command()
                .command_id(&command_id)
                .set_instance_ids(Some(ready.clone()))
                .send()
                .await;
            return Err(e.context(format!(
                "following command {command_id} (cancelled on {})",
                ready.join(", ")
            )));
        }
    }
    outcomes.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(outcomes)
}

/// Poll the command on `ready` until each has ended; past `timeout`, cancel what runs and
/// report it unfinished.
async fn follow(
    ctx: &Ctx,
    command_id: &str,
    ready: &[String],
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    let deadline = Instant::now() + timeout;
    let mut done: Vec<Outcome> = Vec::new();
    let mut pending = ready.to_vec();
    let mut cancelled = false;
    // Past the deadline: cancel, then give the agent a moment to report the cancel.
    let grace = Duration::from_secs(15);
    loop {
        let mut still = Vec::new();
        for id in &pending {
            match invocation(ctx, command_id, id).await? {
                // Ended by the cancel (not on its own just before it arrived).
                Some(o) if is_terminal(&o.status) => done.push(Outcome {
                    unfinished: cancelled && matches!(o.status.as_str(), "Cancelled" | "TimedOut"),
                    ..o
                }),
                _ => still.push(id.clone()),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        let now = Instant::now();
        if !cancelled && now >= deadline {
            ctx.aws
                .ssm
                .cancel_command()
                .command_id(command_id)
                .set_instance_ids(Some(pending.clone()))
                .send()
                .await
                .aws(format!("cancelling command {command_id}"))?;
            cancelled = true;
        } else if cancelled && now >= deadline + grace {
            for id in &pending {
                let last = invocation(ctx, command_id, id).await?;
                done.push(Outcome {
                    instance: id.clone(),
                    status: last
                        .as_ref()
                        .map_or("Cancelling".into(), |o| o.status.clone()),
                    exit_code: None,
                    stdout: last.as_ref().map(|o| o.stdout.clone()).unwrap_or_default(),
                    stderr: last.map(|o| o.stderr).unwrap_or_default(),
                    unfinished: true,
                });
            }
            break;
        }
        tokio::time::sleep(poll).await;
    }
    Ok(done)
}

fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "Success" | "Failed" | "Cancelled" | "TimedOut" | "DeliveryTimedOut" | "ExecutionTimedOut"
    )
}

/// One invocation as SSM reports it; None while SSM does not know it yet (right after
/// SendCommand, InvocationDoesNotExist for a moment).
async fn invocation(ctx: &Ctx, command_id: &str, id: &str) -> anyhow::Result<Option<Outcome>> {
    match ctx
        .aws
        .ssm
        .get_command_invocation()
        .command_id(command_id)
        .instance_id(id)
        .send()
        .await
    {
        Ok(out) => Ok(Some(Outcome {
            instance: id.to_string(),
            status: out
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            exit_code: Some(out.response_code()),
            stdout: out
                .standard_output_content()
                .unwrap_or_default()
                .to_string(),
            stderr: out.standard_error_content().unwrap_or_default().to_string(),
            unfinished: false,
        })),
        Err(e) if code(&e).as_deref() == Some("InvocationDoesNotExist") => Ok(None),
        Err(e) => Err(explain(format!("reading command {command_id} on {id}"), e)),
    }
}

/// Print the outcomes, and to stderr which instances did not finish; the exit code.
pub fn report(outcomes: &[Outcome], timeout: Duration) -> i32 {
    for o in outcomes {
        print!("{}", format_outcome(o, timeout));
    }
    let unfinished: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.unfinished)
        .map(|o| o.instance.as_str())
        .collect();
    if !unfinished.is_empty() {
        eprintln!(
            "error: timed out after {}s: {} did not finish; the command was cancelled there",
            timeout.as_secs(),
            unfinished.join(", ")
        );
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok() && !o.unfinished)
        .map(|o| o.instance.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!("error: the command failed on {}", failed.join(", "));
    }
    exit_code(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: &str, code: Option<i32>) -> Outcome {
        Outcome {
            instance: "i-0abc".into(),
            status: status.into(),
            exit_code: code,
            stdout: String::new(),
            stderr: String::new(),
            unfinished: false,
        }
    }

    #[test]
    fn plain_arguments_stay_as_they_are_and_the_rest_is_single_quoted() {
        assert_eq!(shell_quote("gallery"), "gallery");
        assert_eq!(shell_quote("--name=alice"), "--name=alice");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("a;b|c&d`e`"), "'a;b|c&d`e`'");
        assert_eq!(shell_quote("line\nbreak"), "'line\nbreak'");
    }

    #[test]
    fn quoted_arguments_reach_the_command_unchanged() {
        let argv: Vec<String> = ["printf", "%s|", "it's", "$HOME", "a b", "", "*", "\\n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(quoted.join(" "))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "it's|$HOME|a b||*|\\n|"
        );
    }

    #[test]
    fn the_script_runs_the_wrapper_with_the_quoted_command() {
        let s = script(&["gallery".into(), "users".into(), "list".into()]);
        assert!(
            s.ends_with("exec /usr/local/bin/gallery-exec gallery users list"),
            "{s}"
        );
        assert!(s.contains("[ ! -x /usr/local/bin/gallery-exec ]"), "{s}");
    }

    #[test]
    fn each_instance_is_labelled_with_its_exit_code_and_its_streams() {
        let mut o = outcome("Success", Some(0));
        o.stdout = "alice admin\n".into();
        assert_eq!(
            format_outcome(&o, Duration::from_secs(60)),
            "=== i-0abc (exit 0, Success) ===\nalice admin\n"
        );
        let mut o = outcome("Failed", Some(3));
        o.stdout = "partial".into();
        o.stderr = "boom\n".into();
        assert_eq!(
            format_outcome(&o, Duration::from_secs(60)),
            "=== i-0abc (exit 3, Failed) ===\npartial\n--- i-0abc stderr ---\nboom\n"
        );
        let mut o = outcome("Cancelled", Some(-1));
        o.unfinished = true;
        assert_eq!(
            format_outcome(&o, Duration::from_secs(2)),
            "=== i-0abc (did not finish within 2s, cancelled (Cancelled)) ===\n"
        );
        assert!(
            format_outcome(&outcome("NotRegistered", None), Duration::from_secs(2))
                .contains("not registered with SSM")
        );
    }

    #[test]
    fn a_command_ssm_would_rewrite_is_refused() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_command(&argv(&["gallery", "users", "list"])).is_ok());
        assert!(check_command(&argv(&["echo", "{ not a parameter }"])).is_ok());
        let e = check_command(&argv(&["echo", "{{ssm:secret}}"])).unwrap_err();
        assert!(e.to_string().contains("'{{'"), "{e}");
        assert!(e.to_string().contains("{{ssm:name}}"), "{e}");
        assert!(check_command(&[]).is_err());
    }

    #[test]
    fn output_cut_at_the_ssm_limit_says_so() {
        let mut o = outcome("Success", Some(0));
        o.stdout = "x".repeat(OUTPUT_LIMIT);
        assert!(format_outcome(&o, Duration::from_secs(1)).contains("[output may be cut"));
        o.stdout = "x".repeat(OUTPUT_LIMIT - 1);
        assert!(!format_outcome(&o, Duration::from_secs(1)).contains("may be cut"));
        // The error output is kept to 8,000; the agent counts bytes ("é" is two).
        o.stderr = "x".repeat(ERROR_LIMIT);
        assert!(format_outcome(&o, Duration::from_secs(1)).contains("first 8000 characters"));
        o.stderr = "é".repeat(ERROR_LIMIT / 2);
        assert!(format_outcome(&o, Duration::from_secs(1)).contains("first 8000 characters"));
        o.stderr = "x".repeat(ERROR_LIMIT - 1);
        assert!(!format_outcome(&o, Duration::from_secs(1)).contains("may be cut"));
    }

    #[test]
    fn any_failed_or_unfinished_instance_fails_the_run() {
        assert_eq!(exit_code(&[outcome("Success", Some(0))]), 0);
        assert_eq!(
            exit_code(&[outcome("Success", Some(0)), outcome("Failed", Some(1))]),
            1
        );
        let mut late = outcome("Success", Some(0));
        late.status = "Cancelled".into();
        late.unfinished = true;
        assert_eq!(exit_code(&[late]), 1);
        assert_eq!(exit_code(&[outcome("NotRegistered", None)]), 1);
        assert_eq!(exit_code(&[]), 1);
    }
}
