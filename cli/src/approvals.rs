//! `approvals`, `approve` and `deny`: the actions that wait for a person's
//! yes ([`hemostat_protocol::approval`]), and the answers.
//!
//! Answers go through [`approval::approve`] and [`approval::deny`], the
//! same path as a Slack button's: atomic and audited, the approved request
//! handed back to the responder (the one place that signs and sends
//! commands), which runs it through the gate again.

use std::time::Duration;

use hemostat_protocol::{
    RedisPublisher,
    approval::{self, Approval, Refusal},
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

/// Approves (the responder then runs the request through the safety gate
/// again: the world changed meanwhile) and waits for the outcome.
pub async fn approve(ctx: &Context, id: &str, by: &str, timeout: Duration) -> Result<(), CliError> {
    let waiting = act::Outcomes::from_now(ctx).await?;
    let publisher = RedisPublisher::new(ctx.conn());
    let a = answered(id, approval::approve(&mut ctx.conn(), &publisher, id.trim(), by).await?)?;
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
    let publisher = RedisPublisher::new(ctx.conn());
    let (a, text) = answered(id, approval::deny(&mut ctx.conn(), &publisher, id.trim(), by, reason).await?)?;
    if ctx.json {
        show::json(&a.to_json());
    } else {
        println!("{}: {} not done ({text})", a.container, a.action);
    }
    Ok(())
}

/// A refusal as the error that says why.
fn answered<T>(id: &str, answer: Result<T, Refusal>) -> Result<T, CliError> {
    let id = id.trim();
    answer.map_err(|refusal| match refusal {
        Refusal::Unknown => CliError::NotFound(format!(
            "approval {id:?}: no such approval (never issued, mistyped, or forgotten; `hemostat approvals` lists the pending ones)"
        )),
        refusal => CliError::Failed(format!("approval {id}: {refusal}; nothing done")),
    })
}
