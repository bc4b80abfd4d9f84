//! What each event counts for: a pure function from an envelope to facts,
//! the one mapping behind both the Redis counters (Prometheus) and the
//! CloudWatch data points.

use chrono::{DateTime, NaiveDateTime, Utc};
use hemostat_protocol::{
    Envelope, EventKind, ProtocolError,
    event::{FalseAlarm, HealthAlert, RemediationComplete, RemediationNeeded, RemediationStatus, SystemAlert},
};
use serde::Serialize;

use crate::metrics::{self, Fact, label_value};

/// Clock skew between hosts tolerated in detection-to-fix times: a fix
/// apparently this much earlier than its detection counts as instant; more
/// than that is a broken clock, and the observation is left out.
const SKEW_TOLERANCE_SECONDS: f64 = 5.0;

/// The facts of one event. A malformed `data` is an error: the record is
/// rejected (dead-lettered with the reason), as every function does.
pub fn facts(env: &Envelope) -> Result<Vec<Fact>, ProtocolError> {
    let mut out = vec![Fact::Count { family: &metrics::EVENTS, labels: vec![("type", env.kind.as_str().to_owned())] }];
    match env.kind {
        EventKind::HealthAlert => {
            let alert: HealthAlert = env.data_as()?;
            // The most severe anomaly names the alert; the first one on ties.
            let top =
                alert.anomalies.iter().fold(None, |best: Option<&hemostat_protocol::event::Anomaly>, a| match best {
                    Some(b) if b.severity >= a.severity => Some(b),
                    _ => Some(a),
                });
            let (kind, severity) = match top {
                Some(a) => (serde_name(&a.kind), serde_name(&a.severity)),
                None => ("unknown".to_owned(), "unknown".to_owned()),
            };
            out.push(Fact::Count { family: &metrics::ALERTS, labels: vec![("type", kind), ("severity", severity)] });
        }
        EventKind::RemediationNeeded => {
            let needed: RemediationNeeded = env.data_as()?;
            out.push(analysis("remediate", needed.context.analysis_method.as_deref()));
            out.push(Fact::Count {
                family: &metrics::REMEDIATION_REQUESTS,
                labels: vec![("action", needed.action.as_str().to_owned())],
            });
            out.extend(confidence("remediate", Some(needed.confidence)));
        }
        EventKind::FalseAlarm => {
            let alarm: FalseAlarm = env.data_as()?;
            out.push(analysis("false_alarm", alarm.context.analysis_method.as_deref()));
            out.extend(confidence("false_alarm", alarm.confidence));
        }
        EventKind::RemediationComplete => {
            let done: RemediationComplete = env.data_as()?;
            let action = done.result.action.as_str().to_owned();
            out.push(Fact::Count {
                family: &metrics::REMEDIATIONS,
                labels: vec![("action", action.clone()), ("status", serde_name(&done.result.status))],
            });
            if let Some(ms) = done.result.duration_ms {
                out.push(Fact::Observe {
                    family: &metrics::REMEDIATION_DURATION,
                    labels: vec![("action", action.clone())],
                    value: ms as f64 / 1000.0,
                });
            }
            if let Some(verified) = done.result.verified {
                let result = if verified { "verified" } else { "not_verified" };
                out.push(Fact::Count {
                    family: &metrics::VERIFICATIONS,
                    labels: vec![("action", action.clone()), ("result", result.to_owned())],
                });
            }
            let fixed = done.result.verified == Some(true) && done.result.status == RemediationStatus::Success;
            let seconds =
                if fixed { detection_to_fix(done.context.detected_at.as_deref(), &env.timestamp) } else { None };
            if let Some(seconds) = seconds {
                out.push(Fact::Observe {
                    family: &metrics::DETECTION_TO_FIX,
                    labels: vec![("action", action)],
                    value: seconds,
                });
            }
        }
        EventKind::SystemAlert => {
            let alert: SystemAlert = env.data_as()?;
            out.push(Fact::Count {
                family: &metrics::SYSTEM_ALERTS,
                labels: vec![("kind", label_value(&alert.kind)), ("severity", serde_name(&alert.severity))],
            });
        }
        // Counted by type above; what became of it is the responder's audit.
        EventKind::ApprovalAnswer => {}
    }
    Ok(out)
}

fn analysis(verdict: &str, method: Option<&str>) -> Fact {
    Fact::Count {
        family: &metrics::ANALYSES,
        labels: vec![("verdict", verdict.to_owned()), ("method", label_value(method.unwrap_or_default()))],
    }
}

fn confidence(verdict: &str, value: Option<f64>) -> Option<Fact> {
    let value = value.filter(|v| v.is_finite() && *v >= 0.0)?;
    Some(Fact::Observe { family: &metrics::CONFIDENCE, labels: vec![("verdict", verdict.to_owned())], value })
}

/// Seconds from `detected_at` (RFC 3339, from the collector) to the
/// envelope's timestamp (the seed's format: UTC without offset), i.e. to
/// when the collector reported the verified fix.
pub fn detection_to_fix(detected_at: Option<&str>, reported_at: &str) -> Option<f64> {
    let detected = parse_time(detected_at?)?;
    let reported = parse_time(reported_at)?;
    let seconds = (reported - detected).num_microseconds()? as f64 / 1e6;
    if seconds < -SKEW_TOLERANCE_SECONDS {
        tracing::warn!(detected_at, reported_at, "detection-to-fix time is negative: clocks disagree; not observed");
        return None;
    }
    Some(seconds.max(0.0))
}

/// Now, RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// RFC 3339, or the seed's offset-less timestamp (UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc())
}

/// The wire name of an enum value (`oom_killed`, `high`, `dry_run`).
fn serde_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Update;
    use serde_json::json;

    fn env(kind: &str, data: serde_json::Value) -> Envelope {
        let text =
            json!({"timestamp": "2025-11-03T10:31:00.500000", "agent": "t", "type": kind, "data": data}).to_string();
        Envelope::parse(text.as_bytes()).unwrap()
    }

    fn fields(facts: &[Fact]) -> Vec<String> {
        facts
            .iter()
            .flat_map(|f| f.updates())
            .filter_map(|u| match u {
                Update::Int(f, 1) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn health_alert_counts_its_most_severe_anomaly() {
        let e = env(
            "health_alert",
            json!({"container": "web", "metrics": {"name": "web"}, "anomalies": [
                {"type": "high_cpu", "severity": "medium"},
                {"type": "oom_killed", "severity": "critical"},
                {"type": "exited", "severity": "critical"}
            ]}),
        );
        let f = fields(&facts(&e).unwrap());
        assert_eq!(
            f,
            [
                r#"hemostat_events_total{type="health_alert"}"#,
                r#"hemostat_alerts_total{type="oom_killed",severity="critical"}"#
            ]
        );
        // The seed's own example has no anomalies.
        let seed = env(
            "health_alert",
            json!({"container": "api", "issues": ["High CPU: 92.5%"], "metrics": {"name": "api", "cpu_pct": 92.5}}),
        );
        assert!(
            fields(&facts(&seed).unwrap())
                .contains(&r#"hemostat_alerts_total{type="unknown",severity="unknown"}"#.to_owned())
        );
    }

    #[test]
    fn verdicts_count_as_analyses_with_confidence() {
        let needed = env(
            "remediation_needed",
            json!({"container": "web", "action": "restart", "reason": "r", "confidence": 0.9, "analysis_method": "rule_based"}),
        );
        let f = facts(&needed).unwrap();
        let names = fields(&f);
        assert!(names.contains(&r#"hemostat_analyses_total{verdict="remediate",method="rule_based"}"#.to_owned()));
        assert!(names.contains(&r#"hemostat_remediation_requests_total{action="restart"}"#.to_owned()));
        assert!(f.iter().any(|x| matches!(x, Fact::Observe { value, .. } if *value == 0.9)));
        // The seed's false alarm: no method, no confidence.
        let alarm = env("false_alarm", json!({"container": "web", "reason": "transient"}));
        let f = facts(&alarm).unwrap();
        assert!(
            fields(&f).contains(&r#"hemostat_analyses_total{verdict="false_alarm",method="unspecified"}"#.to_owned())
        );
        assert!(!f.iter().any(|x| matches!(x, Fact::Observe { .. })));
    }

    #[test]
    fn a_verified_fix_observes_detection_to_fix() {
        let data = |verified: bool, status: &str| {
            json!({"container": "web", "action": "restart", "detected_at": "2025-11-03T10:30:48.000Z",
                   "result": {"status": status, "action": "restart", "container": "web", "duration_ms": 2500, "verified": verified}})
        };
        let f = facts(&env("remediation_complete", data(true, "success"))).unwrap();
        let fix: Vec<f64> = f
            .iter()
            .filter_map(|x| match x {
                Fact::Observe { family, value, .. } if family.name == metrics::DETECTION_TO_FIX.name => Some(*value),
                _ => None,
            })
            .collect();
        assert_eq!(fix, [12.5]);
        let names = fields(&f);
        assert!(names.contains(&r#"hemostat_remediations_total{action="restart",status="success"}"#.to_owned()));
        assert!(
            names.contains(
                &r#"hemostat_remediation_verifications_total{action="restart",result="verified"}"#.to_owned()
            )
        );
        assert!(f.iter().any(
            |x| matches!(x, Fact::Observe { family, value, .. } if family.name == metrics::REMEDIATION_DURATION.name && *value == 2.5)
        ));
        for (verified, status) in [(false, "success"), (true, "failed")] {
            let f = facts(&env("remediation_complete", data(verified, status))).unwrap();
            assert!(!f.iter().any(|x| x.family().name == metrics::DETECTION_TO_FIX.name), "{verified} {status}");
        }
    }

    #[test]
    fn detection_times_and_skew() {
        assert_eq!(detection_to_fix(Some("2025-11-03T10:30:00+00:00"), "2025-11-03T10:30:03.250000"), Some(3.25));
        assert_eq!(detection_to_fix(Some("2025-11-03T10:30:02Z"), "2025-11-03T10:30:00.000000"), Some(0.0));
        assert_eq!(detection_to_fix(Some("2025-11-03T10:40:00Z"), "2025-11-03T10:30:00.000000"), None);
        assert_eq!(detection_to_fix(Some("yesterday"), "2025-11-03T10:30:00.000000"), None);
        assert_eq!(detection_to_fix(None, "2025-11-03T10:30:00.000000"), None);
    }

    #[test]
    fn system_alerts_and_malformed_data() {
        let e =
            env("system_alert", json!({"kind": "collector_missing", "severity": "high", "host": "h1", "message": "m"}));
        assert!(
            fields(&facts(&e).unwrap())
                .contains(&r#"hemostat_system_alerts_total{kind="collector_missing",severity="high"}"#.to_owned())
        );
        let bad = env("remediation_complete", json!({"container": 5}));
        assert!(facts(&bad).is_err());
    }
}
