//! The audit trail: every decision on a container's actions, newest first,
//! in its list [`keys::audit`]: the gate's (allowed, refused, braked), an
//! operator's reset, and each move of an approval (requested, approved,
//! denied, expired: [`crate::approval`]).
//!
//! One entry is one [`AuditEntry`]. Whoever asks for the decision writes
//! what was asked ([`AuditRequest`]: the gate from a request, `hemostat
//! reset` for a reset); the gate's scripts add the decision itself
//! (`verdict`, `reason`, `at_ms`) inside Redis, on Redis' clock, so a
//! decision and its audit are one atomic step.

use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

use crate::{ContainerRef, ProtocolError, keys};

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The gate allowed the action (a command was dispatched).
    Allowed,
    /// The gate refused it (a silence, the policy, `held`, the cooldown, the
    /// circuit breaker).
    Refused,
    /// The fleet brake held (suspected bad release).
    Brake,
    /// An operator cleared the container's cooldown and circuit breaker.
    Reset,
    /// The action waits for a person's yes ([`crate::approval`]).
    ApprovalRequested,
    /// A person approved it (the gate decides again when it is executed).
    Approved,
    /// A person denied it: dropped.
    Denied,
    /// Nobody answered by its deadline: notified only.
    ApprovalExpired,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Refused => "refused",
            Verdict::Brake => "brake",
            Verdict::Reset => "reset",
            Verdict::ApprovalRequested => "approval_requested",
            Verdict::Approved => "approved",
            Verdict::Denied => "denied",
            Verdict::ApprovalExpired => "approval_expired",
        }
    }
}

/// What was asked: every field an entry has besides the decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRequest {
    pub host: String,
    pub container: String,
    /// The action's name ([`Action::as_str`](crate::Action::as_str)), or
    /// `reset`.
    pub action: String,
    /// The command the request leads to (the gate's decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Why the action was asked for (the analyzer's or the operator's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The container's image, when known (the fleet brake's subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A reset: the recorded actions it forgot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_actions: Option<u64>,
}

/// One decision, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(flatten)]
    pub request: AuditRequest,
    pub verdict: Verdict,
    /// Why (empty for an allowed action, or the escalation step it took:
    /// `escalation step 2/3: recreate after ...`).
    #[serde(default)]
    pub reason: String,
    /// When, epoch ms (Redis' clock for the gate's).
    pub at_ms: i64,
}

impl AuditEntry {
    /// An operator's reset of the container's cooldown and circuit breaker.
    pub fn reset(c: &ContainerRef, by: &str, forgotten_actions: u64, at_ms: i64) -> Self {
        AuditEntry {
            request: AuditRequest {
                host: c.host.clone(),
                container: c.name.clone(),
                action: Verdict::Reset.as_str().to_owned(),
                forgotten_actions: Some(forgotten_actions),
                ..AuditRequest::default()
            },
            verdict: Verdict::Reset,
            reason: format!("reset by operator {by}"),
            at_ms,
        }
    }
}

/// Adds `entry` to the container's trail in `pipe`, bounded and expiring
/// as the gate's scripts keep it.
pub fn push(pipe: &mut redis::Pipeline, c: &ContainerRef, entry: &AuditEntry) -> Result<(), ProtocolError> {
    let key = keys::audit(c);
    pipe.lpush(&key, serde_json::to_string(entry)?)
        .ignore()
        .ltrim(&key, 0, keys::AUDIT_MAX as isize - 1)
        .ignore()
        .expire(&key, keys::AUDIT_TTL.as_secs() as i64)
        .ignore();
    Ok(())
}

/// The container's newest `limit` entries, newest first; one that does not
/// parse is its text, as stored.
pub async fn newest<C: ConnectionLike + Send>(
    conn: &mut C,
    c: &ContainerRef,
    limit: usize,
) -> Result<Vec<Result<AuditEntry, String>>, ProtocolError> {
    let stop = isize::try_from(limit).unwrap_or(isize::MAX).saturating_sub(1);
    let raw: Vec<String> = redis::cmd("LRANGE").arg(keys::audit(c)).arg(0).arg(stop).query_async(conn).await?;
    Ok(raw.into_iter().map(|r| serde_json::from_str(&r).map_err(|_| r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_names_who_and_what_it_forgot_and_reads_back() {
        let entry = AuditEntry::reset(&ContainerRef::new("h1", "api"), "alice", 3, 1_700_000_000_000);
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"host": "h1", "container": "api", "action": "reset", "forgotten_actions": 3,
                "verdict": "reset", "reason": "reset by operator alice", "at_ms": 1_700_000_000_000_i64})
        );
        assert_eq!(serde_json::from_value::<AuditEntry>(json).unwrap(), entry);
    }

    #[test]
    fn an_entry_of_an_older_gate_reads_with_a_null_image() {
        let stored = r#"{"command_id":"c1","host":"h1","container":"api","action":"restart","request_reason":"exit 1",
            "confidence":0.9,"dry_run":false,"image":null,"verdict":"refused","reason":"cooldown: x","at_ms":1700000000123}"#;
        let entry: AuditEntry = serde_json::from_str(stored).unwrap();
        assert_eq!((entry.verdict, entry.request.image, entry.at_ms), (Verdict::Refused, None, 1_700_000_000_123));
        assert_eq!(entry.request.confidence, Some(0.9));
    }
}
