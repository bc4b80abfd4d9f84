//! Dependents on a real dockerd: containers created with
//! `network_mode: container:<parent>` (what compose writes for
//! `service:<parent>`), handled after their parent by the collector
//! binary: restarted into the parent's new namespace, stopped after it,
//! left alone out of scope, and started again when they exited because
//! someone else restarted their parent.
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
    stream_events, test_image, wait_for,
};
use hemostat_protocol::{
    Action, Command, EventKind,
    connection::Connection,
    event::{DependentResult, RemediationComplete, RemediationStatus},
    keys,
};
use redis::AsyncCommands;

const KEY: &str = "e2e-command-key";
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
    let redis = RedisServer::start().await;
    let host = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let test = current_test_name();
    let collector = Process::builder("hemostat-collector")
        .env("REDIS_URL", redis.url())
        .env("HEMOSTAT_HOST", &host)
        // Only this test's containers: tests run in parallel on one engine.
        .env("HEMOSTAT_LABEL_SELECTOR", format!("{TEST_LABEL}={test}"))
        .env("HEMOSTAT_COMMAND_KEY", KEY)
        .env("HEMOSTAT_STOP_TIMEOUT", "1")
        .env("HEMOSTAT_VERIFY_SECONDS", "1")
        .env("RUST_LOG", "info,hemostat_collector=debug")
        .spawn();
    collector.wait_for_line("collector ready", Duration::from_secs(60)).await;
    let conn = redis.connection().await;
    Env { _redis: redis, conn, host, collector, test }
}

impl Env {
    fn command(&self, container: &TestContainer, action: Action) -> Command {
        container.command(&self.host, action)
    }

    /// Sends `cmd` and returns its one `remediation_complete`.
    async fn run(&mut self, cmd: &Command) -> RemediationComplete {
        let sealed = cmd.seal(Some(KEY.as_bytes()));
        let _: String = self.conn.xadd(keys::commands(&self.host), "*", &sealed.to_fields()).await.unwrap();
        let id = cmd.id.clone();
        self.complete(|c| c.command_id.as_deref() == Some(id.as_str()))
            .await
            .unwrap_or_else(|| panic!("no remediation_complete for {}; log:\n{}", cmd.id, self.collector.log_tail(40)))
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
        let docker = docker().await;
        let name = format!("hemostat-e2e-dep-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let body = ContainerCreateBody {
            image: Some(test_image()),
            cmd: Some(vec!["sh".into(), "-c".into(), SERVER.into()]),
            labels: Some([(TEST_LABEL.to_string(), test.to_string())].into()),
            host_config: Some(HostConfig { network_mode: Some(format!("container:{parent}")), ..Default::default() }),
            ..Default::default()
        };
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
}

impl Drop for Dependent {
    fn drop(&mut self) {
        let id = self.id.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                let options = RemoveContainerOptions { force: true, v: true, link: false };
                let _ = docker().await.remove_container(&id, Some(options)).await;
            });
        })
        .join();
    }
}

/// The inode of the network namespace of `id`'s main process, read inside it.
async fn netns(docker: &Docker, id: &str) -> String {
    let exec = docker
        .create_exec(
            id,
            bollard::exec::CreateExecOptions {
                cmd: Some(vec!["readlink", "/proc/1/ns/net"]),
                attach_stdout: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut out = String::new();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    {
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
    docker.restart_container(parent.id(), Some(RestartContainerOptions { t: Some(1), signal: None })).await.unwrap();
    let kill = KillContainerOptionsBuilder::default().signal("KILL").build();
    docker.kill_container(&dependent.id, Some(kill)).await.unwrap();

    let name = dependent.name.clone();
    let done = env
        .complete(|c| c.container == name && c.command_id.is_none())
        .await
        .unwrap_or_else(|| panic!("no remediation_complete for the dependent; log:\n{}", env.collector.log_tail(40)));
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
