use super::*;
use crate::history::AlertSummary;
use hemostat_protocol::event::{Anomaly, Metrics};

const MIN: i64 = 60_000_000;

fn alert(kind: AnomalyKind, severity: Severity, cpu: f64, mem: f64) -> HealthAlert {
    HealthAlert {
        container: "web".into(),
        issues: vec![],
        metrics: Metrics { name: "web".into(), cpu_pct: cpu, memory_pct: mem, ..Default::default() },
        host: "h1".into(),
        container_id: None,
        image: None,
        anomalies: vec![Anomaly { kind, severity, threshold: None, actual: None }],
        exit_code: Some(1),
        detected_at: None,
        evidence: None,
        policy: None,
        held: None,
        silenced_by: Vec::new(),
    }
}

/// The history after a sequence of alerts `(minute, alert)`, evaluated
/// at the last one, as the handler would build it.
fn run(sequence: &[(i64, HealthAlert)]) -> RuleDecision {
    run_with(sequence, &Ladder::OFF)
}

/// [`run`], with `RESPONDER_ESCALATION` set to `fleet_ladder`.
fn run_with(sequence: &[(i64, HealthAlert)], fleet_ladder: &Ladder) -> RuleDecision {
    let mut alerts = Vec::new();
    let mut last = None;
    for (minute, a) in sequence {
        alerts.insert(0, AlertSummary::of(a, minute * MIN));
        last = Some((minute * MIN, a));
    }
    let (now, a) = last.expect("a sequence has alerts");
    evaluate(a, &History { now, alerts }, fleet_ladder)
}

fn single(a: HealthAlert) -> RuleDecision {
    run(&[(0, a)])
}

#[test]
fn seed_confidences_for_single_alerts() {
    let v = single(alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0));
    assert_eq!((v.action, v.confidence), (Action::Restart, 0.9));
    assert!(v.reason.contains("code 1"), "{}", v.reason);
    assert_eq!(single(alert(AnomalyKind::OomKilled, Severity::Critical, 0.0, 0.0)).confidence, 0.9);
    let ex = single(alert(AnomalyKind::ExcessiveRestarts, Severity::High, 0.0, 0.0));
    assert_eq!((ex.action, ex.confidence), (Action::None, 0.6));
    let crit = single(alert(AnomalyKind::HighCpu, Severity::Critical, 99.0, 0.0));
    assert_eq!((crit.action, crit.confidence, crit.pattern), (Action::Restart, 0.85, Pattern::Critical));
    assert_eq!(single(alert(AnomalyKind::Unhealthy, Severity::High, 0.0, 0.0)).confidence, 0.7);
    assert_eq!(single(alert(AnomalyKind::MemoryLeak, Severity::High, 0.0, 0.0)).confidence, 0.8);
    let spike = single(alert(AnomalyKind::HighCpu, Severity::High, 92.0, 0.0));
    assert_eq!((spike.action, spike.confidence, spike.pattern), (Action::None, 0.65, Pattern::Transient));
}

#[test]
fn three_high_cpu_alerts_in_two_minutes_are_sustained() {
    let cpu = |c| alert(AnomalyKind::HighCpu, Severity::High, c, 30.0);
    let v = run(&[(0, cpu(91.0)), (1, cpu(93.0)), (2, cpu(95.0))]);
    assert_eq!((v.action, v.confidence, v.pattern), (Action::Restart, 0.75, Pattern::SustainedCpu));
    // Two alerts are not enough, nor three spread over an hour.
    assert_eq!(run(&[(0, cpu(91.0)), (1, cpu(93.0))]).pattern, Pattern::Transient);
    assert_eq!(run(&[(0, cpu(91.0)), (20, cpu(93.0)), (40, cpu(95.0))]).pattern, Pattern::Transient);
}

#[test]
fn collector_sustained_seconds_makes_one_alert_sustained() {
    let mut a = alert(AnomalyKind::HighCpu, Severity::High, 97.0, 30.0);
    a.metrics.extra.insert("sustained_seconds".into(), 120.into());
    let v = single(a.clone());
    assert_eq!((v.action, v.confidence), (Action::Restart, 0.75));
    a.metrics.extra.insert("sustained_seconds".into(), 20.into());
    assert_eq!(single(a.clone()).pattern, Pattern::Transient);
    // The collector says its window was 10 s: 20 s is sustained.
    a.metrics.extra.insert("sustain_seconds".into(), 10.into());
    let v = single(a.clone());
    assert_eq!((v.pattern, v.diagnosis.map(|d| d.cause)), (Pattern::SustainedCpu, Some(Cause::CpuBurn)));
    // A breach shorter than its own window is not (a collector would not send it, a hand-written alert might).
    a.metrics.extra.insert("sustain_seconds".into(), 30.into());
    assert_eq!(single(a).pattern, Pattern::Transient);
}

#[test]
fn memory_rising_across_history_is_a_leak() {
    let mem = |m| alert(AnomalyKind::HighMemory, Severity::High, 10.0, m);
    let v = run(&[(0, mem(70.0)), (5, mem(75.5)), (10, mem(75.0)), (15, mem(81.0)), (20, mem(86.0))]);
    assert_eq!((v.action, v.confidence, v.pattern), (Action::Restart, 0.8, Pattern::MemoryLeak));
    assert!(v.reason.contains("70.0%") && v.reason.contains("86.0%"), "{}", v.reason);
    // High but flat, or falling in between: no leak, a spike.
    assert_eq!(run(&[(0, mem(85.0)), (5, mem(86.0)), (10, mem(85.5)), (15, mem(86.0))]).pattern, Pattern::Transient);
    assert_eq!(run(&[(0, mem(70.0)), (5, mem(90.0)), (10, mem(72.0)), (15, mem(91.0))]).pattern, Pattern::Transient);
}

#[test]
fn four_exits_in_ten_minutes_are_repeated_failures() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    let v = run(&[(0, exit()), (3, exit()), (6, exit()), (9, exit())]);
    assert_eq!((v.action, v.confidence, v.pattern), (Action::None, 0.6, Pattern::RepeatedFailures));
    // Two exits of a recognised cause a restart can fix, in the window,
    // each failing its own way: still a crash.
    let panic = |what: &str| with_logs(exit(), 2, &[&format!("panic: runtime error: {what}")]);
    let v = run(&[
        (0, panic("index out of range [3] with length 3")),
        (30, panic("index out of range [3] with length 3")),
        (35, panic("assignment to entry in nil map")),
    ]);
    assert_eq!((v.action, v.confidence), (Action::Restart, 0.9));
}

#[test]
fn an_unrecognised_cause_gets_one_restart_not_two() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    let plain = || with_logs(exit(), 3, &["worker: giving up"]);
    // The first exit nothing explains: one restart.
    let v = single(plain());
    assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
    assert_eq!(v.diagnosis.as_ref().map(|d| d.cause), Some(Cause::Unknown));
    // A second within the window: no guess at a second restart.
    for second in [plain(), exit()] {
        let v = run(&[(0, plain()), (4, second)]);
        assert_eq!((v.action, v.pattern), (Action::None, Pattern::RepeatedFailures));
        assert!(v.reason.contains("no recognisable cause"), "{}", v.reason);
        let d = v.diagnosis.unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::CrashLoop, false));
    }
    // Outside the window, it is a first exit again.
    assert_eq!(run(&[(0, plain()), (30, plain())]).action, Action::Restart);
    // A recognised cause a restart can fix keeps the three-exit rule (the
    // failures differ: an identical one would be deterministic).
    let oom = |space: &str| with_logs(exit(), 1, &[&format!("java.lang.OutOfMemoryError: {space}")]);
    let (heap, meta, gc) = (|| oom("Java heap space"), || oom("Metaspace"), || oom("GC overhead limit exceeded"));
    assert_eq!(run(&[(0, heap()), (4, meta())]).action, Action::Restart);
    assert_eq!(run(&[(0, heap()), (4, meta()), (8, gc())]).pattern, Pattern::RepeatedFailures);
}

#[test]
fn redelivered_alerts_count_once() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    let panic = || with_logs(exit(), 2, &["panic: runtime error: index out of range [3] with length 3"]);
    let other = || with_logs(exit(), 2, &["panic: assignment to entry in nil map"]);
    // One alert delivered three times (same timestamp), then a second.
    let v = run(&[(0, panic()), (0, panic()), (0, panic()), (2, other())]);
    assert_eq!(v.pattern, Pattern::Crash);
    // One unexplained exit delivered three times is still one exit.
    let v = run(&[(0, exit()), (0, exit()), (0, exit())]);
    assert_eq!(v.pattern, Pattern::Crash);
}

fn with_logs(mut a: HealthAlert, code: i64, lines: &[&str]) -> HealthAlert {
    use hemostat_protocol::evidence::{Evidence, LogLine, LogStream};
    let mut e = Evidence::default();
    e.logs.lines =
        lines.iter().map(|l| LogLine { stream: LogStream::Stderr, line: (*l).into(), timestamp: None }).collect();
    e.state.exit_code = Some(code);
    e.state.status = Some("exited".into());
    a.exit_code = Some(code);
    a.evidence = Some(e);
    a
}

#[test]
fn diagnoses_a_restart_cannot_fix_decide() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    let cases = [
        ("OSError: [Errno 28] No space left on device", 1, Action::Cleanup, Cause::DiskFull),
        ("listen tcp :8080: bind: address already in use", 1, Action::None, Cause::PortInUse),
        // A dependency that answers, and is not trusted: no restart changes that.
        ("x509: certificate signed by unknown authority", 1, Action::None, Cause::DependencyUnreachable),
        ("open /etc/app/config.yaml: no such file or directory", 1, Action::None, Cause::MissingFileOrConfig),
        ("open /data/state.db: permission denied", 1, Action::None, Cause::PermissionDenied),
        ("batch finished, 42 rows", 0, Action::None, Cause::CleanExit),
    ];
    for (line, code, action, cause) in cases {
        let v = single(with_logs(exit(), code, &["starting", line]));
        assert_eq!((v.action, v.pattern), (action, Pattern::Diagnosed), "{line}");
        let d = v.diagnosis.expect("diagnosed");
        assert_eq!((d.cause, d.restart_helps), (cause, false), "{line}");
        assert!(d.recommendation.is_some(), "{line}");
        assert!(v.reason.contains(cause.as_str()), "{}", v.reason);
        if code != 0 {
            assert_eq!(d.evidence, [line]);
        }
    }
}

#[test]
fn a_signature_that_says_a_restart_cannot_help_decides() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    for (line, cause) in [
        // A cause that a restart usually fixes, but not this time.
        (
            "ERROR:  could not resize shared memory segment \"/PostgreSQL.1450751626\" to 50438144 bytes: No space left on device",
            Cause::OutOfMemoryInApp,
        ),
        ("PANIC:  could not locate a valid checkpoint record", Cause::AppError),
        ("SyntaxError: invalid syntax", Cause::AppError),
    ] {
        let v = single(with_logs(exit(), 1, &[line]));
        assert_eq!((v.action, v.confidence, v.pattern), (Action::None, 0.8, Pattern::Diagnosed), "{line}");
        let d = v.diagnosis.unwrap();
        assert_eq!((d.cause, d.restart_helps), (cause, false), "{line}");
        assert!(d.recommendation.is_some(), "{line}");
    }
    // A dependency still starting: a restart helps, the crash rule decides.
    let v = single(with_logs(exit(), 1, &["FATAL:  the database system is starting up"]));
    assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
    assert_eq!(v.diagnosis.map(|d| (d.cause, d.restart_helps)), Some((Cause::DependencyUnreachable, true)));
}

#[test]
fn other_diagnoses_leave_the_decision_to_the_rules() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    for (line, code, cause) in [
        ("thread 'main' panicked at src/main.rs:3:5:", 101, Cause::PanicOrException),
        ("java.lang.OutOfMemoryError: Java heap space", 1, Cause::OutOfMemoryInApp),
        ("Segmentation fault (core dumped)", 139, Cause::Segfault),
        ("Error: bad flag", 1, Cause::AppError),
    ] {
        let v = single(with_logs(exit(), code, &[line]));
        assert_eq!((v.action, v.confidence, v.pattern), (Action::Restart, 0.9, Pattern::Crash), "{line}");
        assert_eq!(v.diagnosis.map(|d| d.cause), Some(cause));
    }
    // No evidence: the exit code alone, which names no cause.
    assert_eq!(single(exit()).diagnosis.map(|d| d.cause), Some(Cause::Unknown));
    let spike = single(alert(AnomalyKind::HighCpu, Severity::High, 92.0, 0.0));
    assert_eq!(spike.diagnosis, None);
}

#[test]
fn the_crash_loop_rule_stays_first() {
    let full = || with_logs(alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0), 1, &["ENOSPC: write"]);
    let v = run(&[(0, full()), (3, full()), (6, full())]);
    assert_eq!((v.action, v.pattern), (Action::None, Pattern::RepeatedFailures));
    // The specific cause is kept.
    assert_eq!(v.diagnosis.map(|d| d.cause), Some(Cause::DiskFull));
    // So is an application error a signature names (its recommendation says what to fix).
    let named = || {
        with_logs(
            alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0),
            1,
            &["1:M 02 May 2024 10:11:12.346 # Fatal error loading the DB, check server logs. Exiting."],
        )
    };
    let v = run(&[(0, named()), (3, named()), (6, named())]);
    assert_eq!(v.action, Action::None);
    let d = v.diagnosis.unwrap();
    assert_eq!((d.cause, d.recommendation.is_some()), (Cause::AppError, true), "{d:?}");
    // A loop of plain errors is diagnosed as a crash loop.
    let plain = || with_logs(alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0), 1, &["fatal: boom"]);
    let v = run(&[(0, plain()), (3, plain()), (6, plain())]);
    let d = v.diagnosis.unwrap();
    assert_eq!(
        (d.cause, d.restart_helps, d.evidence.as_slice()),
        (Cause::CrashLoop, false, &["fatal: boom".to_owned()][..])
    );
    let ex = single(with_logs(alert(AnomalyKind::ExcessiveRestarts, Severity::High, 0.0, 0.0), 1, &["ENOSPC"]));
    assert_eq!((ex.action, ex.pattern), (Action::None, Pattern::ExcessiveRestarts));
}

#[test]
fn a_cpu_burner_that_resumes_after_its_restart_is_not_restarted_again() {
    use hemostat_protocol::evidence::Evidence;
    // Started at minute `start` (the evidence's Docker state).
    let cpu = |start: i64| {
        let mut a = alert(AnomalyKind::HighCpu, Severity::Critical, 99.0, 5.0);
        let mut e = Evidence::default();
        let started = chrono::DateTime::from_timestamp_micros(start * MIN).unwrap();
        e.state.started_at = Some(started.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
        e.state.status = Some("running".into());
        a.evidence = Some(e);
        a
    };
    // First alert: a pegged core, restart.
    let v = run(&[(1, cpu(0))]);
    assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Critical));
    assert_eq!(v.diagnosis.as_ref().map(|d| (d.cause, d.restart_helps)), Some((Cause::CpuBurn, true)));
    // Restarted at minute 2, burning again at minute 3: restarting did not help.
    let v = run(&[(1, cpu(0)), (3, cpu(2))]);
    assert_eq!((v.action, v.confidence, v.pattern), (Action::None, 0.8, Pattern::CpuAfterRestart));
    let d = v.diagnosis.unwrap();
    assert_eq!((d.cause, d.restart_helps), (Cause::CpuBurn, false));
    assert!(d.recommendation.is_some_and(|r| r.contains("Profile")));
    // Two alerts without a restart between them: still the first verdict.
    assert_eq!(run(&[(1, cpu(0)), (3, cpu(0))]).pattern, Pattern::Critical);
    // An alert before the restart but outside the window: forgotten.
    assert_eq!(run(&[(1, cpu(0)), (50, cpu(45))]).pattern, Pattern::Critical);
    // Without Docker's start time, nothing can be said.
    let mut bare = cpu(2);
    bare.evidence = None;
    assert_eq!(run(&[(1, cpu(0)), (3, bare)]).pattern, Pattern::Critical);
}

#[test]
fn later_alerts_of_concurrent_invocations_are_not_history() {
    let cpu = || alert(AnomalyKind::HighCpu, Severity::High, 95.0, 0.0);
    let mut alerts: Vec<_> = [4, 3, 0].iter().map(|m| AlertSummary::of(&cpu(), m * MIN)).collect();
    alerts.insert(0, AlertSummary::of(&cpu(), 9 * MIN)); // stored first, but later
    let v = evaluate(&cpu(), &History { now: 0, alerts }, &Ladder::OFF);
    assert_eq!(v.pattern, Pattern::Transient);
}

/// `a` as the collector reports an exit `seconds` after its start.
fn after(mut a: HealthAlert, seconds: f64) -> HealthAlert {
    a.metrics.extra.insert(Metrics::UPTIME_SECONDS.into(), seconds.into());
    a
}

const DAY: f64 = 86_400.0;

#[test]
fn a_failure_that_repeats_identically_after_a_restart_is_deterministic() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    // The same panic; its timestamps, goroutine and address differ.
    let crash = |t: &str, g: u32| {
        with_logs(
            exit(),
            2,
            &[
                &format!("2026/12/06 10:{t} loading /etc/app/routes.yaml"),
                "panic: assignment to entry in nil map",
                &format!("goroutine {g} [running]:"),
            ],
        )
    };
    let first = crash("00:01", 1);
    let second = crash("00:09", 7);
    // The first exit: restarted.
    let v = single(after(first.clone(), 2.0));
    assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
    // The same failure 2 s into the run after that restart: deterministic.
    let v = run(&[(0, after(first.clone(), 2.0)), (1, after(second.clone(), 2.0))]);
    assert_eq!((v.action, v.pattern), (Action::None, Pattern::DeterministicRepeat));
    assert!(v.pattern.is_guard());
    assert!(v.reason.contains("\"panic: assignment to entry in nil map\""), "{}", v.reason);
    assert!(v.reason.contains("exit code 2") && v.reason.contains("2 s after it started"), "{}", v.reason);
    let d = v.diagnosis.expect("diagnosed");
    assert_eq!((d.cause, d.restart_helps), (Cause::PanicOrException, false));
    assert!(d.recommendation.is_some_and(|r| r.contains("same failure")));
    // A container with an escalation ladder of its own climbs it: the
    // request goes on to the gate, which takes the next step.
    let laddered = |mut a: HealthAlert, ladder: &str| {
        a.policy = Some(hemostat_protocol::policy::Policy { escalation: Some(ladder.into()), ..Default::default() });
        a
    };
    let v = run(&[(0, after(first.clone(), 2.0)), (1, laddered(after(second.clone(), 2.0), "restart,recreate,stop"))]);
    assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
    let v = run(&[(0, after(first.clone(), 2.0)), (1, laddered(after(second.clone(), 2.0), "off"))]);
    assert_eq!(v.pattern, Pattern::DeterministicRepeat);
    // The fleet's ladder (RESPONDER_ESCALATION) likewise, unless the
    // container opted out of it.
    let fleet = Ladder::parse("restart,recreate,stop").unwrap();
    let v = run_with(&[(0, after(first.clone(), 2.0)), (1, after(second.clone(), 2.0))], &fleet);
    assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
    let opted_out = [(0, after(first.clone(), 2.0)), (1, laddered(after(second.clone(), 2.0), "off"))];
    assert_eq!(run_with(&opted_out, &fleet).pattern, Pattern::DeterministicRepeat);
    // Nor does the limit on repeated failures stop it: the ladder's length does.
    let many: Vec<(i64, HealthAlert)> = (0..5)
        .map(|i| (i, laddered(after(crash(&format!("0{i}:01"), i as u32), 2.0), "restart,recreate,stop")))
        .collect();
    assert_eq!(run(&many).action, Action::Restart);
    // However long the container stayed down in between (an operator
    // started it again after 45 minutes): its run was short.
    assert_eq!(run(&[(0, after(first.clone(), 2.0)), (45, after(second.clone(), 2.0))]).action, Action::None);
    // Without the uptime, the time between the exits bounds the run.
    assert_eq!(run(&[(0, first.clone()), (3, second.clone())]).pattern, Pattern::DeterministicRepeat);
    assert_eq!(run(&[(0, first.clone()), (45, second.clone())]).pattern, Pattern::Crash);

    // Not the same failure: another code, another line.
    let mut other_code = second.clone();
    other_code.exit_code = Some(1);
    other_code.evidence.as_mut().unwrap().state.exit_code = Some(1);
    let other_line = with_logs(exit(), 2, &["panic: runtime error: index out of range [3] with length 3"]);
    for other in [other_code, other_line] {
        let v = run(&[(0, after(first.clone(), 2.0)), (1, after(other, 2.0))]);
        assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
    }
    // The restart had brought it back for days (or for ten minutes, the
    // window): a failure after that is not deterministic.
    for uptime in [3.0 * DAY, STABLE_SECONDS] {
        let v = run(&[(0, after(first.clone(), 2.0)), (1, after(second.clone(), uptime))]);
        assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash), "{uptime}");
    }
    // The exit before it is the one compared, not an older one.
    let between = after(with_logs(exit(), 2, &["panic: runtime error: slice bounds out of range"]), 2.0);
    let v = run(&[(0, after(first.clone(), 2.0)), (20, between), (21, after(second.clone(), 2.0))]);
    assert_eq!(v.pattern, Pattern::Crash);
}

#[test]
fn repeats_a_restart_can_still_fix_keep_their_restarts() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    // A dependency still starting: the next restart may find it up.
    let starting = || after(with_logs(exit(), 1, &["FATAL:  the database system is starting up"]), 1.0);
    let v = run(&[(0, starting()), (1, starting())]);
    assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
    // Up to the repeated-failure limit.
    assert_eq!(run(&[(0, starting()), (1, starting()), (2, starting())]).pattern, Pattern::RepeatedFailures);
    // Ended from outside (the kernel's OOM killer, a SIGKILL): the last
    // line printed is not the failure.
    let oom = || {
        let mut a = with_logs(alert(AnomalyKind::OomKilled, Severity::Critical, 0.0, 0.0), 137, &["load failed"]);
        a.evidence.as_mut().unwrap().state.oom_killed = true;
        after(a, 30.0)
    };
    let killed = || after(with_logs(exit(), 137, &["request failed"]), 30.0);
    for (first, second, cause) in [(oom(), oom(), Cause::OomKilled), (killed(), killed(), Cause::Killed)] {
        let v = run(&[(0, first), (1, second)]);
        assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash), "{cause}");
        assert_eq!(v.diagnosis.map(|d| d.cause), Some(cause));
    }
    // Crashed by a signal someone sent it through Docker (`docker kill -s
    // USR1`): provoked from outside, however alike the lines.
    let poked = || {
        use hemostat_protocol::evidence::DockerEvent;
        let mut a = after(with_logs(exit(), 1, &["panic: crashed on demand (SIGUSR1)"]), 4.0);
        let ev = |action: &str, signal| DockerEvent { action: action.into(), signal, ..Default::default() };
        a.evidence.as_mut().unwrap().events = vec![ev("start", None), ev("kill", Some(10)), ev("die", None)];
        a
    };
    let v = run(&[(0, poked()), (1, poked())]);
    assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
    // The same lines without the signal: deterministic.
    let mut unprovoked = poked();
    unprovoked.evidence.as_mut().unwrap().events.remove(1);
    let v = run(&[(0, poked()), (1, unprovoked.clone())]);
    assert_eq!(v.pattern, Pattern::DeterministicRepeat);
    // A signal to an earlier run does not count.
    unprovoked.evidence.as_mut().unwrap().events.insert(0, {
        use hemostat_protocol::evidence::DockerEvent;
        DockerEvent { action: "kill".into(), signal: Some(10), ..Default::default() }
    });
    assert_eq!(run(&[(0, poked()), (1, unprovoked)]).pattern, Pattern::DeterministicRepeat);
    // A diagnosis that says a restart cannot help decides by itself, and a
    // full disk still gets its cleanup.
    let full = || after(with_logs(exit(), 1, &["OSError: [Errno 28] No space left on device"]), 1.0);
    let v = run(&[(0, full()), (1, full())]);
    assert_eq!((v.action, v.pattern), (Action::Cleanup, Pattern::Diagnosed));
}

#[test]
fn uptime_tells_a_crash_loop_at_boot_from_a_failure_after_days() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    // Nothing recognisable, nothing error-like: no fingerprint either.
    let quiet = |uptime: f64| after(with_logs(exit(), 1, &["worker: starting"]), uptime);
    // Within seconds of its start, as at the start before, 45 minutes
    // apart (outside the ten-minute window): a crash loop at boot.
    let v = run(&[(0, quiet(2.0)), (45, quiet(3.0))]);
    assert_eq!((v.action, v.pattern), (Action::None, Pattern::RepeatedFailures));
    assert!(v.reason.contains("3 s after it started") && v.reason.contains("45 min ago"), "{}", v.reason);
    assert_eq!(v.diagnosis.map(|d| d.cause), Some(Cause::CrashLoop));
    // The first such exit gets its one restart.
    assert_eq!(single(quiet(2.0)).action, Action::Restart);
    // After days of service: restarted, whatever came before that run.
    for before in [quiet(2.0), quiet(3.0 * DAY)] {
        let v = run(&[(0, before), (3 * 1440, quiet(3.0 * DAY))]);
        assert_eq!((v.action, v.pattern), (Action::Restart, Pattern::Crash));
        assert!(v.reason.contains("after 3 days of uptime"), "{}", v.reason);
    }
    // At boot, but the exit before came after hours of service (or its
    // run is not known): not a loop at boot; outside the window, restarted.
    let unknown_run = with_logs(exit(), 1, &["worker: starting"]);
    for before in [quiet(2.0 * 3600.0), unknown_run] {
        assert_eq!(run(&[(0, before), (45, quiet(2.0))]).action, Action::Restart);
    }
    // Within the window, the unexplained-exit limit holds whatever the
    // uptime: unknown never gets a second restart in a crash loop.
    assert_eq!(run(&[(0, quiet(2.0)), (4, quiet(200.0))]).pattern, Pattern::RepeatedFailures);
}

#[test]
fn uptime_is_evidence_shown_never_a_cause() {
    let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
    for (uptime, shown) in [(0.4, "0 s"), (2.0, "2 s"), (600.0, "10 min"), (5.0 * 3600.0, "5 h"), (4.0 * DAY, "4 days")]
    {
        for a in [exit(), with_logs(exit(), 1, &["worker: starting"])] {
            let v = single(after(a, uptime));
            let d = v.diagnosis.expect("an exit is diagnosed");
            // Quick or late, an exit nothing explains stays unknown: no
            // configuration error, no leak guessed from the time.
            assert_eq!((d.cause, d.recommendation), (Cause::Unknown, None), "{uptime}");
            assert!(d.summary.ends_with(&format!("It exited {shown} after it started.")), "{}", d.summary);
            assert!(v.reason.ends_with(&format!("after {shown} of uptime")), "{}", v.reason);
        }
    }
    // A resource alert has no run that ended: nothing is said.
    let mut spike = alert(AnomalyKind::HighCpu, Severity::High, 92.0, 0.0);
    spike.exit_code = None;
    assert_eq!(single(after(spike, 5.0)).diagnosis, None);
}
