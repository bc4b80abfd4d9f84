//! What a command came to, as the `remediation_complete` its sender reads:
//! executed (with the executor's result), refused before execution (for
//! another host, expired, unsigned or forged), or of unknown outcome.

use hemostat_protocol::{
    Action, Command, Envelope, EventKind,
    envelope::agent,
    event::{RemediationComplete, RemediationResult, RemediationStatus},
};

use crate::error::CollectorError;

pub(super) fn complete(host: &str, cmd: &Command, result: RemediationResult) -> Result<Envelope, CollectorError> {
    let data = RemediationComplete {
        container: cmd.container.clone(),
        action: cmd.action,
        result,
        host: host.to_owned(),
        command_id: Some(cmd.id.clone()),
        dry_run: cmd.dry_run,
        confidence: Some(cmd.confidence),
        reason: Some(cmd.reason.clone()).filter(|r| !r.is_empty()),
        context: cmd.context.clone(),
    };
    Ok(Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &data)?)
}

/// For a command that could not be trusted or read: reports only what it
/// claims, so the sender learns why nothing happened.
pub(super) fn complete_refused(
    host: &str,
    claimed: &Claimed,
    container: String,
    why: String,
) -> Result<Envelope, CollectorError> {
    let data = RemediationComplete {
        container: container.clone(),
        action: claimed.action,
        result: RemediationResult {
            status: RemediationStatus::Rejected,
            action: claimed.action,
            container,
            error: Some(why.clone()),
            reason: Some(why),
            details: None,
            duration_ms: None,
            verified: None,
            dependents: Vec::new(),
        },
        host: host.to_owned(),
        command_id: claimed.id.clone(),
        dry_run: false,
        confidence: None,
        reason: None,
        context: Default::default(),
    };
    Ok(Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &data)?)
}

pub(super) fn result(cmd: &Command, status: RemediationStatus, error: Option<String>) -> RemediationResult {
    RemediationResult {
        status,
        action: cmd.action,
        container: cmd.container.clone(),
        reason: error.clone(),
        error,
        details: None,
        duration_ms: None,
        verified: None,
        dependents: Vec::new(),
    }
}

/// What an untrusted or malformed command says about itself.
#[derive(Debug)]
pub struct Claimed {
    pub id: Option<String>,
    pub container: Option<String>,
    pub action: Action,
}

impl Claimed {
    pub fn read(json: &str) -> Claimed {
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let text = |k: &str| v.get(k).and_then(|s| s.as_str()).filter(|s| !s.is_empty()).map(str::to_owned);
        Claimed {
            id: text("id"),
            container: text("container"),
            action: v.get("action").and_then(|a| serde_json::from_value(a.clone()).ok()).unwrap_or(Action::None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_fields_of_garbage_are_empty_not_a_panic() {
        let c = Claimed::read("not json");
        assert!(c.container.is_none() && c.id.is_none());
        let c = Claimed::read(r#"{"container":"web","action":"restart","id":"x"}"#);
        assert_eq!((c.container.as_deref(), c.action), (Some("web"), Action::Restart));
    }
}
