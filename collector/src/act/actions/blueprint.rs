//! A container's own configuration as a create body: its `Config` and
//! `HostConfig` as inspect shows them, and its networks. The one place
//! that reads a container back into what creates it, for a replacement
//! (`recreate`, and a recreated parent's dependents) and a replica
//! (`scale_up`) alike; they differ in what belongs to the one container
//! only ([`Copy`]).

use std::collections::{HashMap, HashSet};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, Mount, MountType, NetworkingConfig,
};

use crate::docker;

/// What the new container is to the one it is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::act) enum Copy {
    /// It takes the old one's place: its hostname, static addresses and
    /// anonymous volumes (reattached by name, as compose does, so their
    /// data is not left behind) come along.
    Replacement,
    /// It runs beside it: those stay the original's.
    Replica,
}

/// A create body, and the networks to connect after the create (Docker
/// attaches one at create).
pub(in crate::act) struct Blueprint {
    pub body: ContainerCreateBody,
    pub more_networks: Vec<(String, EndpointSettings)>,
}

/// Whether a network mode joins another container's namespace: its
/// hostname, DNS, ports and networks are that container's.
fn joins_another(mode: &str) -> bool {
    mode.starts_with("container:")
}

/// `source`'s configuration on `image`, joining `network_mode` when given
/// (a dependent's new parent).
pub(in crate::act) fn blueprint(
    source: &ContainerInspectResponse,
    image: String,
    network_mode: Option<&str>,
    copy: Copy,
) -> Blueprint {
    let config = source.config.clone().unwrap_or_default();
    let mut host = source.host_config.clone().unwrap_or_default();
    if let Some(mode) = network_mode {
        host.network_mode = Some(mode.to_owned());
    }
    let mode = host.network_mode.clone().unwrap_or_default();
    let source_id = source.id.as_deref().unwrap_or_default();
    let joining = joins_another(&mode);
    // Docker's default hostname is the short id, and a container that
    // joins another's namespace is given that one's: neither is its own.
    let hostname = config
        .hostname
        .filter(|h| copy == Copy::Replacement && !joining && !h.is_empty() && !source_id.starts_with(h.as_str()));
    // Inspect shows legacy links as `/db:/web/db`; create takes `db:db`.
    host.links = host.links.map(|links| links.iter().filter_map(|l| create_link(l)).collect());
    if copy == Copy::Replacement {
        host.mounts = Some(with_anonymous_volumes(source, &host));
    }
    let (networking_config, more_networks) = networks(source, &mode, copy);
    let body = ContainerCreateBody {
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
    };
    Blueprint { body, more_networks }
}

fn create_link(link: &str) -> Option<String> {
    let (target, alias) = link.split_once(':')?;
    let alias = alias.rsplit('/').next()?;
    Some(format!("{}:{alias}", target.trim_start_matches('/')))
}

/// The source's networks, as create (first: the one its network mode
/// names) and connect (the others) want them: aliases kept, except those
/// naming the source itself (Docker adds the new container's own); for a
/// replacement, its static addresses too, which a replica cannot share.
fn networks(
    source: &ContainerInspectResponse,
    mode: &str,
    copy: Copy,
) -> (Option<NetworkingConfig>, Vec<(String, EndpointSettings)>) {
    // These modes have no endpoint of their own to configure.
    if matches!(mode, "none" | "host") || joins_another(mode) {
        return (None, Vec::new());
    }
    let first = match mode {
        "" | "default" => "bridge",
        m => m,
    };
    let own: Vec<String> = [source.id.as_deref().map(|id| docker::short(id).to_owned()), docker::name(source)]
        .into_iter()
        .flatten()
        .collect();
    let mut all: Vec<(String, EndpointSettings)> = source
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(net, ep)| {
            let aliases: Vec<String> =
                ep.aliases.unwrap_or_default().into_iter().filter(|a| !own.contains(a)).collect();
            let keep = copy == Copy::Replacement;
            let settings = EndpointSettings {
                // The default bridge takes no aliases.
                aliases: (!aliases.is_empty() && net != "bridge").then_some(aliases),
                links: ep.links,
                driver_opts: ep.driver_opts,
                ipam_config: ep.ipam_config.filter(|_| keep),
                gw_priority: ep.gw_priority.filter(|_| keep),
                ..Default::default()
            };
            (net, settings)
        })
        .collect();
    all.sort_by(|a, b| (a.0 != first).cmp(&(b.0 != first)).then(a.0.cmp(&b.0)));
    let mut rest = all.into_iter();
    let first = rest.next().map(|(net, ep)| NetworkingConfig { endpoints_config: Some(HashMap::from([(net, ep)])) });
    (first, rest.collect())
}

/// `host`'s mounts, plus the source's anonymous volumes (those its binds
/// and mounts do not name), by name.
fn with_anonymous_volumes(source: &ContainerInspectResponse, host: &HostConfig) -> Vec<Mount> {
    let mut mounts = host.mounts.clone().unwrap_or_default();
    let mut covered: HashSet<String> = mounts.iter().filter_map(|m| m.target.clone()).collect();
    for bind in host.binds.iter().flatten() {
        if let Some(target) = bind.split(':').nth(1) {
            covered.insert(target.to_owned());
        }
    }
    for m in source.mounts.iter().flatten() {
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

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerConfig, EndpointIpamConfig, MountPoint, NetworkSettings};

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
                            aliases: Some(vec!["web".into(), "0123456789ab".into(), "app".into()]),
                            ipam_config: Some(EndpointIpamConfig {
                                ipv4_address: Some("10.5.0.9".into()),
                                ..Default::default()
                            }),
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
    fn a_replacement_keeps_the_old_containers_configuration() {
        let Blueprint { body, more_networks } =
            blueprint(&old("front"), "busybox:latest".into(), None, Copy::Replacement);
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
        assert_eq!(endpoints["front"].aliases, Some(vec!["web".into()]), "the old id's and name's are Docker's own");
        let address = endpoints["front"].ipam_config.as_ref().and_then(|c| c.ipv4_address.as_deref());
        assert_eq!(address, Some("10.5.0.9"), "a replacement keeps its static address");
        assert_eq!(more_networks.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["back"]);
    }

    #[test]
    fn a_replica_leaves_what_is_the_originals_alone() {
        let mut source = old("front");
        source.config.as_mut().unwrap().hostname = Some("web1".into());
        let Blueprint { body, .. } = blueprint(&source, "sha256:1".into(), None, Copy::Replica);
        assert_eq!(body.hostname, None);
        let host = body.host_config.unwrap();
        assert_eq!(host.mounts, None, "a replica gets anonymous volumes of its own");
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints["front"].ipam_config, None, "two containers cannot share an address");
        // A replacement keeps a hostname of its own.
        let Blueprint { body, .. } = blueprint(&source, "sha256:1".into(), None, Copy::Replacement);
        assert_eq!(body.hostname.as_deref(), Some("web1"));
    }

    #[test]
    fn a_dependent_is_created_in_its_new_parents_namespace() {
        let new_parent = format!("container:{}", "f".repeat(64));
        let b = blueprint(&old("container:old-parent-id"), "busybox".into(), Some(&new_parent), Copy::Replacement);
        let host = b.body.host_config.as_ref().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some(new_parent.as_str()));
        assert_eq!(b.body.hostname, None);
        assert_eq!(b.body.exposed_ports, None, "ports are the parent's: Docker refuses them here");
        assert!(b.body.networking_config.is_none() && b.more_networks.is_empty());
        assert_eq!(create_link("/db:/web/db").as_deref(), Some("db:db"));
        assert_eq!(create_link("nonsense"), None);
    }
}
