//! `approvals`, `approve` and `deny`: the actions that wait for a person's
//! yes ([`hemostat_protocol::approval`]), and the answers.
//!
//! An approval is answered here, atomically and audited in the protocol's
//! script; the approved request then goes back to the responder as a
//! `remediation_needed` naming the approval, and the responder (the one
//! place that signs and sends commands) runs it through the gate again.

use std::time::Duration;

use hemostat_protocol::{
    Envelope, EventKind, Publisher, RedisPublisher,
    approval::{self, Answer, Approval, Refusal},
    envelope::agent,
};
use serde_json::Value;

use crate::{act, context::Context, error::CliError, show};

pub async fn list(ctx: &Context) -> Result<(), CliError> {
    let pending = approval::pending(&mut ctx.conn()).await?;
    if ctx.json {
        show::json(&Value::Array(pending.iter().map(Approval::to_json).collect()));
        return Ok(());
    }
    println!("PENDING APPROVALS ({})", pending.len());
    let now = chrono::Utc::now().timestamp_millis();
    for a in &pending {
        let left = a.deadline_ms - now;
        let due = if left > 0 { format!("{} left", show::span(left)) } else { "past its deadline".to_owned() };
        println!("  {}  {:<32}  {:<8}  {due}: {}", a.id, a.container.to_string(), a.action.as_str(), a.request.reason);
    }
    if !pending.is_empty() {
        println!("answer with `hemostat approve ID` or `hemostat deny ID --reason ...`");
    }
    Ok(())
}

/// Approves, then hands the request back to the responder and waits for
/// its outcome (the gate decides again: the world changed meanwhile).
pub async fn approve(ctx: &Context, id: &str, by: &str, timeout: Duration) -> Result<(), CliError> {
    let a = answered(ctx, id, &Answer::Approve { by: by.to_owned() }).await?;
    let request = a.execution_request();
    let env = Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, &request)?;
    let waiting = act::Outcomes::from_now(ctx).await?;
    RedisPublisher::new(ctx.conn()).publish(&env).await?;
    if !ctx.json {
        eprintln!(
            "approval {} of the {} of {} approved by {by}; waiting up to {timeout:?} for the outcome",
            a.id, a.action, a.container
        );
    }
    waiting
        .wait(ctx, timeout, |d| {
            show::text(d, "host") == a.container.host
                && show::text(d, "container") == a.container.name
                && show::text(d, "approval") == a.id
        })
        .await
        .map_err(|e| match e {
            CliError::Failed(m) if m.is_empty() => CliError::Failed(format!(
                "approved, but no outcome within {timeout:?}: is the bridge running, and the responder? \
                 (`hemostat audit {}`)",
                a.container
            )),
            other => other,
        })
}

/// Denies: the action is dropped, and reported as refused.
pub async fn deny(ctx: &Context, id: &str, by: &str, reason: Option<&str>) -> Result<(), CliError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
    let a = answered(ctx, id, &Answer::Deny { by: by.to_owned(), reason: reason.clone() }).await?;
    let text = match &reason {
        Some(r) => format!("approval denied by {by}: {r}"),
        None => format!("approval denied by {by}"),
    };
    let report = a.report(text.clone());
    RedisPublisher::new(ctx.conn())
        .publish(&Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &report)?)
        .await?;
    if ctx.json {
        show::json(&a.to_json());
    } else {
        println!("{}: {} not done ({text})", a.container, a.action);
    }
    Ok(())
}

/// The approval once `answer` moved it; a refusal as the error that says why.
async fn answered(ctx: &Context, id: &str, answer: &Answer) -> Result<Approval, CliError> {
    let id = id.trim();
    match approval::answer(&mut ctx.conn(), id, answer).await? {
        Ok(a) => Ok(a),
        Err(Refusal::Unknown) => Err(CliError::NotFound(format!(
            "approval {id:?}: no such approval (never issued, mistyped, or forgotten; `hemostat approvals` lists the pending ones)"
        ))),
        Err(refusal) => Err(CliError::Failed(format!("approval {id}: {refusal}; nothing done"))),
    }
}
