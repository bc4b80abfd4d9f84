//! `/api/issues`: containers with health alerts not yet resolved.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use hemostat_protocol::EventKind;

use super::{
    diagnosis::{DiagnosisView, diagnosis_of},
    parse_entry, str_field, subject, subject_key,
};

/// The latest remediation attempt after an issue was last seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub at_ms: i64,
    pub action: Option<String>,
    pub status: Option<String>,
    /// The refusal reason, error or details.
    pub reason: Option<String>,
}

/// A container with health alerts not yet followed by a successful
/// remediation (or a false-alarm verdict).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub key: String,
    pub host: String,
    pub name: String,
    /// The latest alert's issues (`"Exited with code 1"`, ...).
    pub issues: Vec<String>,
    /// Anomaly kinds of the latest alert.
    pub anomalies: Vec<String>,
    /// The highest severity among the latest alert's anomalies.
    pub severity: Option<String>,
    /// Alerts within the window.
    pub alerts: usize,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// What was tried since the latest alert (refused, failed, pending...).
    pub last_attempt: Option<Attempt>,
    /// Why it failed: the diagnosis of the newest verdict or outcome since
    /// the latest alert (`remediation_needed`, `remediation_complete`).
    pub diagnosis: Option<DiagnosisView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssuesView {
    pub generated_at_ms: i64,
    pub window_seconds: u64,
    pub issues: Vec<Issue>,
}

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// Active issues from the newest entries of the `health_alert`,
/// `remediation_complete`, `false_alarm` and `remediation_needed` streams
/// (each newest first).
pub fn issues_view(
    alerts: &[(String, Option<String>)],
    completions: &[(String, Option<String>)],
    false_alarms: &[(String, Option<String>)],
    needed: &[(String, Option<String>)],
    now_ms: i64,
    window_seconds: u64,
) -> IssuesView {
    let since = now_ms - (window_seconds as i64).saturating_mul(1000);
    let parse = |entries: &[(String, Option<String>)], kind: EventKind| -> Vec<(i64, (String, String), Value)> {
        entries
            .iter()
            .filter_map(|(id, env)| parse_entry(id, env.as_deref()))
            .filter(|(ms, k, _)| *ms >= since && k == kind.as_str())
            .map(|(ms, _, data)| {
                let who = subject(&data);
                (ms, who, data)
            })
            .filter(|(_, who, _)| !who.1.is_empty())
            .collect()
    };
    let alerts = parse(alerts, EventKind::HealthAlert);
    let completions = parse(completions, EventKind::RemediationComplete);
    let false_alarms = parse(false_alarms, EventKind::FalseAlarm);
    let needed = parse(needed, EventKind::RemediationNeeded);

    // Newest alert first per container; the rest only count.
    let mut issues: Vec<Issue> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut sorted = alerts;
    sorted.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    for (ms, who, data) in &sorted {
        let key = subject_key(&who.0, &who.1);
        if let Some(&i) = index.get(&key) {
            issues[i].alerts += 1;
            issues[i].first_seen_ms = issues[i].first_seen_ms.min(*ms);
            continue;
        }
        let anomalies: Vec<&Value> =
            data.get("anomalies").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
        let severity = anomalies
            .iter()
            .filter_map(|a| a.get("severity").and_then(Value::as_str))
            .max_by_key(|s| SEVERITIES.iter().position(|k| k == s))
            .map(str::to_owned);
        index.insert(key.clone(), issues.len());
        issues.push(Issue {
            key,
            host: who.0.clone(),
            name: who.1.clone(),
            issues: data
                .get("issues")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            anomalies: anomalies
                .iter()
                .filter_map(|a| a.get("type").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            severity,
            alerts: 1,
            first_seen_ms: *ms,
            last_seen_ms: *ms,
            last_attempt: None,
            diagnosis: None,
        });
    }

    issues.retain_mut(|issue| {
        let who = (issue.host.clone(), issue.name.clone());
        let after = |(ms, w, _): &&(i64, (String, String), Value)| *ms >= issue.last_seen_ms && same_container(w, &who);
        let dismissed = false_alarms.iter().any(|f| after(&f));
        let later: Vec<&(i64, (String, String), Value)> = completions.iter().filter(after).collect();
        let status = |d: &Value| d.pointer("/result/status").and_then(Value::as_str).map(str::to_owned);
        let fixed = later.iter().any(|(_, _, d)| status(d).as_deref() == Some("success"));
        if let Some((ms, _, d)) = later.iter().max_by_key(|(ms, _, _)| *ms) {
            issue.last_attempt = Some(Attempt {
                at_ms: *ms,
                action: str_field(d, "action"),
                status: status(d),
                reason: ["/result/reason", "/result/error", "/result/details", "/reason"]
                    .iter()
                    .find_map(|p| d.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)),
            });
        }
        // The newest diagnosis wins; an outcome's over the verdict it followed.
        issue.diagnosis = needed
            .iter()
            .chain(completions.iter())
            .filter(after)
            .filter_map(|(ms, _, d)| Some((*ms, diagnosis_of(d)?)))
            .max_by_key(|(ms, _)| *ms)
            .map(|(_, d)| d);
        !(fixed || dismissed)
    });
    IssuesView { generated_at_ms: now_ms, window_seconds, issues }
}

/// Same container, where a missing host (a seed-protocol publisher's event)
/// matches any host.
fn same_container(a: &(String, String), b: &(String, String)) -> bool {
    a.1 == b.1 && (a.0.is_empty() || b.0.is_empty() || a.0 == b.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::views::{
        diagnosis::EVIDENCE_CHARS,
        fixtures::{HOSTILE, NOW, diagnosed, entry, env},
    };

    fn alert(ms: i64, host: &str, name: &str, issue: &str) -> (String, Option<String>) {
        entry(
            ms,
            "health_alert",
            json!({"container": name, "host": host, "issues": [issue], "metrics": {"name": name},
            "anomalies": [{"type": "non_zero_exit", "severity": "high"}, {"type": "oom_killed", "severity": "critical"}]}),
        )
    }

    fn done(ms: i64, host: &str, name: &str, status: &str) -> (String, Option<String>) {
        entry(
            ms,
            "remediation_complete",
            json!({"container": name, "host": host, "action": "restart",
            "result": {"status": status, "action": "restart", "container": name, "reason": format!("{status} reason")}}),
        )
    }

    #[test]
    fn an_issue_stays_until_a_later_success_or_false_alarm() {
        let alerts = vec![
            alert(NOW - 9_000, "h1", "web", "Exited with code 1"),
            alert(NOW - 5_000, "h1", "web", "Exited with code 137"),
            alert(NOW - 4_000, "h2", "web", "Exited with code 1"),
            alert(NOW - 3_000, "h1", "db", "Unhealthy"),
            alert(NOW - 2_000, "h1", "cache", "High CPU: 99%"),
            // Outside the one-hour window: history, not an issue.
            alert(NOW - 3_700_000, "h1", "old", "Exited with code 1"),
        ];
        let completions = vec![
            // Before the latest web alert: does not resolve it.
            done(NOW - 8_000, "h1", "web", "success"),
            done(NOW - 4_500, "h1", "web", "rejected"),
            // Same name on another host: resolves only that host's issue.
            done(NOW - 3_500, "h2", "web", "success"),
            // A seed-protocol publisher without a host matches by name.
            done(NOW - 1_000, "", "db", "success"),
        ];
        let false_alarms =
            vec![entry(NOW - 1_500, "false_alarm", json!({"container": "cache", "host": "h1", "reason": "spike"}))];
        let view = issues_view(&alerts, &completions, &false_alarms, &[], NOW, 3600);
        let keys: Vec<&str> = view.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["h1/web"], "{view:#?}");
        let web = &view.issues[0];
        assert_eq!(web.alerts, 2);
        assert_eq!(web.issues, ["Exited with code 137"], "the latest alert's issues");
        assert_eq!(web.severity.as_deref(), Some("critical"));
        assert_eq!(web.anomalies, ["non_zero_exit", "oom_killed"]);
        assert_eq!((web.first_seen_ms, web.last_seen_ms), (NOW - 9_000, NOW - 5_000));
        let attempt = web.last_attempt.as_ref().expect("the refusal is shown");
        assert_eq!(attempt.status.as_deref(), Some("rejected"));
        assert_eq!(attempt.reason.as_deref(), Some("rejected reason"));
    }

    #[test]
    fn an_issue_shows_the_newest_diagnosis_since_its_latest_alert() {
        let alerts = vec![alert(NOW - 5_000, "h1", "web", "Exited with code 1"), alert(NOW - 5_000, "h1", "db", "x")];
        let needed = vec![
            // Before the latest alert: an older story.
            entry(
                NOW - 6_000,
                "remediation_needed",
                json!({"container": "web", "host": "h1", "action": "restart",
                "reason": "r", "confidence": 0.9, "diagnosis": diagnosed("oom_killed", "old")}),
            ),
            entry(
                NOW - 4_000,
                "remediation_needed",
                json!({"container": "web", "host": "h1", "action": "restart",
                "reason": "r", "confidence": 0.9, "diagnosis": diagnosed("port_in_use", HOSTILE)}),
            ),
        ];
        let view = issues_view(&alerts, &[], &[], &needed, NOW, 3600);
        let web = view.issues.iter().find(|i| i.key == "h1/web").unwrap();
        let d = web.diagnosis.as_ref().expect("the verdict's diagnosis");
        assert_eq!(d.cause, "port_in_use");
        assert_eq!(d.summary.as_deref(), Some("port_in_use summary"));
        assert_eq!(d.recommendation.as_deref(), Some("Free the port."));
        assert_eq!(d.restart_helps, Some(false));
        assert_eq!(d.evidence, [HOSTILE], "verbatim, blanks and non-strings left out");
        assert!(view.issues.iter().find(|i| i.key == "h1/db").unwrap().diagnosis.is_none());

        // A later refused outcome with its own diagnosis outranks the verdict.
        let completions = vec![entry(
            NOW - 3_000,
            "remediation_complete",
            json!({"container": "web", "host": "h1", "action": "restart",
                "result": {"status": "rejected", "action": "restart", "container": "web"},
                "diagnosis": {"evidence": ["x".repeat(EVIDENCE_CHARS + 50)]}}),
        )];
        let view = issues_view(&alerts, &completions, &[], &needed, NOW, 3600);
        let d = view.issues.iter().find(|i| i.key == "h1/web").unwrap().diagnosis.clone().unwrap();
        assert_eq!((d.cause.as_str(), d.summary, d.recommendation), ("unknown", None, None));
        assert_eq!(d.evidence[0].chars().count(), EVIDENCE_CHARS + 1, "cut, with an ellipsis");
    }

    #[test]
    fn malformed_stream_entries_are_skipped() {
        let alerts = vec![
            ("bad-id".to_owned(), Some(env("health_alert", json!({"container": "x"})))),
            (format!("{NOW}-0"), None),
            (format!("{NOW}-1"), Some("not json".into())),
            (format!("{NOW}-2"), Some(env("health_alert", json!("not an object")))),
            alert(NOW, "h", "ok", "Exited with code 1"),
        ];
        let view = issues_view(&alerts, &[], &[], &[], NOW, 60);
        assert_eq!(view.issues.len(), 1);
        assert_eq!(view.issues[0].key, "h/ok");
    }
}
