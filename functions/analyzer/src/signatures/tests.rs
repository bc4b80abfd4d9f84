use super::*;
use hemostat_protocol::{
    diagnosis::Diagnosis,
    event::{Anomaly, AnomalyKind, HealthAlert, Metrics, Severity},
    evidence::{Evidence, LogLine, LogStream},
};

/// What the analyzer diagnoses for a container that printed `lines` and
/// exited 1.
fn diagnose_exit(lines: &[&str]) -> Option<Diagnosis> {
    let mut evidence = Evidence::default();
    evidence.logs.lines =
        lines.iter().map(|l| LogLine { stream: LogStream::Stderr, line: (*l).to_owned(), timestamp: None }).collect();
    evidence.state.exit_code = Some(1);
    evidence.state.status = Some("exited".into());
    let alert = HealthAlert {
        container: "app".into(),
        issues: vec![],
        metrics: Metrics { name: "app".into(), ..Default::default() },
        host: "h1".into(),
        container_id: None,
        image: None,
        anomalies: vec![Anomaly {
            kind: AnomalyKind::NonZeroExit,
            severity: Severity::High,
            threshold: None,
            actual: None,
        }],
        exit_code: Some(1),
        detected_at: None,
        evidence: Some(evidence),
        policy: None,
        held: None,
        silenced_by: Vec::new(),
    };
    crate::diagnosis::diagnose(&alert)
}

#[test]
fn the_embedded_catalogue_is_valid_and_covers_the_runtimes() {
    let c = catalogue().expect("the embedded catalogue parses and validates");
    let n = c.signatures().len();
    assert!(n >= 150, "{n} signatures");
    // Every family the catalogue is meant to cover has signatures of its own.
    // `generic` is words many programs print; `shell` may have none of its own.
    for &runtime in RUNTIMES.iter().filter(|r| !matches!(**r, "generic" | "shell")) {
        assert!(c.signatures().iter().any(|s| s.runtime == runtime), "no signature for {runtime}");
    }
    for s in c.signatures() {
        assert_ne!(s.cause, Cause::Unknown, "{}", s.id);
        assert!(!s.recommendation.is_empty() && !s.samples.is_empty(), "{}", s.id);
        assert!(s.samples.iter().all(|x| !x.source.trim().is_empty()), "{}", s.id);
    }
    assert_eq!(load_count(), n);
}

fn load_count() -> usize {
    crate::load_signatures().expect("loads")
}

#[test]
fn every_sample_line_is_diagnosed_as_its_signatures_cause() {
    let c = catalogue().unwrap();
    let mut wrong = Vec::new();
    for s in c.signatures() {
        for sample in &s.samples {
            match diagnose_exit(&[sample.line.as_str()]) {
                Some(d) if d.cause == s.cause && d.restart_helps == s.restart_helps => {
                    // The diagnosis carries a recommendation, and the line.
                    assert!(d.recommendation.is_some(), "{}", s.id);
                    assert_eq!(d.evidence, std::slice::from_ref(&sample.line), "{}", s.id);
                }
                other => wrong.push(format!(
                    "{}: {:?} read as {:?}",
                    s.id,
                    sample.line,
                    other.map(|d| (d.cause, d.restart_helps))
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{} samples misread:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn the_winning_signature_gives_restart_helps_and_the_recommendation() {
    let c = catalogue().unwrap();
    let by_id = |id: &str| c.signatures().iter().find(|s| s.id == id).unwrap().clone();
    // A full /dev/shm is not a full disk: PostgreSQL's own signature
    // outranks the C library's words, and no cleanup is proposed.
    let shm = by_id("postgres.shm-resize");
    let d = diagnose_exit(&[shm.samples[0].line.as_str()]).unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::OutOfMemoryInApp, false));
    assert_eq!(d.recommendation.as_deref(), Some(shm.recommendation.as_str()));
    // A database still starting: a restart helps.
    let d = diagnose_exit(&["FATAL:  the database system is starting up"]).unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::DependencyUnreachable, true));
    // A runtime's own signature beats a generic one of the same rank.
    let bind = by_id("jvm.bind-exception");
    let d = diagnose_exit(&["Caused by: java.net.BindException: Address already in use"]).unwrap();
    assert_eq!(d.recommendation.as_deref(), Some(bind.recommendation.as_str()));
    // A specific cause outranks a trace: the traceback ends in a refused
    // connection, a Go panic names a missing file.
    assert_eq!(
        diagnose_exit(&[
            "Traceback (most recent call last):",
            "ConnectionRefusedError: [Errno 111] Connection refused"
        ])
        .map(|d| d.cause),
        Some(Cause::DependencyUnreachable)
    );
    assert_eq!(
        diagnose_exit(&["panic: open /etc/app/config.yaml: no such file or directory"]).map(|d| d.cause),
        Some(Cause::MissingFileOrConfig)
    );
    // ENOSPC from inotify is a host limit, not a full disk.
    let d =
        diagnose_exit(&["Error: ENOSPC: System limit for number of file watchers reached, watch '/app/src'"]).unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::MissingFileOrConfig, false));
    // The kernel's OOM report outranks the C library's "out of memory".
    let d = diagnose_exit(&["Memory cgroup out of memory: Killed process 4242 (java)"]).unwrap();
    assert_eq!(d.cause, Cause::OomKilled);
    // musl's words (Alpine images) are read like glibc's.
    let d = diagnose_exit(&["socket.gaierror: [Errno -2] Name does not resolve"]).unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::DependencyUnreachable, true));
    let d = diagnose_exit(&["bind: Address in use"]).unwrap();
    assert_eq!(d.cause, Cause::PortInUse);
    // A proxy's upstream that does not resolve is the upstream's failure,
    // even on HAProxy's configuration-parsing line.
    let d = diagnose_exit(&[
        "[ALERT]    (1) : config : parsing [/usr/local/etc/haproxy/haproxy.cfg:30] : 'server app/app1' : could not resolve address 'app'.",
    ])
    .unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::DependencyUnreachable, true));
    // A configuration fetched from a server that does not resolve is that
    // server's failure, not a missing file.
    let d = diagnose_exit(&[
        r#"{"level":"fatal","msg":"failed to load config","error":"Get \"http://config:8888/app/prod\": dial tcp: lookup config on 127.0.0.11:53: no such host"}"#,
    ])
    .unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::DependencyUnreachable, true));
    // Home Assistant's HTTP server refused a low port: permission, not a
    // port in use.
    let d = diagnose_exit(&[
        "ERROR (MainThread) [homeassistant.components.http] Failed to create HTTP server at port 80: [Errno 13] error while attempting to bind on address ('0.0.0.0', 80): permission denied",
    ])
    .unwrap();
    assert_eq!(d.cause, Cause::PermissionDenied);
    // A script with CRLF line endings: the recommendation says so, not the
    // generic missing file's.
    let crlf = by_id("shell.crlf-interpreter");
    let d = diagnose_exit(&[r"/usr/bin/env: 'bash\r': No such file or directory"]).unwrap();
    assert_eq!(d.recommendation.as_deref(), Some(crlf.recommendation.as_str()));
    // A RabbitMQ node waiting for its peers is a passing state; one whose
    // login is refused is not.
    let d = diagnose_exit(&["Timeout contacting cluster nodes: ['rabbit@rabbitmq-0']."]).unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::DependencyUnreachable, true));
    let d = diagnose_exit(&["ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN."]).unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::PermissionDenied, false));
    // Words no signature knows: the bare exit code, nothing guessed.
    let d = diagnose_exit(&["ERROR consumer: no progress for 30s on partition 7, exiting"]).unwrap();
    assert_eq!((d.cause, d.recommendation), (Cause::AppError, None));
}

#[test]
fn matching_is_case_insensitive_and_finds_every_signature_on_a_line() {
    let c = catalogue().unwrap();
    let ids = |line: &str| c.matching(line).map(|i| c.get(i).id.clone()).collect::<Vec<_>>();
    let found = ids("Error: LISTEN EADDRINUSE: ADDRESS ALREADY IN USE :::8080");
    assert!(
        found.contains(&"node.eaddrinuse".to_owned()) && found.contains(&"generic.eaddrinuse".to_owned()),
        "{found:?}"
    );
    assert!(ids("FATAL:  DATABASE \"app\" DOES NOT EXIST").contains(&"postgres.database-missing".to_owned()));
    assert!(ids("all is well").is_empty());
    // A long line is scanned once, whatever its length.
    let long = format!("{}no space left on device", "x".repeat(1 << 20));
    assert_eq!(ids(&long), ["generic.enospc"]);
}

const GOOD: &str = r#"
- id: a.one
  runtime: node
  literal: boom happened
  cause: panic_or_exception
  restart_helps: true
  recommendation: Fix it.
  samples:
    - line: "Error: boom happened"
      source: somewhere.c f()
"#;

fn parse_err(yaml: &str) -> String {
    match Catalogue::parse(&[("test.yaml", yaml)]) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_bad_catalogue_is_a_clear_error() {
    assert_eq!(Catalogue::parse(&[("test.yaml", GOOD)]).unwrap().signatures().len(), 1);
    let e = parse_err(&format!("{GOOD}{}", GOOD.replace("boom happened", "other thing")));
    assert!(e.contains("a.one") && e.contains("duplicate id"), "{e}");
    let e = parse_err(&GOOD.replace("panic_or_exception", "gremlins"));
    assert!(e.contains("unknown cause \"gremlins\""), "{e}");
    let e = parse_err(&GOOD.replace("cause: panic_or_exception", "cause: unknown"));
    assert!(e.contains("unknown cause"), "{e}");
    let e = parse_err(&GOOD.replace("runtime: node", "runtime: cobol"));
    assert!(e.contains("unknown runtime \"cobol\""), "{e}");
    let e = parse_err(&GOOD.replace("somewhere.c f()", "\"\""));
    assert!(e.contains("without a line or a source"), "{e}");
    let e = parse_err(&GOOD.replace("literal: boom happened", "regex: 'boom (happened'"));
    assert!(e.contains("a.one") && e.contains("regex parse error"), "{e}");
    let e = parse_err(&GOOD.replace("literal: boom happened", "literal: boom\n  regex: boom"));
    assert!(e.contains("exactly one"), "{e}");
    let e = parse_err(&GOOD.replace("\"Error: boom happened\"", "\"Error: something else\""));
    assert!(e.contains("does not match its sample"), "{e}");
    let e = parse_err(&GOOD.replace("recommendation: Fix it.", "recommendation: ' '"));
    assert!(e.contains("empty recommendation"), "{e}");
    let e = parse_err(&GOOD.replace(
        "  samples:\n    - line: \"Error: boom happened\"\n      source: somewhere.c f()\n",
        "  samples: []\n",
    ));
    assert!(e.contains("no sample"), "{e}");
    let e = parse_err(&GOOD.replace("restart_helps: true", "restart_helps: maybe"));
    assert!(e.contains("test.yaml"), "{e}");
    let e = parse_err(&GOOD.replace("cause:", "cuase:"));
    assert!(e.contains("test.yaml") && e.contains("cuase"), "{e}");
    // The same literal twice, in another case: one would shadow the other.
    let twin = GOOD.replace("a.one", "a.two").replace("boom happened", "BOOM HAPPENED");
    let e = parse_err(&format!("{GOOD}{twin}"));
    assert!(e.contains("same literal as a.one"), "{e}");
}

/// The tuning incidents that fail once by themselves are decided by their
/// lines alone (a repeat is judged by the whole stack, which counts the
/// restarts; a death by signal by Docker's state): each
/// one's log, diagnosed here, gives the cause and restart_helps it expects.
/// The evaluation set is never read here.
#[test]
fn single_tuning_incidents_are_diagnosed_from_their_lines() {
    use hemostat_e2e::incident_files::{Set, load};
    let files = load(Set::Tuning).expect("the tuning incidents load");
    let mut wrong = Vec::new();
    let mut judged = 0;
    // A death by signal is Docker's to tell (exit code, OOM flag), not the lines'.
    for f in files.iter().filter(|f| f.repeats == 1 && f.exit_code <= 128 && !f.exceeds_memory_limit) {
        let lines: Vec<&str> = f.log.lines().map(|l| l.strip_prefix('!').unwrap_or(l)).collect();
        let got = diagnose_exit(&lines).map(|d| (d.cause, d.restart_helps));
        judged += 1;
        if got != Some((f.cause().expect("a known cause"), f.expect.restart_helps)) {
            wrong.push(format!("{}: {got:?}", f.name));
        }
    }
    assert!(judged >= 40, "{judged} single incidents");
    assert!(wrong.is_empty(), "{wrong:#?}");
}
