//! `scale_up`: one more replica of a container's service.
//!
//! The replica is created from the source's inspect ([`blueprint`]): same image (by id, so
//! a tag moved since cannot change what runs), command, entrypoint, env,
//! labels, mounts and binds, limits, restart policy and network mode. Two
//! things change on purpose: the name (compose-style `<project>-<service>-<n>`
//! with the next free number when the compose labels are present, else
//! `<name>-hemostat-<n>`), and fixed host ports, which a second container
//! cannot bind, become ephemeral. The hostname is not copied either: Docker
//! gives each container its own.

use std::collections::HashSet;

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::{ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, NetworkConnectRequest},
    query_parameters::{CreateContainerOptions, ListContainersOptions, StartContainerOptions},
};
use hemostat_protocol::policy::{COMPOSE_NUMBER_LABEL, COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL};

use hemostat_protocol::Command;
use tokio_util::sync::CancellationToken;

use super::blueprint::{Blueprint, Copy, blueprint};

use crate::{
    act::{outcome::Outcome, target::Context, verify},
    docker,
    error::CollectorError,
};

/// On every replica HemoStat creates: the container it was cloned from
/// (the original, also when cloning a replica), for naming and audit.
pub const LABEL_REPLICA_OF: &str = "hemostat.replica_of";
/// Name conflicts (a racing `docker run` or scale) retried this often.
const NAME_ATTEMPTS: usize = 5;

/// `scale_up` as the executor runs it: the replica planned from the
/// target, created and started, then watched like any fix; refused once
/// the service has `max_replicas` containers (a scale-up that does not
/// help must not fill the host).
pub(in crate::act) async fn run(
    cx: &Context,
    max_replicas: usize,
    cmd: &Command,
    cancel: &CancellationToken,
) -> Outcome {
    let target = match cx.target(cmd).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let plan = match plan(&cx.docker, &target.inspect).await {
        Ok(p) => p,
        Err(e) => return Outcome::failed(docker::error_text(&e)),
    };
    if plan.members >= max_replicas {
        return Outcome::rejected(format!(
            "replica cap: {} already has {} containers (HEMOSTAT_SCALE_MAX_REPLICAS={max_replicas})",
            target.name, plan.members
        ));
    }
    if cmd.dry_run {
        return Outcome::dry_run(format!(
            "would create and start replica {} of {} (image {})",
            plan.name,
            target.name,
            plan.image()
        ));
    }
    tracing::info!(container = %target.name, replica = %plan.name, command_id = %cmd.id, "scaling up");
    cx.acted(&target);
    let replica = match create(&cx.docker, plan).await {
        Ok(r) => r,
        Err(e) => return Outcome::failed(docker::error_text(&e)),
    };
    let created = format!("created replica {} ({}) of {}", replica.name, docker::short(&replica.id), target.name);
    let watched = verify::watch(&cx.docker, &replica.id, cx.verify_window, cancel).await;
    let outcome = watched.into_outcome();
    let details = format!("{created}; {}", outcome.details.as_deref().unwrap_or(""));
    outcome.details(details)
}

/// What [`create`] will do; built without touching anything, so a dry run
/// can report the exact name.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// Containers the service has now (the source and its replicas).
    pub members: usize,
    naming: Naming,
    number: u64,
    body: ContainerCreateBody,
    /// Networks beyond the first: Docker attaches one at create.
    more_networks: Vec<(String, EndpointSettings)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Naming {
    Compose { project: String, service: String },
    Clone { base: String },
}

impl Naming {
    fn name(&self, n: u64) -> String {
        match self {
            Naming::Compose { project, service } => format!("{project}-{service}-{n}"),
            Naming::Clone { base } => format!("{base}-hemostat-{n}"),
        }
    }
}

pub struct Replica {
    pub id: String,
    pub name: String,
}

impl Plan {
    pub fn image(&self) -> &str {
        self.body.image.as_deref().unwrap_or("?")
    }
}

async fn plan(docker: &Docker, source: &ContainerInspectResponse) -> Result<Plan, CollectorError> {
    let config = source.config.clone().unwrap_or_default();
    let mut labels = config.labels.clone().unwrap_or_default();
    let name = docker::name(source).unwrap_or_default();
    let naming = match (labels.get(COMPOSE_PROJECT_LABEL), labels.get(COMPOSE_SERVICE_LABEL)) {
        (Some(p), Some(s)) if !p.is_empty() && !s.is_empty() => {
            Naming::Compose { project: p.clone(), service: s.clone() }
        }
        _ => Naming::Clone { base: labels.get(LABEL_REPLICA_OF).cloned().unwrap_or_else(|| name.clone()) },
    };
    let existing = docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await?;
    let names: HashSet<String> =
        existing.iter().flat_map(|c| c.names.iter().flatten()).map(|n| n.trim_start_matches('/').to_owned()).collect();
    let highest = match &naming {
        // Compose numbers its containers; the next one follows the highest
        // in use by the service, wherever it came from.
        Naming::Compose { project, service } => existing
            .iter()
            .filter_map(|c| c.labels.as_ref())
            .filter(|l| l.get(COMPOSE_PROJECT_LABEL) == Some(project) && l.get(COMPOSE_SERVICE_LABEL) == Some(service))
            .filter_map(|l| l.get(COMPOSE_NUMBER_LABEL)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0),
        Naming::Clone { .. } => 0,
    };
    let number = next_free(&naming, highest + 1, &names);
    let members = existing
        .iter()
        .filter_map(|c| c.labels.as_ref().map(|l| (c, l)))
        .filter(|(c, l)| match &naming {
            Naming::Compose { project, service } => {
                l.get(COMPOSE_PROJECT_LABEL) == Some(project) && l.get(COMPOSE_SERVICE_LABEL) == Some(service)
            }
            Naming::Clone { base } => {
                l.get(LABEL_REPLICA_OF) == Some(base)
                    || c.names.iter().flatten().any(|n| n.trim_start_matches('/') == base)
            }
        })
        .count()
        .max(1);
    labels.insert(
        LABEL_REPLICA_OF.to_owned(),
        match &naming {
            Naming::Clone { base } => base.clone(),
            Naming::Compose { .. } => labels.get(LABEL_REPLICA_OF).cloned().unwrap_or_else(|| name.clone()),
        },
    );
    if matches!(naming, Naming::Compose { .. }) {
        labels.insert(COMPOSE_NUMBER_LABEL.to_owned(), number.to_string());
    }

    let image = source.image.clone().or(config.image).unwrap_or_default();
    let Blueprint { mut body, more_networks } = blueprint(source, image, None, Copy::Replica);
    body.labels = Some(labels);
    body.host_config = body.host_config.map(ephemeral_ports);
    Ok(Plan { name: naming.name(number), members, naming, number, body, more_networks })
}

fn next_free(naming: &Naming, from: u64, names: &HashSet<String>) -> u64 {
    let mut n = from.max(1);
    while names.contains(&naming.name(n)) {
        n += 1;
    }
    n
}

/// Fixed host ports would make the replica fail to start ("port is already
/// allocated"); an empty host port lets Docker pick one.
fn ephemeral_ports(mut host: HostConfig) -> HostConfig {
    for bindings in host.port_bindings.iter_mut().flat_map(|m| m.values_mut()).flatten() {
        for b in bindings.iter_mut() {
            b.host_port = Some(String::new());
        }
    }
    host
}

/// Creates, connects and starts the replica.
async fn create(docker: &Docker, mut plan: Plan) -> Result<Replica, CollectorError> {
    let mut attempt = 1;
    let created = loop {
        let options = CreateContainerOptions { name: Some(plan.name.clone()), ..Default::default() };
        match docker.create_container(Some(options), plan.body.clone()).await {
            Ok(c) => break c,
            // Someone took the name since the plan: try the next number.
            Err(BollardError::DockerResponseServerError { status_code: 409, .. }) if attempt < NAME_ATTEMPTS => {
                attempt += 1;
                plan.number += 1;
                plan.name = plan.naming.name(plan.number);
                if let (Naming::Compose { .. }, Some(labels)) = (&plan.naming, plan.body.labels.as_mut()) {
                    labels.insert(COMPOSE_NUMBER_LABEL.to_owned(), plan.number.to_string());
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    for w in &created.warnings {
        tracing::warn!(replica = %plan.name, warning = %w, "docker warned creating the replica");
    }
    for (net, ep) in plan.more_networks {
        let request = NetworkConnectRequest { container: created.id.clone(), endpoint_config: Some(ep) };
        docker.connect_network(&net, request).await?;
    }
    docker.start_container(&created.id, None::<StartContainerOptions>).await?;
    Ok(Replica { id: created.id, name: plan.name })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn names_skip_numbers_in_use() {
        let compose = Naming::Compose { project: "shop".into(), service: "web".into() };
        let names: HashSet<String> = ["shop-web-3".to_owned()].into();
        assert_eq!(next_free(&compose, 3, &names), 4);
        assert_eq!(compose.name(4), "shop-web-4");
        let clone = Naming::Clone { base: "api".into() };
        assert_eq!(next_free(&clone, 1, &["api-hemostat-1".to_owned()].into()), 2);
    }

    #[test]
    fn fixed_host_ports_become_ephemeral() {
        let mut ports = HashMap::new();
        ports.insert(
            "80/tcp".to_owned(),
            Some(vec![bollard::models::PortBinding {
                host_ip: Some("0.0.0.0".into()),
                host_port: Some("8080".into()),
            }]),
        );
        let host = ephemeral_ports(HostConfig { port_bindings: Some(ports), ..Default::default() });
        let b = &host.port_bindings.unwrap()["80/tcp"].clone().unwrap()[0];
        assert_eq!((b.host_ip.as_deref(), b.host_port.as_deref()), (Some("0.0.0.0"), Some("")));
    }
}
