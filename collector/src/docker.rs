//! The Docker connection, what the collector reads from inspect (facts and
//! the container's policy), and the
//! short ids its reports name containers and images by.

use bollard::{Docker, models::ContainerInspectResponse, query_parameters::InspectContainerOptions};
use hemostat_protocol::policy::{Policy, Resolved};

use crate::{detector::Facts, error::CollectorError};

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

pub fn facts(inspect: &ContainerInspectResponse) -> Facts {
    Facts {
        oom_killed: inspect.state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false),
        image: inspect.config.as_ref().and_then(|c| c.image.clone()),
        labels: inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default(),
    }
}

/// The container's policy from its labels and its own `StopTimeout`.
pub fn policy(inspect: &ContainerInspectResponse) -> Resolved {
    let own = inspect.config.as_ref().and_then(|c| c.stop_timeout);
    Policy::from_labels(&facts(inspect).labels, own)
}

pub fn name(inspect: &ContainerInspectResponse) -> Option<String> {
    inspect.name.as_deref().map(|n| n.trim_start_matches('/').to_owned())
}

pub fn is_running(inspect: &ContainerInspectResponse) -> bool {
    inspect.state.as_ref().and_then(|s| s.running).unwrap_or(false)
}

/// Docker's short id (12 hex digits), as `docker ps` shows it.
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}
