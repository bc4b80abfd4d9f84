//! Carrying out one command on Docker and saying how it went.

use std::time::{Duration, Instant};

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::ContainerInspectResponse,
    query_parameters::{RestartContainerOptions, StartContainerOptions, StopContainerOptions},
};
use hemostat_protocol::{
    Action, Command,
    event::{RemediationResult, RemediationStatus},
};

use crate::{
    config::parse_duration, scope::Scope, docker, error::CollectorError, inflight::InFlight,
};

/// Overrides `--stop-timeout` for one container.
pub const LABEL_STOP_TIMEOUT: &str = "hemostat.stop_timeout";

#[derive(Clone)]
pub struct Executor {
    docker: Docker,
    stop_timeout: Duration,
    inflight: InFlight,
    scope: Scope,
}

/// The part of a result that differs between outcomes.
struct Outcome {
    status: RemediationStatus,
    error: Option<String>,
    details: Option<String>,
}

impl Outcome {
    fn failed(error: impl Into<String>) -> Self {
        Outcome {
            status: RemediationStatus::Failed,
            error: Some(error.into()),
            details: None,
        }
    }
    fn with(status: RemediationStatus, details: impl Into<String>) -> Self {
        Outcome {
            status,
            error: None,
            details: Some(details.into()),
        }
    }
}

impl Executor {
    pub fn new(docker: Docker, stop_timeout: Duration, inflight: InFlight, scope: Scope) -> Self {
        Executor {
            docker,
            stop_timeout,
            inflight,
            scope,
        }
    }

    pub async fn execute(&self, cmd: &Command) -> RemediationResult {
        let started = Instant::now();
        let outcome = match cmd.action {
            Action::Restart | Action::Stop | Action::Start if cmd.dry_run => Outcome::with(
                RemediationStatus::DryRun,
                format!(
                    "would {} {} (dry run: Docker not touched)",
                    cmd.action, cmd.container
                ),
            ),
            Action::Restart | Action::Stop | Action::Start => self.act(cmd).await,
            other => Outcome::failed(format!(
                "action {other} not supported by this collector yet"
            )),
        };
        RemediationResult {
            status: outcome.status,
            action: cmd.action,
            container: cmd.container.clone(),
            error: outcome.error,
            reason: Some(cmd.reason.clone()).filter(|r| !r.is_empty()),
            details: outcome.details,
            duration_ms: Some(started.elapsed().as_millis() as u64),
        }
    }

    async fn act(&self, cmd: &Command) -> Outcome {
        // The id pins the exact container the responder saw; the name is
        // the fallback for seed-protocol commands that carry none.
        let target = cmd
            .container_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .unwrap_or(&cmd.container);
        let before = match docker::inspect(&self.docker, target).await {
            Ok(i) => i,
            Err(e) => return Outcome::failed(docker::error_text(&e)),
        };
        let facts = docker::facts(&before);
        if let Some(why) = self.scope.excludes(&facts.labels) {
            return Outcome {
                status: RemediationStatus::Rejected,
                error: Some(why.into()),
                details: None,
            };
        }
        let id = before.id.clone().unwrap_or_else(|| target.to_owned());
        let name = docker::name(&before).unwrap_or_else(|| cmd.container.clone());
        let timeout = self.stop_timeout_for(&before);
        let t = Some(timeout.as_secs_f64().ceil() as i32);

        let _in_flight = self.inflight.begin([id.clone(), name.clone()]);
        tracing::info!(container = %name, action = %cmd.action, command_id = %cmd.id, stop_timeout_s = ?t, "executing");
        let done = match cmd.action {
            Action::Restart => {
                self.docker
                    .restart_container(&id, Some(RestartContainerOptions { t, signal: None }))
                    .await
            }
            Action::Stop => {
                self.docker
                    .stop_container(&id, Some(StopContainerOptions { t, signal: None }))
                    .await
            }
            _ => {
                self.docker
                    .start_container(&id, None::<StartContainerOptions>)
                    .await
            }
        };
        match done {
            Ok(()) => {}
            // 304: already in the requested state, which is the goal.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => return Outcome::failed(docker::error_text(&CollectorError::from(e))),
        }
        let after = match docker::inspect(&self.docker, &id).await {
            Ok(i) => i,
            Err(e) => {
                return Outcome::failed(format!("could not verify: {}", docker::error_text(&e)));
            }
        };
        verify(cmd.action, &after)
    }

    fn stop_timeout_for(&self, inspect: &ContainerInspectResponse) -> Duration {
        let label = docker::facts(inspect).labels.remove(LABEL_STOP_TIMEOUT);
        match label.as_deref().map(parse_duration) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                tracing::warn!(label = LABEL_STOP_TIMEOUT, error = %e, "ignoring bad label; using --stop-timeout");
                self.stop_timeout
            }
            None => self.stop_timeout,
        }
    }
}

/// Docker answering 204 is not proof: a container that crashes at once is
/// "restarted" but not running.
fn verify(action: Action, after: &ContainerInspectResponse) -> Outcome {
    let state = after.state.as_ref();
    let status = state
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    let exit = state.and_then(|s| s.exit_code).unwrap_or_default();
    let running = docker::is_running(after);
    match (action, running) {
        (Action::Stop, false) => Outcome::with(
            RemediationStatus::Success,
            format!("stopped (exit code {exit})"),
        ),
        (Action::Stop, true) => Outcome::failed("container is still running after stop"),
        (_, true) => {
            let since = state.and_then(|s| s.started_at.clone()).unwrap_or_default();
            Outcome::with(RemediationStatus::Success, format!("running since {since}"))
        }
        (_, false) => Outcome::failed(format!(
            "container is not running after {action} (status {status}, exit code {exit})"
        )),
    }
}
