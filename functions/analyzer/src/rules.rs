//! The rule-based analysis: a pure function of an alert and the container's
//! recent history.
//!
//! First the alert's evidence is diagnosed ([`crate::diagnosis::diagnose`]:
//! exit code, Docker state, failure signatures in logs and health output).
//! Then rules are checked in order, first match wins:
//!
//! | pattern | when | action | confidence |
//! |---|---|---|---|
//! | excessive restarts | the collector reports `excessive_restarts` | none | 0.6 |
//! | repeated failures | this exit is the [`REPEATED_FAILURES`]th within [`REPEATED_FAILURE_WINDOW`] | none | 0.6 |
//! | diagnosed: disk full | the diagnosis is `disk_full` | cleanup | 0.85 |
//! | diagnosed: outside the container | the diagnosis is `port_in_use`, `dependency_unreachable`, `missing_file_or_config` or `permission_denied` (a restart cannot help; the diagnosis recommends what a human should do) | none | 0.85 |
//! | diagnosed: clean exit | the diagnosis is `clean_exit` (exit code 0) | none | 0.8 |
//! | CPU burn after restart | `high_cpu`, and an earlier `high_cpu` alert within [`CPU_RECURRENCE_WINDOW`] came before the container's current start (it was restarted, and burns again) | none | 0.8 |
//! | crash | `non_zero_exit` or `oom_killed` | restart | 0.9 |
//! | critical | any anomaly of severity critical | restart | 0.85 |
//! | unhealthy | the health check fails | restart | 0.7 |
//! | memory leak | `memory_leak` from the collector, or memory rising across the history | restart | 0.8 |
//! | sustained CPU | `high_cpu` for the collector's sustain window (`metrics.sustain_seconds`, else [`crate::history::SUSTAINED_SECONDS`]) or in [`SUSTAINED_ALERTS`] alerts within [`SUSTAINED_WINDOW`] | restart | 0.75 |
//! | transient | anything else (one spike) | none | 0.65 |
//!
//! Repeated failures come before the crash rule: when restarts keep
//! failing, one more restart will not help, and a human should look.
//! Diagnoses a restart cannot fix come next, before the crash rule; every
//! other diagnosis (`oom_killed`, `killed`, `segfault`, `terminated`,
//! `app_error`, `panic_or_exception`, `out_of_memory_in_app`,
//! `health_check_failing`, `memory_leak`, `cpu_burn`) leaves the decision
//! to the rules below it. A burner that resumed after a restart is
//! diagnosed `cpu_burn` with `restart_helps: false`. Whatever decides, the diagnosis rides along in
//! the decision (for a crash loop without a more specific cause, it
//! becomes `crash_loop`).

use std::time::Duration;

use hemostat_protocol::{
    Action,
    diagnosis::{Cause, Diagnosis},
    event::{AnomalyKind, HealthAlert, Severity},
};

use crate::{
    diagnosis::{self, diagnose},
    history::{History, sustained},
};

/// Exits (non-zero or OOM) within [`REPEATED_FAILURE_WINDOW`], this one
/// included, from which a restart is judged futile. Three matches the
/// responder's default circuit breaker (3 actions per hour).
pub const REPEATED_FAILURES: usize = 3;
pub const REPEATED_FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// `high_cpu` alerts within [`SUSTAINED_WINDOW`], this one included, that
/// make high CPU sustained rather than a spike.
pub const SUSTAINED_ALERTS: usize = 3;
pub const SUSTAINED_WINDOW: Duration = Duration::from_secs(300);
/// How far back a `high_cpu` alert before the container's last start
/// shows that restarting did not stop the burn.
pub const CPU_RECURRENCE_WINDOW: Duration = Duration::from_secs(1800);
/// Memory samples within [`LEAK_WINDOW`] needed to call a trend.
pub const LEAK_MIN_SAMPLES: usize = 4;
pub const LEAK_WINDOW: Duration = Duration::from_secs(1800);
/// Total rise (percentage points of the limit) across the samples.
pub const LEAK_MIN_RISE: f64 = 10.0;
/// A step may dip this much (points) without breaking the trend: GC and
/// cache churn make real leaks slightly noisy.
pub const LEAK_STEP_TOLERANCE: f64 = 1.0;

/// Which rule matched; part of the LLM cache's failure signature, so a
/// verdict cached for a lone crash is not reused for a crash loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    ExcessiveRestarts,
    RepeatedFailures,
    Crash,
    Critical,
    Unhealthy,
    MemoryLeak,
    SustainedCpu,
    Transient,
    /// The diagnosis decided: a cause a restart cannot fix.
    Diagnosed,
    /// High CPU again after the container was restarted for it.
    CpuAfterRestart,
}

impl Pattern {
    /// Crash loops: restarting again cannot help, so these verdicts are
    /// final and no LLM is asked to second-guess them (the model sees the
    /// same history, but a confident "restart" from it must not override a
    /// loop the rules can see).
    pub fn is_guard(self) -> bool {
        matches!(self, Pattern::ExcessiveRestarts | Pattern::RepeatedFailures)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::ExcessiveRestarts => "excessive_restarts",
            Pattern::RepeatedFailures => "repeated_failures",
            Pattern::Crash => "crash",
            Pattern::Critical => "critical",
            Pattern::Unhealthy => "unhealthy",
            Pattern::MemoryLeak => "memory_leak",
            Pattern::SustainedCpu => "sustained_cpu",
            Pattern::Transient => "transient",
            Pattern::Diagnosed => "diagnosed",
            Pattern::CpuAfterRestart => "cpu_after_restart",
        }
    }
}

/// What the rules concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDecision {
    pub action: Action,
    pub confidence: f64,
    pub reason: String,
    pub pattern: Pattern,
    /// Why the container failed, as far as the alert's evidence tells.
    pub diagnosis: Option<Diagnosis>,
}

impl RuleDecision {
    fn new(pattern: Pattern, action: Action, confidence: f64, reason: impl Into<String>) -> Self {
        RuleDecision { action, confidence, reason: reason.into(), pattern, diagnosis: None }
    }
}

/// The decision a diagnosis imposes, when a restart cannot fix its cause.
pub fn decided_by(cause: Cause) -> Option<(Action, f64)> {
    match cause {
        Cause::DiskFull => Some((Action::Cleanup, 0.85)),
        Cause::PortInUse | Cause::DependencyUnreachable | Cause::MissingFileOrConfig | Cause::PermissionDenied => {
            Some((Action::None, 0.85))
        }
        Cause::CleanExit => Some((Action::None, 0.8)),
        _ => None,
    }
}

fn is_exit(kind: AnomalyKind) -> bool {
    matches!(kind, AnomalyKind::NonZeroExit | AnomalyKind::OomKilled)
}

/// `history`: the container's recent alerts, this one included (see
/// [`crate::history::record`]); an empty history is a first alert.
pub fn evaluate(alert: &HealthAlert, history: &History) -> RuleDecision {
    let mut diagnosis = diagnose(alert);
    let mut decision = decide(alert, history, diagnosis.as_ref());
    if decision.pattern.is_guard()
        && diagnosis.as_ref().is_none_or(|d| matches!(d.cause, Cause::AppError | Cause::Unknown))
    {
        let evidence = diagnosis.take().map(|d| d.evidence).unwrap_or_default();
        diagnosis = Some(diagnosis::diagnosis(
            Cause::CrashLoop,
            "The container keeps failing: restarts have not fixed it.",
            evidence,
        ));
    }
    if decision.pattern == Pattern::CpuAfterRestart {
        let mut d = diagnosis::diagnosis(
            Cause::CpuBurn,
            "The process burns CPU again after being restarted: a restart does not help.",
            diagnosis.take().map(|d| d.evidence).unwrap_or_default(),
        );
        d.restart_helps = false;
        d.recommendation = Some(
            "Profile the process or give it more CPU: restarting only interrupts the work, which starts over.".into(),
        );
        diagnosis = Some(d);
    }
    decision.diagnosis = diagnosis;
    decision
}

/// When `alert` is high CPU on a container started after an earlier high
/// CPU alert (within [`CPU_RECURRENCE_WINDOW`]): seconds between that alert
/// and the start.
fn cpu_after_restart(alert: &HealthAlert, history: &History) -> Option<i64> {
    let started = alert.evidence.as_ref()?.state.started_at.as_deref()?;
    let started = chrono::DateTime::parse_from_rfc3339(started).ok()?.timestamp_micros();
    history
        .within(CPU_RECURRENCE_WINDOW)
        .iter()
        .filter(|s| s.at < started && s.at < history.now && s.has(AnomalyKind::HighCpu))
        .map(|s| (started - s.at) / 1_000_000)
        .min()
}

fn decide(alert: &HealthAlert, history: &History, diagnosis: Option<&Diagnosis>) -> RuleDecision {
    let has = |kind: AnomalyKind| alert.anomalies.iter().any(|a| a.kind == kind);

    if has(AnomalyKind::ExcessiveRestarts) {
        return RuleDecision::new(
            Pattern::ExcessiveRestarts,
            Action::None,
            0.6,
            "Excessive restarts: restarting again would not help",
        );
    }
    let crashed = alert.anomalies.iter().any(|a| is_exit(a.kind));
    if crashed {
        let exits =
            history.within(REPEATED_FAILURE_WINDOW).iter().filter(|s| s.kinds.iter().any(|k| is_exit(*k))).count();
        if exits >= REPEATED_FAILURES {
            return RuleDecision::new(
                Pattern::RepeatedFailures,
                Action::None,
                0.6,
                format!(
                    "Repeated failures: {exits} exits within {} minutes, a restart would not help",
                    REPEATED_FAILURE_WINDOW.as_secs() / 60
                ),
            );
        }
    }
    if let Some(d) = diagnosis
        && let Some((action, confidence)) = decided_by(d.cause)
    {
        let why = match action {
            Action::None => "a restart would not help",
            _ => "a restart would not help, a cleanup may",
        };
        return RuleDecision::new(
            Pattern::Diagnosed,
            action,
            confidence,
            format!("{} ({}): {why}", d.summary, d.cause),
        );
    }
    if has(AnomalyKind::HighCpu)
        && let Some(after) = cpu_after_restart(alert, history)
    {
        return RuleDecision::new(
            Pattern::CpuAfterRestart,
            Action::None,
            0.8,
            format!(
                "High CPU again ({:.1}%) after a restart {after} s after the last high CPU alert: restarting again would not help",
                alert.metrics.cpu_pct
            ),
        );
    }
    if crashed {
        let how = if has(AnomalyKind::OomKilled) { "was OOM-killed" } else { "exited" };
        let code = alert.exit_code.map(|c| format!(" with code {c}")).unwrap_or_default();
        return RuleDecision::new(Pattern::Crash, Action::Restart, 0.9, format!("Container {how}{code}"));
    }
    if let Some(a) = alert.anomalies.iter().find(|a| a.severity == Severity::Critical) {
        return RuleDecision::new(
            Pattern::Critical,
            Action::Restart,
            0.85,
            format!("Critical anomaly: {}", kind_name(a.kind)),
        );
    }
    if has(AnomalyKind::Unhealthy) {
        return RuleDecision::new(Pattern::Unhealthy, Action::Restart, 0.7, "Health check failing");
    }
    if has(AnomalyKind::MemoryLeak) {
        return RuleDecision::new(
            Pattern::MemoryLeak,
            Action::Restart,
            0.8,
            "Memory leak pattern reported by the collector",
        );
    }
    if has(AnomalyKind::HighMemory)
        && let Some((from, to, n)) = leak_trend(history)
    {
        return RuleDecision::new(
            Pattern::MemoryLeak,
            Action::Restart,
            0.8,
            format!("Memory leak pattern: memory rose from {from:.1}% to {to:.1}% across {n} alerts"),
        );
    }
    if has(AnomalyKind::HighCpu) {
        if let Some(secs) = sustained(alert) {
            return RuleDecision::new(
                Pattern::SustainedCpu,
                Action::Restart,
                0.75,
                format!("Sustained high CPU: {:.1}% for {secs:.0} s", alert.metrics.cpu_pct),
            );
        }
        let recent = history.within(SUSTAINED_WINDOW).iter().filter(|s| s.has(AnomalyKind::HighCpu)).count();
        if recent >= SUSTAINED_ALERTS {
            return RuleDecision::new(
                Pattern::SustainedCpu,
                Action::Restart,
                0.75,
                format!(
                    "Sustained high CPU: {recent} alerts within {} minutes, now {:.1}%",
                    SUSTAINED_WINDOW.as_secs() / 60,
                    alert.metrics.cpu_pct
                ),
            );
        }
    }
    RuleDecision::new(Pattern::Transient, Action::None, 0.65, "Transient spike, no action needed")
}

/// Memory rising across the history: at least [`LEAK_MIN_SAMPLES`] alerts
/// within [`LEAK_WINDOW`], oldest to newest never falling by more than the
/// tolerance, rising by [`LEAK_MIN_RISE`] points in total. Returns (first,
/// last, samples).
fn leak_trend(history: &History) -> Option<(f64, f64, usize)> {
    let mut samples: Vec<f64> = history.within(LEAK_WINDOW).iter().map(|s| s.mem).collect();
    samples.reverse();
    if samples.len() < LEAK_MIN_SAMPLES {
        return None;
    }
    let rising = samples.windows(2).all(|w| w[1] >= w[0] - LEAK_STEP_TOLERANCE);
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    (rising && last - first >= LEAK_MIN_RISE).then_some((first, last, samples.len()))
}

pub fn kind_name(kind: AnomalyKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
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
        let mut alerts = Vec::new();
        let mut last = None;
        for (minute, a) in sequence {
            alerts.insert(0, AlertSummary::of(a, minute * MIN));
            last = Some((minute * MIN, a));
        }
        let (now, a) = last.expect("a sequence has alerts");
        evaluate(a, &History { now, alerts })
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
        assert_eq!(
            run(&[(0, mem(85.0)), (5, mem(86.0)), (10, mem(85.5)), (15, mem(86.0))]).pattern,
            Pattern::Transient
        );
        assert_eq!(
            run(&[(0, mem(70.0)), (5, mem(90.0)), (10, mem(72.0)), (15, mem(91.0))]).pattern,
            Pattern::Transient
        );
    }

    #[test]
    fn four_exits_in_ten_minutes_are_repeated_failures() {
        let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
        let v = run(&[(0, exit()), (3, exit()), (6, exit()), (9, exit())]);
        assert_eq!((v.action, v.confidence, v.pattern), (Action::None, 0.6, Pattern::RepeatedFailures));
        // Two exits in the window: still a plain crash.
        let v = run(&[(0, exit()), (30, exit()), (35, exit())]);
        assert_eq!((v.action, v.confidence), (Action::Restart, 0.9));
    }

    #[test]
    fn redelivered_alerts_count_once() {
        let exit = || alert(AnomalyKind::NonZeroExit, Severity::High, 0.0, 0.0);
        // One alert delivered three times (same timestamp), then a second.
        let v = run(&[(0, exit()), (0, exit()), (0, exit()), (2, exit())]);
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
            ("Error: connect ECONNREFUSED 10.0.0.7:5432", 1, Action::None, Cause::DependencyUnreachable),
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
        // No evidence: the exit code alone.
        assert_eq!(single(exit()).diagnosis.map(|d| d.cause), Some(Cause::AppError));
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
        let v = evaluate(&cpu(), &History { now: 0, alerts });
        assert_eq!(v.pattern, Pattern::Transient);
    }
}
