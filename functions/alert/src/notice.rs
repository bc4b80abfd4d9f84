//! What an event says to a human, independent of where it is sent.

use serde::Serialize;
use sha2::{Digest, Sha256};

use hemostat_protocol::{
    Envelope, EventKind, ProtocolError,
    diagnosis::Diagnosis,
    event::{FalseAlarm, RemediationComplete, RemediationStatus, Severity, SystemAlert},
};

/// Evidence lines a notice carries: the first ones the diagnosis rests on.
pub const KEY_LINES: usize = 3;
/// Characters kept of each evidence line (then `…`).
pub const LINE_CHARS: usize = 200;

/// The seed's Slack colours.
pub mod color {
    pub const SUCCESS: &str = "#36a64f";
    pub const FAILED: &str = "#ff0000";
    pub const REJECTED: &str = "#ff9900";
    pub const FALSE_ALARM: &str = "#ffcc00";
    pub const NOT_APPLICABLE: &str = "#cccccc";
}

/// One labelled value of a notice (a Slack attachment field).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub title: &'static str,
    pub value: String,
    /// Slack lays short fields out two per line.
    pub short: bool,
}

/// An event, summarised. Serialised as the `summary` of webhook payloads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// `success`, `failed`, `rejected`, `dry_run`, `not_applicable`,
    /// `false_alarm`, or a system alert's own kind (`collector_missing`).
    pub status: String,
    pub title: String,
    /// The main sentence: why (a reason, an error, a system message).
    pub text: String,
    pub color: &'static str,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// A critical alert that ended with nothing done (refused, or judged a
    /// false alarm): the case an operator most needs to see.
    pub critical_no_action: bool,
    /// Equal for events that say the same thing (same kind, place, outcome
    /// and reason; times and durations left out): the dedupe key.
    pub fingerprint: String,
    /// The envelope's timestamp.
    pub timestamp: String,
    pub fields: Vec<Field>,
    /// The analyzer's diagnosis category (`port_in_use`, `oom_killed`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The diagnosis in one sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_summary: Option<String>,
    /// What a human should do, when the fix is outside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<String>,
    /// The key evidence lines (at most [`KEY_LINES`], each cut to
    /// [`LINE_CHARS`] characters), verbatim otherwise: not escaped for any
    /// sink.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// The approval an `approval_requested` asks for (its id): Slack adds
    /// Approve and Deny buttons carrying it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// How urgent a notice is, the same scale for every kind: what a sink's
/// `ALERT_<SINK>_MIN_SEVERITY` compares with, and what ntfy priorities,
/// PagerDuty severities and Gotify priorities are mapped from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Good news or nothing to do: a fix that worked, a false alarm, a
    /// recovery, a dry run.
    Info,
    /// Worth a look: a refused remediation, a medium system alert, a
    /// critical alert judged a false alarm.
    Warning,
    /// Something is broken: a failed remediation, a high system alert.
    Error,
    /// A critical alert left without action, a critical system alert.
    Critical,
}

impl Level {
    pub const NAMES: &'static str = "info, warning, error, critical";

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        [Level::Info, Level::Warning, Level::Error, Level::Critical]
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl Notice {
    /// This notice's [`Level`].
    pub fn level(&self) -> Level {
        match self.kind {
            EventKind::RemediationComplete => match self.status.as_str() {
                _ if self.critical_no_action => Level::Critical,
                "failed" => Level::Error,
                "rejected" => Level::Warning,
                _ => Level::Info,
            },
            EventKind::FalseAlarm if self.critical_no_action => Level::Warning,
            EventKind::SystemAlert if !self.status.ends_with("_recovered") => match self.severity {
                Some(Severity::Critical) => Level::Critical,
                Some(Severity::High) => Level::Error,
                Some(Severity::Medium) => Level::Warning,
                _ => Level::Info,
            },
            _ => Level::Info,
        }
    }
}

/// The diagnosis parts of a notice.
#[derive(Default)]
struct Diag {
    cause: Option<String>,
    summary: Option<String>,
    recommendation: Option<String>,
    evidence: Vec<String>,
}

/// `line` without trailing whitespace, cut to `max` characters (then `…`).
fn cut(line: &str, max: usize) -> String {
    let line = line.trim_end();
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// Reads the diagnosis and adds its `Cause` and `Recommendation` fields.
fn diagnosis(d: Option<&Diagnosis>, fields: &mut Vec<Field>) -> Diag {
    let Some(d) = d else { return Diag::default() };
    let cause = d.cause.as_str().to_owned();
    let summary = Some(d.summary.trim().to_owned()).filter(|s| !s.is_empty());
    let recommendation = d.recommendation.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
    fields.push(long("Cause", summary.as_ref().map_or_else(|| cause.clone(), |s| format!("{cause}: {s}"))));
    if let Some(r) = &recommendation {
        fields.push(long("Recommendation", r));
    }
    let evidence =
        d.evidence.iter().filter(|l| !l.trim().is_empty()).take(KEY_LINES).map(|l| cut(l, LINE_CHARS)).collect();
    Diag { cause: Some(cause), summary, recommendation, evidence }
}

/// Builds the notice of an envelope; an error for kinds the alert does not
/// handle and for data that does not fit its kind.
pub fn of(env: &Envelope) -> Result<Notice, ProtocolError> {
    match env.kind {
        EventKind::RemediationComplete => Ok(remediation(env, env.data_as()?)),
        EventKind::FalseAlarm => Ok(false_alarm(env, env.data_as()?)),
        EventKind::SystemAlert => Ok(system(env, env.data_as()?)),
        other => Err(ProtocolError::MalformedData {
            kind: other.to_string(),
            reason: "the alert function handles remediation_complete, false_alarm and system_alert".into(),
        }),
    }
}

fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

fn field(title: &'static str, value: impl Into<String>) -> Field {
    Field { title, value: value.into(), short: true }
}

fn long(title: &'static str, value: impl Into<String>) -> Field {
    Field { title, value: value.into(), short: false }
}

/// `web on h1`, or just `web` when a seed publisher left the host out.
fn place(container: &str, host: &str) -> String {
    if host.is_empty() { container.to_owned() } else { format!("{container} on {host}") }
}

fn is_critical(severity: Option<Severity>) -> bool {
    severity == Some(Severity::Critical)
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn remediation(env: &Envelope, c: RemediationComplete) -> Notice {
    let status = c.result.status;
    let (status_name, color, verb) = match status {
        RemediationStatus::Success => ("success", color::SUCCESS, "succeeded"),
        RemediationStatus::Failed => ("failed", color::FAILED, "failed"),
        RemediationStatus::Rejected => ("rejected", color::REJECTED, "rejected"),
        RemediationStatus::DryRun => ("dry_run", color::NOT_APPLICABLE, "dry run (nothing done)"),
        RemediationStatus::NotApplicable => ("not_applicable", color::NOT_APPLICABLE, "not applicable"),
    };
    let action = c.action.as_str();
    let at = place(&c.container, &c.host);
    let critical_no_action = status == RemediationStatus::Rejected && is_critical(c.context.severity);
    let title = if critical_no_action {
        format!("CRITICAL alert not remediated: {action} of {at} was rejected")
    } else {
        format!("Remediation {verb}: {action} of {at}")
    };
    // What went wrong outranks why we acted: it is what the reader must do
    // something about.
    let outcome = match status {
        RemediationStatus::Failed => c.result.error.clone().or_else(|| c.result.reason.clone()),
        RemediationStatus::Rejected | RemediationStatus::NotApplicable => {
            c.result.reason.clone().or_else(|| c.result.error.clone())
        }
        _ => None,
    };
    let text = outcome.clone().or_else(|| c.reason.clone()).or_else(|| c.result.details.clone()).unwrap_or_default();

    let mut fields = vec![field("Host", or_dash(&c.host)), field("Container", &c.container), field("Action", action)];
    fields.push(field("Status", status_name));
    if let Some(reason) = &c.reason {
        fields.push(long("Reason", reason));
    }
    match status {
        RemediationStatus::Rejected => fields.extend(outcome.as_ref().map(|r| long("Refused because", r))),
        RemediationStatus::Failed => fields.extend(outcome.as_ref().map(|e| long("Error", e))),
        _ => {}
    }
    let diag = diagnosis(c.context.diagnosis.as_ref(), &mut fields);
    if let Some(details) = &c.result.details {
        fields.push(long("Details", details));
    }
    fields.push(field("Confidence", c.confidence.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())));
    fields.push(field("Analysis method", c.context.analysis_method.clone().unwrap_or_else(|| "-".into())));
    fields.push(field("Duration", c.result.duration_ms.map(duration).unwrap_or_else(|| "-".into())));
    fields.push(field(
        "Verified",
        match c.result.verified {
            Some(true) => "yes: stayed up after the fix",
            Some(false) => "no: did not stay up",
            None => "not verified",
        },
    ));
    if let Some(severity) = c.context.severity {
        fields.push(field("Severity", severity_name(severity)));
    }
    if let Some(image) = &c.context.image {
        fields.push(field("Image", image));
    }
    if c.dry_run && status != RemediationStatus::DryRun {
        fields.push(field("Dry run", "yes"));
    }

    let reason_key = outcome.as_deref().or(c.reason.as_deref()).unwrap_or("");
    Notice {
        kind: EventKind::RemediationComplete,
        fingerprint: fingerprint(&["remediation_complete", &c.host, &c.container, action, status_name, reason_key]),
        status: status_name.into(),
        title,
        text,
        color,
        host: c.host,
        container: Some(c.container),
        action: Some(action.into()),
        severity: c.context.severity,
        critical_no_action,
        timestamp: env.timestamp.clone(),
        fields,
        cause: diag.cause,
        cause_summary: diag.summary,
        recommendation: diag.recommendation,
        evidence: diag.evidence,
        approval: None,
    }
}

fn false_alarm(env: &Envelope, f: FalseAlarm) -> Notice {
    let at = place(&f.container, &f.host);
    let critical_no_action = is_critical(f.context.severity);
    let title = if critical_no_action {
        format!("CRITICAL alert dismissed as a false alarm: {at}")
    } else {
        format!("False alarm: {at}")
    };
    let mut fields = vec![field("Host", or_dash(&f.host)), field("Container", &f.container), field("Action", "none")];
    fields.push(field("Status", "false_alarm"));
    fields.push(long("Reason", &f.reason));
    let diag = diagnosis(f.context.diagnosis.as_ref(), &mut fields);
    fields.push(field("Confidence", f.confidence.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())));
    let cached = if f.llm_cached { ", cached verdict" } else { "" };
    let method = match (&f.context.analysis_method, &f.context.model) {
        (Some(m), Some(model)) => format!("{m} ({model}{cached})"),
        (Some(m), None) => m.clone(),
        (None, _) => "-".into(),
    };
    fields.push(field("Analysis method", method));
    if let Some(why) = &f.fallback_reason {
        fields.push(field("Fallback reason", why));
    }
    if let Some(severity) = f.context.severity {
        fields.push(field("Severity", severity_name(severity)));
    }
    Notice {
        kind: EventKind::FalseAlarm,
        fingerprint: fingerprint(&["false_alarm", &f.host, &f.container, &f.reason]),
        status: "false_alarm".into(),
        title,
        text: f.reason,
        color: color::FALSE_ALARM,
        host: f.host,
        container: Some(f.container),
        action: None,
        severity: f.context.severity,
        critical_no_action,
        timestamp: env.timestamp.clone(),
        fields,
        cause: diag.cause,
        cause_summary: diag.summary,
        recommendation: diag.recommendation,
        evidence: diag.evidence,
        approval: None,
    }
}

fn system(env: &Envelope, s: SystemAlert) -> Notice {
    // Not in the seed (it had no self-monitoring): recovery is good news,
    // otherwise the colour follows the severity on the seed's palette.
    let color = if s.kind.ends_with("_recovered") {
        color::SUCCESS
    } else {
        match s.severity {
            Severity::Critical | Severity::High => color::FAILED,
            Severity::Medium => color::REJECTED,
            Severity::Low => color::NOT_APPLICABLE,
        }
    };
    let title = if s.host.is_empty() {
        format!("HemoStat: {}", s.kind.replace('_', " "))
    } else {
        format!("HemoStat: {} ({})", s.kind.replace('_', " "), s.host)
    };
    let mut fields =
        vec![field("Host", or_dash(&s.host)), field("Kind", &s.kind), field("Severity", severity_name(s.severity))];
    if let Some(seen) = &s.last_seen {
        fields.push(field("Last seen", seen));
    }
    if let Some(secs) = s.missing_for_seconds {
        fields.push(field("Missing for", duration(secs.saturating_mul(1000))));
    }
    let mut parts = vec!["system_alert", &s.kind, &s.host, severity_name(s.severity)];
    if let Some(id) = &s.approval {
        fields.push(field("Container", s.container.as_deref().unwrap_or("-")));
        fields.push(long("Approval", id));
        // Each approval is its own question: two on one host are not duplicates.
        parts.push(id);
    }
    Notice {
        kind: EventKind::SystemAlert,
        fingerprint: fingerprint(&parts),
        status: s.kind,
        title,
        text: s.message,
        color,
        host: s.host,
        container: None,
        action: None,
        severity: Some(s.severity),
        critical_no_action: false,
        timestamp: env.timestamp.clone(),
        fields,
        cause: None,
        cause_summary: None,
        recommendation: None,
        evidence: Vec::new(),
        approval: s.approval,
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_owned() }
}

/// `850 ms`, `3.2 s`, `4 min 5 s`.
fn duration(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn levels_order_and_follow_the_outcome() {
        use super::Level;
        assert!(Level::Info < Level::Warning && Level::Warning < Level::Error && Level::Error < Level::Critical);
        assert_eq!(Level::parse(" Critical "), Some(Level::Critical));
        assert_eq!(Level::parse("loud"), None);
        let of = |kind: &str, data: &str| {
            let body =
                format!(r#"{{"timestamp":"2025-11-03T10:30:53.789012","agent":"t","type":"{kind}","data":{data}}}"#);
            super::of(&hemostat_protocol::Envelope::parse(body.as_bytes()).unwrap()).unwrap().level()
        };
        let done = |status: &str, severity: &str| {
            let data = format!(
                r#"{{"container":"c","host":"h","action":"restart","severity":"{severity}","result":{{"status":"{status}","action":"restart","container":"c"}}}}"#
            );
            of("remediation_complete", &data)
        };
        assert_eq!(done("success", "critical"), Level::Info);
        assert_eq!(done("failed", "low"), Level::Error);
        assert_eq!(done("rejected", "high"), Level::Warning);
        assert_eq!(done("rejected", "critical"), Level::Critical);
        let system = |kind: &str, severity: &str| {
            of("system_alert", &format!(r#"{{"kind":"{kind}","severity":"{severity}","host":"h","message":"m"}}"#))
        };
        assert_eq!(system("collector_missing", "critical"), Level::Critical);
        assert_eq!(system("collector_missing", "medium"), Level::Warning);
        assert_eq!(system("collector_recovered", "critical"), Level::Info);
        assert_eq!(
            of("false_alarm", r#"{"container":"c","host":"h","reason":"r","severity":"critical"}"#),
            Level::Warning
        );
        assert_eq!(of("false_alarm", r#"{"container":"c","host":"h","reason":"r"}"#), Level::Info);
    }

    use super::*;

    fn env(kind: &str, data: serde_json::Value) -> Envelope {
        let json =
            serde_json::json!({"timestamp": "2025-11-03T10:30:53.789012", "agent": "a", "type": kind, "data": data});
        Envelope::parse(json.to_string().as_bytes()).unwrap()
    }

    fn value<'a>(n: &'a Notice, title: &str) -> Option<&'a str> {
        n.fields.iter().find(|f| f.title == title).map(|f| f.value.as_str())
    }

    #[test]
    fn the_seed_example_is_a_green_success() {
        let n = of(&env(
            "remediation_complete",
            serde_json::json!({"container": "hemostat-test-api", "action": "restart",
                "result": {"status": "success", "action": "restart", "container": "hemostat-test-api"}}),
        ))
        .unwrap();
        assert_eq!((n.color, n.status.as_str()), (color::SUCCESS, "success"));
        assert_eq!(n.title, "Remediation succeeded: restart of hemostat-test-api");
        assert_eq!(value(&n, "Host"), Some("-"));
        assert_eq!(value(&n, "Verified"), Some("not verified"));
    }

    #[test]
    fn every_status_has_the_seed_colour() {
        for (status, color) in [
            ("success", color::SUCCESS),
            ("failed", color::FAILED),
            ("rejected", color::REJECTED),
            ("not_applicable", color::NOT_APPLICABLE),
            ("dry_run", color::NOT_APPLICABLE),
        ] {
            let n = of(&env(
                "remediation_complete",
                serde_json::json!({"container": "c", "host": "h", "action": "restart",
                    "result": {"status": status, "action": "restart", "container": "c"}}),
            ))
            .unwrap();
            assert_eq!(n.color, color, "{status}");
        }
        let n = of(&env("false_alarm", serde_json::json!({"container": "c", "reason": "spike"}))).unwrap();
        assert_eq!(n.color, color::FALSE_ALARM);
    }

    #[test]
    fn fields_carry_the_whole_story() {
        let n = of(&env(
            "remediation_complete",
            serde_json::json!({"container": "web", "host": "h1", "action": "restart", "confidence": 0.9,
                "reason": "Exited with code 1", "analysis_method": "rule_based", "image": "nginx:1.25",
                "result": {"status": "success", "action": "restart", "container": "web", "duration_ms": 1234, "verified": true}}),
        ))
        .unwrap();
        assert_eq!(value(&n, "Host"), Some("h1"));
        assert_eq!(value(&n, "Container"), Some("web"));
        assert_eq!(value(&n, "Action"), Some("restart"));
        assert_eq!(value(&n, "Reason"), Some("Exited with code 1"));
        assert_eq!(value(&n, "Confidence"), Some("0.90"));
        assert_eq!(value(&n, "Analysis method"), Some("rule_based"));
        assert_eq!(value(&n, "Duration"), Some("1.2 s"));
        assert_eq!(value(&n, "Verified"), Some("yes: stayed up after the fix"));
        assert_eq!(value(&n, "Image"), Some("nginx:1.25"));
        assert!(!n.critical_no_action);
    }

    #[test]
    fn critical_alerts_that_led_to_nothing_are_emphasised() {
        let rejected = of(&env(
            "remediation_complete",
            serde_json::json!({"container": "db", "host": "h1", "action": "restart", "severity": "critical",
                "result": {"status": "rejected", "action": "restart", "container": "db", "reason": "cooldown: 3500 s left"}}),
        ))
        .unwrap();
        assert!(rejected.critical_no_action && rejected.title.contains("CRITICAL"), "{}", rejected.title);
        assert_eq!(rejected.color, color::REJECTED);
        assert_eq!(rejected.text, "cooldown: 3500 s left");
        assert_eq!(value(&rejected, "Refused because"), Some("cooldown: 3500 s left"));

        let dismissed =
            of(&env("false_alarm", serde_json::json!({"container": "db", "reason": "r", "severity": "critical"})))
                .unwrap();
        assert!(dismissed.critical_no_action && dismissed.title.contains("CRITICAL"));
        let routine =
            of(&env("false_alarm", serde_json::json!({"container": "db", "reason": "r", "severity": "high"}))).unwrap();
        assert!(!routine.critical_no_action && !routine.title.contains("CRITICAL"));
    }

    #[test]
    fn fingerprint_ignores_times_but_not_outcomes() {
        let done = |status: &str, ms: u64, ts: &str| {
            let mut e = env(
                "remediation_complete",
                serde_json::json!({"container": "web", "host": "h1", "action": "restart",
                    "result": {"status": status, "action": "restart", "container": "web", "duration_ms": ms}}),
            );
            e.timestamp = ts.into();
            of(&e).unwrap().fingerprint
        };
        assert_eq!(done("success", 100, "t1"), done("success", 900, "t2"));
        assert_ne!(done("success", 100, "t1"), done("failed", 100, "t1"));
    }

    #[test]
    fn other_kinds_and_bad_data_are_errors() {
        assert!(of(&env("health_alert", serde_json::json!({"container": "c", "metrics": {"name": "c"}}))).is_err());
        assert!(of(&env("false_alarm", serde_json::json!({"container": 5}))).is_err());
        assert!(of(&env("system_alert", serde_json::json!({"kind": "collector_missing"}))).is_err());
    }

    #[test]
    fn the_diagnosis_gives_cause_recommendation_and_three_cut_lines() {
        let long_line = format!("Error: {}", "é".repeat(300));
        let n = of(&env(
            "remediation_complete",
            serde_json::json!({"container": "web", "host": "h1", "action": "restart", "reason": "Exited with code 1",
                "result": {"status": "failed", "action": "restart", "container": "web", "error": "exited again"},
                "diagnosis": {"cause": "port_in_use", "summary": "Another process holds port 8080.",
                    "evidence": ["listen EADDRINUSE :::8080", "  ", long_line, "third", "fourth"],
                    "recommendation": "Free the port."}}),
        ))
        .unwrap();
        assert_eq!(n.cause.as_deref(), Some("port_in_use"));
        assert_eq!(n.cause_summary.as_deref(), Some("Another process holds port 8080."));
        assert_eq!(n.recommendation.as_deref(), Some("Free the port."));
        assert_eq!(value(&n, "Cause"), Some("port_in_use: Another process holds port 8080."));
        assert_eq!(value(&n, "Recommendation"), Some("Free the port."));
        assert_eq!(n.evidence.len(), KEY_LINES, "blank lines skipped, at most three: {:?}", n.evidence);
        assert_eq!(n.evidence[0], "listen EADDRINUSE :::8080");
        assert_eq!(n.evidence[1].chars().count(), LINE_CHARS + 1);
        assert!(n.evidence[1].ends_with('…'));
        assert_eq!(n.evidence[2], "third");
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["cause"], "port_in_use");
        assert_eq!(json["evidence"][0], "listen EADDRINUSE :::8080");

        let alarm = of(&env(
            "false_alarm",
            serde_json::json!({"container": "c", "reason": "spike", "diagnosis": {"cause": "cpu_burn"}}),
        ))
        .unwrap();
        assert_eq!(value(&alarm, "Cause"), Some("cpu_burn"), "no summary: the category alone");
        assert_eq!((alarm.recommendation.as_deref(), alarm.evidence.len()), (None, 0));
        assert!(value(&alarm, "Recommendation").is_none());

        let bare = of(&env("false_alarm", serde_json::json!({"container": "c", "reason": "spike"}))).unwrap();
        assert!(bare.cause.is_none() && value(&bare, "Cause").is_none());
        let json = serde_json::to_string(&bare).unwrap();
        assert!(!json.contains("\"cause\"") && !json.contains("\"evidence\""), "{json}");
    }

    #[test]
    fn system_alerts_follow_severity_and_recovery() {
        let missing = of(&env(
            "system_alert",
            serde_json::json!({"kind": "collector_missing", "severity": "critical", "host": "h1",
                "message": "no heartbeat for 45 s", "missing_for_seconds": 45}),
        ))
        .unwrap();
        assert_eq!((missing.color, missing.status.as_str()), (color::FAILED, "collector_missing"));
        assert_eq!(value(&missing, "Missing for"), Some("45.0 s"));
        let back = of(&env(
            "system_alert",
            serde_json::json!({"kind": "collector_recovered", "severity": "low", "host": "h1", "message": "back"}),
        ))
        .unwrap();
        assert_eq!(back.color, color::SUCCESS);
        assert_ne!(missing.fingerprint, back.fingerprint);
    }
}
