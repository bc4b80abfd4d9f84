//! `--once`: one JSON picture of every container on this host.

use std::time::{Duration, Instant};

use bollard::{Docker, query_parameters::ListContainersOptions};
use hemostat_protocol::envelope::seed_timestamp;
use serde::Serialize;

use super::{
    cgroup::{self, Probe, ReadBuffer, Roots},
    source::api_reading,
};
use crate::{
    docker,
    error::CollectorError,
    usage::{self, Timed, Usage, round2},
};

/// CPU is a rate: two readings this far apart make one sample.
const CPU_GAP: Duration = Duration::from_millis(200);

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
    /// Resource usage, for running containers.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Where one running container's readings come from.
enum Reader {
    /// Boxed: a probe holds open files, the API variant nothing.
    Cgroup(Box<Probe>),
    Api,
}

impl Reader {
    async fn read(&mut self, docker: &Docker, id: &str, buf: &mut ReadBuffer) -> Option<Timed> {
        match self {
            Reader::Cgroup(p) => match p.read(buf) {
                Ok(reading) => Some(Timed { reading, at: Instant::now() }),
                Err(_) => {
                    *self = Reader::Api;
                    api_reading(docker, id).await
                }
            },
            Reader::Api => api_reading(docker, id).await,
        }
    }
}

pub async fn take(docker: &Docker, host: &str, roots: &Roots) -> Result<Snapshot, CollectorError> {
    let list = docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await?;
    let version = roots.version();
    let host_memory = cgroup::host_memory(&roots.proc);
    let mut containers = Vec::with_capacity(list.len());
    let mut buf = ReadBuffer::default();
    // (index in containers, reader, first reading) of running containers.
    let mut running = Vec::new();
    for summary in list {
        let Some(id) = summary.id else { continue };
        // Removed between list and inspect: not part of the picture.
        let Ok(inspect) = docker::inspect(docker, &id).await else {
            continue;
        };
        let state = inspect.state.as_ref();
        if docker::is_running(&inspect) {
            let pid = state.and_then(|s| s.pid).and_then(|p| u32::try_from(p).ok()).filter(|p| *p > 0);
            let mut reader = match version.map(|v| Probe::open(roots, v, pid, &id)) {
                Some(Ok(p)) => Reader::Cgroup(Box::new(p)),
                _ => Reader::Api,
            };
            let first = reader.read(docker, &id, &mut buf).await;
            running.push((containers.len(), reader, first));
        }
        containers.push(ContainerState {
            name: docker::name(&inspect).unwrap_or_else(|| id.clone()),
            image: inspect.config.as_ref().and_then(|c| c.image.clone()),
            status: state.and_then(|s| s.status).map(|s| s.to_string()),
            health: state.and_then(|s| s.health.as_ref()).and_then(|h| h.status).map(|s| s.to_string()),
            exit_code: state.and_then(|s| s.exit_code),
            restart_count: inspect.restart_count,
            oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
            usage: None,
            id,
        });
    }
    if !running.is_empty() {
        tokio::time::sleep(CPU_GAP).await;
    }
    for (i, mut reader, first) in running {
        let id = containers[i].id.clone();
        if let Some(second) = reader.read(docker, &id, &mut buf).await {
            containers[i].usage = Some(rounded(usage::usage(first.as_ref(), &second, host_memory)));
        }
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Snapshot {
        host: host.to_owned(),
        timestamp: seed_timestamp(),
        docker_api: docker::api_version(docker),
        containers,
    })
}

/// The figures as the stats key shows them: percentages to two decimals.
fn rounded(u: Usage) -> Usage {
    Usage { cpu_pct: round2(u.cpu_pct), memory_pct: round2(u.memory_pct), ..u }
}
