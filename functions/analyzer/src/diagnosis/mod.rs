//! Diagnosis from evidence: a pure function of one alert, reading what an
//! engineer paged for the container reads first.
//!
//! - Docker's state: 137 with `OOMKilled` (the kernel's OOM killer), 137
//!   without (SIGKILL: `docker kill`, a stop that timed out), 139 (SIGSEGV),
//!   143 (SIGTERM), 0 (a clean exit), anything else (the application's own
//!   error code).
//! - Failure signatures in the log lines, the health check's output and
//!   Docker's error: the catalogue in `functions/analyzer/signatures/`
//!   ([`crate::signatures`]), each signature with its cause, whether a
//!   restart can help and a recommendation, which the diagnosis carries.
//!
//! The most specific cause wins: the kernel's OOM kill, then the signals
//! that end a process from outside or natively (137, 143, 139), then the
//! strongest signature any line matches (the catalogue's precedence), then
//! a crash loop, a failing health check, a leak or a CPU burner as the
//! collector reports them, then the bare exit code. A diagnosis cites the lines it rests on, verbatim, at
//! most [`MAX_CITED`] of them (the newest).
//!
//! Log signatures are only read for failures (exits, a failing health
//! check, a crash loop): a running container's routine log noise does not
//! explain a CPU spike. A "crash loop" of exit code 0 is a clean exit (a job
//! run under a restart policy), and critical CPU (pegged for the
//! collector's whole sustain window) is a burner. Request-scoped lines (nginx's `..., client: ...,
//! request: "GET /favicon.ico"`) are not read at all: a missing favicon is
//! not a missing configuration.

use hemostat_protocol::{
    diagnosis::{Cause, Diagnosis},
    event::{AnomalyKind, HealthAlert, Severity},
    evidence::Evidence,
};

use crate::{
    measured::{sustained, uptime},
    signatures,
};

/// At most this many evidence lines are cited.
pub const MAX_CITED: usize = 5;

/// One line of evidence and where it came from.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    health: bool,
}

/// Why `alert`'s container failed, when the alert says enough to tell. An
/// exit's diagnosis says how long the run lasted, when the collector
/// measured it ([`crate::measured::uptime`]): that is evidence, never a cause
/// by itself.
pub fn diagnose(alert: &HealthAlert) -> Option<Diagnosis> {
    let mut d = cause_of(alert)?;
    if alert.exit_code.is_some()
        && let Some(uptime) = uptime(alert)
    {
        d.summary.push_str(&format!(" It exited {} after it started.", span(uptime)));
    }
    Some(d)
}

/// A duration as an engineer says it: seconds, minutes, hours, then days.
pub fn span(seconds: f64) -> String {
    let s = seconds.max(0.0);
    match s {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 2.0 * 3600.0 => format!("{:.0} min", s / 60.0),
        s if s < 48.0 * 3600.0 => format!("{:.0} h", s / 3600.0),
        s => format!("{:.0} days", s / 86_400.0),
    }
}

fn cause_of(alert: &HealthAlert) -> Option<Diagnosis> {
    let empty = Evidence::default();
    let evidence = alert.evidence.as_ref().unwrap_or(&empty);
    let has = |kind: AnomalyKind| alert.anomalies.iter().any(|a| a.kind == kind);
    let state = &evidence.state;
    let exited = has(AnomalyKind::NonZeroExit)
        || has(AnomalyKind::OomKilled)
        || has(AnomalyKind::Exited)
        || has(AnomalyKind::ExcessiveRestarts)
        || matches!(state.status.as_deref(), Some("exited" | "dead"));
    let failing = exited || has(AnomalyKind::Unhealthy);
    let code = state.exit_code.or(alert.exit_code).filter(|_| exited);
    let lines = lines(evidence);

    // The kernel's word is final. Docker sets `OOMKilled` only when its oom
    // event beat the exit; the event itself, in the recent events, counts.
    let oom_event = evidence.events.iter().any(|e| e.action == "oom");
    if state.oom_killed || has(AnomalyKind::OomKilled) || (oom_event && code == Some(137)) {
        let limit = state.memory_limit_bytes.map(|b| format!(" (limit {} MiB)", b / (1024 * 1024))).unwrap_or_default();
        return Some(diagnosis(
            Cause::OomKilled,
            format!("The kernel's OOM killer ended the container: it used all the memory it was allowed{limit}."),
            state.error.iter().map(String::as_str).filter(|e| !e.is_empty()).map(str::to_owned).collect(),
        ));
    }
    // Signals from outside, and native crashes: what the logs said before
    // does not explain them.
    match code {
        // A SIGKILL nobody sent through Docker (the recent events show no
        // kill or stop) to a container with a memory limit is the kernel's
        // OOM killer, whose record Docker can lose when the exit wins the
        // race with the oom event.
        Some(137)
            if state.memory_limit_bytes.is_some()
                && evidence.events.iter().any(|e| e.action == "die")
                && !evidence.events.iter().any(|e| matches!(e.action.as_str(), "kill" | "stop" | "restart")) =>
        {
            let limit = state.memory_limit_bytes.unwrap_or_default() / (1024 * 1024);
            return Some(diagnosis(
                Cause::OomKilled,
                format!(
                    "The container was killed (SIGKILL, exit code 137) with no `docker kill` or stop before it, \
                     under a {limit} MiB memory limit: the kernel's OOM killer, though Docker did not record it."
                ),
                Vec::new(),
            ));
        }
        Some(137) => {
            return Some(diagnosis(
                Cause::Killed,
                "The container was killed (SIGKILL, exit code 137) without running out of memory: \
                 `docker kill`, or a stop that timed out.",
                Vec::new(),
            ));
        }
        Some(143) => {
            return Some(diagnosis(
                Cause::Terminated,
                "The container was asked to stop (SIGTERM, exit code 143) and did.",
                Vec::new(),
            ));
        }
        Some(139) => {
            let cited = cite(&lines, |l| contains_any(l, &["segmentation fault", "sigsegv", "core dumped"]));
            return Some(diagnosis(
                Cause::Segfault,
                "The process crashed on an invalid memory access (SIGSEGV, exit code 139).",
                cited,
            ));
        }
        _ => {}
    }
    if let Some(d) = signature(&lines, failing) {
        return Some(d);
    }
    if has(AnomalyKind::ExcessiveRestarts) {
        let restarts = state.restart_count;
        // A process that keeps finishing with 0 under a restart policy is a
        // job run as a service, not a crash. Docker resets the exit code to
        // 0 when a container starts, so only a stopped or restarting
        // container's 0 is the process's own.
        let stopped = matches!(state.status.as_deref(), Some("exited" | "dead" | "restarting"));
        // The recent `die` events keep each run's own code, whatever state
        // the alert caught the container in.
        let dies: Vec<i64> = evidence.events.iter().filter(|e| e.action == "die").filter_map(|e| e.exit_code).collect();
        let clean_runs = !dies.is_empty() && dies.iter().all(|c| *c == 0);
        if (state.exit_code == Some(0) && stopped) || clean_runs {
            return Some(diagnosis(
                Cause::CleanExit,
                format!(
                    "The process keeps finishing on its own (exit code 0) and its restart policy starts it again \
                     ({restarts} restarts)."
                ),
                Vec::new(),
            ));
        }
        let cited = cite(&lines, error_like_line);
        return Some(diagnosis(
            Cause::CrashLoop,
            format!("The container keeps crashing and being restarted ({restarts} restarts)."),
            cited,
        ));
    }
    if has(AnomalyKind::Unhealthy)
        && let Some(health) = &evidence.health
    {
        let cited = cite(&lines, |l| l.health && !l.text.trim().is_empty());
        let streak = health.failing_streak;
        return Some(diagnosis(
            Cause::HealthCheckFailing,
            format!("The health check keeps failing ({streak} in a row) while the process runs."),
            cited,
        ));
    }
    if let Some(code) = code {
        return Some(match code {
            0 => diagnosis(Cause::CleanExit, "The process finished on its own (exit code 0).", Vec::new()),
            // An error line the application printed says it stopped on an
            // error of its own (`app_error`, quoting it); without one, the
            // exit code alone names no cause, and guessing one would claim
            // more than the evidence holds (`unknown`). Either way nothing
            // says a restart cannot help, and the rules give it one restart,
            // not two.
            _ => match cite(&lines, |l| !l.health && error_like_line(l)) {
                cited if cited.is_empty() => diagnosis(
                    Cause::Unknown,
                    format!("The process exited with code {code} and printed nothing that says why."),
                    Vec::new(),
                ),
                cited => diagnosis(Cause::AppError, format!("The application exited with error code {code}."), cited),
            },
        });
    }
    if has(AnomalyKind::Unhealthy) {
        return Some(diagnosis(Cause::HealthCheckFailing, "The health check is failing.", Vec::new()));
    }
    if has(AnomalyKind::MemoryLeak) {
        return Some(diagnosis(
            Cause::MemoryLeak,
            "Memory keeps climbing without coming back down: a leak.",
            Vec::new(),
        ));
    }
    // Critical CPU is pegged for the collector's whole sustain window: a
    // burner, however short that window is configured.
    let pegged = alert.anomalies.iter().any(|a| a.kind == AnomalyKind::HighCpu && a.severity == Severity::Critical);
    if has(AnomalyKind::HighCpu) && (pegged || sustained(alert).is_some()) {
        return Some(diagnosis(Cause::CpuBurn, "The process has been burning CPU for a sustained period.", Vec::new()));
    }
    None
}

/// The lines to read, oldest first: log lines, each line of each health
/// output, Docker's error.
fn lines(evidence: &Evidence) -> Vec<Line<'_>> {
    let mut out: Vec<Line<'_>> = evidence.logs.lines.iter().map(|l| Line { text: &l.line, health: false }).collect();
    if let Some(health) = &evidence.health {
        for r in &health.results {
            out.extend(r.output.lines().filter(|t| !t.trim().is_empty()).map(|text| Line { text, health: true }));
        }
    }
    if let Some(error) = evidence.state.error.as_deref().filter(|e| !e.trim().is_empty()) {
        out.push(Line { text: error, health: false });
    }
    out
}

/// The strongest signature some line matches (see [`crate::signatures`]
/// for the precedence). Without a failure, only the runtime's
/// out-of-memory words count. The diagnosis cites every line that matches a
/// signature of the winning cause, and carries the winner's
/// `restart_helps` and recommendation.
fn signature(lines: &[Line<'_>], failing: bool) -> Option<Diagnosis> {
    let catalogue = match signatures::catalogue() {
        Ok(c) => c,
        // Checked at start (main.rs): never reached in a running analyzer.
        Err(e) => {
            tracing::error!(error = %e, "no failure signatures");
            return None;
        }
    };
    let counts = |i: usize| failing || catalogue.get(i).cause == Cause::OutOfMemoryInApp;
    // One pass over the lines: each line's matches, kept for the citation.
    let matched: Vec<Vec<usize>> = lines
        .iter()
        .map(|l| {
            if request_scoped(l.text) {
                return Vec::new();
            }
            catalogue.matching(l.text).filter(|i| counts(*i) && applies(catalogue.get(*i).cause, l)).collect()
        })
        .collect();
    let best = catalogue.strongest(matched.iter().flatten().copied())?;
    let winner = catalogue.get(best);
    let cause = winner.cause;
    let mut cited = Vec::new();
    for (l, m) in lines.iter().zip(&matched).rev() {
        if cited.len() == MAX_CITED {
            break;
        }
        if m.iter().any(|i| catalogue.get(*i).cause == cause) && !cited.iter().any(|c| c == l.text) {
            cited.push(l.text.to_owned());
        }
    }
    cited.reverse();
    if cause == Cause::PanicOrException {
        add_exception_lines(lines, &mut cited);
    }
    let mut d = diagnosis(cause, summary(cause), cited);
    d.restart_helps = winner.restart_helps;
    d.recommendation = Some(winner.recommendation.clone());
    Some(d)
}

/// A health check refused by the container itself says the service is not
/// answering, not that a dependency is down.
fn applies(cause: Cause, line: &Line<'_>) -> bool {
    !(cause == Cause::DependencyUnreachable && line.health && local(&line.text.to_lowercase()))
}

fn local(lower: &str) -> bool {
    ["localhost", "127.0.0.1", "[::1]", "::1:", "0.0.0.0"].iter().any(|l| lower.contains(l))
}

/// A line about one request (nginx's error log), not about the process.
fn request_scoped(text: &str) -> bool {
    text.contains(", client: ") && text.contains("request: \"")
}

/// A Python traceback ends with the exception itself: the first line after
/// `Traceback ...` that is not indented is cited too.
fn add_exception_lines(lines: &[Line<'_>], cited: &mut Vec<String>) {
    let mut in_trace = false;
    let mut extra = Vec::new();
    for l in lines {
        if l.text.to_lowercase().contains("traceback (most recent call last)") {
            in_trace = true;
        } else if in_trace && !l.text.starts_with([' ', '\t']) && !l.text.trim().is_empty() {
            extra.push(l.text.to_owned());
            in_trace = false;
        }
    }
    for e in extra {
        if !cited.contains(&e) {
            cited.push(e);
        }
    }
    if cited.len() > MAX_CITED {
        cited.drain(..cited.len() - MAX_CITED);
    }
}

fn contains_any(line: &Line<'_>, needles: &[&str]) -> bool {
    let lower = line.text.to_lowercase();
    needles.iter().any(|n| lower.contains(n))
}

fn error_like_line(line: &Line<'_>) -> bool {
    error_like(line.text)
}

/// A line that reports an error (and is not about one request).
pub fn error_like(text: &str) -> bool {
    let lower = text.to_lowercase();
    !request_scoped(text) && ["error", "fatal", "exception", "failed", "panic"].iter().any(|n| lower.contains(n))
}

/// The newest [`MAX_CITED`] distinct lines that match, oldest first,
/// verbatim.
fn cite(lines: &[Line<'_>], matches: impl Fn(&Line<'_>) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines.iter().rev().filter(|l| matches(l)) {
        if out.len() == MAX_CITED {
            break;
        }
        if !out.iter().any(|o| o == l.text) {
            out.push(l.text.to_owned());
        }
    }
    out.reverse();
    out
}

fn summary(cause: Cause) -> &'static str {
    match cause {
        Cause::OutOfMemoryInApp => "The runtime ran out of memory (its own out-of-memory error).",
        Cause::DiskFull => "The container ran out of disk space (no space left on device).",
        Cause::PortInUse => "The process could not bind its port: another process already holds it.",
        Cause::PermissionDenied => "The process was denied access to a file or resource it needs.",
        Cause::MissingFileOrConfig => "A file or configuration the process needs is missing.",
        Cause::DependencyUnreachable => {
            "A service the container depends on refused the connection or cannot be resolved."
        }
        Cause::PanicOrException => "The process died of a panic or an unhandled exception.",
        Cause::Segfault => "The process crashed on an invalid memory access (segmentation fault).",
        Cause::OomKilled => "The kernel's OOM killer ended the process.",
        Cause::AppError => "The application stopped on an error it reported.",
        _ => "The container failed.",
    }
}

/// Whether a restart can fix `cause`, and what a human should do.
pub fn remedy(cause: Cause) -> (bool, Option<&'static str>) {
    match cause {
        Cause::OomKilled => (
            true,
            Some(
                "Raise the container's memory limit or reduce its memory use; it will be killed again if usage keeps growing.",
            ),
        ),
        Cause::Killed => (true, Some("Check whether an operator or an orchestrator killed it on purpose.")),
        Cause::Segfault => {
            (true, Some("A native crash: check the image version and its native libraries if it happens again."))
        }
        Cause::Terminated => (true, Some("Check whether the stop was intended before starting it again.")),
        Cause::AppError => (true, None),
        Cause::CleanExit => (
            false,
            Some(
                "The process finished with exit code 0: if it should keep running, check its command and restart policy.",
            ),
        ),
        Cause::PortInUse => (
            false,
            Some("Another process holds the port: stop it, or change the container's port mapping or listen address."),
        ),
        Cause::DiskFull => (
            false,
            Some("Free space on the volume the container writes to (logs, caches, temporary files), or enlarge it."),
        ),
        // Refused, timed out, a name not (yet) known: most often the
        // service it depends on is starting or being recreated, and a
        // restart once it is back heals; the repeated-failure limit leaves
        // one that stays away to a human. A dependency that answers and
        // refuses (a certificate, a password) says so in its signature.
        Cause::DependencyUnreachable => (
            true,
            Some(
                "If it keeps failing, check the service it depends on (is it up, is its address or DNS name right) rather than this container.",
            ),
        ),
        Cause::PermissionDenied => {
            (false, Some("Fix the ownership or mode of the file, or the user the container runs as."))
        }
        Cause::MissingFileOrConfig => (
            false,
            Some(
                "Provide the missing file or configuration (a volume, the image, an environment variable) and redeploy.",
            ),
        ),
        Cause::PanicOrException => (true, Some("If it happens again, fix the bug the trace points at.")),
        Cause::OutOfMemoryInApp => (
            true,
            Some("Raise the runtime's heap limit (-Xmx, --max-old-space-size) or the memory limit, or fix the leak."),
        ),
        Cause::HealthCheckFailing => {
            (true, Some("If it keeps failing after a restart, check what the health check probes."))
        }
        Cause::CpuBurn => {
            (true, Some("If the CPU use resumes after the restart, profile the process: a restart only buys time."))
        }
        Cause::MemoryLeak => (true, Some("A restart only buys time: find and fix the leak.")),
        Cause::CrashLoop => {
            (false, Some("Restarts keep failing: read the logs and fix the cause before restarting again."))
        }
        Cause::Unknown => (true, None),
    }
}

/// A diagnosis with [`remedy`]'s defaults for `cause`.
pub fn diagnosis(cause: Cause, summary: impl Into<String>, evidence: Vec<String>) -> Diagnosis {
    let (restart_helps, recommendation) = remedy(cause);
    Diagnosis {
        cause,
        summary: summary.into(),
        evidence,
        restart_helps,
        recommendation: recommendation.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests;
