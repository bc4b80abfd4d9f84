//! Handling a parent's dependents after the executor's restart, stop or
//! start of it: each in order, then the verification of those brought up.

use std::time::Instant;

use bollard::{Docker, models::HealthStatusEnum};
use chrono::{DateTime, Utc};
use hemostat_protocol::{
    Action,
    event::{DependentResult, RemediationStatus},
};
use tokio_util::sync::CancellationToken;

use super::dependent::{Dependent, HEALTHY_WAIT, POLL, Tie, recoverable};
use crate::{
    act::{outcome::Outcome, target::Context, verify},
    docker, inflight,
};

/// What to do to each dependent after the parent's `action`, given when
/// the parent went down (for a restart or a start). None: leave it alone,
/// with why.
fn plan(d: &Dependent, action: Action, parent_down: Option<DateTime<Utc>>) -> Result<Action, String> {
    match action {
        // Its network is its own: it runs on without its dependency, as
        // with compose's `stop <dependency>`.
        Action::Stop if matches!(d.tie, Tie::Compose { .. }) => Err("compose depends_on: not stopped with it".into()),
        Action::Stop if d.running() => Ok(Action::Stop),
        Action::Stop => Err("not running".into()),
        _ if d.running() => Ok(Action::Restart),
        _ if parent_down.is_some_and(|down| recoverable(d, down)) => Ok(Action::Start),
        _ => Err(format!("{}; did not go down with its parent: left as it is", docker::state_text(&d.inspect))),
    }
}

/// What a dry run says of one dependent; None: nothing worth saying (a
/// stopped dependent of a parent being stopped).
fn dry_run(d: &Dependent, action: Action, parent_down: Option<DateTime<Utc>>) -> Option<DependentResult> {
    match (d.excluded.as_deref(), plan(d, action, parent_down)) {
        (Some(why), _) => Some(d.skipped(action, why)),
        (None, Ok(act)) => Some(DependentResult {
            details: Some(format!("would {act} {} after its parent ({})", d.name, docker::state_text(&d.inspect))),
            ..d.result(act, RemediationStatus::DryRun)
        }),
        (None, Err(_)) if action == Action::Stop => None,
        (None, Err(why)) => Some(d.not_applicable(action, why)),
    }
}

/// How the executor's cascade is carried out.
pub struct Cascade<'a> {
    pub cx: &'a Context,
    pub cancel: &'a CancellationToken,
}

impl Cascade<'_> {
    /// A dry run's account of what would be done.
    pub fn describe(
        &self,
        found: &[Dependent],
        action: Action,
        parent_down: Option<DateTime<Utc>>,
    ) -> Vec<DependentResult> {
        found.iter().filter_map(|d| dry_run(d, action, parent_down)).collect()
    }

    /// Opens the in-flight window of the dependents that will be acted on,
    /// before the parent's action: a dependent that dies because its
    /// parent went away is not a crash to report while it is being handled.
    pub fn begin(&self, found: &[Dependent]) -> inflight::Action {
        self.cx
            .inflight
            .begin(found.iter().filter(|d| d.excluded.is_none()).flat_map(|d| [d.id.clone(), d.name.clone()]))
    }

    /// After the parent's `action` succeeded (and, for a restart or a
    /// start, the parent runs): each dependent in order, then the
    /// verification of those brought up, together. `window` is the guard
    /// from [`Cascade::begin`], closed once the actions are done.
    pub async fn run(
        &self,
        parent: &str,
        found: &[Dependent],
        action: Action,
        parent_down: Option<DateTime<Utc>>,
        window: inflight::Action,
    ) -> Vec<DependentResult> {
        let mut results: Vec<Option<DependentResult>> = Vec::new();
        let mut to_verify = Vec::new();
        for d in found {
            if let Some(why) = d.excluded.as_deref() {
                tracing::info!(container = %d.name, parent, joins = %d.joins, why, "dependent left alone");
                results.push(Some(d.skipped(action, why)));
                continue;
            }
            let act = match plan(d, action, parent_down) {
                Ok(act) => act,
                Err(_) if action == Action::Stop => continue,
                Err(why) => {
                    results.push(Some(d.not_applicable(action, why)));
                    continue;
                }
            };
            if let (Tie::Compose { healthy: true }, Err(why)) = (d.tie, self.healthy(&d.joins).await) {
                results.push(Some(d.not_applicable(act, why)));
                continue;
            }
            let timeout = docker::stop_timeout(&d.inspect, self.cx.stop_timeout);
            tracing::info!(container = %d.name, parent, joins = %d.joins, tie = ?d.tie, action = %act, stop_timeout_s = timeout.as_secs_f64(), "handling a dependent after its parent");
            match docker::apply(&self.cx.docker, &d.id, act, timeout).await {
                Err(e) => {
                    results.push(Some(DependentResult { error: Some(e), ..d.result(act, RemediationStatus::Failed) }))
                }
                Ok(()) if act == Action::Stop => results.push(Some(stopped(&self.cx.docker, d, act).await)),
                Ok(()) => {
                    to_verify.push((results.len(), d, act));
                    results.push(None);
                }
            }
        }
        drop(window);
        let verified = futures::future::join_all(
            to_verify.iter().map(|(_, d, _)| verify::watch(&self.cx.docker, &d.id, self.cx.verify_window, self.cancel)),
        )
        .await;
        for ((slot, d, act), watched) in to_verify.into_iter().zip(verified) {
            results[slot] = Some(from_outcome(d, act, watched.into_outcome()));
        }
        results.into_iter().flatten().collect()
    }

    /// Waits (at most [`HEALTHY_WAIT`]) for `owner` to be healthy, as
    /// compose waits for a `service_healthy` dependency; one without a
    /// health check counts once it runs.
    async fn healthy(&self, owner: &str) -> Result<(), String> {
        let deadline = Instant::now() + HEALTHY_WAIT;
        loop {
            let health = match docker::inspect(&self.cx.docker, owner).await {
                Ok(i) => i.state.and_then(|s| s.health).and_then(|h| h.status),
                Err(e) => return Err(format!("its dependency {owner} is gone: {}", docker::error_text(&e))),
            };
            match health {
                None | Some(HealthStatusEnum::HEALTHY | HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) => {
                    return Ok(());
                }
                _ if Instant::now() >= deadline || self.cancel.is_cancelled() => {
                    return Err(format!(
                        "not restarted: its dependency {owner} was not healthy within {} s (condition: service_healthy)",
                        HEALTHY_WAIT.as_secs()
                    ));
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Every dependent, unhandled because the parent's action did not get
    /// it where it should be.
    pub fn unhandled(&self, found: &[Dependent], action: Action, why: &str) -> Vec<DependentResult> {
        found
            .iter()
            .map(|d| match d.excluded.as_deref() {
                Some(excluded) => d.skipped(action, excluded),
                None => d.not_applicable(action, format!("not handled: {why}")),
            })
            .collect()
    }
}

async fn stopped(docker: &Docker, d: &Dependent, act: Action) -> DependentResult {
    match docker::inspect(docker, &d.id).await {
        Ok(after) if !docker::is_running(&after) => DependentResult {
            details: Some(format!(
                "stopped (exit code {})",
                after.state.as_ref().and_then(|s| s.exit_code).unwrap_or_default()
            )),
            ..d.result(act, RemediationStatus::Success)
        },
        Ok(_) => DependentResult {
            error: Some("still running after stop".into()),
            ..d.result(act, RemediationStatus::Failed)
        },
        Err(e) => DependentResult {
            error: Some(format!("could not verify: {}", docker::error_text(&e))),
            ..d.result(act, RemediationStatus::Failed)
        },
    }
}

fn from_outcome(d: &Dependent, act: Action, o: Outcome) -> DependentResult {
    DependentResult { verified: o.verified, error: o.error, details: o.details, ..d.result(act, o.status) }
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerStateStatusEnum;

    use super::{super::dependent::tests::dependent, *};

    #[test]
    fn a_compose_dependent_keeps_running_when_its_dependency_stops() {
        let mut app = dependent(ContainerStateStatusEnum::RUNNING, "0001-01-01T00:00:00Z");
        app.tie = Tie::Compose { healthy: false };
        assert!(plan(&app, Action::Stop, None).is_err(), "its network is its own: not stopped");
        assert_eq!(plan(&app, Action::Restart, Some(Utc::now())), Ok(Action::Restart));
    }

    #[test]
    fn a_dry_run_lists_a_dependent_left_alone_as_skipped() {
        let down = DateTime::parse_from_rfc3339("2026-12-02T20:41:18Z").unwrap().with_timezone(&Utc);
        let mut notify = dependent(ContainerStateStatusEnum::RUNNING, "0001-01-01T00:00:00Z");
        notify.excluded = Some("policy: notify".into());
        for action in [Action::Restart, Action::Stop, Action::Start] {
            let r = dry_run(&notify, action, Some(down)).unwrap();
            assert_eq!((r.status, r.error.as_deref()), (RemediationStatus::Rejected, Some("skipped: policy: notify")));
        }
    }

    #[test]
    fn only_what_went_down_with_the_parent_is_started() {
        let down = DateTime::parse_from_rfc3339("2026-12-02T20:41:18Z").unwrap().with_timezone(&Utc);
        let with = dependent(ContainerStateStatusEnum::EXITED, "2026-12-02T20:41:19.5Z");
        let just_before = dependent(ContainerStateStatusEnum::EXITED, "2026-12-02T20:41:15Z");
        let long_before = dependent(ContainerStateStatusEnum::EXITED, "2026-12-02T20:30:00Z");
        let never = dependent(ContainerStateStatusEnum::CREATED, "0001-01-01T00:00:00Z");
        let running = dependent(ContainerStateStatusEnum::RUNNING, "0001-01-01T00:00:00Z");
        assert!(recoverable(&with, down) && recoverable(&just_before, down));
        assert!(!recoverable(&long_before, down) && !recoverable(&never, down) && !recoverable(&running, down));
        assert_eq!(plan(&running, Action::Restart, Some(down)), Ok(Action::Restart));
        assert_eq!(plan(&with, Action::Restart, Some(down)), Ok(Action::Start));
        assert!(plan(&long_before, Action::Restart, Some(down)).is_err());
        assert_eq!(plan(&running, Action::Stop, None), Ok(Action::Stop));
        assert!(plan(&with, Action::Stop, None).is_err());
    }
}
