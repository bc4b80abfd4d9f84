//! `--once`: one JSON picture of every container on this host.

use bollard::{Docker, query_parameters::ListContainersOptions};
use hemostat_protocol::envelope::seed_timestamp;
use serde::Serialize;

use crate::{docker, error::CollectorError};

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub host: String,
    pub timestamp: String,
    pub docker_api: String,
    pub containers: Vec<ContainerState>,
}

#[derive(Debug, Serialize)]
pub struct ContainerState {
    pub name: String,
    pub id: String,
    pub image: Option<String>,
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_count: Option<i64>,
    pub oom_killed: bool,
}

pub async fn take(docker: &Docker, host: &str) -> Result<Snapshot, CollectorError> {
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await?;
    let mut containers = Vec::with_capacity(list.len());
    for summary in list {
        let Some(id) = summary.id else { continue };
        // Removed between list and inspect: not part of the picture.
        let Ok(inspect) = docker::inspect(docker, &id).await else {
            continue;
        };
        let state = inspect.state.as_ref();
        containers.push(ContainerState {
            name: docker::name(&inspect).unwrap_or_else(|| id.clone()),
            image: inspect.config.as_ref().and_then(|c| c.image.clone()),
            status: state.and_then(|s| s.status).map(|s| s.to_string()),
            health: state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map(|s| s.to_string()),
            exit_code: state.and_then(|s| s.exit_code),
            restart_count: inspect.restart_count,
            oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
            id,
        });
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Snapshot {
        host: host.to_owned(),
        timestamp: seed_timestamp(),
        docker_api: docker::api_version(docker),
        containers,
    })
}
