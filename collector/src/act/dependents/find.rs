//! Finding a container's dependents at action time, never from a cache:
//! one list of every container (its summary carries
//! `HostConfig.NetworkMode` and the compose labels), then an inspect of each
//! one that follows the parent, level by level.

use std::collections::HashSet;

use bollard::{Docker, models::ContainerInspectResponse, query_parameters::ListContainersOptions};
use hemostat_protocol::policy::{ActionPolicy, COMPOSE_DEPENDS_ON_LABEL, COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL};

use super::dependent::{Dependent, Tie};
use crate::{
    docker,
    error::CollectorError,
    namespace::{MAX_DEPTH, joins},
    scope::Scope,
};

/// A container as the list shows it: enough to tell whose namespace it
/// joins, and which compose services it follows.
#[derive(Default)]
struct Listed {
    id: String,
    name: String,
    mode: String,
    /// Its compose project and service, and its `depends_on` label.
    project: Option<String>,
    service: Option<String>,
    depends_on: String,
}

/// Whether compose restarts a container with this `depends_on` label after
/// `service` restarts: an entry `service:condition:true`. `Some(healthy)`:
/// it does, waiting for `service` to be healthy first when the condition
/// is `service_healthy`.
fn restarts_after(depends_on: &str, service: &str) -> Option<bool> {
    depends_on.split(',').find_map(|entry| {
        let mut parts = entry.trim().split(':');
        let (name, condition, restart) = (parts.next()?, parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        (name == service && restart.eq_ignore_ascii_case("true")).then_some(condition == "service_healthy")
    })
}

/// How `c` follows `owner`, if it does.
fn tie(c: &Listed, owner: &Listed) -> Option<Tie> {
    if joins(&c.mode, &owner.id, &owner.name) {
        return Some(Tie::Namespace);
    }
    let same_project = c.project.is_some() && c.project == owner.project;
    let healthy = owner.service.as_deref().filter(|_| same_project).and_then(|s| restarts_after(&c.depends_on, s))?;
    Some(Tie::Compose { healthy })
}

/// A dependent found in the list: `at` its index there, `via` the index
/// (in the links found before it) of the dependent it joins, None for the
/// parent itself.
#[derive(Debug, PartialEq)]
struct Link {
    at: usize,
    via: Option<usize>,
    depth: usize,
    tie: Tie,
}

/// Level by level from the parent, each container at most once (a cycle,
/// which Docker does not allow anyway, cannot loop), at most [`MAX_DEPTH`]
/// levels deep.
fn chain(listed: &[Listed], parent_id: &str, parent_name: &str) -> Vec<Link> {
    let mut links: Vec<Link> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::from([parent_id]);
    let mut level = 0..0;
    // The parent as the list shows it (its compose labels), or as named.
    let named = Listed { id: parent_id.to_owned(), name: parent_name.to_owned(), ..Default::default() };
    let parent = listed.iter().find(|c| c.id == parent_id).unwrap_or(&named);
    for depth in 1..=MAX_DEPTH {
        let owners: Vec<(Option<usize>, &Listed)> = match depth {
            1 => vec![(None, parent)],
            _ => level.clone().map(|i| (Some(i), &listed[links[i].at])).collect(),
        };
        let begun = links.len();
        for (at, c) in listed.iter().enumerate() {
            if seen.contains(c.id.as_str()) {
                continue;
            }
            if let Some((via, tie)) = owners.iter().find_map(|(via, owner)| Some((*via, tie(c, owner)?))) {
                seen.insert(&c.id);
                links.push(Link { at, via, depth, tie });
            }
        }
        if links.len() == begun {
            break;
        }
        level = begun..links.len();
    }
    links
}

/// Why a dependent must be left alone, if it must: out of scope, or its
/// owner allows no action on it.
fn left_alone(inspect: &ContainerInspectResponse, scope: &Scope) -> Option<String> {
    if let Some(why) = scope.excludes(&docker::labels(inspect)) {
        return Some(why.to_owned());
    }
    match docker::policy(inspect).policy.action {
        action @ (ActionPolicy::Notify | ActionPolicy::None) => Some(format!("policy: {action}")),
        ActionPolicy::Restart | ActionPolicy::Stop => None,
    }
}

/// Why a dependent must be left alone, if it must; `via_left_alone`: the
/// dependent it joins (`joined`) is. Handling it then would only put it
/// back into that one's stale namespace.
fn exclusion(inspect: &ContainerInspectResponse, scope: &Scope, joined: &str, via_left_alone: bool) -> Option<String> {
    match via_left_alone {
        true => Some(format!("joins {joined}, which is left alone")),
        false => left_alone(inspect, scope),
    }
}

/// The parent's dependents, and theirs (see the module doc), each
/// inspected now: level by level, each level in creation order.
pub async fn find(
    docker: &Docker,
    parent_id: &str,
    parent_name: &str,
    scope: &Scope,
) -> Result<Vec<Dependent>, CollectorError> {
    let list = docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await?;
    let listed: Vec<Listed> = list
        .into_iter()
        .filter_map(|c| {
            let id = c.id?;
            let name =
                c.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').to_owned();
            let mode = c.host_config.and_then(|h| h.network_mode).unwrap_or_default();
            let labels = c.labels.unwrap_or_default();
            let label = |key: &str| labels.get(key).filter(|v| !v.is_empty()).cloned();
            Some(Listed {
                id,
                name,
                mode,
                project: label(COMPOSE_PROJECT_LABEL),
                service: label(COMPOSE_SERVICE_LABEL),
                depends_on: label(COMPOSE_DEPENDS_ON_LABEL).unwrap_or_default(),
            })
        })
        .collect();
    let links = chain(&listed, parent_id, parent_name);
    // By link: the dependent found for it, None when it was removed since the list.
    let mut found: Vec<Option<Dependent>> = Vec::with_capacity(links.len());
    for link in &links {
        let id = &listed[link.at].id;
        let inspect = match docker::inspect(docker, id).await {
            Ok(i) => i,
            Err(e) if docker::is_not_found(&e) => {
                found.push(None);
                continue;
            }
            Err(e) => return Err(e),
        };
        let via = link.via.and_then(|v| found.get(v)).and_then(Option::as_ref);
        let joined = via.map_or(parent_name, |v| v.name.as_str()).trim_start_matches('/').to_owned();
        let excluded = exclusion(&inspect, scope, &joined, via.is_some_and(|v| v.excluded.is_some()));
        let name = docker::name(&inspect).unwrap_or_else(|| id.clone());
        let (depth, tie) = (link.depth, link.tie);
        let in_parents_namespace = tie == Tie::Namespace && via.is_none_or(|v| v.in_parents_namespace);
        let joins = joined;
        found.push(Some(Dependent {
            id: id.clone(),
            name,
            inspect,
            excluded,
            joins,
            depth,
            tie,
            in_parents_namespace,
        }));
    }
    let mut found: Vec<Dependent> = found.into_iter().flatten().collect();
    found.sort_by(|a, b| {
        (a.depth, docker::created(&a.inspect), &a.name).cmp(&(b.depth, docker::created(&b.inspect), &b.name))
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, mode: &str) -> Listed {
        Listed { id: id.repeat(64 / id.len()), name: id.into(), mode: mode.into(), ..Default::default() }
    }

    /// A compose container of project `shop`.
    fn service(id: &str, service: &str, depends_on: &str) -> Listed {
        Listed {
            project: Some("shop".into()),
            service: Some(service.into()),
            depends_on: depends_on.into(),
            ..listed(id, "bridge")
        }
    }

    #[test]
    fn compose_services_that_restart_with_their_dependency_follow_it() {
        assert_eq!(restarts_after("db:service_started:true", "db"), Some(false));
        assert_eq!(restarts_after("cache:service_started:false, db:service_healthy:true", "db"), Some(true));
        assert_eq!(restarts_after("db:service_started:false", "db"), None, "restart: false");
        assert_eq!(restarts_after("db", "db"), None, "no restart part");
        assert_eq!(restarts_after("", "db"), None);
        assert_eq!(restarts_after("dbx:service_started:true", "db"), None);

        let list = [
            service("a", "app", "db:service_healthy:true"),
            service("w", "worker", "db:service_started:false"),
            Listed { project: Some("blog".into()), ..service("o", "other", "db:service_started:true") },
            service("d", "db", ""),
            // In app's namespace: follows app, after it.
            listed("s", &format!("container:{}", id("a"))),
        ];
        let links = chain(&list, &id("d"), "d");
        let names: Vec<(&str, Tie)> = links.iter().map(|l| (list[l.at].name.as_str(), l.tie)).collect();
        assert_eq!(names, [("a", Tie::Compose { healthy: true }), ("s", Tie::Namespace)]);
        // A parent the list does not show has no compose labels to follow.
        assert!(chain(&list[..3], &id("d"), "d").is_empty());
    }

    fn id(short: &str) -> String {
        short.repeat(64 / short.len())
    }

    #[test]
    fn dependents_of_dependents_come_level_by_level() {
        let (a, b, c) = (id("a"), id("b"), id("c"));
        // Listed newest first, as Docker does; C joins B, which joins A.
        let list = [
            listed("d", "bridge"),
            listed("c", &format!("container:{b}")),
            listed("b", &format!("container:{a}")),
            listed("e", "container:b"),
            listed("a", "default"),
        ];
        let links = chain(&list, &a, "a");
        assert_eq!(
            links,
            [
                Link { at: 2, via: None, depth: 1, tie: Tie::Namespace },
                Link { at: 1, via: Some(0), depth: 2, tie: Tie::Namespace },
                Link { at: 3, via: Some(0), depth: 2, tie: Tie::Namespace }
            ]
        );
        // From B: only its own.
        let from_b = chain(&list, &b, "b");
        assert_eq!(from_b.iter().map(|l| list[l.at].name.as_str()).collect::<Vec<_>>(), ["c", "e"]);
        assert!(chain(&list, &c, "c").is_empty());
    }

    #[test]
    fn chains_are_cycle_safe_and_bounded() {
        // A cycle Docker would refuse: each container once, the parent never.
        let cycle = [listed("a", &format!("container:{}", id("b"))), listed("b", &format!("container:{}", id("a")))];
        let links = chain(&cycle, &id("a"), "a");
        assert_eq!(links, [Link { at: 1, via: None, depth: 1, tie: Tie::Namespace }]);
        // A chain of 8: only MAX_DEPTH levels are followed.
        let names = ["0", "1", "2", "3", "4", "5", "6", "7", "8"];
        let long: Vec<Listed> = names.windows(2).map(|w| listed(w[1], &format!("container:{}", id(w[0])))).collect();
        let links = chain(&long, &id("0"), "0");
        assert_eq!(links.len(), MAX_DEPTH);
        assert_eq!(links.last().map(|l| l.depth), Some(MAX_DEPTH));
    }

    fn labelled(pairs: &[(&str, &str)]) -> ContainerInspectResponse {
        let labels = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ContainerInspectResponse {
            config: Some(bollard::models::ContainerConfig { labels: Some(labels), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn a_dependent_whose_policy_allows_no_action_is_skipped() {
        let all = Scope::default();
        let why = |pairs: &[(&str, &str)]| exclusion(&labelled(pairs), &all, "b", false);
        assert_eq!(why(&[("hemostat.action", "notify")]).as_deref(), Some("policy: notify"));
        assert_eq!(why(&[("hemostat.action", "NONE")]).as_deref(), Some("policy: none"));
        assert_eq!(why(&[("hemostat.action", "stop")]), None);
        assert_eq!(why(&[]), None);
        assert!(why(&[("hemostat.enable", "false")]).is_some_and(|w| w.contains("opted out")));
        assert_eq!(
            exclusion(&labelled(&[]), &all, "b", true).as_deref(),
            Some("joins b, which is left alone"),
            "its namespace's owner stays as it is"
        );
    }
}
