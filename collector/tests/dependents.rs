//! Dependents on a real dockerd: containers created with
//! `network_mode: container:<parent>` (what compose writes for
//! `service:<parent>`), handled after their parent by the collector
//! binary: restarted into the parent's new namespace, stopped after it,
//! left alone out of scope or by their policy, and started again when they
//! exited because someone else restarted their parent (their own crash
//! alert then held); dependents of dependents after the dependent they
//! join; compose services with `depends_on: {restart: true}` restarted
//! after the service they depend on; recreated in the new namespace of a
//! parent recreated by the engine (as compose or an updater does) or by
//! the collector's own `recreate`, keeping their configuration.
//!
//! Needs DOCKER_HOST (a private engine) and HEMOSTAT_TEST_IMAGE (busybox);
//! run through scripts/test.sh, which provides both.

use std::time::Duration;

use bollard::{
    Docker,
    models::{ContainerCreateBody, ContainerStateStatusEnum, HostConfig},
    query_parameters::{
        CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptions, RestartContainerOptions,
    },
};
use futures::StreamExt;
use hemostat_e2e::{
    ContainerSpec, Process, RedisServer, TestContainer, container::TEST_LABEL, current_test_name, docker,
    start_collector, stream_events, test_host, test_image, test_keys, wait_for,
};
use hemostat_protocol::{
    Action, Command, EventKind,
    connection::Connection,
    event::{DependentResult, HealthAlert, RemediationComplete, RemediationStatus},
    keys,
};
use redis::AsyncCommands;

const SERVER: &str = "echo started; while :; do sleep 0.2; done";
const TIMEOUT: Duration = Duration::from_secs(30);

struct Env {
    _redis: RedisServer,
    conn: Connection,
    host: String,
    collector: Process,
    test: String,
}

async fn start() -> Env {
    let redis = RedisServer::start_node().await;
    let host = test_host();
    let test = current_test_name();
    let collector = collector(&redis, &host).await;
    let conn = redis.connection().await;
    Env { _redis: redis, conn, host, collector, test }
}

/// A collector for `host` (the same state folder, and so the same cursor,
/// each time).
async fn collector(redis: &RedisServer, host: &str) -> Process {
    start_collector(&redis.url(), host, |b| b.env("HEMOSTAT_STOP_TIMEOUT", "1").env("HEMOSTAT_VERIFY_SECONDS", "1"))
        .await
}

impl Env {
    fn command(&self, container: &TestContainer, action: Action) -> Command {
        container.command(&self.host, action)
    }

    /// Sends `cmd` and returns its one `remediation_complete`.
    async fn run(&mut self, cmd: &Command) -> RemediationComplete {
        let sealed = cmd.seal(Some(&test_keys().signing));
        let _: String = self.conn.xadd(keys::commands(&self.host), "*", &sealed.to_fields()).await.unwrap();
        let id = cmd.id.clone();
        self.complete(|c| c.command_id.as_deref() == Some(id.as_str()))
            .await
            .unwrap_or_else(|| panic!("no remediation_complete for {}; log:\n{}", cmd.id, self.collector.log_tail(40)))
    }

    /// The first `health_alert` for `container`.
    async fn alert(&self, container: &str) -> HealthAlert {
        wait_for(TIMEOUT, || {
            let mut conn = self.conn.clone();
            async move {
                stream_events::<HealthAlert>(&mut conn, EventKind::HealthAlert)
                    .await
                    .into_iter()
                    .map(|(_, a)| a)
                    .find(|a| a.container == container)
            }
        })
        .await
        .unwrap_or_else(|| panic!("no health_alert for {container}; log:\n{}", self.collector.log_tail(40)))
    }

    /// The recovery of `name` (a `remediation_complete` no command asked for).
    async fn recovery(&self, name: &str) -> RemediationComplete {
        self.complete(|c| c.container == name && c.command_id.is_none())
            .await
            .unwrap_or_else(|| panic!("no recovery of {name}; log:\n{}", self.collector.log_tail(40)))
    }

    async fn complete(&self, want: impl Fn(&RemediationComplete) -> bool) -> Option<RemediationComplete> {
        wait_for(TIMEOUT, || {
            let mut conn = self.conn.clone();
            let want = &want;
            async move {
                stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
                    .await
                    .into_iter()
                    .map(|(_, c)| c)
                    .find(want)
            }
        })
        .await
    }
}

async fn running(spec: ContainerSpec) -> TestContainer {
    let docker = docker().await;
    let c = spec.start(&docker).await;
    c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    c
}

/// A container in `parent`'s network namespace (`network_mode:
/// container:<parent>`, `parent` an id or a name), running, labelled for
/// `test`; removed when dropped.
struct Dependent {
    docker: Docker,
    id: String,
    name: String,
}

impl Dependent {
    async fn start(parent: &str, test: &str) -> Dependent {
        Dependent::start_with(parent, test, &[], SERVER).await
    }

    /// With `labels` besides the test's, running `script`.
    async fn start_with(parent: &str, test: &str, labels: &[(&str, &str)], script: &str) -> Dependent {
        Dependent::start_custom(parent, test, labels, script, |_| {}).await
    }

    /// [`start_with`](Self::start_with), its create body changed by `custom`.
    async fn start_custom(
        parent: &str,
        test: &str,
        labels: &[(&str, &str)],
        script: &str,
        custom: impl FnOnce(&mut ContainerCreateBody),
    ) -> Dependent {
        let docker = docker().await;
        let name = format!("hemostat-e2e-dep-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut all: std::collections::HashMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.insert(TEST_LABEL.to_string(), test.to_string());
        let body = ContainerCreateBody {
            image: Some(test_image()),
            cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
            labels: Some(all),
            host_config: Some(HostConfig { network_mode: Some(format!("container:{parent}")), ..Default::default() }),
            ..Default::default()
        };
        let mut body = body;
        custom(&mut body);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = docker.create_container(Some(options), body).await.expect("creating a dependent").id;
        let d = Dependent { docker: docker.clone(), id, name };
        docker.start_container(&d.id, None).await.expect("starting a dependent");
        d
    }

    async fn state(&self) -> bollard::models::ContainerState {
        self.docker.inspect_container(&self.id, None).await.unwrap().state.unwrap_or_default()
    }

    async fn started_at(&self) -> String {
        self.state().await.started_at.unwrap_or_default()
    }

    async fn network_mode(&self) -> String {
        let inspect = self.docker.inspect_container(&self.id, None).await.unwrap();
        inspect.host_config.and_then(|h| h.network_mode).unwrap_or_default()
    }
}

impl Drop for Dependent {
    fn drop(&mut self) {
        // By name too: a recreated dependent keeps its name, not its id.
        remove_all(vec![self.id.clone(), self.name.clone()]);
    }
}

/// Removes these containers (ids or names), with their volumes.
fn remove_all(containers: Vec<String>) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            for c in containers {
                let options = RemoveContainerOptions { force: true, v: true, link: false };
                let _ = docker().await.remove_container(&c, Some(options)).await;
            }
        });
    })
    .join();
}

/// Removes containers by name when dropped: a recreated one has a new id.
struct RemoveByName(Vec<String>);

impl Drop for RemoveByName {
    fn drop(&mut self) {
        remove_all(std::mem::take(&mut self.0));
    }
}

/// An operator's `docker restart` of `parent` (1 s to stop), then `killed`
/// die of it, in order (as a VPN client or sidecar whose network vanished would).
async fn operator_restart(docker: &Docker, parent: &str, killed: &[&Dependent]) {
    docker.restart_container(parent, Some(RestartContainerOptions { t: Some(1), signal: None })).await.unwrap();
    for d in killed {
        let kill = KillContainerOptionsBuilder::default().signal("KILL").build();
        docker.kill_container(&d.id, Some(kill)).await.unwrap();
    }
}

/// The inode of the network namespace of `id`'s main process, read inside
/// it; empty when it cannot be read (the container is not running).
async fn netns(docker: &Docker, id: &str) -> String {
    exec(docker, id, vec!["readlink", "/proc/1/ns/net"]).await
}

/// What `cmd` prints inside container `id`, trimmed; empty when it cannot run.
async fn exec(docker: &Docker, id: &str, cmd: Vec<&str>) -> String {
    let Ok(exec) = docker
        .create_exec(
            id,
            bollard::exec::CreateExecOptions { cmd: Some(cmd), attach_stdout: Some(true), ..Default::default() },
        )
        .await
    else {
        return String::new();
    };
    let mut out = String::new();
    if let Ok(bollard::exec::StartExecResults::Attached { mut output, .. }) = docker.start_exec(&exec.id, None).await {
        while let Some(Ok(chunk)) = output.next().await {
            out.push_str(&chunk.to_string());
        }
    }
    out.trim().to_owned()
}

fn only<'a>(deps: &'a [DependentResult], name: &str) -> &'a DependentResult {
    let found: Vec<_> = deps.iter().filter(|d| d.container == name).collect();
    assert_eq!(found.len(), 1, "{name} in {deps:?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_restart_brings_its_dependents_back_into_its_namespace() {
    let mut env = start().await;
    let parent = running(ContainerSpec::shell(SERVER)).await;
    // Docker stores `container:<name>` as the id; both are found.
    let by_id = Dependent::start(parent.id(), &env.test).await;
    let by_name = Dependent::start(parent.name(), &env.test).await;
    let before = [by_id.started_at().await, by_name.started_at().await];
    let docker = docker().await;
    assert_eq!(netns(&docker, &by_id.id).await, netns(&docker, parent.id()).await);

    let done = env.run(&env.command(&parent, Action::Restart)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert_eq!(done.result.verified, Some(true), "{done:?}");
    assert_eq!(done.result.dependents.len(), 2, "{done:?}");
    for (d, before) in [(&by_id, &before[0]), (&by_name, &before[1])] {
        let r = only(&done.result.dependents, &d.name);
        assert_eq!(r.action, Action::Restart, "{r:?}");
        assert_eq!(r.status, RemediationStatus::Success, "{r:?}");
        assert_eq!(r.verified, Some(true), "{r:?}");
        assert_eq!(r.container_id.as_deref(), Some(d.id.as_str()));
        let state = d.state().await;
        assert_eq!(state.running, Some(true), "{state:?}");
        assert_ne!(state.started_at.as_ref(), Some(before), "dependent {} not restarted", d.name);
        // Back in the parent's namespace, not the one that went with its old run.
        assert_eq!(netns(&docker, &d.id).await, netns(&docker, parent.id()).await, "{}", d.name);
    }
    // Restarted after the parent.
    let parent_started = parent.state().await.started_at.unwrap();
    assert!(by_id.started_at().await > parent_started && by_name.started_at().await > parent_started);
    assert!(done.result.details.as_deref().unwrap_or("").contains("dependents: 2 handled"), "{done:?}");
    // The wire shape: `dependents` rides in the seed's `result`.
    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(json["result"]["dependents"][0]["status"], "success", "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_parents_dependent_is_stopped_after_it() {
    let mut env = start().await;
    let parent = running(ContainerSpec::shell(SERVER)).await;
    let dependent = Dependent::start(parent.id(), &env.test).await;

    let done = env.run(&env.command(&parent, Action::Stop)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    let r = only(&done.result.dependents, &dependent.name);
    assert_eq!((r.action, r.status), (Action::Stop, RemediationStatus::Success), "{r:?}");
    assert!(r.details.as_deref().is_some_and(|d| d.starts_with("stopped")), "{r:?}");
    let (p, d) = (parent.state().await, dependent.state().await);
    assert_eq!((p.running, d.running), (Some(false), Some(false)), "{p:?} {d:?}");
    assert!(d.finished_at >= p.finished_at, "dependent stopped before its parent: {p:?} {d:?}");

    // Starting the parent again brings the dependent it stopped back too.
    let done = env.run(&env.command(&parent, Action::Start)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    let r = only(&done.result.dependents, &dependent.name);
    assert_eq!((r.action, r.status, r.verified), (Action::Start, RemediationStatus::Success, Some(true)), "{r:?}");
    assert_eq!(dependent.state().await.running, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_scope_dependent_is_left_alone_and_listed_as_skipped() {
    let mut env = start().await;
    let parent = running(ContainerSpec::shell(SERVER)).await;
    let foreign = Dependent::start(parent.id(), &format!("{}-other", env.test)).await;
    let before = foreign.started_at().await;

    let done = env.run(&env.command(&parent, Action::Restart)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    let r = only(&done.result.dependents, &foreign.name);
    assert_eq!(r.status, RemediationStatus::Rejected, "{r:?}");
    assert!(r.error.as_deref().is_some_and(|e| e.starts_with("skipped: outside")), "{r:?}");
    assert_eq!(foreign.started_at().await, before, "an out-of-scope dependent was restarted");
    assert_eq!(foreign.state().await.running, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_that_exited_when_someone_else_restarted_its_parent_is_started() {
    let env = start().await;
    let parent = running(ContainerSpec::shell(SERVER)).await;
    let dependent = Dependent::start(parent.id(), &env.test).await;
    let before = dependent.started_at().await;
    let docker = docker().await;

    // An operator's restart, then the dependent dies of it (as a VPN
    // client or sidecar whose network vanished would).
    operator_restart(&docker, parent.id(), &[&dependent]).await;

    let done = env.recovery(&dependent.name).await;
    assert_eq!(done.action, Action::Start, "{done:?}");
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert_eq!(done.result.verified, Some(true), "{done:?}");
    let reason = format!("dependent of {} recovered after its restart", parent.name());
    assert_eq!(done.result.reason.as_deref(), Some(reason.as_str()), "{done:?}");
    assert_eq!(done.host, env.host);
    let state = dependent.state().await;
    assert_eq!(state.running, Some(true), "{state:?}");
    assert_ne!(state.started_at, Some(before));
    assert_eq!(netns(&docker, &dependent.id).await, netns(&docker, parent.id()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_that_crashed_when_its_parent_went_down_is_alerted_on_held_and_recovered() {
    let env = start().await;
    // The parent listens on port 7000 (0x1B58); a sidecar that fails once
    // it cannot see the listener, as its parent's restart leaves it in the
    // old namespace (the test engine has no bridge: no eth0 to lose).
    let parent = running(ContainerSpec::shell(&format!("httpd -p 7000; {SERVER}"))).await;
    parent.wait_for_log("started", Duration::from_secs(10)).await;
    let script = "echo started; while grep -q ':1B58 0' /proc/net/tcp6; do sleep 0.2; done; exit 1";
    let dependent = Dependent::start_with(parent.id(), &env.test, &[], script).await;
    let docker = docker().await;
    operator_restart(&docker, parent.id(), &[]).await;

    let alert = env.alert(&dependent.name).await;
    assert_eq!(alert.exit_code, Some(1), "{alert:?}");
    let held = alert.held.clone().unwrap_or_default();
    // Docker records the parent's id; the reason names it as `docker ps` does.
    assert!(held.starts_with(&format!("dependent of {}: its parent went down at ", parent.name())), "{alert:?}");
    // The parent may be back by the time the alert is built, or not yet.
    assert!(held.contains("(shared network namespace); "), "{alert:?}");
    let done = env.recovery(&dependent.name).await;
    assert_eq!((done.action, done.result.status), (Action::Start, RemediationStatus::Success), "{done:?}");
    assert_eq!(netns(&docker, &dependent.id).await, netns(&docker, parent.id()).await);
}

/// C joins B, which joins A: all three share A's namespace. A restarts, B
/// runs on in the old namespace and C dies of it (its service on A is gone):
/// C's alert is held in A's name, and C comes back in A's new namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_that_crashed_when_its_grandparent_went_down_is_held_in_its_name() {
    let env = start().await;
    let a = running(ContainerSpec::shell(&format!("httpd -p 7000; {SERVER}"))).await;
    a.wait_for_log("started", Duration::from_secs(10)).await;
    let b = Dependent::start(a.id(), &env.test).await;
    let script = "echo started; while grep -q ':1B58 0' /proc/net/tcp6; do sleep 0.2; done; exit 1";
    let c = Dependent::start_with(&b.id, &env.test, &[], script).await;
    let docker = docker().await;
    operator_restart(&docker, a.id(), &[]).await;

    let alert = env.alert(&c.name).await;
    assert_eq!(alert.exit_code, Some(1), "{alert:?}");
    let held = alert.held.clone().unwrap_or_default();
    let want = format!("dependent of {} through {}: {} went down at ", a.name(), b.name, a.name());
    assert!(held.starts_with(&want), "{alert:?}");
    // Started once, after B was restarted into A's new namespace: not
    // before, into the old one, where it would die again.
    let done = env.recovery(&c.name).await;
    assert_eq!((done.action, done.result.status), (Action::Start, RemediationStatus::Success), "{done:?}");
    assert_eq!(netns(&docker, &c.id).await, netns(&docker, a.id()).await, "C is in A's new namespace");
    assert!(c.started_at().await > b.started_at().await, "C started before B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependents_own_crash_beside_a_healthy_parent_is_not_held() {
    let env = start().await;
    let parent = running(ContainerSpec::shell(SERVER)).await;
    let script = "echo started; while [ ! -f /tmp/crash ]; do sleep 0.2; done; exit 3";
    let dependent = Dependent::start_with(parent.id(), &env.test, &[], script).await;
    let docker = docker().await;
    let exec = docker
        .create_exec(
            &dependent.id,
            bollard::exec::CreateExecOptions { cmd: Some(vec!["touch", "/tmp/crash"]), ..Default::default() },
        )
        .await
        .unwrap();
    docker.start_exec(&exec.id, None).await.unwrap();

    let alert = env.alert(&dependent.name).await;
    assert_eq!(alert.exit_code, Some(3), "{alert:?}");
    assert_eq!(alert.held, None, "a real crash of a dependent is still healed: {alert:?}");
    assert_eq!(parent.state().await.running, Some(true));
}

/// Docker records `container:<B>` for C, though the namespace is A's, and
/// does not follow a restart of A into C: the engine's behaviour this
/// cascade is built on, checked first so a change in it shows here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_of_a_dependent_is_restarted_after_the_one_it_joins() {
    let mut env = start().await;
    let docker = docker().await;
    let a = running(ContainerSpec::shell(SERVER)).await;
    let b = Dependent::start(a.id(), &env.test).await;
    let c = Dependent::start(&b.name, &env.test).await;
    assert_eq!(c.network_mode().await, format!("container:{}", b.id), "Docker stores B, not its owner A");
    let shared = netns(&docker, a.id()).await;
    assert_eq!((netns(&docker, &b.id).await, netns(&docker, &c.id).await), (shared.clone(), shared.clone()));

    let done = env.run(&env.command(&a, Action::Restart)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert_eq!(
        done.result.dependents.iter().map(|d| d.container.as_str()).collect::<Vec<_>>(),
        [b.name.as_str(), c.name.as_str()],
        "{done:?}"
    );
    for d in [&b, &c] {
        let r = only(&done.result.dependents, &d.name);
        assert_eq!(
            (r.action, r.status, r.verified),
            (Action::Restart, RemediationStatus::Success, Some(true)),
            "{r:?}"
        );
    }
    let fresh = netns(&docker, a.id()).await;
    assert_ne!(fresh, shared, "A's restart gives it a new namespace");
    assert_eq!(netns(&docker, &b.id).await, fresh);
    assert_eq!(netns(&docker, &c.id).await, fresh, "C is back in A's new namespace");
    assert!(c.started_at().await > b.started_at().await, "C restarted before B, into B's old namespace");
    assert!(done.result.details.as_deref().unwrap_or("").contains("dependents: 2 handled"), "{done:?}");

    // Stopped with A, and started again after it, B before C.
    let done = env.run(&env.command(&a, Action::Stop)).await;
    let actions: Vec<_> = done.result.dependents.iter().map(|d| (d.container.as_str(), d.action, d.status)).collect();
    let stopped = [
        (b.name.as_str(), Action::Stop, RemediationStatus::Success),
        (c.name.as_str(), Action::Stop, RemediationStatus::Success),
    ];
    assert_eq!(actions, stopped, "{done:?}");
    assert_eq!((b.state().await.running, c.state().await.running), (Some(false), Some(false)));
    let done = env.run(&env.command(&a, Action::Start)).await;
    let actions: Vec<_> = done.result.dependents.iter().map(|d| (d.container.as_str(), d.action, d.status)).collect();
    let started = [
        (b.name.as_str(), Action::Start, RemediationStatus::Success),
        (c.name.as_str(), Action::Start, RemediationStatus::Success),
    ];
    assert_eq!(actions, started, "{done:?}");
    assert_eq!(netns(&docker, &c.id).await, netns(&docker, a.id()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_whose_policy_is_notify_is_left_alone_and_so_are_its_own() {
    let mut env = start().await;
    let parent = running(ContainerSpec::shell(SERVER)).await;
    let notify = Dependent::start_with(parent.id(), &env.test, &[("hemostat.action", "notify")], SERVER).await;
    let behind = Dependent::start(&notify.name, &env.test).await;
    let before = [notify.started_at().await, behind.started_at().await];

    let done = env.run(&env.command(&parent, Action::Restart)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    let r = only(&done.result.dependents, &notify.name);
    assert_eq!((r.status, r.error.as_deref()), (RemediationStatus::Rejected, Some("skipped: policy: notify")), "{r:?}");
    let r = only(&done.result.dependents, &behind.name);
    let why = format!("skipped: joins {}, which is left alone", notify.name);
    assert_eq!((r.status, r.error.as_deref()), (RemediationStatus::Rejected, Some(why.as_str())), "{r:?}");
    assert_eq!([notify.started_at().await, behind.started_at().await], before, "a skipped dependent was restarted");
    assert!(done.result.details.as_deref().unwrap_or("").contains("dependents: 2 skipped"), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_dependents_that_exited_with_a_restarted_parent_are_started_once_in_order() {
    let env = start().await;
    let docker = docker().await;
    let a = running(ContainerSpec::shell(SERVER)).await;
    let b = Dependent::start(a.id(), &env.test).await;
    let c = Dependent::start(&b.id, &env.test).await;

    operator_restart(&docker, a.id(), &[&c, &b]).await;

    let done = env.recovery(&c.name).await;
    assert_eq!((done.action, done.result.status), (Action::Start, RemediationStatus::Success), "{done:?}");
    assert_eq!(netns(&docker, &c.id).await, netns(&docker, a.id()).await, "C is in A's new namespace");
    assert!(c.started_at().await > b.started_at().await, "C started before B");
    // B's start was HemoStat's own: no second recovery of C on its account.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut conn = env.conn.clone();
    let recoveries: Vec<String> = stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
        .await
        .into_iter()
        .map(|(_, r)| r.container)
        .collect();
    assert_eq!(recoveries, [b.name.clone(), c.name.clone()], "{}", env.collector.log_tail(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_services_that_depend_on_a_restarted_one_with_restart_true_follow_it() {
    let mut env = start().await;
    let project = format!("p{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let compose = |spec: ContainerSpec, service: &str, depends_on: &str| {
        spec.label("com.docker.compose.project", project.as_str())
            .label("com.docker.compose.service", service)
            .label("com.docker.compose.depends_on", depends_on)
    };
    // db turns healthy at its first check, 0.5 s after each start; app waits for that.
    let db = running(compose(ContainerSpec::shell(SERVER).healthcheck("true", 500), "db", "")).await;
    let app = running(compose(ContainerSpec::shell(SERVER), "app", "db:service_healthy:true")).await;
    let worker = running(compose(ContainerSpec::shell(SERVER), "worker", "db:service_started:false")).await;
    let before = |c: &TestContainer| {
        let c = c.id().to_owned();
        async move { docker().await.inspect_container(&c, None).await.unwrap().state.unwrap().started_at.unwrap() }
    };
    let (app_before, worker_before) = (before(&app).await, before(&worker).await);

    let done = env.run(&env.command(&db, Action::Restart)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    let r = only(&done.result.dependents, app.name());
    assert_eq!((r.action, r.status, r.verified), (Action::Restart, RemediationStatus::Success, Some(true)), "{r:?}");
    assert!(done.result.dependents.iter().all(|d| d.container != worker.name()), "restart: false: {done:?}");
    assert_ne!(before(&app).await, app_before, "app restarted");
    assert_eq!(before(&worker).await, worker_before, "worker left running as it was");
    // After db was healthy again: its first success since its restart ends before app's start.
    let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).expect("an RFC 3339 time");
    let inspect = docker().await.inspect_container(db.id(), None).await.unwrap();
    let state = inspect.state.unwrap_or_default();
    let db_started = time(state.started_at.as_deref().unwrap());
    let log = state.health.and_then(|h| h.log).unwrap_or_default();
    let healthy_at = log
        .iter()
        .filter(|r| r.exit_code == Some(0))
        .filter_map(|r| r.end.as_ref().map(|t| time(&t.to_string())))
        .filter(|end| *end > db_started)
        .min()
        .expect("db turned healthy after its restart");
    let app_started = time(&before(&app).await);
    assert!(app_started >= healthy_at, "app started {app_started}, before db was healthy at {healthy_at}");

    // A stop of db leaves app running: its network is its own.
    let done = env.run(&env.command(&db, Action::Stop)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert!(done.result.dependents.is_empty(), "{done:?}");
    assert_eq!(app.state().await.running, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_left_running_in_its_parents_old_namespace_is_restarted_into_the_new_one() {
    let env = start().await;
    let parent = running(ContainerSpec::shell(SERVER)).await;
    // Runs on whatever happens to its network, as an app behind a VPN
    // client does when the client restarts.
    let dependent = Dependent::start(parent.id(), &env.test).await;
    let docker = docker().await;
    let old = netns(&docker, parent.id()).await;
    operator_restart(&docker, parent.id(), &[]).await;
    assert_ne!(netns(&docker, parent.id()).await, old, "the parent's restart gave it a new namespace");
    assert_eq!(netns(&docker, &dependent.id).await, old, "left in the old one by the engine");

    let done = env.recovery(&dependent.name).await;
    assert_eq!((done.action, done.result.status), (Action::Restart, RemediationStatus::Success), "{done:?}");
    let reason = done.reason.clone().unwrap_or_default();
    assert!(reason.contains("restarted into its new network namespace"), "{reason}");
    assert_eq!(netns(&docker, &dependent.id).await, netns(&docker, parent.id()).await, "now in the new one");
    assert_eq!(dependent.state().await.running, Some(true));
}

/// What a recreate must keep of a container.
#[derive(Debug, PartialEq)]
struct Kept {
    name: String,
    image: Option<String>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    labels: Option<std::collections::HashMap<String, String>>,
    binds: Option<Vec<String>>,
    restart_policy: Option<String>,
    /// Destination and volume name of each volume mount.
    volumes: Vec<(String, String)>,
}

async fn kept(docker: &Docker, container: &str) -> (String, Kept) {
    let i = docker.inspect_container(container, None).await.unwrap_or_else(|e| panic!("inspect {container}: {e}"));
    let config = i.config.unwrap_or_default();
    let host = i.host_config.unwrap_or_default();
    let mut volumes: Vec<(String, String)> = i
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .map(|m| (m.destination.unwrap_or_default(), m.name.unwrap_or_default()))
        .collect();
    volumes.sort();
    let kept = Kept {
        name: i.name.unwrap_or_default(),
        image: config.image,
        cmd: config.cmd,
        env: config.env,
        labels: config.labels,
        binds: host.binds,
        restart_policy: host.restart_policy.and_then(|p| p.name).map(|n| n.to_string()),
        volumes,
    };
    (i.id.unwrap_or_default(), kept)
}

async fn network_mode_of(docker: &Docker, container: &str) -> String {
    let i = docker.inspect_container(container, None).await.unwrap();
    i.host_config.and_then(|h| h.network_mode).unwrap_or_default()
}

/// Whether container `id` is gone from the engine.
async fn gone(docker: &Docker, id: &str) -> bool {
    matches!(
        docker.inspect_container(id, None).await,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
    )
}

/// No container left under a `-hemostat-replaced-` name for this test.
async fn no_replaced_left(docker: &Docker, test: &str) {
    let filters = std::collections::HashMap::from([("label", vec![format!("{TEST_LABEL}={test}")])]);
    let options =
        bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let names: Vec<String> = docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect();
    assert!(names.iter().all(|n| !n.contains("-hemostat-replaced-")), "{names:?}");
}

/// A VPN parent recreated by the engine (`docker rm -f` and a create
/// under the same name, as compose does after a change): its dependent
/// and that one's own name its old id, which Docker can no longer find.
/// Both are recreated, in order, with their configuration (labels, env,
/// binds, their anonymous volume and its data), in the new parent's
/// namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_a_parent_the_engine_recreated_are_recreated_in_its_namespace() {
    let env = start().await;
    let docker = docker().await;
    let name = format!("hemostat-e2e-vpn-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let _cleanup = RemoveByName(vec![name.clone()]);
    let parent = running(ContainerSpec::shell(SERVER).name(&name)).await;
    let dir = std::env::temp_dir().join(format!("hemostat-recreate-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("marker"), "bound").unwrap();
    let bind = format!("{}:/data:ro", dir.display());
    let app = Dependent::start_custom(parent.id(), &env.test, &[("app.role", "behind-vpn")], SERVER, |b| {
        b.env = Some(vec!["APP_MODE=vpn".into()]);
        b.volumes = Some(vec!["/cache".into()]);
        if let Some(h) = b.host_config.as_mut() {
            h.binds = Some(vec![bind.clone()]);
            h.restart_policy = Some(bollard::models::RestartPolicy {
                name: Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            });
        }
    })
    .await;
    exec(&docker, &app.id, vec!["sh", "-c", "echo kept > /cache/file"]).await;
    let sidecar = Dependent::start(&app.id, &env.test).await;
    // Another stack's (another collector's label selector): its own
    // collector handles it, and this one neither touches nor reports it.
    let foreign = Dependent::start(parent.id(), &format!("{}-other", env.test)).await;
    let (app_old, app_before) = kept(&docker, &app.name).await;
    let (sidecar_old, sidecar_before) = kept(&docker, &sidecar.name).await;
    assert_eq!(app_before.volumes.len(), 1, "{app_before:?}");

    // The engine recreates the parent: the same name, a new id.
    parent.remove().await;
    let parent = running(ContainerSpec::shell(SERVER).name(&name)).await;

    let recreated = std::time::Instant::now();
    let mut took = Vec::new();
    for d in [&app, &sidecar] {
        let done = env.recovery(&d.name).await;
        took.push(done.result.duration_ms.unwrap_or_default());
        assert_eq!((done.action, done.result.status), (Action::Recreate, RemediationStatus::Success), "{done:?}");
        assert_eq!(done.result.verified, Some(true), "{done:?}");
        let reason = done.reason.clone().unwrap_or_default();
        assert!(reason.starts_with(&format!("dependent of {name}, which was recreated")), "{reason}");
    }
    println!(
        "recreate: 2 dependents (2 levels) recreated in the new parent's namespace and verified, reported {} ms after \
         the parent's new container started ({took:?} ms from the collector's start on them; each: a 1 s stop \
         timeout for the old one, a 1 s verify window for the new one)",
        recreated.elapsed().as_millis()
    );
    let (app_new, app_after) = kept(&docker, &app.name).await;
    let (sidecar_new, sidecar_after) = kept(&docker, &sidecar.name).await;
    assert_ne!((&app_new, &sidecar_new), (&app_old, &sidecar_old), "both are new containers");
    assert_eq!(app_after, app_before, "the app's configuration is kept");
    assert_eq!(sidecar_after, sidecar_before, "the sidecar's configuration is kept");
    assert_eq!(network_mode_of(&docker, &app.name).await, format!("container:{}", parent.id()));
    assert_eq!(network_mode_of(&docker, &sidecar.name).await, format!("container:{app_new}"));
    let shared = netns(&docker, parent.id()).await;
    assert!(!shared.is_empty());
    assert_eq!(netns(&docker, &app_new).await, shared, "the app is in the new parent's namespace");
    assert_eq!(netns(&docker, &sidecar_new).await, shared, "so is the sidecar, through the app");
    assert_eq!(exec(&docker, &app_new, vec!["cat", "/cache/file"]).await, "kept", "its anonymous volume came along");
    assert_eq!(exec(&docker, &app_new, vec!["cat", "/data/marker"]).await, "bound");
    assert!(gone(&docker, &app_old).await && gone(&docker, &sidecar_old).await, "the old ones are removed");
    no_replaced_left(&docker, &env.test).await;
    assert_eq!(kept(&docker, &foreign.name).await.0, foreign.id, "another stack's dependent was recreated");
    let mut conn = env.conn.clone();
    let reports = stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete).await;
    assert!(
        reports.iter().all(|(_, c)| c.container != foreign.name),
        "another stack's dependent reported: {reports:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The collector's own `recreate` of a crashed container: a new container
/// of the same configuration under the same name, verified, the old one
/// removed; its dependent, stranded in the crashed one's namespace, is
/// recreated in the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_replaces_a_crashed_container_and_its_dependent_follows() {
    let mut env = start().await;
    let docker = docker().await;
    // Crashes once /tmp/crash exists: in its own writable layer, which a
    // new container does not have.
    let script = "echo started; while [ ! -f /tmp/crash ]; do sleep 0.2; done; exit 3";
    let parent = running(ContainerSpec::shell(script).env("MODE", "edge").label("app.tier", "edge")).await;
    let _cleanup = RemoveByName(vec![parent.name().to_owned()]);
    let dependent = Dependent::start(parent.id(), &env.test).await;
    let (_, parent_before) = kept(&docker, parent.name()).await;
    let (dependent_old, dependent_before) = kept(&docker, &dependent.name).await;
    exec(&docker, parent.id(), vec!["touch", "/tmp/crash"]).await;
    parent.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;

    let done = env.run(&env.command(&parent, Action::Recreate)).await;
    assert_eq!((done.action, done.result.status), (Action::Recreate, RemediationStatus::Success), "{done:?}");
    assert_eq!(done.result.verified, Some(true), "{done:?}");
    let details = done.result.details.clone().unwrap_or_default();
    assert!(details.starts_with("recreated as ") && details.contains("dependents: 1 handled"), "{details}");
    let (parent_new, parent_after) = kept(&docker, parent.name()).await;
    assert_ne!(parent_new, parent.id());
    assert_eq!(parent_after, parent_before, "the same configuration");
    assert!(gone(&docker, parent.id()).await, "the crashed container is removed");
    let r = only(&done.result.dependents, &dependent.name);
    assert_eq!((r.action, r.status, r.verified), (Action::Recreate, RemediationStatus::Success, Some(true)), "{r:?}");
    let (dependent_new, dependent_after) = kept(&docker, &dependent.name).await;
    assert_eq!(r.container_id.as_deref(), Some(dependent_new.as_str()), "{r:?}");
    assert_ne!(dependent_new, dependent_old);
    assert_eq!(dependent_after, dependent_before);
    assert_eq!(network_mode_of(&docker, &dependent.name).await, format!("container:{parent_new}"));
    assert_eq!(netns(&docker, &dependent_new).await, netns(&docker, &parent_new).await);
    no_replaced_left(&docker, &env.test).await;

    // A dry run names what it would do, and does nothing.
    let mut dry = env.command(&parent, Action::Recreate);
    dry.container_id = Some(parent_new.clone());
    dry.dry_run = true;
    let done = env.run(&dry).await;
    assert_eq!(done.result.status, RemediationStatus::DryRun, "{done:?}");
    assert_eq!(kept(&docker, parent.name()).await.0, parent_new, "a dry run recreated it");
}

/// A recreate the engine refuses (the bind source of its mount is gone)
/// leaves the old container as it was: its name, its id, running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_that_fails_puts_the_old_container_back() {
    let mut env = start().await;
    let docker = docker().await;
    let dir = std::env::temp_dir().join(format!("hemostat-recreate-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("hemostat-e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let _cleanup = RemoveByName(vec![name.clone()]);
    let body = ContainerCreateBody {
        image: Some(test_image()),
        cmd: Some(vec!["sh".into(), "-c".into(), SERVER.into()]),
        labels: Some([(TEST_LABEL.to_string(), env.test.clone())].into()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            mounts: Some(vec![bollard::models::Mount {
                target: Some("/data".into()),
                source: Some(dir.display().to_string()),
                typ: Some(bollard::models::MountType::BIND),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = docker.create_container(Some(options), body).await.unwrap().id;
    docker.start_container(&id, None).await.unwrap();
    let started = docker.inspect_container(&id, None).await.unwrap().state.unwrap().started_at;
    std::fs::remove_dir_all(&dir).unwrap();

    let cmd = Command {
        id: uuid::Uuid::new_v4().to_string(),
        host: env.host.clone(),
        container: name.clone(),
        container_id: Some(id.clone()),
        action: Action::Recreate,
        reason: "e2e".into(),
        confidence: 0.9,
        issued_at: chrono::Utc::now().to_rfc3339(),
        expires_at: Some((chrono::Utc::now() + hemostat_protocol::command::LIFETIME).to_rfc3339()),
        dry_run: false,
        context: Default::default(),
        args: Vec::new(),
    };
    let done = env.run(&cmd).await;
    assert_eq!(done.result.status, RemediationStatus::Failed, "{done:?}");
    let error = done.result.error.clone().unwrap_or_default();
    assert!(error.starts_with("create failed: ") && error.ends_with("; the old container was put back"), "{error}");
    let i = docker.inspect_container(&name, None).await.unwrap();
    assert_eq!(i.id.as_deref(), Some(id.as_str()), "the old container has its name back");
    let state = i.state.unwrap_or_default();
    assert_eq!((state.running, state.started_at), (Some(true), started), "and runs on untouched");
    no_replaced_left(&docker, &env.test).await;
}

/// The parent is recreated while the collector is away: back, it replays
/// the engine's events from its cursor (the old parent's `destroy`, then
/// the new one's `start`), and recreates the dependent in the new
/// parent's namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_of_a_parent_recreated_while_the_collector_was_away_is_recreated_once_it_is_back() {
    let mut env = start().await;
    let docker = docker().await;
    let name = format!("hemostat-e2e-vpn-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let _cleanup = RemoveByName(vec![name.clone()]);
    let parent = running(ContainerSpec::shell(SERVER).name(&name)).await;
    let app = Dependent::start(parent.id(), &env.test).await;
    // Its cursor is written at most every 200 ms.
    tokio::time::sleep(Duration::from_millis(600)).await;
    env.collector.kill();

    parent.remove().await;
    let parent = running(ContainerSpec::shell(SERVER).name(&name)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(kept(&docker, &app.name).await.0, app.id, "recreated with no collector running");

    env.collector = collector(&env._redis, &env.host).await;
    let done = env.recovery(&app.name).await;
    assert_eq!((done.action, done.result.status), (Action::Recreate, RemediationStatus::Success), "{done:?}");
    let (now, _) = kept(&docker, &app.name).await;
    assert_ne!(now, app.id);
    assert_eq!(network_mode_of(&docker, &app.name).await, format!("container:{}", parent.id()));
    assert_eq!(netns(&docker, &now).await, netns(&docker, parent.id()).await);
}

/// Compose recreated the parent (its new container says whom it replaced)
/// and recreates the dependent itself right after: the collector leaves
/// compose its head start and does not race it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_compose_recreates_itself_after_its_parent_is_left_to_compose() {
    let env = start().await;
    let docker = docker().await;
    let name = format!("hemostat-e2e-vpn-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let _cleanup = RemoveByName(vec![name.clone()]);
    let parent = running(ContainerSpec::shell(SERVER).name(&name)).await;
    let app = Dependent::start(parent.id(), &env.test).await;
    let old = parent.id().to_owned();

    parent.remove().await;
    let parent = running(ContainerSpec::shell(SERVER).name(&name).label("com.docker.compose.replace", old)).await;
    // Compose's own recreate of the dependent, in the new parent's namespace.
    docker.remove_container(&app.id, Some(RemoveContainerOptions { force: true, v: true, link: false })).await.unwrap();
    let by_compose = Dependent::start(parent.id(), &env.test).await;
    let renamed = bollard::query_parameters::RenameContainerOptions { name: app.name.clone() };
    docker.rename_container(&by_compose.id, renamed).await.unwrap();

    // Past compose's head start (10 s): nothing was done to it.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(kept(&docker, &app.name).await.0, by_compose.id, "{}", env.collector.log_tail(30));
    let mut conn = env.conn.clone();
    let reports = stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete).await;
    assert!(reports.is_empty(), "{reports:?}");
}

/// A container that claims, by compose's label, to have replaced a removed
/// parent it was never named after (any image or `docker run` can set a
/// label) does not get that parent's dependents: the engine said what the
/// removed container was called, and that decides. The parent's real
/// successor does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_claiming_by_label_to_replace_another_parent_gets_none_of_its_dependents() {
    let env = start().await;
    let docker = docker().await;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let (name, claimant) = (format!("hemostat-e2e-vpn-{suffix}"), format!("hemostat-e2e-evil-{suffix}"));
    let _cleanup = RemoveByName(vec![name.clone(), claimant.clone()]);
    let parent = running(ContainerSpec::shell(SERVER).name(&name)).await;
    let app = Dependent::start(parent.id(), &env.test).await;
    let old = parent.id().to_owned();

    parent.remove().await;
    let evil = running(
        ContainerSpec::shell(SERVER)
            .name(&claimant)
            .label("com.docker.compose.replace", old.clone())
            .label("com.docker.compose.project", "media"),
    )
    .await;
    // Past compose's head start (10 s): the dependent was not moved into it.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(kept(&docker, &app.name).await.0, app.id, "{}", env.collector.log_tail(30));
    assert_eq!(network_mode_of(&docker, &app.name).await, format!("container:{old}"));
    let mut conn = env.conn.clone();
    let reports = stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete).await;
    assert!(reports.is_empty(), "{reports:?}");
    println!("attack refused: hostile label: a container claiming by compose's labels to replace another parent");

    // The real successor, under the removed container's name, gets it.
    let parent = running(ContainerSpec::shell(SERVER).name(&name)).await;
    let done = env.recovery(&app.name).await;
    assert_eq!((done.action, done.result.status), (Action::Recreate, RemediationStatus::Success), "{done:?}");
    assert_eq!(network_mode_of(&docker, &app.name).await, format!("container:{}", parent.id()));
    assert_ne!(netns(&docker, &kept(&docker, &app.name).await.0).await, netns(&docker, evil.id()).await);
}

/// The id a name points at now, if any container has it.
async fn id_of(docker: &Docker, name: &str) -> Option<String> {
    docker.inspect_container(name, None).await.ok().and_then(|c| c.id)
}

/// A collector killed in the middle of a recreate (`kill -9`: no shutdown,
/// no rollback) leaves the old container under its aside name. The next
/// collector puts every such leftover right before it reads a command: a
/// recreate killed while its new container was being verified keeps the
/// new one (it runs) and removes the old; one killed before the new one was
/// made gives the old one its name back; one whose new container was made
/// and never started removes it and starts the old one again, which the
/// recreate had stopped. A container whose name only looks aside (not its
/// own id) is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_cut_short_by_a_killed_collector_is_put_right_by_the_next_one() {
    let mut env = start().await;
    let docker = docker().await;
    let rename = |id: String, to: String| {
        let docker = docker.clone();
        async move {
            let to = bollard::query_parameters::RenameContainerOptions { name: to };
            docker.rename_container(&id, to).await.unwrap();
        }
    };
    // A real kill: a collector with a long verification window, killed
    // while the new container is verified.
    env.collector.kill();
    let slow = start_collector(&env._redis.url(), &env.host, |b| {
        b.env("HEMOSTAT_STOP_TIMEOUT", "1").env("HEMOSTAT_VERIFY_SECONDS", "30")
    })
    .await;
    let verified = running(ContainerSpec::shell(SERVER)).await;
    let mut cleanup = vec![verified.name().to_owned()];
    let cmd = env.command(&verified, Action::Recreate);
    let sealed = cmd.seal(Some(&test_keys().signing));
    let _: String = env.conn.xadd(keys::commands(&env.host), "*", &sealed.to_fields()).await.unwrap();
    let aside = format!("{}-hemostat-replaced-{}", verified.name(), &verified.id()[..12]);
    let in_verification = wait_for(TIMEOUT, || {
        let (docker, aside, name, old) = (docker.clone(), aside.clone(), verified.name().to_owned(), verified.id());
        async move {
            let new = id_of(&docker, &name).await.filter(|id| id != old)?;
            id_of(&docker, &aside).await?;
            let running = docker.inspect_container(&new, None).await.ok()?.state?.running?;
            running.then_some(new)
        }
    })
    .await
    .unwrap_or_else(|| panic!("the recreate never got to verification; log:\n{}", slow.log_tail(40)));
    slow.kill();

    // The states the other kills leave, made by hand. Killed after the
    // rename aside: no container under its name.
    let renamed = running(ContainerSpec::shell(SERVER)).await;
    cleanup.push(renamed.name().to_owned());
    rename(renamed.id().to_owned(), format!("{}-hemostat-replaced-{}", renamed.name(), &renamed.id()[..12])).await;
    // Killed after the new one was made and the old stopped, before the start.
    let unstarted = running(ContainerSpec::shell(SERVER)).await;
    cleanup.push(unstarted.name().to_owned());
    rename(unstarted.id().to_owned(), format!("{}-hemostat-replaced-{}", unstarted.name(), &unstarted.id()[..12]))
        .await;
    let made = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(unstarted.name()).build()),
            ContainerCreateBody {
                image: Some(test_image()),
                cmd: Some(vec!["sh".into(), "-c".into(), SERVER.into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    tokio::time::sleep(Duration::from_millis(50)).await;
    docker.stop_container(unstarted.id(), None).await.unwrap();
    // Not a leftover: the name ends in another container's id.
    let decoy = running(ContainerSpec::shell(SERVER)).await;
    let decoy_name = format!("{}-hemostat-replaced-ffffffffffff", decoy.name());
    rename(decoy.id().to_owned(), decoy_name.clone()).await;
    cleanup.push(decoy_name.clone());
    let _cleanup = RemoveByName(cleanup);

    env.collector = collector(&env._redis, &env.host).await;
    // Verified when killed: the new container stays, the old one is gone.
    assert_eq!(id_of(&docker, verified.name()).await.as_deref(), Some(in_verification.as_str()));
    assert!(gone(&docker, verified.id()).await, "{}", env.collector.log_tail(30));
    // Its command was cut short: reported, its outcome unknown.
    let done = env.complete(|c| c.command_id.as_deref() == Some(cmd.id.as_str())).await.expect("an outcome");
    assert_eq!(done.result.status, RemediationStatus::Failed, "{done:?}");
    // Renamed only: its name back, still the same running container.
    assert_eq!(id_of(&docker, renamed.name()).await.as_deref(), Some(renamed.id()));
    assert!(renamed.inspect().await.state.unwrap().running.unwrap());
    // Made and never started: removed, the old one back and running again.
    assert!(gone(&docker, &made).await);
    assert_eq!(id_of(&docker, unstarted.name()).await.as_deref(), Some(unstarted.id()));
    assert!(unstarted.inspect().await.state.unwrap().running.unwrap());
    for (name, id) in
        [(verified.name(), verified.id()), (renamed.name(), renamed.id()), (unstarted.name(), unstarted.id())]
    {
        assert_eq!(id_of(&docker, &format!("{name}-hemostat-replaced-{}", &id[..12])).await, None);
    }
    // The decoy is untouched.
    assert_eq!(id_of(&docker, &decoy_name).await.as_deref(), Some(decoy.id()));
}
