//! Restarts asked again when the cooldown that refused them ends (see
//! [`hemostat_protocol::deferred`]): kept at the refusal, taken by the
//! responder's schedule (and by each batch) once due, and decided by the
//! gate again like any request. The collector finds one moot if the
//! container was started since the problem (by a person, by Docker's
//! restart policy): whatever became of that run is an incident of its own.

use std::time::Duration;

use hemostat_protocol::{
    ContainerRef, ProtocolError,
    deferred::worth_asking_again,
    event::{IncidentContext, RemediationNeeded},
    gate::GateInputs,
};

use crate::store::Store;

/// Past the cooldown's end, so the gate no longer holds it.
const MARGIN: Duration = Duration::from_secs(1);

/// How long a deferred request that could not be decided (Redis failed,
/// the escalation ladder waits for an outcome) waits before it is asked
/// again.
pub(crate) const AGAIN_AFTER: Duration = Duration::from_secs(60);

/// Keeps a restart the gate just refused, to ask again when the container's
/// cooldown ends, if it is worth it: a dependency the container could not
/// reach may be back by then. Returns when it is due (RFC 3339), or None
/// when it is not kept (another cause, or the refusal was not the
/// cooldown's: a silence, a hold or the owner's policy say why
/// themselves, and are not waited out).
pub(crate) async fn keep<S: Store>(
    store: &S,
    container: &ContainerRef,
    needed: &RemediationNeeded,
    container_id: &str,
    inputs: &GateInputs,
) -> Result<Option<String>, ProtocolError> {
    if !worth_asking_again(needed) || inputs.refusal.is_some() {
        return Ok(None);
    }
    let left = store.preview(container, inputs).await?.cooldown_left_ms;
    if left == 0 {
        return Ok(None);
    }
    let due = chrono::Utc::now() + Duration::from_millis(left) + MARGIN;
    let again = again(needed, container, container_id);
    store.defer(container, &again, due.timestamp_millis()).await?;
    tracing::info!(container = %container, due = %due, "restart refused by the cooldown: asked again when it ends");
    Ok(Some(due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// The request as it is asked again: about the container the gate judged
/// (its id now), its problem's detection time kept (which tells the
/// collector whether it ran again since), no approval of its own (one it
/// needs is asked for again).
fn again(needed: &RemediationNeeded, container: &ContainerRef, container_id: &str) -> RemediationNeeded {
    let reason = match needed.reason.strip_prefix(PREFIX) {
        Some(_) => needed.reason.clone(),
        None => format!("{PREFIX}{}", needed.reason),
    };
    RemediationNeeded {
        host: container.host.clone(),
        container_id: Some(container_id.to_owned()),
        reason,
        context: IncidentContext { approval: None, ..needed.context.clone() },
        ..needed.clone()
    }
}

/// What a request asked again says first.
const PREFIX: &str = "asked again after the cooldown: ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_asked_again_names_its_container_and_says_so_once() {
        let needed: RemediationNeeded = serde_json::from_value(serde_json::json!({
            "container": "api", "action": "restart", "reason": "connection refused", "confidence": 0.9,
            "approval": "ab", "detected_at": "2026-12-07T10:00:00Z"
        }))
        .unwrap();
        let c = ContainerRef::new("h1", "api");
        let first = again(&needed, &c, "abc");
        assert_eq!((first.host.as_str(), first.container_id.as_deref()), ("h1", Some("abc")));
        assert_eq!(first.reason, "asked again after the cooldown: connection refused");
        assert_eq!(first.context.approval, None);
        assert_eq!(first.context.detected_at.as_deref(), Some("2026-12-07T10:00:00Z"));
        assert_eq!(again(&first, &c, "abc").reason, first.reason);
    }
}
