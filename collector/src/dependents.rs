//! Containers that share another's network namespace
//! (`network_mode: container:<parent>`, which compose writes for
//! `service:<parent>`): they lose their network when the parent restarts,
//! and cannot start while it is down.
//!
//! Found at action time, never from a cache: one list of every container
//! (its summary carries `HostConfig.NetworkMode`), then an inspect of each
//! container that names the parent, by full id or name (Docker stores the
//! id even when the name was given). Handled in the order they were
//! created (compose's start order), after the parent:
//!
//! - the parent restarted (or started from stopped): each running
//!   dependent is restarted, so it joins the parent's new namespace; one
//!   that exited when the parent went down ([`recoverable`]) is started;
//! - the parent stopped: each running dependent is stopped after it;
//! - a dependent outside the collector's scope, or whose owner said
//!   `hemostat.action=notify` or `none`, is left alone and listed as
//!   skipped.
//!
//! Dependents of dependents are found too, level by level (at most
//! [`MAX_DEPTH`]): Docker records `container:<B>` for a container started
//! in B's namespace, which is really B's parent A's, and the engine does
//! not follow a restart of A into it. C stays in A's old namespace, with
//! only loopback, until it is restarted after B has joined A's new one;
//! so C is handled after B, and left alone with B when B is.
//!
//! Compose services that say `depends_on: {<parent's service>: {restart:
//! true}}` follow the parent too, as compose itself restarts them after it
//! restarts their dependency: once the parent runs (and, for `condition:
//! service_healthy`, is healthy), each running one is restarted. They keep
//! their own network, so a stop of the parent leaves them running.
//!
//! [`Recovery`] does the same for a parent restarted by someone else (an
//! operator, another tool, its restart policy): on the parent's `start`,
//! its dependents that exited within a few seconds of its going down are
//! started, and those still running in its old namespace (loopback only:
//! a VPN client's app that lost its tunnel) are restarted into the new
//! one, and those that join such a stranded one wait for its restart (a
//! start before it would join the old namespace); each verified and
//! reported in a `remediation_complete`.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum},
    query_parameters::{ListContainersOptions, RestartContainerOptions, StartContainerOptions, StopContainerOptions},
};
use chrono::{DateTime, Utc};
use hemostat_protocol::{
    Action, Envelope, EventKind,
    envelope::agent,
    event::{DependentResult, IncidentContext, RemediationComplete, RemediationResult, RemediationStatus},
    policy::{ActionPolicy, COMPOSE_DEPENDS_ON_LABEL, COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL},
};
use tokio_util::sync::CancellationToken;

use crate::{
    docker, error::CollectorError, inflight::InFlight, outbox::Outbox, outcome::Outcome, scope::Scope, verify,
};

/// A dependent that exited this long before its parent went down, or any
/// time after, went down with it.
pub const WITH_PARENT: Duration = Duration::from_secs(5);
/// After a parent's `start`, how long its dependents' `die` may still come.
const DIE_WINDOW: Duration = Duration::from_secs(5);
/// After a parent's `start`, how long a dependent still running in its old
/// namespace is left to die of it before it is restarted instead.
const SETTLE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(500);
/// How long a `service_healthy` dependent waits for its dependency to be
/// healthy before it is restarted (compose waits too).
pub const HEALTHY_WAIT: Duration = Duration::from_secs(60);
/// How far `container:` chains are followed: compose never nests them, and
/// a deeper chain is more likely a mistake than a design.
pub const MAX_DEPTH: usize = 5;

/// What ties a dependent to the container it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    /// `network_mode: container:<it>`: it lives in that one's namespace.
    Namespace,
    /// Compose's `depends_on` on that one's service with `restart: true`;
    /// `healthy`: with `condition: service_healthy`.
    Compose { healthy: bool },
}

/// A container that follows the parent: it shares its network namespace,
/// or compose restarts it after the parent.
pub struct Dependent {
    pub id: String,
    pub name: String,
    pub inspect: ContainerInspectResponse,
    /// Why the collector must leave it alone, if it must.
    pub excluded: Option<String>,
    /// The container it follows (whose namespace it joins, or whose
    /// service it depends on): the parent, or a dependent found before it.
    pub joins: String,
    pub tie: Tie,
    /// Whether it lives in the parent's network namespace: joined by
    /// namespace all the way up (C on B on A; not C on B where B only
    /// follows A's compose service).
    pub in_parents_namespace: bool,
    /// 1 for the parent's own dependents, 2 for theirs, and so on.
    pub depth: usize,
}

impl Dependent {
    pub fn running(&self) -> bool {
        docker::is_running(&self.inspect)
    }

    fn exited(&self) -> bool {
        self.inspect.state.as_ref().and_then(|s| s.status) == Some(ContainerStateStatusEnum::EXITED)
    }

    fn result(&self, action: Action, status: RemediationStatus) -> DependentResult {
        DependentResult {
            container: self.name.clone(),
            container_id: Some(self.id.clone()),
            action,
            status,
            verified: None,
            error: None,
            details: None,
        }
    }

    /// Listed, not touched: out of scope, or its policy says so.
    pub fn skipped(&self, action: Action, why: &str) -> DependentResult {
        DependentResult { error: Some(format!("skipped: {why}")), ..self.result(action, RemediationStatus::Rejected) }
    }

    fn not_applicable(&self, action: Action, why: String) -> DependentResult {
        DependentResult { details: Some(why), ..self.result(action, RemediationStatus::NotApplicable) }
    }
}

/// Whether `network_mode` joins the namespace of the container with this
/// full id and name (`container:<id>`, `container:<name>`, or an id prefix
/// of at least Docker's short 12 digits).
pub fn joins(network_mode: &str, parent_id: &str, parent_name: &str) -> bool {
    let Some(target) = network_mode.strip_prefix("container:") else {
        return false;
    };
    let target = target.trim();
    !target.is_empty()
        && (target == parent_id
            || target.trim_start_matches('/') == parent_name.trim_start_matches('/')
            || (target.len() >= 12 && parent_id.starts_with(target)))
}

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
    if let Some(why) = scope.excludes(&docker::facts(inspect).labels) {
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
    found.sort_by(|a, b| (a.depth, created(&a.inspect), &a.name).cmp(&(b.depth, created(&b.inspect), &b.name)));
    Ok(found)
}

fn created(inspect: &ContainerInspectResponse) -> Option<DateTime<Utc>> {
    time(inspect.created.as_deref())
}

fn time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?).ok().map(|t| t.with_timezone(&Utc)).filter(|t| t.timestamp() > 0)
}

/// When the container's last run ended (None: it never ran, or runs).
pub fn finished_at(inspect: &ContainerInspectResponse) -> Option<DateTime<Utc>> {
    time(inspect.state.as_ref().and_then(|s| s.finished_at.as_deref()))
}

/// When the container's current run started (None: it never ran).
fn started_at(inspect: &ContainerInspectResponse) -> Option<DateTime<Utc>> {
    time(inspect.state.as_ref().and_then(|s| s.started_at.as_deref()))
}

/// A running dependent left in its parent's old network namespace: it
/// joins by namespace and has run since before the parent's current start
/// (at `parent_started`). It has loopback only, and runs on.
pub fn stranded(dependent: &Dependent, parent_started: DateTime<Utc>) -> bool {
    dependent.in_parents_namespace
        && dependent.running()
        && started_at(&dependent.inspect).is_some_and(|s| s < parent_started)
}

/// An exited dependent that went down with its parent, which went down at
/// `parent_down`: it exited no earlier than [`WITH_PARENT`] before.
pub fn recoverable(dependent: &Dependent, parent_down: DateTime<Utc>) -> bool {
    let window = chrono::Duration::from_std(WITH_PARENT).unwrap_or_default();
    dependent.exited() && finished_at(&dependent.inspect).is_some_and(|f| f >= parent_down - window)
}

/// What to do to each dependent after the parent's `action`, given when
/// the parent went down (for a restart or a start). None: leave it alone,
/// with why.
fn plan(d: &Dependent, action: Action, parent_down: Option<DateTime<Utc>>) -> Result<Action, String> {
    match action {
        // Its network is its own: it runs on without its dependency, as
        // with compose's `stop <dependency>`.
        Action::Stop if matches!(d.tie, Tie::Compose { .. }) => Err("compose depends_on: not stopped with it".into()),
        Action::Stop if d.running() => Ok(Action::Stop),
        Action::Stop => Err("not running".into()),
        _ if d.running() => Ok(Action::Restart),
        _ if parent_down.is_some_and(|down| recoverable(d, down)) => Ok(Action::Start),
        _ => Err(format!("{}; did not go down with its parent: left as it is", state_text(&d.inspect))),
    }
}

/// What a dry run says of one dependent; None: nothing worth saying (a
/// stopped dependent of a parent being stopped).
fn dry_run(d: &Dependent, action: Action, parent_down: Option<DateTime<Utc>>) -> Option<DependentResult> {
    match (d.excluded.as_deref(), plan(d, action, parent_down)) {
        (Some(why), _) => Some(d.skipped(action, why)),
        (None, Ok(act)) => Some(DependentResult {
            details: Some(format!("would {act} {} after its parent ({})", d.name, state_text(&d.inspect))),
            ..d.result(act, RemediationStatus::DryRun)
        }),
        (None, Err(_)) if action == Action::Stop => None,
        (None, Err(why)) => Some(d.not_applicable(action, why)),
    }
}

/// How the executor's cascade is carried out.
pub struct Cascade<'a> {
    pub docker: &'a Docker,
    pub inflight: &'a InFlight,
    /// `--stop-timeout`, when a dependent's labels and its own
    /// `StopTimeout` say nothing.
    pub stop_timeout: Duration,
    pub verify_window: Duration,
    pub cancel: &'a CancellationToken,
}

impl Cascade<'_> {
    /// A dry run's account of what would be done.
    pub fn describe(
        &self,
        found: &[Dependent],
        action: Action,
        parent_down: Option<DateTime<Utc>>,
    ) -> Vec<DependentResult> {
        found.iter().filter_map(|d| dry_run(d, action, parent_down)).collect()
    }

    /// Opens the in-flight window of the dependents that will be acted on,
    /// before the parent's action: a dependent that dies because its
    /// parent went away is not a crash to report while it is being handled.
    pub fn begin(&self, found: &[Dependent]) -> crate::inflight::Action {
        self.inflight.begin(found.iter().filter(|d| d.excluded.is_none()).flat_map(|d| [d.id.clone(), d.name.clone()]))
    }

    /// After the parent's `action` succeeded (and, for a restart or a
    /// start, the parent runs): each dependent in order, then the
    /// verification of those brought up, together. `window` is the guard
    /// from [`Cascade::begin`], closed once the actions are done.
    pub async fn run(
        &self,
        parent: &str,
        found: &[Dependent],
        action: Action,
        parent_down: Option<DateTime<Utc>>,
        window: crate::inflight::Action,
    ) -> Vec<DependentResult> {
        let mut results: Vec<Option<DependentResult>> = Vec::new();
        let mut to_verify = Vec::new();
        for d in found {
            if let Some(why) = d.excluded.as_deref() {
                tracing::info!(container = %d.name, parent, joins = %d.joins, why, "dependent left alone");
                results.push(Some(d.skipped(action, why)));
                continue;
            }
            let act = match plan(d, action, parent_down) {
                Ok(act) => act,
                Err(_) if action == Action::Stop => continue,
                Err(why) => {
                    results.push(Some(d.not_applicable(action, why)));
                    continue;
                }
            };
            if let (Tie::Compose { healthy: true }, Err(why)) = (d.tie, self.healthy(&d.joins).await) {
                results.push(Some(d.not_applicable(act, why)));
                continue;
            }
            let timeout = docker::policy(&d.inspect).policy.stop_timeout().unwrap_or(self.stop_timeout);
            tracing::info!(container = %d.name, parent, joins = %d.joins, tie = ?d.tie, action = %act, stop_timeout_s = timeout.as_secs_f64(), "handling a dependent after its parent");
            match lifecycle(self.docker, &d.id, act, timeout).await {
                Err(e) => {
                    results.push(Some(DependentResult { error: Some(e), ..d.result(act, RemediationStatus::Failed) }))
                }
                Ok(()) if act == Action::Stop => results.push(Some(stopped(self.docker, d, act).await)),
                Ok(()) => {
                    to_verify.push((results.len(), d, act));
                    results.push(None);
                }
            }
        }
        drop(window);
        let verified = futures::future::join_all(
            to_verify.iter().map(|(_, d, _)| verify::watch(self.docker, &d.id, self.verify_window, self.cancel)),
        )
        .await;
        for ((slot, d, act), watched) in to_verify.into_iter().zip(verified) {
            results[slot] = Some(from_outcome(d, act, watched.into_outcome()));
        }
        results.into_iter().flatten().collect()
    }

    /// Waits (at most [`HEALTHY_WAIT`]) for `owner` to be healthy, as
    /// compose waits for a `service_healthy` dependency; one without a
    /// health check counts once it runs.
    async fn healthy(&self, owner: &str) -> Result<(), String> {
        let deadline = Instant::now() + HEALTHY_WAIT;
        loop {
            let health = match docker::inspect(self.docker, owner).await {
                Ok(i) => i.state.and_then(|s| s.health).and_then(|h| h.status),
                Err(e) => return Err(format!("its dependency {owner} is gone: {}", docker::error_text(&e))),
            };
            match health {
                None | Some(HealthStatusEnum::HEALTHY | HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) => {
                    return Ok(());
                }
                _ if Instant::now() >= deadline || self.cancel.is_cancelled() => {
                    return Err(format!(
                        "not restarted: its dependency {owner} was not healthy within {} s (condition: service_healthy)",
                        HEALTHY_WAIT.as_secs()
                    ));
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Every dependent, unhandled because the parent's action did not get
    /// it where it should be.
    pub fn unhandled(&self, found: &[Dependent], action: Action, why: &str) -> Vec<DependentResult> {
        found
            .iter()
            .map(|d| match d.excluded.as_deref() {
                Some(excluded) => d.skipped(action, excluded),
                None => d.not_applicable(action, format!("not handled: {why}")),
            })
            .collect()
    }
}

/// One summary for the parent's details, e.g. `dependents: 2 restarted, 1 skipped`.
pub fn summary(results: &[DependentResult]) -> Option<String> {
    if results.is_empty() {
        return None;
    }
    let count = |f: &dyn Fn(&DependentResult) -> bool| results.iter().filter(|r| f(r)).count();
    let parts = [
        (count(&|r| r.status == RemediationStatus::Success), "handled"),
        (count(&|r| r.status == RemediationStatus::Failed), "failed"),
        (count(&|r| r.status == RemediationStatus::Rejected), "skipped"),
        (count(&|r| r.status == RemediationStatus::DryRun), "would be handled"),
        (count(&|r| r.status == RemediationStatus::NotApplicable), "left as they are"),
    ];
    let text: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    Some(format!("dependents: {}", text.join(", ")))
}

async fn lifecycle(docker: &Docker, id: &str, action: Action, timeout: Duration) -> Result<(), String> {
    let t = Some(timeout.as_secs_f64().ceil() as i32);
    let done = match action {
        Action::Restart => docker.restart_container(id, Some(RestartContainerOptions { t, signal: None })).await,
        Action::Stop => docker.stop_container(id, Some(StopContainerOptions { t, signal: None })).await,
        _ => docker.start_container(id, None::<StartContainerOptions>).await,
    };
    match done {
        Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
        Err(e) => Err(docker::error_text(&CollectorError::from(e))),
    }
}

async fn stopped(docker: &Docker, d: &Dependent, act: Action) -> DependentResult {
    match docker::inspect(docker, &d.id).await {
        Ok(after) if !docker::is_running(&after) => DependentResult {
            details: Some(format!(
                "stopped (exit code {})",
                after.state.as_ref().and_then(|s| s.exit_code).unwrap_or_default()
            )),
            ..d.result(act, RemediationStatus::Success)
        },
        Ok(_) => DependentResult {
            error: Some("still running after stop".into()),
            ..d.result(act, RemediationStatus::Failed)
        },
        Err(e) => DependentResult {
            error: Some(format!("could not verify: {}", docker::error_text(&e))),
            ..d.result(act, RemediationStatus::Failed)
        },
    }
}

fn from_outcome(d: &Dependent, act: Action, o: Outcome) -> DependentResult {
    DependentResult { verified: o.verified, error: o.error, details: o.details, ..d.result(act, o.status) }
}

fn state_text(inspect: &ContainerInspectResponse) -> String {
    inspect.state.as_ref().and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())
}

/// Recovers the dependents of a parent restarted by someone else.
#[derive(Clone)]
pub struct Recovery {
    pub docker: Docker,
    pub scope: Scope,
    pub inflight: InFlight,
    pub outbox: Outbox,
    pub host: String,
    pub verify_window: Duration,
    /// `--stop-timeout`, for a stranded dependent that says nothing of its own.
    pub stop_timeout: Duration,
}

impl Recovery {
    /// The watcher saw container `id` start at `time_nano`. Not when the
    /// collector is acting on it: the executor handles those dependents.
    /// Off the watcher's task.
    pub fn parent_started(&self, id: &str, name: &str, time_nano: i64) {
        if self.inflight.covers(id, time_nano) || self.inflight.covers(name, time_nano) {
            return;
        }
        let this = self.clone();
        let (id, name) = (id.to_owned(), name.to_owned());
        tokio::spawn(async move { this.recover(&id, &name).await });
    }

    async fn recover(&self, parent_id: &str, parent_name: &str) {
        let begun = Instant::now();
        let mut handled: HashSet<String> = HashSet::new();
        let mut noted: HashSet<String> = HashSet::new();
        loop {
            let parent = match docker::inspect(&self.docker, parent_id).await {
                Ok(p) if docker::is_running(&p) => p,
                _ => return,
            };
            // A first start: nothing can have run in its namespace before.
            let Some(down) = finished_at(&parent) else { return };
            let parent_started = started_at(&parent);
            let found = match find(&self.docker, parent_id, parent_name, &self.scope).await {
                Ok(found) => found,
                Err(e) => {
                    return tracing::warn!(parent = parent_name, error = %docker::error_text(&e), "could not list dependents");
                }
            };
            if found.is_empty() {
                return;
            }
            // A dependent that lost its network may still be dying of it:
            // it is given a moment to, and is then started like the others.
            let settled = begun.elapsed() >= SETTLE;
            // Names of the stranded ones still to be restarted into the new
            // namespace, and of those that join them: one started now would
            // join the old namespace, so it waits for the one it joins.
            let mut waiting: HashSet<&str> = HashSet::new();
            for d in &found {
                if handled.contains(&d.id) {
                    continue;
                }
                if waiting.contains(d.joins.as_str()) {
                    waiting.insert(&d.name);
                    continue;
                }
                let act = if recoverable(d, down) {
                    Action::Start
                } else if parent_started.is_some_and(|p| stranded(d, p)) {
                    if !settled {
                        waiting.insert(&d.name);
                        continue;
                    }
                    Action::Restart
                } else {
                    continue;
                };
                if let Some(why) = d.excluded.as_deref() {
                    if noted.insert(d.id.clone()) {
                        tracing::info!(container = %d.name, parent = parent_name, why, "dependent of a restarted parent: left alone");
                    }
                    continue;
                }
                handled.insert(d.id.clone());
                self.bring_back(parent_name, d, act).await;
            }
            if begun.elapsed() >= DIE_WINDOW {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts an exited dependent, or restarts a stranded one, verifies
    /// it, and reports it in a `remediation_complete` of its own.
    async fn bring_back(&self, parent: &str, d: &Dependent, act: Action) {
        let started = Instant::now();
        let reason = match act {
            Action::Restart => {
                format!("dependent of {parent} restarted into its new network namespace (it ran on in the old one)")
            }
            _ => format!("dependent of {parent} recovered after its restart"),
        };
        tracing::info!(container = %d.name, parent, joins = %d.joins, action = %act, "dependent of a parent someone else restarted");
        // Its start is HemoStat's own: the watcher must not take it for a
        // parent someone else restarted (it may have dependents of its own,
        // which this recovery handles next), nor its restart for a crash.
        let timeout = docker::policy(&d.inspect).policy.stop_timeout().unwrap_or(self.stop_timeout);
        let window = self.inflight.begin([d.id.clone(), d.name.clone()]);
        let started_it = lifecycle(&self.docker, &d.id, act, timeout).await;
        drop(window);
        let outcome = match started_it {
            Ok(()) => {
                verify::watch(&self.docker, &d.id, self.verify_window, &CancellationToken::new()).await.into_outcome()
            }
            Err(e) => Outcome::failed(e),
        };
        tracing::info!(container = %d.name, parent, status = ?outcome.status, verified = ?outcome.verified, error = ?outcome.error, "dependent recovery done");
        let data = RemediationComplete {
            container: d.name.clone(),
            action: act,
            result: RemediationResult {
                status: outcome.status,
                action: act,
                container: d.name.clone(),
                error: outcome.error,
                reason: Some(reason.clone()),
                details: outcome.details,
                duration_ms: Some(started.elapsed().as_millis() as u64),
                verified: outcome.verified,
                dependents: Vec::new(),
            },
            host: self.host.clone(),
            command_id: None,
            dry_run: false,
            confidence: None,
            reason: Some(reason),
            context: IncidentContext { image: docker::facts(&d.inspect).image, ..Default::default() },
        };
        match Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &data) {
            Ok(env) => self.outbox.send(env),
            Err(e) => tracing::warn!(container = %d.name, error = %e, "could not build remediation_complete"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "64290c8cfd9c12af940ef1fff24fa7c365b505e48297a949ff26ee230a17c856";

    #[test]
    fn joins_by_full_id_name_or_long_prefix() {
        assert!(joins(&format!("container:{ID}"), ID, "web"));
        assert!(joins("container:web", ID, "web"));
        assert!(joins("container:/web", ID, "/web"));
        assert!(joins("container:64290c8cfd9c", ID, "web"));
        assert!(!joins("container:6429", ID, "web"), "too short a prefix to be sure");
        assert!(!joins("container:webx", ID, "web"));
        assert!(!joins("container:", ID, "web"));
        assert!(!joins("web", ID, "web"));
        assert!(!joins("none", ID, "web"));
        assert!(!joins("bridge", ID, "web"));
    }

    fn dependent(status: ContainerStateStatusEnum, finished: &str) -> Dependent {
        Dependent {
            id: "d".into(),
            name: "d".into(),
            inspect: ContainerInspectResponse {
                state: Some(bollard::models::ContainerState {
                    status: Some(status),
                    running: Some(status == ContainerStateStatusEnum::RUNNING),
                    finished_at: Some(finished.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            excluded: None,
            joins: "p".into(),
            depth: 1,
            tie: Tie::Namespace,
            in_parents_namespace: true,
        }
    }

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
    fn a_running_dependent_that_predates_its_parents_start_is_stranded() {
        let parent_started: DateTime<Utc> = "2026-12-03T10:00:10Z".parse().unwrap();
        let mut d = dependent(ContainerStateStatusEnum::RUNNING, "0001-01-01T00:00:00Z");
        let run_since = |d: &mut Dependent, t: &str| {
            d.inspect.state.as_mut().unwrap().started_at = Some(t.into());
        };
        run_since(&mut d, "2026-12-03T09:00:00Z");
        assert!(stranded(&d, parent_started), "ran on through the parent's restart");
        run_since(&mut d, "2026-12-03T10:00:11Z");
        assert!(!stranded(&d, parent_started), "started after the parent: in its new namespace");
        run_since(&mut d, "2026-12-03T09:00:00Z");
        d.in_parents_namespace = false;
        assert!(!stranded(&d, parent_started), "its network is not the parent's");
        let mut exited = dependent(ContainerStateStatusEnum::EXITED, "2026-12-03T10:00:09Z");
        run_since(&mut exited, "2026-12-03T09:00:00Z");
        assert!(!stranded(&exited, parent_started), "an exited one is started, not restarted");
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

        let mut app = dependent(ContainerStateStatusEnum::RUNNING, "0001-01-01T00:00:00Z");
        app.tie = Tie::Compose { healthy: false };
        assert!(plan(&app, Action::Stop, None).is_err(), "its network is its own: not stopped");
        assert_eq!(plan(&app, Action::Restart, Some(Utc::now())), Ok(Action::Restart));
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

        let down = DateTime::parse_from_rfc3339("2026-12-02T20:41:18Z").unwrap().with_timezone(&Utc);
        let mut notify = dependent(ContainerStateStatusEnum::RUNNING, "0001-01-01T00:00:00Z");
        notify.excluded = Some("policy: notify".into());
        for action in [Action::Restart, Action::Stop, Action::Start] {
            let r = dry_run(&notify, action, Some(down)).unwrap();
            assert_eq!((r.status, r.error.as_deref()), (RemediationStatus::Rejected, Some("skipped: policy: notify")));
        }
    }

    #[test]
    fn only_what_went_down_with_the_parent_is_started() {
        let down = DateTime::parse_from_rfc3339("2026-12-02T20:41:18Z").unwrap().with_timezone(&Utc);
        let with = dependent(ContainerStateStatusEnum::EXITED, "2026-12-02T20:41:19.5Z");
        let just_before = dependent(ContainerStateStatusEnum::EXITED, "2026-12-02T20:41:15Z");
        let long_before = dependent(ContainerStateStatusEnum::EXITED, "2026-12-02T20:30:00Z");
        let never = dependent(ContainerStateStatusEnum::CREATED, "0001-01-01T00:00:00Z");
        let running = dependent(ContainerStateStatusEnum::RUNNING, "0001-01-01T00:00:00Z");
        assert!(recoverable(&with, down) && recoverable(&just_before, down));
        assert!(!recoverable(&long_before, down) && !recoverable(&never, down) && !recoverable(&running, down));
        assert_eq!(plan(&running, Action::Restart, Some(down)), Ok(Action::Restart));
        assert_eq!(plan(&with, Action::Restart, Some(down)), Ok(Action::Start));
        assert!(plan(&long_before, Action::Restart, Some(down)).is_err());
        assert_eq!(plan(&running, Action::Stop, None), Ok(Action::Stop));
        assert!(plan(&with, Action::Stop, None).is_err());
    }

    #[test]
    fn summary_counts_by_outcome() {
        let r = |status| DependentResult {
            container: "x".into(),
            container_id: None,
            action: Action::Restart,
            status,
            verified: None,
            error: None,
            details: None,
        };
        assert_eq!(summary(&[]), None);
        let s =
            summary(&[r(RemediationStatus::Success), r(RemediationStatus::Success), r(RemediationStatus::Rejected)]);
        assert_eq!(s.as_deref(), Some("dependents: 2 handled, 1 skipped"));
    }
}
