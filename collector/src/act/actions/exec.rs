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

use std::{collections::HashMap, time::Duration};

use bollard::{
    Docker,
    exec::{CreateExecOptions, StartExecOptions, StartExecResults},
};
use futures::StreamExt;

use hemostat_protocol::{Command, event::RemediationStatus};

use crate::{
    act::{outcome::Outcome, target::Context},
    docker,
    error::CollectorError,
};

/// A container's own additions to the allowlist (same syntax).
pub const LABEL_EXEC_ALLOWLIST: &str = "hemostat.exec_allowlist";
/// Output kept for the report; the rest is drained and counted.
pub const OUTPUT_LIMIT: usize = 4096;

/// `exec` as the executor runs it: allowlisted, dry run, or run with its
/// output reported.
pub(in crate::act) async fn run(cx: &Context, allowlist: &Allowlist, timeout: Duration, cmd: &Command) -> Outcome {
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
        Ok(ran) if ran.exit_code == Some(0) => Outcome::with(RemediationStatus::Success, ran.describe()),
        Ok(ran) => Outcome::failed(match ran.exit_code {
            Some(code) => format!("exited with code {code}"),
            None => format!("still running after {} s", timeout.as_secs_f64()),
        })
        .details(ran.describe()),
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
    /// stdout and stderr interleaved, at most [`OUTPUT_LIMIT`] bytes.
    pub output: String,
    /// Bytes produced in all.
    pub output_bytes: usize,
}

impl Ran {
    pub fn describe(&self) -> String {
        let code = match self.exit_code {
            Some(c) => format!("exit code {c}"),
            None => "timed out".to_owned(),
        };
        let cut = if self.output_bytes > self.output.len() {
            format!(" [truncated: {} of {} bytes]", self.output.len(), self.output_bytes)
        } else {
            String::new()
        };
        format!("{code}; output: {}{cut}", self.output)
    }
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
                    let room = OUTPUT_LIMIT.saturating_sub(kept.len());
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
