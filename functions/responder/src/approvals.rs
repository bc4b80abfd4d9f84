//! Actions that wait for a person's yes ([`hemostat_protocol::approval`]):
//! which ones do, parking them (and asking), taking an approved one back
//! to the gate, and falling back to a notification past the deadline.
//!
//! The handler calls in at four points: before a batch (expire what is
//! due), before the gate (park instead of acting), for a request that
//! names an approval (execute the record's request, once) and for a
//! person's answer from Slack or the dashboard (`apply`, once the handler
//! vouched for it).

use sha2::{Digest, Sha256};

use hemostat_protocol::{
    Action, ContainerRef, Envelope, EventKind, ProtocolError, Publisher,
    approval::{self, Answer, Parked, Refusal, Rule, State},
    envelope::agent,
    event::{RemediationNeeded, Severity, SystemAlert},
    gate::{GateDecision, GateInputs},
    policy::Policy,
};

use crate::{Config, store::Store};

/// The actions that wait for a yes on a container with `policy`: the
/// responder's setting and the container's `hemostat.approve` together.
pub fn rule(config: &Config, policy: &Policy) -> Rule {
    config.approve.union(&policy.approval_rule())
}

/// What the gate would do with `request` now, as far as approvals care:
/// the action it would take (an escalation ladder's step in place of a
/// restart) and the step's text; `None` when it would refuse or wait.
async fn would_take<S: Store>(
    store: &S,
    container: &ContainerRef,
    request: &RemediationNeeded,
    inputs: &GateInputs,
) -> Result<Option<(Action, Option<String>)>, ProtocolError> {
    let preview = store.preview(container, inputs).await?;
    Ok(match preview.decision {
        GateDecision::Allowed { .. } => Some((request.action, None)),
        // The preview plans the ladder as for a restart; only a restart or
        // a recreate climbs it.
        GateDecision::Escalated { step, .. } if matches!(request.action, Action::Restart | Action::Recreate) => {
            Some((step.action, Some(step.text)))
        }
        GateDecision::Escalated { .. } => Some((request.action, None)),
        _ => None,
    })
}

/// Parks `request` when the gate would take an action `rule` names (the
/// ladder's step, when it would climb one: a stop the ladder reaches
/// waits for its own yes), and asks (a `system_alert`
/// `approval_requested` through the alert function). `false` when the
/// gate would refuse or wait, or would take an action needing no yes: the
/// caller lets the gate decide (audited and reported as any decision).
pub async fn park<S: Store, P: Publisher>(
    config: &Config,
    store: &S,
    publisher: &P,
    rule: &Rule,
    container: &ContainerRef,
    request: &RemediationNeeded,
    inputs: &GateInputs,
) -> Result<bool, ProtocolError> {
    let Some((action, step)) = would_take(store, container, request, inputs).await? else { return Ok(false) };
    if !rule.requires(action) {
        return Ok(false);
    }
    // The action approved is the one the gate would take; taken later, the
    // gate climbs from the same rung (unless the ladder moved meanwhile,
    // see [`moved_on`]).
    let request = RemediationNeeded { action, ..request.clone() };
    match store.park(container, &request, config.approval_timeout).await? {
        Parked::New { id, deadline_ms } => {
            let deadline = time(deadline_ms);
            tracing::info!(container = %container, action = %request.action, approval = %id, %deadline,
                "action parked: waiting for approval");
            let step = step.map(|s| format!(", {s}")).unwrap_or_default();
            let alert = SystemAlert {
                kind: SystemAlert::APPROVAL_REQUESTED.into(),
                severity: Severity::High,
                host: container.host.clone(),
                message: format!(
                    "{container}: {action} waits for a yes ({reason}{step}). Approval {id}, until {deadline}: \
                     `hemostat approve {id}` or `hemostat deny {id} --reason ...`; unanswered, it is only notified.",
                    action = request.action,
                    reason = request.reason,
                ),
                last_seen: None,
                missing_for_seconds: None,
                container: Some(container.name.clone()),
                approval: Some(id),
            };
            publisher.publish(&Envelope::new(agent::RESPONDER, EventKind::SystemAlert, &alert)?).await?;
        }
        Parked::Waiting { id, deadline_ms } => {
            tracing::info!(container = %container, action = %request.action, approval = %id,
                deadline = %time(deadline_ms), "already waiting for approval; not asked again");
        }
    }
    Ok(true)
}

/// For an approved `request` about to be taken: why it must not be, when
/// the escalation ladder moved on while it waited and would now take
/// another action that needs its own yes (a restart approved an hour ago
/// never becomes an unapproved stop).
pub async fn moved_on<S: Store>(
    store: &S,
    rule: &Rule,
    container: &ContainerRef,
    request: &RemediationNeeded,
    inputs: &GateInputs,
) -> Result<Option<String>, ProtocolError> {
    Ok(match would_take(store, container, request, inputs).await? {
        Some((action, Some(step))) if action != request.action && rule.requires(action) => Some(format!(
            "the escalation ladder moved on while the approval of a {} waited: it would now take {step}, which needs a yes of its own",
            request.action
        )),
        _ => None,
    })
}

/// For a request naming approval `id`: the request its record holds, when
/// it is approved and not yet taken; `None` (logged) otherwise: nothing is
/// executed for an unknown, pending, denied, expired or finished one, nor
/// for a request about another container than the approved one.
pub async fn approved<S: Store>(
    store: &S,
    id: &str,
    asked: &RemediationNeeded,
) -> Result<Option<RemediationNeeded>, ProtocolError> {
    let Some(a) = store.approval(id).await? else {
        tracing::warn!(approval = %id, container = %asked.container, "request names an unknown approval: ignored");
        return Ok(None);
    };
    if a.state != State::Approved {
        tracing::warn!(approval = %id, container = %a.container, state = %a.state,
            "request names an approval that is not approved (or was executed): ignored");
        return Ok(None);
    }
    if asked.container != a.container.name || (!asked.host.is_empty() && asked.host != a.container.host) {
        tracing::warn!(approval = %id, approved = %a.container, asked = %asked.container,
            "request names an approval of another container: ignored");
        return Ok(None);
    }
    Ok(Some(a.execution_request()))
}

/// Applies a person's answer (vouched for by the caller): a denial moves
/// the approval and is reported as `approval::deny` reports one; a yes
/// moves it and gives back the request to execute through the gate, as a
/// request naming the approval would. Also for a yes already on record
/// but not yet taken (a failure after the move: the redelivered answer
/// executes it, once, since the command derives from the approval's id).
/// `None`: nothing to execute (an answer that changed nothing is logged).
pub async fn apply<S: Store, P: Publisher>(
    store: &S,
    publisher: &P,
    id: &str,
    answer: &Answer,
) -> Result<Option<RemediationNeeded>, ProtocolError> {
    match store.answer(id, answer).await? {
        Ok(a) if a.state == State::Denied => {
            let (report, text) = a.denial();
            tracing::info!(approval = %id, container = %a.container, action = %a.action, "{text}");
            publisher.publish(&Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &report)?).await?;
            Ok(None)
        }
        Ok(a) => {
            tracing::info!(approval = %id, container = %a.container, action = %a.action,
                by = a.by.as_deref().unwrap_or_default(), "approved: through the gate");
            Ok(Some(a.execution_request()))
        }
        Err(Refusal::Answered { state: State::Approved, .. }) if matches!(answer, Answer::Approve { .. }) => {
            match store.approval(id).await? {
                Some(a) if a.state == State::Approved => {
                    tracing::info!(approval = %id, container = %a.container, "approved already, not yet taken: through the gate");
                    Ok(Some(a.execution_request()))
                }
                _ => Ok(None),
            }
        }
        Err(refusal) => {
            tracing::info!(approval = %id, %refusal, "approval answer changed nothing");
            Ok(None)
        }
    }
}

/// Marks an approved request as taken, once the gate decided on it (the
/// command went out, or the refusal was reported).
pub async fn taken<S: Store>(store: &S, id: &str) -> Result<(), ProtocolError> {
    match store.answer(id, &Answer::Take).await? {
        Ok(_) => Ok(()),
        // A redelivered request, after the first finished.
        Err(refusal) => {
            tracing::info!(approval = %id, %refusal, "approval already taken");
            Ok(())
        }
    }
}

/// The command an approval leads to: derived from its id, so a
/// redelivered request maps to the same command.
pub fn command_id(approval: &str) -> String {
    let digest = Sha256::digest(format!("approval:{approval}").as_bytes());
    hex::encode(&digest[..16])
}

/// Expires every pending approval past its deadline and reports each
/// (once, whichever responder moves it): "approval timed out: notified
/// only", a rejected `remediation_complete` the alert function sends on.
pub async fn expire_due<S: Store, P: Publisher>(store: &S, publisher: &P) -> Result<usize, ProtocolError> {
    let mut expired = 0;
    for id in store.due_approvals(chrono::Utc::now().timestamp_millis()).await? {
        match store.answer(&id, &Answer::Expire).await? {
            Ok(a) => {
                tracing::warn!(approval = %id, container = %a.container, action = %a.action, "approval timed out: notified only");
                let report = a.report(approval::TIMED_OUT.to_owned());
                publisher.publish(&Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &report)?).await?;
                expired += 1;
            }
            // Answered (or expired by another responder) meanwhile, or a
            // clock a little behind Redis's.
            Err(Refusal::NotDue | Refusal::Answered { .. } | Refusal::Expired | Refusal::Unknown) => {}
        }
    }
    Ok(expired)
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
