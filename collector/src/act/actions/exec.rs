//! `exec`: running a command inside a container, only if allowlisted.
//!
//! Running arbitrary commands on request would turn a stolen command key
//! (or a bad analyzer rule) into a shell in every container, so nothing runs
//! unless the operator (`--exec-allowlist`) or the container's owner (label
//! `hemostat.exec_allowlist`) allowed it. Entries without spaces allow a
//! program (exact `argv[0]`, any arguments); entries with spaces allow one
//! exact command line (argv joined by single spaces). The command is argv,
//! never a shell string, so an allowed program cannot be extended with
//! `; rm -rf /`.
//!
//! What the command prints is the container's output like its logs: it is
//! redacted before it is reported (the report goes to Redis, Slack, the
//! dashboard and the audit trail).

use std::{collections::HashMap, time::Duration};

use bollard::{
    Docker,
    exec::{CreateExecOptions, StartExecOptions, StartExecResults},
};
use futures::StreamExt;

use hemostat_protocol::{Command, event::RemediationStatus};

use crate::{
    act::{outcome::Outcome, target::Context},
    alert::redact::Redactor,
    docker,
    error::CollectorError,
};

/// A container's own additions to the allowlist (same syntax).
pub const LABEL_EXEC_ALLOWLIST: &str = "hemostat.exec_allowlist";
/// Output kept for the report; the rest is drained and counted.
pub const OUTPUT_LIMIT: usize = 4096;
/// Output read before redaction: more than is kept, so that the line the
/// report's limit cuts is redacted whole (a secret cut in two would escape
/// the rules that know it).
const READ_LIMIT: usize = 2 * OUTPUT_LIMIT;

/// `exec` as the executor runs it: allowlisted, dry run, or run with its
/// output reported.
pub(in crate::act) async fn run(
    cx: &Context,
    allowlist: &Allowlist,
    timeout: Duration,
    redactor: &Redactor,
    cmd: &Command,
) -> Outcome {
    let target = match cx.target(cmd).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let labels = docker::labels(&target.inspect);
    let program = cmd.args.first().map(String::as_str).unwrap_or("");
    if let Err(why) = permit(allowlist, &labels, &cmd.args) {
        // Audited: a refused exec may be probing; the argv beyond the
        // program is not logged, it may hold secrets.
        tracing::warn!(container = %target.name, command_id = %cmd.id, program, args = cmd.args.len(), why = %why, "exec refused");
        return Outcome::rejected(why);
    }
    if cmd.dry_run {
        return Outcome::dry_run(format!(
            "would run {program} ({} args) in {}",
            cmd.args.len().saturating_sub(1),
            target.name
        ));
    }
    tracing::info!(container = %target.name, command_id = %cmd.id, program, "exec");
    cx.acted(&target);
    match run_in(&cx.docker, &target.id, &cmd.args, timeout).await {
        Ok(ran) if ran.exit_code == Some(0) => Outcome::with(RemediationStatus::Success, ran.describe(redactor)),
        Ok(ran) => Outcome::failed(match ran.exit_code {
            Some(code) => format!("exited with code {code}"),
            None => format!("still running after {} s", timeout.as_secs_f64()),
        })
        .details(ran.describe(redactor)),
        Err(e) => Outcome::failed(docker::error_text(&e)),
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowlist {
    programs: Vec<String>,
    lines: Vec<String>,
}

impl Allowlist {
    /// Comma-separated entries; see the module documentation.
    pub fn parse(list: &str) -> Result<Allowlist, String> {
        let mut allow = Allowlist::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let words: Vec<&str> = entry.split_whitespace().collect();
            match words.as_slice() {
                [one] => allow.programs.push((*one).to_owned()),
                _ => allow.lines.push(words.join(" ")),
            }
        }
        Ok(allow)
    }

    pub fn allows(&self, argv: &[String]) -> bool {
        let Some(program) = argv.first() else {
            return false;
        };
        self.programs.iter().any(|p| p == program) || self.lines.iter().any(|l| *l == argv.join(" "))
    }
}

/// Ok when `argv` may run in a container with these labels; Err says why not.
pub fn permit(configured: &Allowlist, labels: &HashMap<String, String>, argv: &[String]) -> Result<(), String> {
    let program = argv.first().map(String::as_str).unwrap_or("");
    if program.is_empty() {
        return Err("exec needs a command (args is empty)".into());
    }
    let from_label =
        labels.get(LABEL_EXEC_ALLOWLIST).map(|l| Allowlist::parse(l).unwrap_or_default()).unwrap_or_default();
    if configured.allows(argv) || from_label.allows(argv) {
        return Ok(());
    }
    Err(format!("{program:?} is not on the exec allowlist (--exec-allowlist or label {LABEL_EXEC_ALLOWLIST})"))
}

/// What an exec did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    /// None when it was still running at the timeout.
    pub exit_code: Option<i64>,
    /// stdout and stderr interleaved, as read (at most `READ_LIMIT`
    /// bytes), not yet redacted.
    pub output: String,
    /// Bytes produced in all.
    pub output_bytes: usize,
}

impl Ran {
    /// The report: exit code and output, redacted, then cut to
    /// [`OUTPUT_LIMIT`] bytes.
    pub fn describe(&self, redactor: &Redactor) -> String {
        let code = match self.exit_code {
            Some(c) => format!("exit code {c}"),
            None => "timed out".to_owned(),
        };
        let read_all = self.output_bytes <= self.output.len();
        // What the read cut off mid-line is left out, not redacted in part.
        let whole = if read_all {
            self.output.as_str()
        } else {
            &self.output[..self.output.rfind(|c: char| c.is_ascii_whitespace()).map_or(0, |i| i + 1)]
        };
        let (mut output, _) = redactor.redact(whole);
        let shown = floor_char_boundary(&output, OUTPUT_LIMIT);
        let cut = if read_all && shown == output.len() {
            String::new()
        } else {
            format!(" [truncated: {shown} of {} bytes]", self.output_bytes)
        };
        output.truncate(shown);
        format!("{code}; output: {output}{cut}")
    }
}

/// The largest char boundary of `s` at or below `max`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

async fn run_in(docker: &Docker, container: &str, argv: &[String], timeout: Duration) -> Result<Ran, CollectorError> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(argv.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await?;
    let mut kept: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let started = docker
        .start_exec(&created.id, Some(StartExecOptions { detach: false, tty: false, output_capacity: None }))
        .await?;
    let finished = match started {
        StartExecResults::Attached { mut output, .. } => {
            let drain = async {
                while let Some(chunk) = output.next().await {
                    let bytes = chunk?.into_bytes();
                    total += bytes.len();
                    let room = READ_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                Ok::<_, CollectorError>(())
            };
            match tokio::time::timeout(timeout, drain).await {
                Ok(r) => {
                    r?;
                    true
                }
                Err(_) => false,
            }
        }
        StartExecResults::Detached => true,
    };
    let inspected = docker.inspect_exec(&created.id).await?;
    let exit_code = match (finished, inspected.running) {
        (true, Some(false) | None) => inspected.exit_code,
        _ => None,
    };
    Ok(Ran { exit_code, output: String::from_utf8_lossy(&kept).into_owned(), output_bytes: total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn programs_allow_any_arguments_lines_only_themselves() {
        let allow = Allowlist::parse("nginx, redis-cli  PING ,").unwrap();
        assert!(allow.allows(&argv("nginx -s reload")));
        assert!(!allow.allows(&argv("/usr/sbin/nginx -s reload")));
        assert!(allow.allows(&argv("redis-cli PING")));
        assert!(!allow.allows(&argv("redis-cli FLUSHALL")));
        assert!(!allow.allows(&argv("redis-cli")));
        assert!(!allow.allows(&[]));
    }

    fn ran(output: &str, output_bytes: usize) -> Ran {
        Ran { exit_code: Some(0), output: output.to_owned(), output_bytes }
    }

    #[test]
    fn output_is_reported_redacted() {
        let r = Redactor::default();
        let out = format!("DB_PASSWORD=hunter2\ntoken ghp_{}\nok\n", "a1B2".repeat(9));
        let described = ran(&out, out.len()).describe(&r);
        assert_eq!(described, "exit code 0; output: DB_PASSWORD=[REDACTED]\ntoken [REDACTED]\nok\n");
        // Redacted first, then cut: a key printed whole is hidden whole.
        let key = format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n", "QUJD".repeat(2000));
        let described = ran(&key, key.len()).describe(&r);
        assert_eq!(described, "exit code 0; output: [REDACTED]\n");
    }

    #[test]
    fn a_line_the_read_cut_off_is_left_out() {
        let r = Redactor::default();
        let token = format!("ghp_{}", "a1B2".repeat(9));
        // The read stopped inside the token: its start no longer matches.
        let read = format!("{}key {}", "y\n".repeat(10), &token[..10]);
        let described = ran(&read, read.len() + 100).describe(&r);
        assert!(!described.contains("ghp_a1B2"), "{described}");
        assert!(described.ends_with(&format!("y\nkey  [truncated: 24 of {} bytes]", read.len() + 100)), "{described}");
        // A multi-byte character at the limit is not split.
        let wide = format!("a{}", "é".repeat(OUTPUT_LIMIT));
        let described = ran(&wide, wide.len()).describe(&r);
        assert!(
            described.contains(&format!("[truncated: {} of {} bytes]", OUTPUT_LIMIT - 1, wide.len())),
            "{described}"
        );
    }

    #[test]
    fn labels_add_to_the_configured_list() {
        let none = Allowlist::default();
        let labels: HashMap<String, String> = [(LABEL_EXEC_ALLOWLIST.to_owned(), "echo".to_owned())].into();
        assert!(permit(&none, &labels, &argv("echo hi")).is_ok());
        assert!(permit(&none, &labels, &argv("sh -c id")).is_err());
        assert!(permit(&none, &HashMap::new(), &argv("echo hi")).is_err());
        assert!(permit(&none, &labels, &[]).is_err());
    }
}
