//! The seed's rule-based analysis, as a pure function.
//!
//! Rules are checked in the seed's order, first match wins. Rules that need
//! the alert history (sustained versus transient, leak trends) treat a
//! single alert as transient until history is consulted.

use hemostat_protocol::{
    Action,
    event::{AnomalyKind, HealthAlert, Severity},
};

/// What the rules concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub action: Action,
    pub confidence: f64,
    pub reason: String,
}

impl Verdict {
    fn new(action: Action, confidence: f64, reason: impl Into<String>) -> Self {
        Verdict { action, confidence, reason: reason.into() }
    }
}

pub fn evaluate(alert: &HealthAlert) -> Verdict {
    let has = |kind: AnomalyKind| alert.anomalies.iter().any(|a| a.kind == kind);

    if has(AnomalyKind::ExcessiveRestarts) {
        return Verdict::new(Action::None, 0.6, "Excessive restarts: restarting again would not help");
    }
    if has(AnomalyKind::NonZeroExit) || has(AnomalyKind::OomKilled) {
        let how = if has(AnomalyKind::OomKilled) { "was OOM-killed" } else { "exited" };
        let code = alert.exit_code.map(|c| format!(" with code {c}")).unwrap_or_default();
        return Verdict::new(Action::Restart, 0.9, format!("Container {how}{code}"));
    }
    if alert.anomalies.iter().any(|a| a.severity == Severity::Critical) {
        return Verdict::new(Action::Restart, 0.85, "Critical anomaly");
    }
    if has(AnomalyKind::Unhealthy) {
        return Verdict::new(Action::Restart, 0.7, "Health check failing");
    }
    if has(AnomalyKind::MemoryLeak) {
        return Verdict::new(Action::Restart, 0.8, "Memory leak pattern");
    }
    Verdict::new(Action::None, 0.65, "Transient spike, no action needed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hemostat_protocol::event::{Anomaly, Metrics};

    fn alert(kind: AnomalyKind, severity: Severity) -> HealthAlert {
        HealthAlert {
            container: "web".into(),
            issues: vec![],
            metrics: Metrics { name: "web".into(), ..Default::default() },
            host: "h1".into(),
            container_id: None,
            image: None,
            anomalies: vec![Anomaly { kind, severity, threshold: None, actual: None }],
            exit_code: Some(1),
            detected_at: None,
        }
    }

    #[test]
    fn seed_confidences() {
        let v = evaluate(&alert(AnomalyKind::NonZeroExit, Severity::High));
        assert_eq!((v.action, v.confidence), (Action::Restart, 0.9));
        assert!(v.reason.contains("code 1"), "{}", v.reason);
        assert_eq!(evaluate(&alert(AnomalyKind::OomKilled, Severity::Critical)).confidence, 0.9);
        assert_eq!(evaluate(&alert(AnomalyKind::ExcessiveRestarts, Severity::High)).action, Action::None);
        assert_eq!(evaluate(&alert(AnomalyKind::HighCpu, Severity::Critical)).confidence, 0.85);
        assert_eq!(evaluate(&alert(AnomalyKind::Unhealthy, Severity::High)).confidence, 0.7);
        assert_eq!(evaluate(&alert(AnomalyKind::MemoryLeak, Severity::High)).confidence, 0.8);
        let spike = evaluate(&alert(AnomalyKind::HighCpu, Severity::High));
        assert_eq!((spike.action, spike.confidence), (Action::None, 0.65));
    }
}
