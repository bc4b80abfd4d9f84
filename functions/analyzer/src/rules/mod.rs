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
//! | deterministic repeat | an exit whose code and failure line ([`crate::fingerprint`]) are those of the container's previous exit, after a run shorter than [`STABLE_SECONDS`], when its diagnosis says a restart helps and the failure is the process's own (see [`repeat_may_heal`]) | none | 0.8 |
//! | repeated failures | this exit is the [`REPEATED_FAILURES`]th within [`REPEATED_FAILURE_WINDOW`], or the [`UNEXPLAINED_FAILURES`]th when its cause is unrecognised (`unknown`, or an `app_error` no signature recognised), or an unrecognised exit within [`BOOT_SECONDS`] of its start when the previous exit came as soon after its own (a crash loop at boot, however far apart) | none | 0.6 |
//! | diagnosed: disk full | the diagnosis is `disk_full` and says a restart cannot help | cleanup | 0.85 |
//! | diagnosed: outside the container | the diagnosis is `port_in_use`, `dependency_unreachable`, `missing_file_or_config` or `permission_denied` and says a restart cannot help (the diagnosis recommends what a human should do) | none | 0.85 |
//! | diagnosed: restart cannot help | any other diagnosis with `restart_helps: false` (a clean exit, a signature that says so: a bad configuration, a wrong password, an incompatible data directory) | none | 0.8 |
//! | CPU burn after restart | `high_cpu`, and an earlier `high_cpu` alert within [`CPU_RECURRENCE_WINDOW`] came before the container's current start (it was restarted, and burns again) | none | 0.8 |
//! | crash | `non_zero_exit` or `oom_killed` | restart | 0.9 |
//! | critical | any anomaly of severity critical | restart | 0.85 |
//! | unhealthy | the health check fails | restart | 0.7 |
//! | memory leak | `memory_leak` from the collector, or memory rising across the history | restart | 0.8 |
//! | sustained CPU | `high_cpu` for the collector's sustain window (`metrics.sustain_seconds`, else [`crate::measured::SUSTAINED_SECONDS`]) or in [`SUSTAINED_ALERTS`] alerts within [`SUSTAINED_WINDOW`] | restart | 0.75 |
//! | transient | anything else (one spike) | none | 0.65 |
//!
//! The two guards on exits (deterministic repeat, repeated failures) do not
//! apply to a container with an escalation ladder of its own
//! (`hemostat.escalation`): its owner chose what follows a restart that did
//! not hold (a recreate, then a stop and a page), and the gate's ladder,
//! bounded by its length, takes those steps.
//!
//! A failure that repeats identically after a restart (the same exit
//! code, the same failure line once what varies between runs is masked)
//! is deterministic: the restart gave the process a fresh start and it
//! failed the same way, so another restart will too; a human is told
//! instead, before the repeated-failure limit or the responder's breaker
//! has to stop it. How long the run lasted (the collector's
//! `metrics.uptime_seconds`) decides whether the restart had helped: a
//! container that served for [`STABLE_SECONDS`] or more before failing
//! again was brought back by it, and is restarted again; one that failed
//! within seconds was not. Without the uptime, the time between the two
//! exits bounds the run. The uptime also bounds "unknown never leads to
//! more than one restart": within a crash loop at boot (two exits in a
//! row, each within [`BOOT_SECONDS`] of its start) the second unexplained
//! exit is not restarted however far apart they came, while an unexplained
//! exit after days of service is restarted whatever the history holds from
//! before that run. The uptime never names a cause: a
//! quick death is not called a configuration error, nor a late one a leak,
//! without a line that says so.
//!
//! Repeated failures come before the crash rule: when restarts keep
//! failing, one more restart will not help, and a human should look.
//! Diagnoses a restart cannot fix (`restart_helps: false`, said by the cause
//! or by the matched signature) come next, before the crash rule; every
//! other diagnosis (`oom_killed`, `killed`, `segfault`, `terminated`,
//! `app_error`, `panic_or_exception`, `out_of_memory_in_app`,
//! `health_check_failing`, `memory_leak`, `cpu_burn`, as a rule) leaves the
//! decision to the rules below it. A burner that resumed after a restart is
//! diagnosed `cpu_burn` with `restart_helps: false`. Whatever decides, the diagnosis rides along in
//! the decision (for a crash loop without a more specific cause, it
//! becomes `crash_loop`).

use std::time::Duration;

use hemostat_protocol::{
    Action,
    diagnosis::{Cause, Diagnosis},
    event::{AnomalyKind, HealthAlert, Severity},
    gate::Ladder,
};

use crate::{
    diagnosis::{self, diagnose},
    fingerprint,
    history::{AlertSummary, History},
    measured::{is_exit, sustained, uptime},
};

/// Exits (non-zero or OOM) within [`REPEATED_FAILURE_WINDOW`], this one
/// included, from which a restart is judged futile. Three matches the
/// responder's default circuit breaker (3 actions per hour).
pub const REPEATED_FAILURES: usize = 3;
pub const REPEATED_FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// Exits within [`REPEATED_FAILURE_WINDOW`], this one included, from which
/// a failure whose cause nothing names is not restarted again: an unknown
/// cause gets one restart, not a guess at a second.
pub const UNEXPLAINED_FAILURES: usize = 2;
/// An exit this soon after the container's start is a failure at boot:
/// the process did not get through its start-up (reading its
/// configuration, opening its files, binding its port). A minute leaves
/// room for slow runtimes (a JVM's application context) to start.
pub const BOOT_SECONDS: f64 = 60.0;
/// A run at least this long means the restart before it worked: the
/// container served, and a failure after it starts a new episode.
/// Kubernetes resets its crash-loop back-off after as long a run, and
/// it is [`REPEATED_FAILURE_WINDOW`] too, so an exit after such a run has
/// no earlier exit within its window either.
pub const STABLE_SECONDS: f64 = 600.0;
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
    /// The same failure again after a restart.
    DeterministicRepeat,
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
        matches!(self, Pattern::ExcessiveRestarts | Pattern::DeterministicRepeat | Pattern::RepeatedFailures)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::ExcessiveRestarts => "excessive_restarts",
            Pattern::DeterministicRepeat => "deterministic_repeat",
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

/// The decision a diagnosis imposes when it says a restart cannot help
/// (`restart_helps: false`, from its cause or its signature): a cleanup for
/// a full disk, otherwise nothing (a human follows the recommendation).
pub fn decided_by(diagnosis: &Diagnosis) -> Option<(Action, f64)> {
    if diagnosis.restart_helps {
        return None;
    }
    Some(match diagnosis.cause {
        Cause::DiskFull => (Action::Cleanup, 0.85),
        Cause::PortInUse | Cause::DependencyUnreachable | Cause::MissingFileOrConfig | Cause::PermissionDenied => {
            (Action::None, 0.85)
        }
        _ => (Action::None, 0.8),
    })
}

/// A diagnosis that names no cause: nothing recognised (`unknown`), or an
/// error line no signature knows (`app_error` without a recommendation).
fn unexplained(diagnosis: Option<&Diagnosis>) -> bool {
    diagnosis.is_none_or(|d| d.cause == Cause::Unknown || (d.cause == Cause::AppError && d.recommendation.is_none()))
}

/// Whether a restart may still fix the alert's failure although it
/// repeated identically: when the process did not fail of itself (the
/// kernel's OOM killer, a SIGKILL or SIGTERM, or any signal someone sent
/// it through Docker during the run: what it printed then says what the
/// signal made it do, not what is wrong with it), or when what it failed
/// on lies outside the container and changes with time (a dependency not
/// up yet: restarted once it is, the container starts). Those keep their
/// restarts up to the repeated-failure limit.
pub fn repeat_may_heal(alert: &HealthAlert, diagnosis: Option<&Diagnosis>) -> bool {
    let outside = diagnosis.is_some_and(|d| {
        matches!(d.cause, Cause::OomKilled | Cause::Killed | Cause::Terminated | Cause::DependencyUnreachable)
    });
    outside || signalled(alert)
}

/// A `kill` event (a signal sent through Docker's API, whichever) came
/// during the run that ended: after its `start`, before its `die`.
fn signalled(alert: &HealthAlert) -> bool {
    let Some(evidence) = &alert.evidence else { return false };
    let (mut killed, mut at_die) = (false, None);
    for e in &evidence.events {
        match e.action.as_str() {
            "start" => killed = false,
            "kill" => killed = true,
            "die" => at_die = Some(killed),
            _ => {}
        }
    }
    at_die.unwrap_or(killed)
}

/// `history`: the container's recent alerts, this one included (see
/// [`crate::history::record`]); an empty history is a first alert.
/// `fleet_ladder`: `RESPONDER_ESCALATION`, the ladder of a container
/// without `hemostat.escalation`.
pub fn evaluate(alert: &HealthAlert, history: &History, fleet_ladder: &Ladder) -> RuleDecision {
    let mut diagnosis = diagnose(alert);
    let mut decision = decide(alert, history, diagnosis.as_ref(), fleet_ladder);
    let named = !unexplained(diagnosis.as_ref());
    if decision.pattern == Pattern::DeterministicRepeat
        && let Some(d) = diagnosis.as_mut()
    {
        d.restart_helps = false;
        d.recommendation = Some(
            "The same failure repeats after a restart: fix what the cited line points at (the image, its \
             configuration, its data) before starting it again."
                .into(),
        );
    }
    // A failure a signature names keeps its name when restarts stop (the
    // recommendation says what to fix); only one nothing explains becomes
    // a crash loop.
    if decision.pattern.is_guard() && !named {
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

/// The container's newest exit before the alert being analysed.
fn previous_exit(history: &History) -> Option<&AlertSummary> {
    history.alerts.iter().filter(|s| s.at < history.now && s.is_exit()).max_by_key(|s| s.at)
}

/// The deterministic-repeat rule (see the module doc): this exit's code
/// and fingerprint are the previous exit's, the run between them was
/// shorter than [`STABLE_SECONDS`] (its uptime, else the time between the
/// exits), its diagnosis says a restart helps (one that says otherwise
/// decides by itself) and the failure is the process's own
/// ([`repeat_may_heal`]).
fn deterministic_repeat(alert: &HealthAlert, history: &History, diagnosis: Option<&Diagnosis>) -> Option<RuleDecision> {
    if diagnosis.is_some_and(|d| !d.restart_helps) || repeat_may_heal(alert, diagnosis) {
        return None;
    }
    let code = alert.exit_code?;
    let line = fingerprint::failure_line(alert, diagnosis)?;
    let print = fingerprint::normalise(line);
    let before = previous_exit(history)?;
    if print.is_empty() || before.exit_code != Some(code) || before.fingerprint.as_deref() != Some(print.as_str()) {
        return None;
    }
    let run = uptime(alert).unwrap_or((history.now - before.at) as f64 / 1e6);
    if run >= STABLE_SECONDS {
        return None;
    }
    let line = cut(line, 200);
    let ran = match uptime(alert) {
        Some(u) => format!("{} after it started", diagnosis::span(u)),
        None => format!("{} after the previous exit", diagnosis::span(run)),
    };
    Some(RuleDecision::new(
        Pattern::DeterministicRepeat,
        Action::None,
        0.8,
        format!(
            "Deterministic failure: after a restart it failed the same way again {ran}, exit code {code} and \
             the same line: \"{line}\"; a restart would not help"
        ),
    ))
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
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

fn decide(
    alert: &HealthAlert,
    history: &History,
    diagnosis: Option<&Diagnosis>,
    fleet_ladder: &Ladder,
) -> RuleDecision {
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
    // The container climbs an escalation ladder (its owner's
    // `hemostat.escalation`, else the fleet's `RESPONDER_ESCALATION`):
    // a restart that did not hold is what it climbs on (a recreate gives the
    // process a fresh filesystem, which a restart does not; then a stop and a
    // page), and its length bounds the actions, so the request goes to the
    // gate's ladder instead of these guards stopping it here.
    let laddered = match alert.policy.as_ref().and_then(|p| p.escalation.as_deref()) {
        Some(own) => own != "off",
        None => !fleet_ladder.is_off(),
    };
    if crashed && !laddered {
        if let Some(decision) = deterministic_repeat(alert, history, diagnosis) {
            return decision;
        }
        let exits = history.within(REPEATED_FAILURE_WINDOW).iter().filter(|s| s.is_exit()).count();
        if exits >= REPEATED_FAILURES || (exits >= UNEXPLAINED_FAILURES && unexplained(diagnosis)) {
            return RuleDecision::new(
                Pattern::RepeatedFailures,
                Action::None,
                0.6,
                format!(
                    "Repeated failures: {exits} exits within {} minutes{}, a restart would not help",
                    REPEATED_FAILURE_WINDOW.as_secs() / 60,
                    if exits < REPEATED_FAILURES { " with no recognisable cause" } else { "" }
                ),
            );
        }
        if let Some(uptime) = uptime(alert).filter(|u| *u < BOOT_SECONDS)
            && unexplained(diagnosis)
            && let Some(before) = previous_exit(history).filter(|b| b.uptime.is_some_and(|u| u < BOOT_SECONDS))
        {
            return RuleDecision::new(
                Pattern::RepeatedFailures,
                Action::None,
                0.6,
                format!(
                    "Repeated failures: it failed {} after it started with no recognisable cause, as it did at \
                     its previous start {} ago: a restart would not help",
                    diagnosis::span(uptime),
                    diagnosis::span((history.now - before.at) as f64 / 1e6)
                ),
            );
        }
    }
    if let Some(d) = diagnosis
        && let Some((action, confidence)) = decided_by(d)
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
        let after = uptime(alert).map(|u| format!(" after {} of uptime", diagnosis::span(u))).unwrap_or_default();
        return RuleDecision::new(Pattern::Crash, Action::Restart, 0.9, format!("Container {how}{code}{after}"));
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
mod tests;
