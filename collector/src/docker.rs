//! The Docker connection, the one restart/stop/start call, what the
//! collector reads from inspect (labels, times, state and the container's
//! policy), and the short ids its reports name containers and images by.

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
    policy::{Policy, Resolved},
};

use crate::error::CollectorError;

/// Connects and negotiates the API version down to the engine's: bollard
/// speaks a newer API than older engines (Docker 20.10 is 1.41) accept.
pub async fn connect(docker_host: &str) -> Result<Docker, CollectorError> {
    let docker = Docker::connect_with_host(docker_host)?;
    Ok(docker.negotiate_version().await?)
}

pub fn api_version(docker: &Docker) -> String {
    let v = docker.client_version();
    format!("{}.{}", v.major_version, v.minor_version)
}

pub async fn inspect(docker: &Docker, container: &str) -> Result<ContainerInspectResponse, CollectorError> {
    Ok(docker.inspect_container(container, None::<InspectContainerOptions>).await?)
}

/// Docker's restart, stop or start of container `id`, stops waiting
/// `timeout` before the SIGKILL; Err: Docker's own message. The one call
/// behind every restart, stop and start HemoStat makes: the target's, and
/// its dependents' after it.
pub async fn apply(docker: &Docker, id: &str, action: Action, timeout: Duration) -> Result<(), String> {
    let t = Some(timeout.as_secs_f64().ceil() as i32);
    let done = match action {
        Action::Restart => docker.restart_container(id, Some(RestartContainerOptions { t, signal: None })).await,
        Action::Stop => docker.stop_container(id, Some(StopContainerOptions { t, signal: None })).await,
        _ => docker.start_container(id, None::<StartContainerOptions>).await,
    };
    match done {
        // 304: already in the requested state, which is the goal.
        Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
        Err(e) => Err(error_text(&CollectorError::from(e))),
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
