//! `restart`, `stop` and `start`: the target first, then the containers
//! that follow it (its network namespace's dependents, compose services
//! that restart with it), found before the action and handled after it.

use hemostat_protocol::{
    Action, Command,
    event::{DependentResult, RemediationStatus},
};
use tokio_util::sync::CancellationToken;

use crate::{
    act::{
        dependents::{self, Cascade},
        lanes::Slot,
        outcome::Outcome,
        target::{Context, Target},
        verify,
    },
    docker,
};

/// The target, then its dependents: found before the action, handled once
/// it is done.
pub(in crate::act) async fn run(
    cx: &Context,
    cmd: &Command,
    slot: Slot,
    cancel: &CancellationToken,
) -> (Outcome, Vec<DependentResult>) {
    let target = match cx.target(cmd).await {
        Ok(t) => t,
        Err(refused) => return (refused, Vec::new()),
    };
    let was_running = docker::is_running(&target.inspect);
    if let Some(since) = started_since(cmd, &target) {
        let seen = cmd.context.detected_at.as_deref().unwrap_or_default();
        let details = match was_running {
            true => format!("already running again since {since}, after the problem seen at {seen}: nothing to do"),
            false => format!(
                "started again at {since}, after the problem seen at {seen}, and down since: that run's end is an \
                 incident of its own; nothing to do"
            ),
        };
        tracing::info!(container = %target.name, action = %cmd.action, command_id = %cmd.id, %since, running = was_running, "started again since the problem was seen: nothing to do");
        return (Outcome::with(RemediationStatus::NotApplicable, details), Vec::new());
    }
    // When the parent goes down: now, or when its last run ended. A
    // start of a running container changes nothing for its dependents.
    let parent_down = match was_running {
        true => Some(chrono::Utc::now()),
        false => docker::finished_at(&target.inspect),
    };
    let found = match cmd.action {
        Action::Start if was_running => Vec::new(),
        _ => match dependents::find(&cx.docker, &target.id, &target.name, &cx.scope).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(container = %target.name, error = %docker::error_text(&e), "could not list dependents");
                Vec::new()
            }
        },
    };
    let cascade = Cascade { cx, cancel };
    if cmd.dry_run {
        let deps = cascade.describe(&found, cmd.action, parent_down);
        return (with_summary(dry_run(cx, cmd, &target), &deps), deps);
    }
    // Open before the parent's action: its dependents may die of it.
    let window = cascade.begin(&found);
    if let Err(failed) = act_on_target(cx, cmd, &target).await {
        let deps = cascade.unhandled(&found, cmd.action, &format!("its parent's {} failed", cmd.action));
        return (failed, deps);
    }
    // Watching the target alone is no Docker work worth a slot: hand it
    // back (a storm's other crashes start now). Dependents still have
    // actions to come: the slot stays with them.
    let _slot = (!found.is_empty()).then_some(slot);
    let id = target.id.as_str();
    let (outcome, deps) = match cmd.action {
        Action::Stop => {
            let outcome = match docker::inspect(&cx.docker, id).await {
                Ok(after) if !docker::is_running(&after) => Outcome::with(
                    RemediationStatus::Success,
                    format!("stopped (exit code {})", docker::exit_code(&after)),
                ),
                Ok(_) => Outcome::failed("container is still running after stop"),
                Err(e) => Outcome::failed(format!("could not verify: {}", docker::error_text(&e))),
            };
            let deps = match outcome.status {
                RemediationStatus::Success => cascade.run(&target.name, &found, cmd.action, parent_down, window).await,
                _ => cascade.unhandled(&found, cmd.action, "its parent did not stop"),
            };
            (outcome, deps)
        }
        _ => {
            // Once the parent runs again, its verification and its
            // dependents' handling go on together.
            let runs = docker::inspect(&cx.docker, id).await.is_ok_and(|i| docker::is_running(&i));
            let deps = async {
                match runs {
                    true => cascade.run(&target.name, &found, cmd.action, parent_down, window).await,
                    false => cascade.unhandled(&found, cmd.action, "its parent is not running"),
                }
            };
            let verified = async { verify::watch(&cx.docker, id, cx.verify_window, cancel).await.into_outcome() };
            tokio::join!(verified, deps)
        }
    };
    (with_summary(outcome, &deps), deps)
}

/// When a restart or start is moot: its container was started after the
/// problem the command answers was seen (someone restarted it meanwhile:
/// the collector itself while the control plane was away, an operator,
/// Docker's restart policy). Running still, it is healed; down again, that
/// run ended by itself or by someone's stop, which is its own incident
/// with its own decision (a restart asked again after a cooldown must not
/// undo an operator's stop since). A command for a problem seen while the
/// container was running (a failing health check, a CPU spike) is not
/// moot: that run began before it.
fn started_since(cmd: &Command, target: &Target) -> Option<chrono::DateTime<chrono::Utc>> {
    if !matches!(cmd.action, Action::Restart | Action::Start) {
        return None;
    }
    let seen = chrono::DateTime::parse_from_rfc3339(cmd.context.detected_at.as_deref()?).ok()?;
    docker::started_at(&target.inspect).filter(|started| *started > seen)
}

fn dry_run(cx: &Context, cmd: &Command, target: &Target) -> Outcome {
    let timeout = cx.stop_timeout_for(&target.inspect);
    let state = docker::state_text(&target.inspect);
    Outcome::dry_run(match cmd.action {
        Action::Start => format!("would start {} (now {state})", target.name),
        action => format!("would {action} {} (now {state}; stop timeout {} s)", target.name, timeout.as_secs_f64()),
    })
}

/// The target's own restart, stop or start; Err: Docker refused it.
async fn act_on_target(cx: &Context, cmd: &Command, target: &Target) -> Result<(), Outcome> {
    let timeout = cx.stop_timeout_for(&target.inspect);
    // The window covers the action only: the die a restart causes is ours,
    // a crash during verification afterwards is real.
    let _in_flight = cx.inflight.begin([target.id.clone(), target.name.clone()]);
    tracing::info!(container = %target.name, action = %cmd.action, command_id = %cmd.id, stop_timeout_s = timeout.as_secs_f64().ceil() as i64, "executing");
    let done = docker::apply(&cx.docker, &target.id, cmd.action, timeout).await.map_err(Outcome::failed);
    cx.acted(target);
    done
}

/// The parent's details end with what became of its dependents.
pub(super) fn with_summary(outcome: Outcome, deps: &[DependentResult]) -> Outcome {
    match dependents::summary(deps) {
        Some(summary) => {
            let details = match outcome.details.as_deref() {
                Some(d) if !d.is_empty() => format!("{d}; {summary}"),
                _ => summary,
            };
            outcome.details(details)
        }
        None => outcome,
    }
}
