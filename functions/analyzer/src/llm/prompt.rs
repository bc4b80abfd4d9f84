//! What the model is asked. The alert's own text (issues, names) is
//! data, passed as JSON in the user message; whatever it says, the answer
//! is validated against the allowed actions.

use hemostat_protocol::{Action, event::HealthAlert};
use serde_json::json;

use crate::{history::History, rules};

/// A system instruction and one user message.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

impl Prompt {
    pub fn new(alert: &HealthAlert, history: &History, assessment: &rules::RuleDecision, allowed: &[Action]) -> Self {
        let actions: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
        let system = format!(
            "You are the analyzer of HemoStat, which keeps Docker containers healthy. \
             Given a health alert for one container and its recent alerts, decide the remediation. \
             Answer with one JSON object and nothing else: \
             {{\"action\": one of {actions:?}, \"confidence\": a number from 0 to 1, \"reason\": one short sentence}}. \
             Choose \"none\" when acting would not help (a crash loop, a transient spike) or when unsure."
        );
        let past: Vec<_> = history
            .alerts
            .iter()
            .filter(|a| a.at <= history.now)
            .map(|a| {
                json!({
                    "seconds_ago": (history.now - a.at) / 1_000_000,
                    "anomalies": a.kinds.iter().map(|k| rules::kind_name(*k)).collect::<Vec<_>>(),
                    "cpu_pct": a.cpu,
                    "memory_pct": a.mem,
                })
            })
            .collect();
        let user = json!({
            "alert": {
                "container": alert.container,
                "host": alert.host,
                "image": alert.image,
                "issues": alert.issues,
                "anomalies": alert.anomalies,
                "exit_code": alert.exit_code,
                "metrics": alert.metrics,
            },
            "history_newest_first": past,
            "rule_based_assessment": {
                "action": assessment.action.as_str(),
                "confidence": assessment.confidence,
                "reason": assessment.reason,
            },
        })
        .to_string();
        Prompt { system, user }
    }
}
