//! `recreate`: a fresh container from the target's own configuration in
//! its place ([`replace`](super::replace)), for a container a restart did
//! not fix; then its namespace dependents, recreated in its new namespace
//! (their `container:<old id>` is gone with it), and the compose services
//! that restart with it, restarted.

use hemostat_protocol::{
    Action, Command,
    event::{DependentResult, RemediationStatus},
};
use tokio_util::sync::CancellationToken;

use super::{lifecycle::with_summary, replace::Replacement};
use crate::{
    act::{
        dependents::{self, Cascade, Dependent},
        lanes::Slot,
        outcome::Outcome,
        target::Context,
    },
    docker,
};

pub(in crate::act) async fn run(
    cx: &Context,
    cmd: &Command,
    _slot: Slot,
    cancel: &CancellationToken,
) -> (Outcome, Vec<DependentResult>) {
    let target = match cx.target(cmd).await {
        Ok(t) => t,
        Err(refused) => return (refused, Vec::new()),
    };
    let found = match dependents::find(&cx.docker, &target.id, &target.name, &cx.scope).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(container = %target.name, error = %docker::error_text(&e), "could not list dependents");
            Vec::new()
        }
    };
    let (in_namespace, compose): (Vec<Dependent>, Vec<Dependent>) =
        found.into_iter().partition(Dependent::joins_namespace);
    if cmd.dry_run {
        let state = docker::state_text(&target.inspect);
        let mut deps: Vec<DependentResult> = in_namespace
            .iter()
            .map(|d| match d.excluded.as_deref() {
                Some(why) => d.skipped(Action::Recreate, why),
                None => DependentResult {
                    details: Some(format!("would recreate {} in {}'s new namespace", d.name, d.joins)),
                    ..d.result(Action::Recreate, RemediationStatus::DryRun)
                },
            })
            .collect();
        deps.extend(Cascade { cx, cancel }.describe(&compose, Action::Restart, None));
        let outcome = Outcome::dry_run(format!(
            "would recreate {} from its own configuration (now {state}; image {})",
            target.name,
            docker::image(&target.inspect).unwrap_or_default()
        ));
        return (with_summary(outcome, &deps), deps);
    }
    let replacement = Replacement {
        docker: &cx.docker,
        inflight: &cx.inflight,
        stop_timeout: cx.stop_timeout_for(&target.inspect),
        verify_window: cx.verify_window,
        cancel,
    };
    // The dependents' windows open before the parent goes: they may die of it.
    let cascade = Cascade { cx, cancel };
    let window = cascade.begin(&compose);
    let ns_window = cascade.begin(&in_namespace);
    tracing::info!(container = %target.name, action = %cmd.action, command_id = %cmd.id, "executing");
    let replaced = replacement.replace(&target.inspect, None).await;
    cx.acted(&target);
    let done = match replaced {
        Ok(done) => done,
        Err(failed) => {
            let mut deps = cascade.unhandled(&in_namespace, Action::Recreate, "its parent's recreate failed");
            deps.extend(cascade.unhandled(&compose, Action::Restart, "its parent's recreate failed"));
            return (failed, deps);
        }
    };
    // The new container counts against the same limits as the old.
    cx.limits.record(&done.id, std::time::Instant::now());
    let mut deps = dependents::rejoin(&replacement, &target.name, &done.id, &in_namespace).await;
    drop(ns_window);
    deps.extend(cascade.run(&target.name, &compose, Action::Restart, None, window).await);
    (with_summary(done.outcome, &deps), deps)
}
