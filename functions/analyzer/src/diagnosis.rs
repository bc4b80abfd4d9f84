//! Diagnosis from evidence: a pure function of one alert, reading what an
//! engineer paged for the container reads first.
//!
//! - Docker's state: 137 with `OOMKilled` (the kernel's OOM killer), 137
//!   without (SIGKILL: `docker kill`, a stop that timed out), 139 (SIGSEGV),
//!   143 (SIGTERM), 0 (a clean exit), anything else (the application's own
//!   error code).
//! - Well-known failure signatures in the log lines, the health check's
//!   output and Docker's error, matched case-insensitively (see
//!   [`SIGNATURES`]): the runtime's own out-of-memory words, a port in use,
//!   a full disk, a permission denied, a missing file, an unreachable
//!   dependency, a panic or unhandled exception.
//!
//! The most specific cause wins: the kernel's OOM kill, then the signals
//! that end a process from outside or natively (137, 143, 139), then a
//! signature (in [`SIGNATURES`] order), then a crash loop, a failing health
//! check, a leak or a CPU burner as the collector reports them, then the
//! bare exit code. A diagnosis cites the lines it rests on, verbatim, at
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

use crate::history::sustained;

/// At most this many evidence lines are cited.
pub const MAX_CITED: usize = 5;

/// The failure signatures, most specific first: lowercase substrings.
pub const SIGNATURES: &[(Cause, &[&str])] = &[
    (
        Cause::OutOfMemoryInApp,
        &[
            "java.lang.outofmemoryerror",
            "javascript heap out of memory",
            "memoryerror",
            "fatal error: runtime: out of memory",
            "cannot allocate memory",
        ],
    ),
    (Cause::DiskFull, &["no space left on device", "enospc", "disk quota exceeded"]),
    (Cause::PortInUse, &["address already in use", "eaddrinuse", "port is already allocated", "addrinuse"]),
    (Cause::PermissionDenied, &["permission denied", "eacces", "operation not permitted"]),
    (
        Cause::MissingFileOrConfig,
        &["no such file or directory", "enoent", "config file not found", "cannot open", "can't open file"],
    ),
    (
        Cause::DependencyUnreachable,
        &[
            "connection refused",
            "econnrefused",
            "could not connect to",
            "name or service not known",
            "temporary failure in name resolution",
            "no such host",
            "getaddrinfo enotfound",
            "could not translate host name",
        ],
    ),
    (
        Cause::PanicOrException,
        &["panic:", "' panicked", "traceback (most recent call last)", "unhandled exception", "uncaught exception"],
    ),
];

/// One line of evidence and where it came from.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    health: bool,
}

/// Why `alert`'s container failed, when the alert says enough to tell.
pub fn diagnose(alert: &HealthAlert) -> Option<Diagnosis> {
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
        let cited = cite(&lines, error_like);
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
            _ => diagnosis(
                Cause::AppError,
                format!("The application exited with error code {code}."),
                cite(&lines, |l| !l.health && error_like(l)),
            ),
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

/// The first signature (in [`SIGNATURES`] order) some line matches.
/// Without a failure, only the runtime's out-of-memory words count.
fn signature(lines: &[Line<'_>], failing: bool) -> Option<Diagnosis> {
    for (cause, needles) in SIGNATURES {
        if !failing && *cause != Cause::OutOfMemoryInApp {
            continue;
        }
        let matches = |l: &Line<'_>| !request_scoped(l.text) && matches_signature(*cause, l, needles);
        if !lines.iter().any(matches) {
            continue;
        }
        let mut cited = cite(lines, matches);
        if *cause == Cause::PanicOrException {
            add_exception_lines(lines, &mut cited);
        }
        return Some(diagnosis(*cause, summary(*cause), cited));
    }
    None
}

fn matches_signature(cause: Cause, line: &Line<'_>, needles: &[&str]) -> bool {
    let lower = line.text.to_lowercase();
    if !needles.iter().any(|n| lower.contains(n)) {
        return false;
    }
    // A health check refused by the container itself says the service is
    // not answering, not that a dependency is down.
    !(cause == Cause::DependencyUnreachable && line.health && local(&lower))
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

fn error_like(line: &Line<'_>) -> bool {
    !request_scoped(line.text) && contains_any(line, &["error", "fatal", "exception", "failed", "panic"])
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
        Cause::DependencyUnreachable => (
            false,
            Some(
                "Check the service it depends on (is it up, is its address or DNS name right) rather than this container.",
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
mod tests {
    use super::*;
    use hemostat_protocol::{
        event::{Anomaly, Metrics, Severity},
        evidence::{HealthEvidence, HealthResult, LogLine, LogStream},
    };

    fn alert(kind: AnomalyKind, code: Option<i64>, logs: &[&str]) -> HealthAlert {
        let mut evidence = Evidence::default();
        evidence.logs.lines = logs
            .iter()
            .map(|l| LogLine { stream: LogStream::Stderr, line: (*l).to_owned(), timestamp: None })
            .collect();
        evidence.state.exit_code = code;
        evidence.state.status = Some(if code.is_some() { "exited" } else { "running" }.into());
        HealthAlert {
            container: "web".into(),
            issues: vec![],
            metrics: Metrics { name: "web".into(), ..Default::default() },
            host: "h1".into(),
            container_id: None,
            image: None,
            anomalies: vec![Anomaly { kind, severity: Severity::High, threshold: None, actual: None }],
            exit_code: code,
            detected_at: None,
            evidence: Some(evidence),
            policy: None,
            held: None,
            silenced_by: Vec::new(),
        }
    }

    fn exit(code: i64, logs: &[&str]) -> HealthAlert {
        alert(AnomalyKind::NonZeroExit, Some(code), logs)
    }

    fn cause(a: &HealthAlert) -> Cause {
        diagnose(a).map(|d| d.cause).unwrap_or(Cause::Unknown)
    }

    #[test]
    fn exit_codes_read_as_what_they_mean() {
        let mut oom = exit(137, &["allocating buffer 3/4"]);
        oom.evidence.as_mut().unwrap().state.oom_killed = true;
        oom.evidence.as_mut().unwrap().state.memory_limit_bytes = Some(64 * 1024 * 1024);
        let d = diagnose(&oom).unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::OomKilled, true));
        assert!(d.summary.contains("64 MiB"), "{}", d.summary);
        // The anomaly alone says so too.
        assert_eq!(cause(&alert(AnomalyKind::OomKilled, Some(137), &[])), Cause::OomKilled);
        assert_eq!(cause(&exit(137, &["connection refused by db:5432"])), Cause::Killed);
        assert_eq!(cause(&exit(143, &["Received SIGTERM, shutting down"])), Cause::Terminated);
        let seg = diagnose(&exit(139, &["starting worker", "Segmentation fault (core dumped)"])).unwrap();
        assert_eq!(
            (seg.cause, seg.evidence.as_slice()),
            (Cause::Segfault, &["Segmentation fault (core dumped)".to_owned()][..])
        );
        let app = diagnose(&exit(1, &["starting", "Error: invalid value for --workers: abc"])).unwrap();
        assert_eq!(app.cause, Cause::AppError);
        assert_eq!(app.evidence, ["Error: invalid value for --workers: abc"]);
        assert!(app.restart_helps);
        let clean = diagnose(&alert(AnomalyKind::Exited, Some(0), &["job done, 42 rows"])).unwrap();
        assert_eq!((clean.cause, clean.restart_helps), (Cause::CleanExit, false));
        assert!(clean.recommendation.is_some());
        // Without evidence, the alert's own exit code is read.
        let mut bare = exit(1, &[]);
        bare.evidence = None;
        assert_eq!(cause(&bare), Cause::AppError);
    }

    #[test]
    fn port_in_use() {
        for line in [
            "Error: listen EADDRINUSE: address already in use :::8080",
            "2026/12/02 06:50:18 listen tcp :8080: bind: address already in use",
            "OSError: [Errno 98] Address already in use",
            "Error starting userland proxy: Bind for 0.0.0.0:8080 failed: port is already allocated",
        ] {
            let d = diagnose(&exit(1, &["starting server", line])).unwrap();
            assert_eq!((d.cause, d.restart_helps), (Cause::PortInUse, false), "{line}");
            assert_eq!(d.evidence, [line]);
            assert!(d.recommendation.is_some());
        }
    }

    #[test]
    fn disk_full() {
        for line in [
            "OSError: [Errno 28] No space left on device: '/data/out.bin'",
            "Error: ENOSPC: no space left on device, write",
            "FATAL:  could not write to file \"pg_wal/xlogtemp.25\": No space left on device",
        ] {
            assert_eq!(cause(&exit(1, &[line])), Cause::DiskFull, "{line}");
        }
    }

    #[test]
    fn dependency_unreachable() {
        for line in [
            "Error: connect ECONNREFUSED 10.0.0.7:5432",
            "psycopg2.OperationalError: could not connect to server: Connection refused",
            "redis.exceptions.ConnectionError: Error -2 connecting to cache:6379. Name or service not known.",
            "dial tcp: lookup db on 127.0.0.11:53: no such host",
        ] {
            let d = diagnose(&exit(1, &["connecting", line])).unwrap();
            assert_eq!((d.cause, d.restart_helps), (Cause::DependencyUnreachable, false), "{line}");
        }
    }

    #[test]
    fn permission_denied() {
        let d = diagnose(&exit(1, &["open /var/lib/app/state.db: permission denied"])).unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::PermissionDenied, false));
        assert_eq!(
            cause(&exit(1, &["Error: EACCES: permission denied, open '/app/log.txt'"])),
            Cause::PermissionDenied
        );
    }

    #[test]
    fn missing_file_or_config() {
        for line in [
            "open /etc/app/config.yaml: no such file or directory",
            "Error: ENOENT: no such file or directory, open '/app/config.json'",
            "config file not found: /etc/web.toml",
            "python: can't open file '/app/main.py': [Errno 2] No such file or directory",
            "nginx: [emerg] cannot open configuration file /etc/nginx/conf.d/site.conf",
        ] {
            let d = diagnose(&exit(1, &[line])).unwrap();
            assert_eq!((d.cause, d.restart_helps), (Cause::MissingFileOrConfig, false), "{line}");
        }
        // nginx's per-request errors are not the container's configuration.
        let favicon = r#"2026/12/02 06:50:18 [error] 29#29: *1 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 172.17.0.1, server: localhost, request: "GET /favicon.ico HTTP/1.1""#;
        assert_eq!(cause(&exit(1, &[favicon])), Cause::AppError);
    }

    #[test]
    fn panic_or_exception() {
        let rust = diagnose(&exit(
            101,
            &[
                "thread 'main' panicked at src/main.rs:12:5:",
                "index out of bounds: the len is 3 but the index is 7",
                "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            ],
        ))
        .unwrap();
        assert_eq!((rust.cause, rust.restart_helps), (Cause::PanicOrException, true));
        assert_eq!(rust.evidence, ["thread 'main' panicked at src/main.rs:12:5:"]);
        assert_eq!(
            cause(&exit(2, &["panic: runtime error: invalid memory address or nil pointer dereference"])),
            Cause::PanicOrException
        );
        let py = diagnose(&exit(
            1,
            &[
                "Traceback (most recent call last):",
                "  File \"/app/main.py\", line 3, in <module>",
                "    main()",
                "KeyError: 'DATABASE_URL'",
            ],
        ))
        .unwrap();
        assert_eq!(py.cause, Cause::PanicOrException);
        assert_eq!(py.evidence, ["Traceback (most recent call last):", "KeyError: 'DATABASE_URL'"]);
        assert_eq!(
            cause(&exit(1, &["Unhandled exception. System.InvalidOperationException: boom"])),
            Cause::PanicOrException
        );
        assert_eq!(cause(&exit(1, &["Uncaught Exception: TypeError: x is undefined"])), Cause::PanicOrException);
        // A traceback that ends in a refused connection names the dependency.
        let refused = exit(
            1,
            &[
                "Traceback (most recent call last):",
                "  File \"/app/db.py\", line 9, in connect",
                "ConnectionRefusedError: [Errno 111] Connection refused",
            ],
        );
        assert_eq!(cause(&refused), Cause::DependencyUnreachable);
    }

    #[test]
    fn out_of_memory_in_app() {
        for line in [
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            "MemoryError",
            "fatal error: runtime: out of memory",
            "mmap failed: Cannot allocate memory",
        ] {
            let d = diagnose(&exit(1, &[line])).unwrap();
            assert_eq!((d.cause, d.evidence.as_slice()), (Cause::OutOfMemoryInApp, &[line.to_owned()][..]), "{line}");
        }
        // Read even while the container runs (a high memory alert).
        assert_eq!(
            cause(&alert(AnomalyKind::HighMemory, None, &["java.lang.OutOfMemoryError: GC overhead limit exceeded"])),
            Cause::OutOfMemoryInApp
        );
    }

    #[test]
    fn health_check_failing() {
        let mut a = alert(AnomalyKind::Unhealthy, None, &["GET /health 500"]);
        a.evidence.as_mut().unwrap().health = Some(HealthEvidence {
            status: "unhealthy".into(),
            failing_streak: 3,
            results: vec![HealthResult {
                exit_code: Some(1),
                output: "curl: (7) Failed to connect to localhost port 8080: Connection refused".into(),
                start: None,
                end: None,
            }],
        });
        let d = diagnose(&a).unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::HealthCheckFailing, true));
        assert_eq!(d.evidence, ["curl: (7) Failed to connect to localhost port 8080: Connection refused"]);
        // A check that names a remote dependency refused: the dependency.
        a.evidence.as_mut().unwrap().health.as_mut().unwrap().results[0].output =
            "check failed: dial tcp 10.0.0.9:5432: connect: connection refused".into();
        assert_eq!(cause(&a), Cause::DependencyUnreachable);
        // No evidence at all: still a failing check.
        a.evidence = None;
        assert_eq!(cause(&a), Cause::HealthCheckFailing);
    }

    #[test]
    fn crash_loop_leak_and_cpu_burn() {
        let mut looping = alert(AnomalyKind::ExcessiveRestarts, None, &["fatal: worker exited"]);
        looping.evidence.as_mut().unwrap().state.restart_count = 7;
        let d = diagnose(&looping).unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::CrashLoop, false));
        assert_eq!(d.evidence, ["fatal: worker exited"]);
        // A loop with a known cause says the cause.
        let looping = alert(AnomalyKind::ExcessiveRestarts, None, &["open /etc/app.yaml: no such file or directory"]);
        assert_eq!(cause(&looping), Cause::MissingFileOrConfig);
        assert_eq!(cause(&alert(AnomalyKind::MemoryLeak, None, &[])), Cause::MemoryLeak);
        let mut cpu = alert(AnomalyKind::HighCpu, None, &["connection refused"]);
        assert_eq!(diagnose(&cpu), None, "a spike says nothing, and logs do not explain it");
        cpu.metrics.extra.insert("sustained_seconds".into(), 120.into());
        assert_eq!(cause(&cpu), Cause::CpuBurn);
    }

    #[test]
    fn critical_cpu_is_a_burner_whatever_the_sustain_window() {
        let mut cpu = alert(AnomalyKind::HighCpu, None, &[]);
        cpu.metrics.extra.insert("sustained_seconds".into(), 3.into());
        assert_eq!(diagnose(&cpu), None, "high, briefly: not yet a burner");
        cpu.anomalies[0].severity = Severity::Critical;
        let d = diagnose(&cpu).unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::CpuBurn, true));
    }

    #[test]
    fn a_loop_of_clean_exits_is_a_clean_exit_not_a_crash_loop() {
        let mut job = alert(AnomalyKind::ExcessiveRestarts, None, &["migrate: applied 3 migrations"]);
        let state = &mut job.evidence.as_mut().unwrap().state;
        (state.exit_code, state.restart_count, state.status) = (Some(0), 6, Some("restarting".into()));
        let d = diagnose(&job).unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::CleanExit, false));
        assert!(d.summary.contains("6 restarts"), "{}", d.summary);
        // Running again, Docker says 0 whatever the last exit was: a loop.
        job.evidence.as_mut().unwrap().state.status = Some("running".into());
        assert_eq!(cause(&job), Cause::CrashLoop);
        // Restarting after exit 1: a crash loop.
        let state = &mut job.evidence.as_mut().unwrap().state;
        (state.exit_code, state.status) = (Some(1), Some("restarting".into()));
        assert_eq!(cause(&job), Cause::CrashLoop);
        // Caught running, but every recent run's `die` said 0: clean exits.
        let e = job.evidence.as_mut().unwrap();
        (e.state.exit_code, e.state.status) = (Some(0), Some("running".into()));
        let die = |code| hemostat_protocol::evidence::DockerEvent {
            action: "die".into(),
            exit_code: Some(code),
            ..Default::default()
        };
        e.events = vec![die(0), die(0)];
        assert_eq!(cause(&job), Cause::CleanExit);
        // A 137 whose oom event Docker did not match to the exit: still OOM.
        let mut killed = alert(AnomalyKind::NonZeroExit, None, &[]);
        let e = killed.evidence.as_mut().unwrap();
        (e.state.exit_code, e.state.status) = (Some(137), Some("exited".into()));
        assert_eq!(cause(&killed), Cause::Killed);
        killed.evidence.as_mut().unwrap().events =
            vec![hemostat_protocol::evidence::DockerEvent { action: "oom".into(), ..Default::default() }];
        assert_eq!(cause(&killed), Cause::OomKilled);
        // No oom event, but no kill either, under a memory limit: the kernel.
        let e = killed.evidence.as_mut().unwrap();
        let event =
            |action: &str| hemostat_protocol::evidence::DockerEvent { action: action.into(), ..Default::default() };
        e.state.memory_limit_bytes = Some(16 << 20);
        e.events = vec![event("start"), event("die")];
        let d = diagnose(&killed).unwrap();
        assert_eq!(d.cause, Cause::OomKilled);
        assert!(d.summary.contains("under a 16 MiB memory limit"), "{}", d.summary);
        assert!(!d.summary.contains("  "), "a run of spaces in {:?}", d.summary);
        // A docker kill before the die: a kill.
        killed.evidence.as_mut().unwrap().events = vec![event("start"), event("kill"), event("die")];
        assert_eq!(cause(&killed), Cause::Killed);
        // One run that failed makes it a crash loop again.
        job.evidence.as_mut().unwrap().events.push(die(2));
        assert_eq!(cause(&job), Cause::CrashLoop);
    }

    #[test]
    fn cites_at_most_five_newest_distinct_lines_verbatim() {
        let lines: Vec<String> = (0..9).map(|i| format!("Error: ECONNREFUSED 10.0.0.{i}:5432")).collect();
        let mut refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        refs.push("Error: ECONNREFUSED 10.0.0.8:5432");
        let d = diagnose(&exit(1, &refs)).unwrap();
        assert_eq!(d.evidence, lines[4..].to_vec());
        // Case-insensitive matching, verbatim citation.
        let d = diagnose(&exit(1, &["FATAL: NO SPACE LEFT ON DEVICE"])).unwrap();
        assert_eq!(d.evidence, ["FATAL: NO SPACE LEFT ON DEVICE"]);
        // Docker's own error counts as evidence.
        let mut a = exit(128, &[]);
        a.evidence.as_mut().unwrap().state.error = Some(
            "driver failed programming external connectivity: Bind for 0.0.0.0:80 failed: port is already allocated"
                .into(),
        );
        assert_eq!(cause(&a), Cause::PortInUse);
    }
}
