//! The one way HemoStat recreates a container: a fresh container from the
//! old one's own configuration (its `Config` and `HostConfig` as inspect
//! shows them, its networks, its anonymous volumes), under the same name,
//! in place of the old one. Used by the `recreate` action and for the
//! namespace dependents of a recreated parent, which differ only in the
//! `network_mode` they are given (`container:<the new parent's id>`).
//!
//! The old container is never lost: it is renamed aside first, and only
//! removed once the new one has started and held for the verification
//! window. If the create, the start or the verification fails, the new
//! one is removed and the old one gets its name back (and is started
//! again if it ran).

use std::{collections::HashSet, time::Duration};

use bollard::{
    Docker,
    models::{
        ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, Mount, MountType,
        NetworkConnectRequest, NetworkingConfig,
    },
    query_parameters::{CreateContainerOptions, RemoveContainerOptions, RenameContainerOptions},
};
use hemostat_protocol::Action;
use tokio_util::sync::CancellationToken;

use crate::{
    act::{outcome::Outcome, verify},
    docker,
    error::CollectorError,
    inflight::InFlight,
};

/// What a replacement needs besides the container.
pub(in crate::act) struct Replacement<'a> {
    pub docker: &'a Docker,
    pub inflight: &'a InFlight,
    /// For the old container's stop, when it says nothing of its own.
    pub stop_timeout: Duration,
    pub verify_window: Duration,
    pub cancel: &'a CancellationToken,
}

/// A replacement that held: the new container's id, and its verification.
pub(in crate::act) struct Replaced {
    pub id: String,
    pub outcome: Outcome,
}

/// The name the old container waits under while its replacement starts.
fn aside_name(name: &str, old_id: &str) -> String {
    format!("{name}-hemostat-replaced-{}", docker::short(old_id))
}

/// Whether a network mode joins another container's namespace: its
/// hostname, DNS, ports and networks are that container's.
fn joins_another(mode: &str) -> bool {
    mode.starts_with("container:")
}

/// The network a container is created on by its `network_mode`: a named
/// one (`bridge`, a user-defined network), None for `host`, `none`,
/// `container:<id>`.
fn own_network(mode: &str) -> Option<&str> {
    match mode {
        "" | "default" => Some("bridge"),
        "host" | "none" => None,
        m if joins_another(m) => None,
        m => Some(m),
    }
}

/// The create body for a fresh container with `old`'s configuration, on
/// `image`, joining `network_mode` when given (a dependent's new parent).
/// The networks beyond the first are connected after the create
/// ([`extra_networks`]).
fn create_body(old: &ContainerInspectResponse, image: String, network_mode: Option<&str>) -> ContainerCreateBody {
    let config = old.config.clone().unwrap_or_default();
    let mut host = old.host_config.clone().unwrap_or_default();
    if let Some(mode) = network_mode {
        host.network_mode = Some(mode.to_owned());
    }
    let mode = host.network_mode.clone().unwrap_or_default();
    let old_id = old.id.as_deref().unwrap_or_default();
    let joining = joins_another(&mode);
    // Docker's default hostname is the short id, and a container that
    // joins another's namespace is given that one's: neither is its own.
    let hostname = config.hostname.filter(|h| !joining && !h.is_empty() && !old_id.starts_with(h.as_str()));
    // Inspect shows legacy links as `/db:/web/db`; create takes `db:db`.
    host.links = host.links.map(|links| links.iter().filter_map(|l| create_link(l)).collect());
    host.mounts = Some(with_anonymous_volumes(old, &host));
    let networking_config = own_network(&mode).and_then(|net| {
        let endpoint = old.network_settings.as_ref()?.networks.as_ref()?.get(net)?;
        Some(NetworkingConfig {
            endpoints_config: Some([(net.to_owned(), endpoint_for(endpoint, net, old_id))].into()),
        })
    });
    ContainerCreateBody {
        hostname,
        domainname: config.domainname.filter(|_| !joining),
        user: config.user,
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        // The image's own ports are in the inspected config too; Docker
        // refuses them with a joined namespace (they are the parent's).
        exposed_ports: config.exposed_ports.filter(|_| !joining),
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: config.env,
        cmd: config.cmd,
        healthcheck: config.healthcheck,
        args_escaped: config.args_escaped,
        image: Some(image),
        volumes: config.volumes,
        working_dir: config.working_dir,
        entrypoint: config.entrypoint,
        network_disabled: config.network_disabled,
        on_build: config.on_build,
        labels: config.labels,
        stop_signal: config.stop_signal,
        stop_timeout: config.stop_timeout,
        shell: config.shell,
        host_config: Some(host),
        networking_config,
    }
}

fn create_link(link: &str) -> Option<String> {
    let (target, alias) = link.split_once(':')?;
    let alias = alias.rsplit('/').next()?;
    Some(format!("{}:{alias}", target.trim_start_matches('/')))
}

/// The old container's endpoint on `net`, as a create or connect asks for
/// it: its aliases (without the old id's, which Docker adds itself), its
/// static addresses, links and driver options.
fn endpoint_for(old: &EndpointSettings, net: &str, old_id: &str) -> EndpointSettings {
    let aliases = old
        .aliases
        .clone()
        .map(|a| a.into_iter().filter(|alias| !old_id.starts_with(alias.as_str())).collect::<Vec<_>>())
        .filter(|a| !a.is_empty() && net != "bridge");
    EndpointSettings {
        ipam_config: old.ipam_config.clone(),
        links: old.links.clone(),
        aliases,
        driver_opts: old.driver_opts.clone(),
        gw_priority: old.gw_priority,
        ..Default::default()
    }
}

/// The networks the old container was attached to besides the one it is
/// created on, with their endpoints.
fn extra_networks(old: &ContainerInspectResponse, mode: &str) -> Vec<(String, EndpointSettings)> {
    if own_network(mode).is_none() {
        return Vec::new();
    }
    let first = own_network(mode);
    let old_id = old.id.as_deref().unwrap_or_default();
    let mut nets: Vec<(String, EndpointSettings)> = old
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .into_iter()
        .flatten()
        .filter(|(net, _)| Some(net.as_str()) != first)
        .map(|(net, e)| (net.clone(), endpoint_for(e, net, old_id)))
        .collect();
    nets.sort_by(|a, b| a.0.cmp(&b.0));
    nets
}

/// `host`'s mounts, plus the old container's anonymous volumes (those its
/// binds and mounts do not name): reattached by name, as compose does, so
/// their data is not left behind in a volume nobody uses.
fn with_anonymous_volumes(old: &ContainerInspectResponse, host: &HostConfig) -> Vec<Mount> {
    let mut mounts = host.mounts.clone().unwrap_or_default();
    let mut covered: HashSet<String> = mounts.iter().filter_map(|m| m.target.clone()).collect();
    for bind in host.binds.iter().flatten() {
        if let Some(target) = bind.split(':').nth(1) {
            covered.insert(target.to_owned());
        }
    }
    for m in old.mounts.iter().flatten() {
        let (Some("volume"), Some(name), Some(target)) = (m.typ.as_deref(), &m.name, &m.destination) else {
            continue;
        };
        if covered.insert(target.clone()) {
            mounts.push(Mount {
                target: Some(target.clone()),
                source: Some(name.clone()),
                typ: Some(MountType::VOLUME),
                read_only: m.rw.map(|rw| !rw),
                ..Default::default()
            });
        }
    }
    mounts
}

impl Replacement<'_> {
    /// Replaces `old` with a fresh container of its configuration, joining
    /// `network_mode` if given. Err: the failure, with the old container
    /// back under its name.
    pub async fn replace(
        &self,
        old: &ContainerInspectResponse,
        network_mode: Option<&str>,
    ) -> Result<Replaced, Outcome> {
        let old_id = old.id.clone().unwrap_or_default();
        let name = docker::name(old).unwrap_or_default();
        if old_id.is_empty() || name.is_empty() {
            return Err(Outcome::failed("the container has no id or name to recreate it by"));
        }
        let aside = aside_name(&name, &old_id);
        let was_running = docker::is_running(old);
        let image = self.image(old).await;
        let body = create_body(old, image, network_mode);
        let mode = body.host_config.as_ref().and_then(|h| h.network_mode.clone()).unwrap_or_default();
        // Its stop, start and the new container's are HemoStat's own: no
        // crash to report, no parent restarted by someone else.
        let _window = self.inflight.begin([old_id.clone(), name.clone(), aside.clone()]);
        let d = self.docker;
        tracing::info!(container = %name, old = docker::short(&old_id), network_mode = %mode, "recreating from its own configuration");
        d.rename_container(&old_id, RenameContainerOptions { name: aside.clone() })
            .await
            .map_err(|e| Outcome::failed(format!("could not rename it aside: {}", text(e))))?;
        let created = d
            .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
            .await;
        let new_id = match created {
            Ok(c) => c.id,
            Err(e) => {
                return Err(self.put_back(&old_id, &name, None, false, format!("create failed: {}", text(e))).await);
            }
        };
        for (net, endpoint) in extra_networks(old, &mode) {
            let connect = NetworkConnectRequest { container: new_id.clone(), endpoint_config: Some(endpoint) };
            if let Err(e) = d.connect_network(&net, connect).await {
                let why = format!("could not attach it to network {net}: {}", text(e));
                return Err(self.put_back(&old_id, &name, Some(&new_id), false, why).await);
            }
        }
        if was_running {
            let timeout = docker::stop_timeout(old, self.stop_timeout);
            if let Err(e) = docker::apply(d, &old_id, Action::Stop, timeout).await {
                let why = format!("could not stop the old container: {e}");
                return Err(self.put_back(&old_id, &name, Some(&new_id), false, why).await);
            }
        }
        if let Err(e) = docker::apply(d, &new_id, Action::Start, self.stop_timeout).await {
            let why = format!("start failed: {e}");
            return Err(self.put_back(&old_id, &name, Some(&new_id), was_running, why).await);
        }
        let outcome = verify::watch(d, &new_id, self.verify_window, self.cancel).await.into_outcome();
        if outcome.verified == Some(false) {
            let why = format!("the new container did not hold: {}", outcome.error.unwrap_or_default());
            return Err(self.put_back(&old_id, &name, Some(&new_id), was_running, why).await);
        }
        // Its anonymous volumes now belong to the new container: kept.
        let removed = d.remove_container(&old_id, Some(RemoveContainerOptions { v: false, force: true, link: false }));
        let verified = outcome.details.clone().unwrap_or_default();
        let details = match removed.await {
            Ok(()) => format!("recreated as {}; {verified}", docker::short(&new_id)),
            Err(e) => {
                tracing::warn!(container = %name, old = %aside, error = %text(e), "could not remove the replaced container");
                format!("recreated as {}; the old one is left as {aside}; {verified}", docker::short(&new_id))
            }
        };
        tracing::info!(container = %name, new = docker::short(&new_id), "recreated");
        Ok(Replaced { id: new_id, outcome: outcome.details(details) })
    }

    /// The image the old container runs: by the name it was created with
    /// while that name still points at the same image (what `docker ps`
    /// shows), else by the image's id (a recreate is not an update).
    async fn image(&self, old: &ContainerInspectResponse) -> String {
        let id = old.image.clone().unwrap_or_default();
        let Some(named) = docker::image(old).filter(|n| !n.is_empty()) else { return id };
        match self.docker.inspect_image(&named).await {
            Ok(i) if i.id.as_deref() == Some(id.as_str()) || id.is_empty() => named,
            _ => id,
        }
    }

    /// Undoes a replacement that failed: the new container (if made) is
    /// removed, the old one gets its name back and, if it ran, is started
    /// again. The outcome says what failed and what was put back.
    async fn put_back(
        &self,
        old_id: &str,
        name: &str,
        new_id: Option<&str>,
        restart_old: bool,
        why: String,
    ) -> Outcome {
        tracing::warn!(container = %name, why = %why, "recreate failed: putting the old container back");
        let d = self.docker;
        let mut problems = Vec::new();
        if let Some(new_id) = new_id
            && let Err(e) =
                d.remove_container(new_id, Some(RemoveContainerOptions { v: false, force: true, link: false })).await
        {
            problems.push(format!("could not remove the new container: {}", text(e)));
        }
        if let Err(e) = d.rename_container(old_id, RenameContainerOptions { name: name.to_owned() }).await {
            problems.push(format!("could not give the old container its name back: {}", text(e)));
        }
        if restart_old && let Err(e) = docker::apply(d, old_id, Action::Start, self.stop_timeout).await {
            problems.push(format!("could not start the old container again: {e}"));
        }
        match problems.is_empty() {
            true => Outcome::failed(format!("{why}; the old container was put back")),
            false => Outcome::failed(format!("{why}; {}", problems.join("; "))),
        }
    }
}

fn text(e: bollard::errors::Error) -> String {
    docker::error_text(&CollectorError::from(e))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerConfig, MountPoint, NetworkSettings};

    use super::*;

    const OLD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn old(mode: &str) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(OLD.into()),
            name: Some("/app".into()),
            config: Some(ContainerConfig {
                hostname: Some("0123456789ab".into()),
                env: Some(vec!["A=1".into()]),
                labels: Some(HashMap::from([("hemostat.enable".into(), "true".into())])),
                exposed_ports: Some(vec!["80/tcp".into()]),
                image: Some("busybox:latest".into()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some(mode.into()),
                binds: Some(vec!["/srv/app:/data:ro".into()]),
                links: Some(vec!["/db:/app/db".into()]),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    typ: Some("bind".into()),
                    source: Some("/srv/app".into()),
                    destination: Some("/data".into()),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("volume".into()),
                    name: Some("f00d".into()),
                    destination: Some("/cache".into()),
                    rw: Some(true),
                    ..Default::default()
                },
            ]),
            network_settings: Some(NetworkSettings {
                networks: Some(HashMap::from([
                    (
                        "front".into(),
                        EndpointSettings {
                            aliases: Some(vec!["app".into(), "0123456789ab".into()]),
                            ..Default::default()
                        },
                    ),
                    ("back".into(), EndpointSettings::default()),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_new_container_keeps_the_old_ones_configuration() {
        let body = create_body(&old("front"), "busybox:latest".into(), None);
        assert_eq!(body.env, Some(vec!["A=1".into()]));
        assert_eq!(body.labels.as_ref().and_then(|l| l.get("hemostat.enable")).map(String::as_str), Some("true"));
        assert_eq!(body.hostname, None, "the default hostname is the old id's: Docker gives the new its own");
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".into()]));
        let host = body.host_config.unwrap();
        assert_eq!(host.binds, Some(vec!["/srv/app:/data:ro".into()]));
        assert_eq!(host.links, Some(vec!["db:db".into()]));
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts.len(), 1, "the bind is in Binds; the anonymous volume is reattached: {mounts:?}");
        assert_eq!((mounts[0].source.as_deref(), mounts[0].target.as_deref()), (Some("f00d"), Some("/cache")));
        assert_eq!(mounts[0].read_only, Some(false));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints["front"].aliases, Some(vec!["app".into()]), "the old id's alias is Docker's own");
        let extra = extra_networks(&old("front"), "front");
        assert_eq!(extra.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["back"]);
    }

    #[test]
    fn a_dependent_is_created_in_its_new_parents_namespace() {
        let new_parent = format!("container:{}", "f".repeat(64));
        let body = create_body(&old("container:old-parent-id"), "busybox".into(), Some(&new_parent));
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some(new_parent.as_str()));
        assert_eq!(body.hostname, None);
        assert_eq!(body.exposed_ports, None, "ports are the parent's: Docker refuses them here");
        assert!(body.networking_config.is_none());
        assert!(extra_networks(&old("container:x"), &new_parent).is_empty());
        // A hostname of its own is kept where it may be.
        let mut own = old("bridge");
        own.config.as_mut().unwrap().hostname = Some("web1".into());
        assert_eq!(create_body(&own, "busybox".into(), None).hostname.as_deref(), Some("web1"));
    }

    #[test]
    fn the_old_container_waits_under_a_name_of_its_own() {
        assert_eq!(aside_name("app", OLD), "app-hemostat-replaced-0123456789ab");
        assert_eq!(create_link("/db:/web/db").as_deref(), Some("db:db"));
        assert_eq!(create_link("nonsense"), None);
        assert_eq!(own_network("default"), Some("bridge"));
        assert_eq!(own_network("host"), None);
    }
}
