use super::*;
use hemostat_protocol::{
    event::{Anomaly, Metrics, Severity},
    evidence::{HealthEvidence, HealthResult, LogLine, LogStream},
};

fn alert(kind: AnomalyKind, code: Option<i64>, logs: &[&str]) -> HealthAlert {
    let mut evidence = Evidence::default();
    evidence.logs.lines =
        logs.iter().map(|l| LogLine { stream: LogStream::Stderr, line: (*l).to_owned(), timestamp: None }).collect();
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
    // Without evidence, the alert's own exit code is read: it names no
    // cause, and none is guessed.
    let mut bare = exit(1, &[]);
    bare.evidence = None;
    let d = diagnose(&bare).unwrap();
    assert_eq!((d.cause, d.restart_helps, d.recommendation), (Cause::Unknown, true, None));
    assert_eq!(d.summary, "The process exited with code 1 and printed nothing that says why.");
    // Nor from lines that are no error: an unrecognised error line is the
    // application's own error, quoted; plain output is not.
    assert_eq!(cause(&exit(3, &["worker: starting", "worker: 4 jobs done"])), Cause::Unknown);
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
        // Most often the dependency is starting or being recreated: the
        // restart after it is back heals.
        let d = diagnose(&exit(1, &["connecting", line])).unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::DependencyUnreachable, true), "{line}");
    }
}

#[test]
fn permission_denied() {
    let d = diagnose(&exit(1, &["open /var/lib/app/state.db: permission denied"])).unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::PermissionDenied, false));
    assert_eq!(cause(&exit(1, &["Error: EACCES: permission denied, open '/app/log.txt'"])), Cause::PermissionDenied);
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
    assert_eq!(cause(&exit(1, &[favicon])), Cause::Unknown);
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
    let event = |action: &str| hemostat_protocol::evidence::DockerEvent { action: action.into(), ..Default::default() };
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
        "driver failed programming external connectivity: Bind for 0.0.0.0:80 failed: port is already allocated".into(),
    );
    assert_eq!(cause(&a), Cause::PortInUse);
}
