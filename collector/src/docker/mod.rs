//! The Docker connection, the one restart/stop/start call, what the
//! collector reads from inspect (labels, times, state and the container's
//! policy), and the short ids its reports name containers and images by.
//! An `ssh://` engine is reached through a forwarded socket ([`ssh`]).

mod endpoint;
mod ssh;

pub use endpoint::{Endpoint, connect};

use std::{collections::HashMap, time::Duration};

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::ContainerInspectResponse,
    query_parameters::{InspectContainerOptions, RestartContainerOptions, StartContainerOptions, StopContainerOptions},
};
use chrono::{DateTime, Utc};
use hemostat_protocol::{
    Action,
    backoff::Backoff,
    policy::{Policy, Resolved},
};
use tokio::time::Instant;

use crate::error::CollectorError;

pub fn api_version(docker: &Docker) -> String {
    let v = docker.client_version();
    format!("{}.{}", v.major_version, v.minor_version)
}

pub async fn inspect(docker: &Docker, container: &str) -> Result<ContainerInspectResponse, CollectorError> {
    Ok(docker.inspect_container(container, None::<InspectContainerOptions>).await?)
}

/// How long an action waits out an engine that went away mid-command (a
/// `dockerd` restart takes seconds; with live-restore its containers run
/// on) before it reports the call failed.
const ENGINE_PATIENCE: Duration = Duration::from_secs(30);

/// Docker's restart, stop or start of container `id`, stops waiting
/// `timeout` before the SIGKILL; Err: Docker's own message. The one call
/// behind every restart, stop and start HemoStat makes: the target's, and
/// its dependents' after it.
///
/// An engine that gives no answer (restarting: the request was not sent,
/// or its answer was lost) is waited for up to [`ENGINE_PATIENCE`], and so
/// is one still restoring the container's previous task; then the
/// container is looked at first, so a call the engine carried out before
/// it went away is not made twice.
pub async fn apply(docker: &Docker, id: &str, action: Action, timeout: Duration) -> Result<(), String> {
    let began = Utc::now();
    let deadline = Instant::now() + ENGINE_PATIENCE;
    let mut done = call(docker, id, action, timeout).await;
    loop {
        match &done {
            Err(e) if is_unreachable(e) => {
                tracing::info!(container = short(id), %action, error = %e, "the engine did not answer; waiting for it");
                if !wait_for_engine(docker, deadline).await {
                    break;
                }
            }
            Err(e) if is_restoring(e) && Instant::now() < deadline => {
                tracing::info!(container = short(id), %action, error = %e, "the engine is still restoring the container; waiting");
                tokio::time::sleep(RESTORE_POLL).await;
            }
            _ => break,
        }
        done = match docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(now) if carried_out(&now, action, began) => {
                tracing::info!(container = short(id), %action, "the engine carried the call out before it went away");
                Ok(())
            }
            Ok(_) => {
                tracing::info!(container = short(id), %action, "the engine is back; acting again");
                call(docker, id, action, timeout).await
            }
            Err(e) => Err(e),
        };
    }
    match done {
        // 304: already in the requested state, which is the goal.
        Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
        Err(e) => Err(error_text(&CollectorError::from(e))),
    }
}

/// [`inspect`], waiting out an engine that does not answer (up to
/// [`ENGINE_PATIENCE`]): how an action finds its target, so a command that
/// arrives while `dockerd` restarts runs once it is back.
pub async fn inspect_patiently(docker: &Docker, container: &str) -> Result<ContainerInspectResponse, CollectorError> {
    let deadline = Instant::now() + ENGINE_PATIENCE;
    loop {
        match docker.inspect_container(container, None::<InspectContainerOptions>).await {
            Err(e) if is_unreachable(&e) => {
                tracing::info!(container, error = %e, "the engine did not answer; waiting for it");
                if !wait_for_engine(docker, deadline).await {
                    return Err(e.into());
                }
            }
            done => return Ok(done?),
        }
    }
}

/// Pings until the engine answers; false: not before `deadline`.
async fn wait_for_engine(docker: &Docker, deadline: Instant) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if let Ok(Ok(_)) = tokio::time::timeout(left.min(PING_TIMEOUT), docker.ping()).await {
            return true;
        }
        tokio::time::sleep(backoff.next_delay().min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// How long one ping may take while waiting for the engine.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a container whose previous task is being restored is tried.
const RESTORE_POLL: Duration = Duration::from_millis(500);

async fn call(docker: &Docker, id: &str, action: Action, timeout: Duration) -> Result<(), BollardError> {
    let t = Some(timeout.as_secs_f64().ceil() as i32);
    match action {
        Action::Restart => docker.restart_container(id, Some(RestartContainerOptions { t, signal: None })).await,
        Action::Stop => docker.stop_container(id, Some(StopContainerOptions { t, signal: None })).await,
        _ => docker.start_container(id, None::<StartContainerOptions>).await,
    }
}

/// The engine gave no answer: whether it carried a call out is unknown.
fn is_unreachable(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::HyperLegacyError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_)
    )
}

/// An engine back from a restart refuses to start a container whose
/// previous task it is still restoring ("task ... already exists"), or
/// whose previous shim's folder containerd has not removed yet ("failed to
/// start shim: mkdir ...: file exists", seen by the chaos test right after
/// a `dockerd` restart); it accepts once that is done. Where it kept a
/// stale containerd task (a restart sent as a `--live-restore` engine
/// stopped), it refuses for good, and the failure is reported after
/// [`ENGINE_PATIENCE`].
fn is_restoring(err: &BollardError) -> bool {
    let BollardError::DockerResponseServerError { message, .. } = err else { return false };
    (message.contains("task") && message.contains("already exists"))
        || (message.contains("failed to start shim") && message.contains("file exists"))
}

/// Whether `action`, asked for at `began`, shows in the container's state.
fn carried_out(now: &ContainerInspectResponse, action: Action, began: DateTime<Utc>) -> bool {
    match action {
        Action::Stop => !is_running(now),
        _ => is_running(now) && started_at(now).is_some_and(|t| t >= began),
    }
}

/// True when Docker says the container does not exist.
pub fn is_not_found(err: &CollectorError) -> bool {
    matches!(err, CollectorError::Docker(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }))
}

/// Docker's own message for an error (what an operator would see from the
/// CLI), without bollard's wrapping.
pub fn error_text(err: &CollectorError) -> String {
    match err {
        CollectorError::Docker(bollard::errors::Error::DockerResponseServerError { message, .. }) => message.clone(),
        other => other.to_string(),
    }
}

pub fn labels(inspect: &ContainerInspectResponse) -> HashMap<String, String> {
    inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default()
}

pub fn image(inspect: &ContainerInspectResponse) -> Option<String> {
    inspect.config.as_ref().and_then(|c| c.image.clone())
}

/// The container's policy from its labels and its own `StopTimeout`.
pub fn policy(inspect: &ContainerInspectResponse) -> Resolved {
    let own = inspect.config.as_ref().and_then(|c| c.stop_timeout);
    Policy::from_labels(&labels(inspect), own)
}

/// How long a stop of the container waits before its SIGKILL: its labels
/// (`hemostat.stop_timeout`, then autoheal's), else its own `StopTimeout`
/// (compose's `stop_grace_period`: a database given a minute to flush gets
/// its minute), else `fallback` (`--stop-timeout`).
pub fn stop_timeout(inspect: &ContainerInspectResponse, fallback: Duration) -> Duration {
    policy(inspect).policy.stop_timeout().unwrap_or(fallback)
}

pub fn name(inspect: &ContainerInspectResponse) -> Option<String> {
    inspect.name.as_deref().map(|n| n.trim_start_matches('/').to_owned())
}

pub fn is_running(inspect: &ContainerInspectResponse) -> bool {
    inspect.state.as_ref().and_then(|s| s.running).unwrap_or(false)
}

/// Docker's status (`running`, `exited`, ...), as `docker ps` says it.
pub fn state_text(inspect: &ContainerInspectResponse) -> String {
    inspect.state.as_ref().and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())
}

pub fn exit_code(inspect: &ContainerInspectResponse) -> i64 {
    inspect.state.as_ref().and_then(|s| s.exit_code).unwrap_or_default()
}

pub fn created(inspect: &ContainerInspectResponse) -> Option<DateTime<Utc>> {
    time(inspect.created.as_deref())
}

/// When the container's last run ended (None: it never ran, or runs).
pub fn finished_at(inspect: &ContainerInspectResponse) -> Option<DateTime<Utc>> {
    time(inspect.state.as_ref().and_then(|s| s.finished_at.as_deref()))
}

/// When the container's current run started (None: it never ran).
pub fn started_at(inspect: &ContainerInspectResponse) -> Option<DateTime<Utc>> {
    time(inspect.state.as_ref().and_then(|s| s.started_at.as_deref()))
}

/// Docker writes `0001-01-01T00:00:00Z` for a time that never was.
fn time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?).ok().map(|t| t.with_timezone(&Utc)).filter(|t| t.timestamp() > 0)
}

/// Docker's short id (12 hex digits), as `docker ps` shows it.
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerState;

    use super::*;

    fn state(running: bool, started_at: &str) -> ContainerInspectResponse {
        let state =
            ContainerState { running: Some(running), started_at: Some(started_at.into()), ..Default::default() };
        ContainerInspectResponse { state: Some(state), ..Default::default() }
    }

    #[test]
    fn a_call_the_engine_carried_out_before_it_went_away_is_not_made_again() {
        let began: DateTime<Utc> = "2026-12-06T14:00:00Z".parse().unwrap();
        let (before, after) = ("2026-12-06T13:59:59Z", "2026-12-06T14:00:01Z");
        assert!(carried_out(&state(true, after), Action::Restart, began));
        assert!(carried_out(&state(true, after), Action::Start, began));
        // Running since before the call: a restart not done yet.
        assert!(!carried_out(&state(true, before), Action::Restart, began));
        assert!(!carried_out(&state(false, after), Action::Start, began));
        assert!(carried_out(&state(false, before), Action::Stop, began));
        assert!(!carried_out(&state(true, before), Action::Stop, began));
    }

    #[test]
    fn only_a_missing_answer_or_a_task_being_restored_is_waited_out() {
        assert!(is_unreachable(&BollardError::RequestTimeoutError));
        assert!(is_unreachable(&BollardError::SocketNotFoundError("/var/run/docker.sock".into())));
        let refused = BollardError::DockerResponseServerError { status_code: 409, message: "conflict".into() };
        assert!(!is_unreachable(&refused) && !is_restoring(&refused));
        let restoring = BollardError::DockerResponseServerError {
            status_code: 500,
            message: "Cannot restart container web: task 0d1f already exists: unknown".into(),
        };
        assert!(is_restoring(&restoring) && !is_unreachable(&restoring));
        let shim = BollardError::DockerResponseServerError {
            status_code: 500,
            message: "Cannot restart container 2586a657da5c: failed to start shim: mkdir /run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/2586a657da5c: file exists: unknown".into(),
        };
        assert!(is_restoring(&shim) && !is_unreachable(&shim));
        let missing = BollardError::DockerResponseServerError {
            status_code: 500,
            message: "failed to create shim task: OCI runtime create failed: exec: \"/app\": no such file or directory"
                .into(),
        };
        assert!(!is_restoring(&missing));
    }

    #[tokio::test]
    async fn an_engine_that_never_answers_is_given_up_on_at_the_deadline() {
        // A socket file nobody listens on: every connection is refused.
        let path = std::env::temp_dir().join(format!("hemostat-no-engine-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let docker = Docker::connect_with_unix(path.to_str().unwrap(), 1, bollard::API_DEFAULT_VERSION).unwrap();
        let started = Instant::now();
        assert!(!wait_for_engine(&docker, started + Duration::from_millis(600)).await);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(3), "{took:?}");
        let _ = std::fs::remove_file(&path);
    }
}
