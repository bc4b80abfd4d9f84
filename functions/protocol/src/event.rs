//! The seed's four event kinds, where each is published, and their data.

use serde::{Deserialize, Serialize};

pub use crate::metrics::Metrics;
use crate::{action::Action, diagnosis::Diagnosis, error::ProtocolError, evidence::Evidence, policy::Policy};

/// The `type` of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    HealthAlert,
    RemediationNeeded,
    RemediationComplete,
    FalseAlarm,
    /// HemoStat about itself (a collector gone silent, ...). Not a seed
    /// channel: an extension that seed subscribers of `hemostat:*` see too.
    SystemAlert,
    /// A person's answer to an approval, from Slack's buttons or the
    /// dashboard ([`crate::approval::ApprovalAnswer`]), for the responder.
    /// Not a seed channel either.
    ApprovalAnswer,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::HealthAlert,
        EventKind::RemediationNeeded,
        EventKind::RemediationComplete,
        EventKind::FalseAlarm,
        EventKind::SystemAlert,
        EventKind::ApprovalAnswer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::HealthAlert => "health_alert",
            EventKind::RemediationNeeded => "remediation_needed",
            EventKind::RemediationComplete => "remediation_complete",
            EventKind::FalseAlarm => "false_alarm",
            EventKind::SystemAlert => "system_alert",
            EventKind::ApprovalAnswer => "approval_answer",
        }
    }

    /// The seed pub/sub channel, kept so existing subscribers keep working.
    pub fn channel(self) -> String {
        format!("hemostat:{}", self.as_str())
    }

    /// The durable stream: pub/sub drops messages nobody listens to, the
    /// stream keeps them until the bridge has delivered them.
    pub fn stream(self) -> String {
        format!("hemostat:stream:{}", self.as_str())
    }

    pub fn from_stream(stream: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.stream() == stream)
    }
}

impl std::str::FromStr for EventKind {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ProtocolError::UnknownEventType(s.to_owned()))
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of trouble a collector saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    NonZeroExit,
    OomKilled,
    Unhealthy,
    HighCpu,
    HighMemory,
    MemoryLeak,
    ExcessiveRestarts,
    Exited,
    /// A kind this version does not know: kept so newer collectors do not
    /// break older analyzers.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// One detected problem, in the shape of the seed's monitor event schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    #[serde(rename = "type")]
    pub kind: AnomalyKind,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<f64>,
}

/// `data` of a `health_alert`: the seed fields plus what the rules need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthAlert {
    /// Container name (the seed's field).
    pub container: String,
    /// Human-readable issues, e.g. `"Exited with code 1"` (the seed's field).
    #[serde(default)]
    pub issues: Vec<String>,
    pub metrics: Metrics,
    /// The Docker host the container runs on; names repeat across hosts.
    #[serde(default)]
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub anomalies: Vec<Anomaly>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// When the collector saw the underlying Docker event (RFC 3339), so
    /// later stages can measure detection-to-fix time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<String>,
    /// What the collector gathered about the container when it raised the
    /// alert (log lines, health output, Docker state), redacted on the host;
    /// an addition to the seed's fields, absent from seed publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// What the container's labels tell HemoStat (see [`Policy`]), resolved
    /// by the collector; absent when no label changes anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Why HemoStat must not act on the container now, as the collector
    /// saw it when it alerted: an operator's recent `docker stop`,
    /// `restart`, `kill` or `pause`, a paused container, a deploy that just
    /// created it. The gate refuses with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The ids of the live label silences whose selector matches the
    /// container's labels, as the collector found them when it alerted.
    /// Labels may hold secrets, so they never leave the host: the collector
    /// matches them there, and only the ids travel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silenced_by: Vec<String>,
}

/// `data` of a `remediation_needed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationNeeded {
    pub container: String,
    pub action: Action,
    pub reason: String,
    pub confidence: f64,
    #[serde(default)]
    pub metrics: Option<Metrics>,
    /// Empty when a seed-protocol publisher did not say; the responder then
    /// looks the container up in `hemostat:containers`.
    #[serde(default)]
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Why the rules decided although an LLM is configured (`llm_timeout`,
    /// `llm_rate_limited`, `budget_exhausted`, ...; docs/src/configuration.md lists them),
    /// when `analysis_method` is `rule_fallback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The LLM's verdict came from the cache of verdicts by failure signature
    /// (no call was made for this alert).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub llm_cached: bool,
    /// Detection time, decision method and model, image, severity:
    /// carried from the alert to the outcome (flattened: same JSON fields).
    #[serde(flatten)]
    pub context: IncidentContext,
}

/// How a remediation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationStatus {
    Success,
    Failed,
    /// Refused by the safety gate (cooldown, circuit breaker, ...).
    Rejected,
    /// Dry-run: recorded, not executed.
    DryRun,
    NotApplicable,
}

/// The seed's `result` object, with the real outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationResult {
    pub status: RemediationStatus,
    pub action: Action,
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Closed loop: whether the container was watched after the action and
    /// stayed up (and healthy, if it has a health check). None when the
    /// action is not verified (stop, cleanup, exec, dry run, refusals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The containers sharing this container's network namespace
    /// (`network_mode: container:<it>`, compose's `service:<it>`), handled
    /// after it: restarted once it runs again, stopped after it. Absent
    /// when it has none (and from seed publishers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<DependentResult>,
}

/// What became of one dependent of a restarted or stopped container.
/// `status` is `rejected` (with the reason in `error`) for a dependent
/// outside the collector's scope, which is left alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependentResult {
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub action: Action,
    pub status: RemediationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// `data` of a `remediation_complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationComplete {
    pub container: String,
    pub action: Action,
    pub result: RemediationResult,
    #[serde(default)]
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Detection time, decision method and model, image, severity:
    /// carried from the alert to the outcome (flattened: same JSON fields).
    #[serde(flatten)]
    pub context: IncidentContext,
}

impl RemediationComplete {
    /// The report of a request that ends without a command (the gate
    /// refused it, a person denied it, its approval timed out): rejected,
    /// with `reason` and `details`, carrying the request's own context.
    pub fn refused(needed: &RemediationNeeded, host: &str, reason: String, details: Option<String>) -> Self {
        RemediationComplete {
            container: needed.container.clone(),
            action: needed.action,
            result: RemediationResult {
                status: RemediationStatus::Rejected,
                action: needed.action,
                container: needed.container.clone(),
                error: None,
                reason: Some(reason),
                details,
                duration_ms: None,
                verified: None,
                dependents: Vec::new(),
            },
            host: host.to_owned(),
            command_id: None,
            dry_run: false,
            confidence: Some(needed.confidence),
            reason: Some(needed.reason.clone()),
            context: needed.context.clone(),
        }
    }
}

/// `data` of a `false_alarm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FalseAlarm {
    pub container: String,
    pub reason: String,
    #[serde(default)]
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Why the rules decided although an LLM is configured, when
    /// `analysis_method` is `rule_fallback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The LLM's verdict came from the cache (no call was made for this alert).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub llm_cached: bool,
    /// Detection time, decision method and model, image, severity:
    /// carried from the alert to the outcome (flattened: same JSON fields).
    #[serde(flatten)]
    pub context: IncidentContext,
}

/// `analysis_method` of a restart the collector decided on its own while
/// the control plane could not be reached (see the collector's `act::edge`).
pub const DECIDED_AT_THE_EDGE: &str = "edge";

/// What an incident carries from its detection to its outcome: through the
/// analyzer's verdict, the responder's command and the collector's report,
/// one type instead of fields copied one by one. Flattened into each
/// payload, so the JSON keeps the fields where they always were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentContext {
    /// When the collector saw the problem (RFC 3339): detection-to-fix time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<String>,
    /// How the decision was taken (`rule_based`, `llm`, `rule_fallback`,
    /// or [`DECIDED_AT_THE_EDGE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_method: Option<String>,
    /// The model that decided, when `analysis_method` is `llm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The container's image, for the fleet brake; looked up from the
    /// collector's stats when a seed-protocol publisher leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The alert's highest anomaly severity, so a refusal of a critical
    /// alert can be told apart from a routine one downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Why the container failed, as the analyzer read the alert's evidence
    /// (cause, evidence lines, whether a restart helps): travels with the
    /// verdict, the command and the outcome alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    /// The container's compose project and service, from the alert's
    /// evidence, so the gate can match project and label silences without
    /// looking for the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_service: Option<String>,
    /// The container's policy from its alert, for the gate to enforce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// The alert's `held`: why the gate must not act now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The alert's `silenced_by`: label silences the collector matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silenced_by: Vec<String>,
    /// The approval this action waited on ([`crate::approval`]): on a
    /// `remediation_needed`, asks the responder to execute that approved
    /// request (the record's, not this one); on outcomes, names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// On a command (and its outcome): the escalation ladder's step it is,
    /// 1 for the first ([`crate::gate::Step::number`]). Set by the
    /// responder alone, from the gate's decision (never taken from a
    /// request): a step past the first is paced by the ladder, so the
    /// collector's own cooldown and hourly cap leave it to the ladder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_step: Option<u32>,
}

/// `data` of a `system_alert`: HemoStat reporting on its own parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemAlert {
    /// What happened, e.g. `collector_missing`, `collector_recovered`.
    pub kind: String,
    pub severity: Severity,
    /// The host of the component concerned (a collector's host).
    #[serde(default)]
    pub host: String,
    pub message: String,
    /// When the component was last seen (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_for_seconds: Option<u64>,
    /// The container concerned, when the alert is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The approval an `approval_requested` asks for (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

impl SystemAlert {
    /// A container's labels could not be read (reported once per container).
    pub const BAD_LABELS: &'static str = "bad_labels";
    /// A container's circuit breaker opened: its fixes do not hold, and
    /// HemoStat stops acting on it until the breaker expires or is reset.
    pub const CIRCUIT_OPEN: &'static str = "circuit_open";
    /// A container's escalation ladder reached its stop: nothing it tried
    /// held, HemoStat stopped it and pages someone.
    pub const ESCALATION_STOPPED: &'static str = "escalation_stopped";
    /// Records wait in a stream longer (or in greater number) than the
    /// bridge's thresholds: the functions are not keeping up, or cannot be
    /// reached, and alerts wait with them.
    pub const BRIDGE_LAG: &'static str = "bridge_lag";
    /// Records were dead-lettered as stale (older than the bridge's
    /// `HEMOSTAT_BRIDGE_MAX_AGE_SECONDS`): incidents nobody acted on.
    pub const STALE_DEAD_LETTERED: &'static str = "stale_dead_lettered";
    /// Redis refused a collector's event for good (`WRONGTYPE`, `NOPERM`,
    /// too large, out of memory past the collector's patience): it was
    /// kept in the dead-letter file on that host instead.
    pub const OUTBOX_DEAD_LETTERED: &'static str = "outbox_dead_lettered";
    /// A collector task (event watcher, sampler, command consumer,
    /// outbox) stayed without progress after it was restarted: the
    /// collector is up but partly blind or deaf.
    pub const COLLECTOR_DEGRADED: &'static str = "collector_degraded";
    /// A collector task reported degraded progresses again (one per task).
    pub const COLLECTOR_RECOVERED_TASKS: &'static str = "collector_tasks_recovered";
    /// An action waits for a person's yes: the message names the approval
    /// and how to answer; `approval` holds its id.
    pub const APPROVAL_REQUESTED: &'static str = "approval_requested";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_sits_where_its_fields_always_were() {
        let needed: RemediationNeeded = serde_json::from_value(serde_json::json!({
            "container": "web", "action": "restart", "reason": "exit 1", "confidence": 0.9, "host": "h1",
            "analysis_method": "llm", "model": "gpt-4o-mini", "detected_at": "2026-12-01T10:00:00Z",
            "image": "shop/web:2", "severity": "critical", "fallback_reason": "x"}))
        .unwrap();
        assert_eq!(needed.context.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(needed.context.severity, Some(Severity::Critical));
        let json = serde_json::to_value(&needed).unwrap();
        assert!(json.get("context").is_none(), "{json}");
        for key in ["analysis_method", "model", "detected_at", "image", "severity", "fallback_reason"] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        // Unknown context is left out, as before.
        let bare: RemediationComplete = serde_json::from_value(serde_json::json!({
            "container": "web", "action": "restart", "host": "h1",
            "result": {"status": "success", "action": "restart", "container": "web"}}))
        .unwrap();
        assert_eq!(bare.context, IncidentContext::default());
        let json = serde_json::to_string(&bare).unwrap();
        assert!(!json.contains("analysis_method") && !json.contains("context"), "{json}");
    }
}
