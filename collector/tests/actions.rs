//! Every remediation action against a real dockerd, through the collector
//! binary and its command stream: the outcome reported, and what Docker
//! shows afterwards.
//!
//! Needs DOCKER_HOST (a private engine) and HEMOSTAT_TEST_IMAGE (busybox);
//! run through scripts/test.sh, which provides both.

use std::time::Duration;

use bollard::{
    models::{ContainerCreateBody, ContainerStateStatusEnum, HostConfig, RestartPolicyNameEnum},
    query_parameters::{
        CommitContainerOptions, CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptions,
        RemoveVolumeOptions,
    },
};
use hemostat_e2e::{
    ContainerSpec, Process, RedisServer, TestContainer,
    container::{NAME_PREFIX, TEST_LABEL},
    current_test_name, docker, start_collector, stream_events, test_host, test_image, test_keys, wait_for,
};
use hemostat_protocol::connection::Connection;
use hemostat_protocol::{
    Action, Command, EventKind,
    event::{HealthAlert, RemediationComplete, RemediationStatus},
    keys,
};
use redis::AsyncCommands;

/// Prints `started` on every start, so starts can be counted in the logs.
const SERVER: &str = "echo started; while :; do sleep 0.2; done";
const TIMEOUT: Duration = Duration::from_secs(30);

struct Env {
    redis: RedisServer,
    conn: Connection,
    host: String,
    collector: Process,
    test: String,
}

async fn collector(redis: &RedisServer, host: &str, extra: &[(&str, &str)]) -> Process {
    start_collector(&redis.url(), host, |b| {
        let b = b.env("HEMOSTAT_STOP_TIMEOUT", "1").env("HEMOSTAT_VERIFY_SECONDS", "1");
        extra.iter().fold(b, |b, (k, v)| b.env(k, v))
    })
    .await
}

async fn start(extra: &[(&str, &str)]) -> Env {
    let redis = RedisServer::start_node().await;
    let host = test_host();
    let test = current_test_name();
    let collector = collector(&redis, &host, extra).await;
    let conn = redis.connection().await;
    Env { redis, conn, host, collector, test }
}

impl Env {
    fn command(&self, container: &TestContainer, action: Action) -> Command {
        container.command(&self.host, action)
    }

    async fn send(&mut self, cmd: &Command) -> String {
        let sealed = cmd.seal(Some(&test_keys().signing));
        self.conn.xadd(keys::commands(&self.host), "*", &sealed.to_fields()).await.unwrap()
    }

    async fn completions(&mut self, command_id: &str) -> Vec<RemediationComplete> {
        stream_events::<RemediationComplete>(&mut self.conn, EventKind::RemediationComplete)
            .await
            .into_iter()
            .map(|(_, data)| data)
            .filter(|c| c.command_id.as_deref() == Some(command_id))
            .collect()
    }

    /// Sends `cmd` and returns its one `remediation_complete`.
    async fn run(&mut self, cmd: &Command) -> RemediationComplete {
        self.send(cmd).await;
        self.outcome(cmd).await
    }

    async fn outcome(&mut self, cmd: &Command) -> RemediationComplete {
        let found = wait_for(TIMEOUT, || {
            let mut conn = self.conn.clone();
            let id = cmd.id.clone();
            async move {
                stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
                    .await
                    .into_iter()
                    .map(|(_, c)| c)
                    .find(|c| c.command_id.as_deref() == Some(id.as_str()))
            }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no remediation_complete for {} {}; collector log:\n{}",
                cmd.action,
                cmd.id,
                self.collector.log_tail(40)
            )
        })
    }

    async fn alerts_for(&mut self, container: &str) -> Vec<HealthAlert> {
        stream_events::<HealthAlert>(&mut self.conn, EventKind::HealthAlert)
            .await
            .into_iter()
            .map(|(_, data)| data)
            .filter(|a| a.container == container)
            .collect()
    }

    /// Waits until the collector has acknowledged everything up to `entry`.
    async fn wait_acked(&mut self, entry: &str) {
        let key = keys::commands(&self.host);
        let done = wait_for(TIMEOUT, || {
            let mut conn = self.conn.clone();
            let key = key.clone();
            async move {
                let groups: redis::Value =
                    redis::cmd("XINFO").arg("GROUPS").arg(&key).query_async(&mut conn).await.ok()?;
                let pending: redis::streams::StreamPendingReply = conn.xpending(&key, "collectors").await.ok()?;
                (format!("{groups:?}").contains(entry) && pending.count() == 0).then_some(())
            }
        })
        .await;
        assert!(done.is_some(), "command {entry} never acknowledged; log:\n{}", self.collector.log_tail(40));
    }

    async fn marker(&mut self, command_id: &str) -> Option<String> {
        self.conn.get(keys::command_seen(&self.host, command_id)).await.unwrap()
    }
}

async fn running(spec: ContainerSpec) -> TestContainer {
    let docker = docker().await;
    let c = spec.start(&docker).await;
    c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    c
}

async fn exited(spec: ContainerSpec) -> TestContainer {
    let docker = docker().await;
    let c = spec.start(&docker).await;
    c.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    c
}

async fn starts(c: &TestContainer) -> usize {
    c.logs().await.matches("started").count()
}

/// Whether a file exists in a running container (checked by the test, not
/// through the collector).
async fn file_exists(c: &TestContainer, path: &str) -> bool {
    let docker = c.docker();
    let exec = docker
        .create_exec(
            c.id(),
            bollard::exec::CreateExecOptions { cmd: Some(vec!["test", "-e", path]), ..Default::default() },
        )
        .await
        .unwrap();
    docker
        .start_exec(&exec.id, Some(bollard::exec::StartExecOptions { detach: true, tty: false, output_capacity: None }))
        .await
        .unwrap();
    let code = wait_for(Duration::from_secs(5), || async {
        let i = docker.inspect_exec(&exec.id).await.ok()?;
        (i.running == Some(false)).then_some(i.exit_code).flatten()
    })
    .await;
    code == Some(0)
}

/// Force-removes containers by name on drop (the replicas the collector
/// creates are not TestContainers).
struct Removing(Vec<String>);

impl Drop for Removing {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                let docker = docker().await;
                for n in names {
                    let options = RemoveContainerOptions { force: true, v: true, link: false };
                    let _ = docker.remove_container(&n, Some(options)).await;
                }
            });
        })
        .join();
    }
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..12]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_is_verified_when_the_container_stays_up() {
    let mut env = start(&[]).await;
    let c = running(ContainerSpec::shell(SERVER).healthcheck("true", 200)).await;
    let before = c.state().await.started_at;
    let done = env.run(&env.command(&c, Action::Restart)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert_eq!(done.result.verified, Some(true), "{done:?}");
    let details = done.result.details.clone().unwrap_or_default();
    assert!(
        details.starts_with("running since") && details.contains("stayed up") && details.contains("healthy"),
        "{details}"
    );
    assert!(done.result.duration_ms.unwrap() >= 1000, "verification takes the window: {done:?}");
    let after = c.state().await;
    assert_eq!(after.running, Some(true));
    assert_ne!(after.started_at, before, "not restarted");
    assert_eq!(starts(&c).await, 2);
    // The restart's own stop is not a crash.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.alerts_for(c.name()).await.is_empty(), "the collector's restart was reported as a crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_a_container_that_crashes_again_is_not_verified() {
    let mut env = start(&[("HEMOSTAT_VERIFY_SECONDS", "3")]).await;
    // Healthy on its first run; every later run dies 0.5 s after starting.
    let c = running(ContainerSpec::shell(
        "if [ -f /tmp/ran ]; then sleep 0.5; exit 3; fi; touch /tmp/ran; while :; do sleep 0.2; done",
    ))
    .await;
    let done = env.run(&env.command(&c, Action::Restart)).await;
    assert_eq!(done.result.status, RemediationStatus::Failed, "{done:?}");
    assert_eq!(done.result.verified, Some(false), "{done:?}");
    assert_eq!(done.result.error.as_deref(), Some("exited again with code 3"), "{done:?}");
    // That crash came after the action: it is a real one, and reported.
    let alerted = wait_for(Duration::from_secs(5), || {
        let mut conn = env.conn.clone();
        let name = c.name().to_owned();
        async move {
            stream_events::<HealthAlert>(&mut conn, EventKind::HealthAlert)
                .await
                .into_iter()
                .map(|(_, a)| a)
                .find(|a| a.container == name && a.exit_code == Some(3))
        }
    })
    .await;
    assert!(alerted.is_some(), "the crash during verification was not alerted; log:\n{}", env.collector.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_then_start() {
    let mut env = start(&[]).await;
    let c = running(ContainerSpec::shell(SERVER)).await;

    let stop = env.command(&c, Action::Stop);
    let start = env.command(&c, Action::Start);
    // Sent together: one container's commands run in order.
    env.send(&stop).await;
    env.send(&start).await;
    let stopped = env.outcome(&stop).await;
    assert_eq!(stopped.result.status, RemediationStatus::Success, "{stopped:?}");
    assert!(stopped.result.details.as_deref().is_some_and(|d| d.starts_with("stopped")), "{stopped:?}");
    assert_eq!(stopped.result.verified, None);
    let started = env.outcome(&start).await;
    assert_eq!(started.result.status, RemediationStatus::Success, "{started:?}");
    assert_eq!(started.result.verified, Some(true), "{started:?}");
    assert_eq!(c.state().await.running, Some(true));
    assert_eq!(starts(&c).await, 2);
    assert!(env.alerts_for(c.name()).await.is_empty(), "the collector's stop was reported as a crash");

    // Stopped for real, and the state stays.
    let stop_again = env.command(&c, Action::Stop);
    let done = env.run(&stop_again).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert_eq!(c.state().await.running, Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_creates_the_next_compose_replica() {
    let mut env = start(&[]).await;
    let docker = docker().await;
    let project = format!("p{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let c = running(
        ContainerSpec::shell(SERVER)
            .label("com.docker.compose.project", &project)
            .label("com.docker.compose.service", "web")
            .label("com.docker.compose.container-number", "1")
            .env("GREETING", "hello")
            .memory(64 * 1024 * 1024),
    )
    .await;
    let replica = format!("{project}-web-2");
    let _cleanup = Removing(vec![replica.clone()]);

    let done = env.run(&env.command(&c, Action::ScaleUp)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert_eq!(done.result.verified, Some(true), "{done:?}");
    assert!(done.result.details.as_deref().is_some_and(|d| d.contains(&replica)), "{done:?}");

    let source = c.inspect().await;
    let copy = docker.inspect_container(&replica, None::<InspectContainerOptions>).await.unwrap();
    assert_eq!(copy.image, source.image, "same image");
    assert_eq!(copy.state.as_ref().and_then(|s| s.running), Some(true));
    let (sc, cc) = (source.config.unwrap(), copy.config.unwrap());
    let (mut sl, mut cl) = (sc.labels.unwrap(), cc.labels.unwrap());
    assert_eq!(cl.remove("com.docker.compose.container-number").as_deref(), Some("2"));
    assert_eq!(cl.remove("hemostat.replica_of").as_deref(), Some(c.name()));
    sl.remove("com.docker.compose.container-number");
    assert_eq!(cl, sl, "same labels");
    assert!(cc.env.unwrap_or_default().contains(&"GREETING=hello".to_owned()));
    assert_eq!(cc.cmd, sc.cmd);
    let (sh, ch) = (source.host_config.unwrap(), copy.host_config.unwrap());
    assert_eq!((ch.memory, ch.network_mode), (sh.memory, sh.network_mode));

    // Again: the next number, counting the replica.
    let third = format!("{project}-web-3");
    let _cleanup3 = Removing(vec![third.clone()]);
    let done = env.run(&env.command(&c, Action::ScaleUp)).await;
    assert!(done.result.details.as_deref().is_some_and(|d| d.contains(&third)), "{done:?}");
    // Three containers is the cap (HEMOSTAT_SCALE_MAX_REPLICAS): a fourth is refused.
    let done = env.run(&env.command(&c, Action::ScaleUp)).await;
    assert_eq!(done.result.status, RemediationStatus::Rejected, "{done:?}");
    let why = done.result.error.unwrap_or_default();
    assert!(why.starts_with(&format!("replica cap: {} already has 3 containers", c.name())), "{why}");

    // Without compose labels: a clone named after the container.
    let plain = running(ContainerSpec::shell(SERVER)).await;
    let clone = format!("{}-hemostat-1", plain.name());
    let _cleanup_clone = Removing(vec![clone.clone()]);
    let done = env.run(&env.command(&plain, Action::ScaleUp)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert!(done.result.details.as_deref().is_some_and(|d| d.contains(&clone)), "{done:?}");
    let copy = docker.inspect_container(&clone, None::<InspectContainerOptions>).await.unwrap();
    assert_eq!(copy.state.and_then(|s| s.running), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_only_exited_managed_containers_and_dangling_images() {
    // Containers must have been down 3 s to go (a day by default): the
    // command's maximum age comes down with it, cleanup never waits less.
    let mut env = start(&[("HEMOSTAT_CLEANUP_MIN_AGE", "3s"), ("HEMOSTAT_COMMAND_MAX_AGE", "3s")]).await;
    let docker = docker().await;
    let volume = format!("hemostat-e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let gone = exited(ContainerSpec::shell("echo data > /data/f").bind(format!("{volume}:/data"))).await;
    let up = running(ContainerSpec::shell(SERVER)).await;
    let foreign = exited(ContainerSpec::shell("exit 0").label(TEST_LABEL, format!("{}-other", env.test))).await;
    let own = exited(ContainerSpec::shell("exit 0").label("hemostat.role", "collector")).await;
    let opted_out = exited(ContainerSpec::shell("exit 0").label("hemostat.enable", "false")).await;
    // Docker may start it again: kept however long it has been down.
    let restarts = exited(ContainerSpec::shell("exit 0").restart_policy(RestartPolicyNameEnum::ON_FAILURE)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Down for less than the minimum age: kept (a crash being healed, evidence).
    let fresh = exited(ContainerSpec::shell("exit 3")).await;
    // An untagged commit is a dangling image.
    let image = docker
        .commit_container(
            CommitContainerOptions { container: Some(foreign.id().to_owned()), ..Default::default() },
            bollard::models::ContainerConfig::default(),
        )
        .await
        .unwrap()
        .id;

    let done = env.run(&env.command(&up, Action::Cleanup)).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    let details = done.result.details.clone().unwrap_or_default();
    assert!(details.contains("removed 1 exited container") && details.contains(gone.name()), "{details}");
    assert!(details.contains(short(&image)) && details.contains("reclaimed"), "{details}");
    assert!(details.contains("kept 2 exited container(s)"), "{details}");
    assert!(details.contains(&format!("{} (restart policy on-failure", restarts.name())), "{details}");
    assert!(details.contains(&format!("{} (exited ", fresh.name())), "{details}");

    let exists = |id: String| {
        let docker = docker.clone();
        async move { docker.inspect_container(&id, None::<InspectContainerOptions>).await.is_ok() }
    };
    assert!(!exists(gone.id().into()).await, "exited managed container kept");
    for kept in [&up, &foreign, &own, &opted_out, &restarts, &fresh] {
        assert!(exists(kept.id().into()).await, "{} was removed", kept.name());
    }
    assert!(docker.inspect_volume(&volume).await.is_ok(), "the volume was removed");
    assert!(docker.inspect_image(&image).await.is_err(), "the dangling image was kept");
    let _ = docker.remove_volume(&volume, None::<RemoveVolumeOptions>).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_allowlisted_commands_and_captures_output() {
    let mut env = start(&[("HEMOSTAT_EXEC_ALLOWLIST", "echo,touch /tmp/ok")]).await;
    let c = running(ContainerSpec::shell(SERVER).label("hemostat.exec_allowlist", "sh")).await;

    let mut echo = env.command(&c, Action::Exec);
    echo.args = vec!["echo".into(), "hello-from-exec".into()];
    let done = env.run(&echo).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    let details = done.result.details.clone().unwrap_or_default();
    assert!(details.contains("exit code 0") && details.contains("hello-from-exec"), "{details}");

    // An exact command line from the config, a program from the label.
    let mut touch = env.command(&c, Action::Exec);
    touch.args = vec!["touch".into(), "/tmp/ok".into()];
    assert_eq!(env.run(&touch).await.result.status, RemediationStatus::Success);
    assert!(file_exists(&c, "/tmp/ok").await);
    let mut failing = env.command(&c, Action::Exec);
    failing.args = vec!["sh".into(), "-c".into(), "yes | head -c 10000; exit 4".into()];
    let done = env.run(&failing).await;
    assert_eq!(done.result.status, RemediationStatus::Failed, "{done:?}");
    assert_eq!(done.result.error.as_deref(), Some("exited with code 4"));
    let details = done.result.details.unwrap_or_default();
    assert!(details.contains("truncated: 4096 of 10000 bytes"), "{details}");
}

/// What an exec prints is the container's output, like its logs: it leaves
/// the host redacted, stdout and stderr, whether the command succeeds or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_is_reported_redacted() {
    let mut env = start(&[("HEMOSTAT_REDACT_PATTERNS", r"acct-(?P<s>\d{6})")]).await;
    let c = running(ContainerSpec::shell(SERVER).label("hemostat.exec_allowlist", "sh")).await;
    let token = format!("ghp_{}", "Zx8Qm2Lp5R".repeat(4));
    let script = format!(
        "echo DB_PASSWORD=hunter2-exec; echo 'calling with {token}'; echo acct-123456; echo password=s3cr3t-err >&2; echo done"
    );
    for (exit, status) in [("", RemediationStatus::Success), ("; exit 3", RemediationStatus::Failed)] {
        let mut cmd = env.command(&c, Action::Exec);
        cmd.args = vec!["sh".into(), "-c".into(), format!("{script}{exit}")];
        let done = env.run(&cmd).await;
        assert_eq!(done.result.status, status, "{done:?}");
        let details = done.result.details.clone().unwrap_or_default();
        assert!(details.contains("DB_PASSWORD=[REDACTED]") && details.contains("done"), "{details}");
        assert!(details.contains("acct-[REDACTED]"), "the operator's pattern applies too: {details}");
        let report = serde_json::to_string(&done).unwrap();
        for secret in ["hunter2-exec", token.as_str(), "123456", "s3cr3t-err"] {
            assert!(!report.contains(secret), "{secret} left the host: {report}");
        }
    }
}

/// Docker's error text can quote the container's own configuration (here
/// the command it cannot start): a report carries it redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_errors_are_reported_redacted() {
    let mut env = start(&[]).await;
    let docker = docker().await;
    let name = format!("{NAME_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let _cleanup = Removing(vec![name.clone()]);
    let body = ContainerCreateBody {
        image: Some(test_image()),
        cmd: Some(vec!["/nonexistent --password=hunter2-docker".into()]),
        labels: Some([(TEST_LABEL.to_owned(), current_test_name())].into()),
        host_config: Some(HostConfig { network_mode: Some("none".into()), ..Default::default() }),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), body)
        .await
        .expect("created");
    // A command's shape from a container of this test, aimed at the other.
    let probe = running(ContainerSpec::shell(SERVER)).await;
    let mut cmd = env.command(&probe, Action::Start);
    cmd.container = name.clone();
    cmd.container_id = Some(created.id.clone());
    let done = env.run(&cmd).await;
    assert_eq!(done.result.status, RemediationStatus::Failed, "{done:?}");
    let error = done.result.error.clone().unwrap_or_default();
    assert!(error.contains("/nonexistent --password=[REDACTED]"), "{error}");
    let report = serde_json::to_string(&done).unwrap();
    assert!(!report.contains("hunter2-docker"), "left the host: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_not_on_the_allowlist_is_rejected_and_nothing_runs() {
    let mut env = start(&[("HEMOSTAT_EXEC_ALLOWLIST", "echo,touch /tmp/ok")]).await;
    let c = running(ContainerSpec::shell(SERVER)).await;
    for argv in [vec!["touch", "/tmp/pwned"], vec!["sh", "-c", "touch /tmp/pwned"], vec!["/bin/echo", "x"]] {
        let mut cmd = env.command(&c, Action::Exec);
        cmd.args = argv.iter().map(|s| s.to_string()).collect();
        let done = env.run(&cmd).await;
        assert_eq!(done.result.status, RemediationStatus::Rejected, "{argv:?}: {done:?}");
        assert!(done.result.error.as_deref().is_some_and(|e| e.contains("not on the exec allowlist")), "{done:?}");
        // The lines `scripts/security-figures.sh` counts.
        println!("attack refused: signed command: exec off the allowlist ({})", argv[0]);
    }
    assert!(!file_exists(&c, "/tmp/pwned").await, "a refused command ran");
    let log = env.collector.log();
    assert!(log.contains("WARN") && log.contains("exec refused"), "refusal not audited in the log");
    assert!(!log.contains("/tmp/pwned"), "refused argv logged (may hold secrets)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_of_every_action_changes_nothing() {
    let mut env = start(&[("HEMOSTAT_EXEC_ALLOWLIST", "touch")]).await;
    let docker = docker().await;
    let project = format!("p{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let up = running(
        ContainerSpec::shell(SERVER)
            .label("com.docker.compose.project", &project)
            .label("com.docker.compose.service", "web")
            .label("com.docker.compose.container-number", "1"),
    )
    .await;
    let down = exited(ContainerSpec::shell("exit 0")).await;
    let up_before = up.state().await;

    let mut outcomes = Vec::new();
    for (target, action) in [
        (&up, Action::Restart),
        (&up, Action::Recreate),
        (&up, Action::Stop),
        (&down, Action::Start),
        (&up, Action::ScaleUp),
        (&up, Action::Cleanup),
        (&up, Action::Exec),
    ] {
        let mut cmd = env.command(target, action);
        cmd.dry_run = true;
        if action == Action::Exec {
            cmd.args = vec!["touch".into(), "/tmp/dry".into()];
        }
        let done = env.run(&cmd).await;
        assert_eq!(done.result.status, RemediationStatus::DryRun, "{action}: {done:?}");
        assert!(done.dry_run);
        outcomes.push((action, done.result.details.unwrap_or_default()));
    }
    let details = |a: Action| outcomes.iter().find(|(x, _)| *x == a).map(|(_, d)| d.clone()).unwrap();
    assert!(details(Action::ScaleUp).contains(&format!("{project}-web-2")), "{outcomes:?}");
    // Just exited: kept, and the dry run says why.
    assert!(details(Action::Cleanup).contains(&format!("{} (exited ", down.name())), "{outcomes:?}");
    assert!(details(Action::Restart).starts_with("would restart"), "{outcomes:?}");
    assert!(details(Action::Recreate).starts_with(&format!("would recreate {} ", up.name())), "{outcomes:?}");

    let up_after = up.state().await;
    assert_eq!((up_after.running, up_after.started_at), (Some(true), up_before.started_at));
    assert_eq!(down.state().await.running, Some(false));
    assert!(docker.inspect_container(&format!("{project}-web-2"), None::<InspectContainerOptions>).await.is_err());
    assert!(docker.inspect_container(down.id(), None::<InspectContainerOptions>).await.is_ok(), "cleanup removed");
    assert!(!file_exists(&up, "/tmp/dry").await, "exec ran");
    assert_eq!(starts(&up).await, 1);
    let by_name = docker.inspect_container(up.name(), None::<InspectContainerOptions>).await.unwrap();
    assert_eq!(by_name.id.as_deref(), Some(up.id()), "recreated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_older_than_the_maximum_age_is_refused_and_never_executed() {
    let mut env = start(&[("HEMOSTAT_COMMAND_MAX_AGE", "2m")]).await;
    let c = running(ContainerSpec::shell(SERVER)).await;
    let before = c.state().await.started_at;
    // Queued an hour ago while this host's collector was away.
    let mut stale = env.command(&c, Action::Restart);
    stale.issued_at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let done = env.run(&stale).await;
    assert_eq!(done.result.status, RemediationStatus::Rejected, "{done:?}");
    let reason = done.result.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("expired: issued 36") && reason.contains("maximum age of 120s"), "{reason}");
    println!("attack refused: signed command: replayed an hour later");
    // A fresh one right after is executed: the refusal blocked nothing else.
    let fresh = env.command(&c, Action::Restart);
    assert_eq!(env.run(&fresh).await.result.status, RemediationStatus::Success);
    assert_eq!(starts(&c).await, 2, "the expired command ran");
    assert_ne!(c.state().await.started_at, before);
    assert!(env.marker(&stale.id).await.is_none(), "an expired command is not marked as executed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_command_is_not_executed_twice() {
    let mut env = start(&[("HEMOSTAT_VERIFY_SECONDS", "2")]).await;
    let c = running(ContainerSpec::shell(SERVER)).await;
    let cmd = env.command(&c, Action::Restart);
    // Twice at once: the second arrives while the first is executing.
    env.send(&cmd).await;
    let second = env.send(&cmd).await;
    let done = env.outcome(&cmd).await;
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    env.wait_acked(&second).await;
    // And once after it finished.
    let third = env.send(&cmd).await;
    env.wait_acked(&third).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.completions(&cmd.id).await.len(), 1, "one outcome per command");
    assert_eq!(starts(&c).await, 2, "restarted more than once");
    assert_eq!(env.marker(&cmd.id).await.as_deref(), Some("done:success"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_cut_short_by_a_collector_crash_is_reported_as_unknown() {
    // A long verification window: the crash lands mid-command.
    let mut env = start(&[("HEMOSTAT_VERIFY_SECONDS", "60")]).await;
    let c = running(ContainerSpec::shell(SERVER)).await;
    // One that does not say when its problem was seen (a seed-protocol
    // responder's): whether the restart took place cannot be told.
    let mut cmd = env.command(&c, Action::Restart);
    cmd.context.detected_at = None;
    env.send(&cmd).await;
    let restarted = wait_for(Duration::from_secs(15), || async { (starts(&c).await == 2).then_some(()) }).await;
    assert!(restarted.is_some(), "never restarted; log:\n{}", env.collector.log_tail(30));
    let marker = env.marker(&cmd.id).await.unwrap_or_default();
    assert!(marker.starts_with("executing:"), "marker while executing: {marker}");

    env.collector.kill();
    env.collector = collector(&env.redis, &env.host, &[]).await;
    let done = env.outcome(&cmd).await;
    assert_eq!(done.result.status, RemediationStatus::Failed, "{done:?}");
    assert_eq!(done.result.error.as_deref(), Some("collector restarted while executing; outcome unknown"));
    // Finished after the outcome is out (publish, then mark): wait for it.
    let marked = wait_for(Duration::from_secs(5), || {
        let mut conn = env.conn.clone();
        let key = keys::command_seen(&env.host, &cmd.id);
        async move { (conn.get::<_, Option<String>>(&key).await.ok()?.as_deref() == Some("done:failed")).then_some(()) }
    })
    .await;
    assert!(marked.is_some(), "marker: {:?}", env.marker(&cmd.id).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(starts(&c).await, 2, "re-executed after the crash");
    assert_eq!(env.completions(&cmd.id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_for_a_problem_cut_short_by_a_collector_crash_is_finished_not_repeated() {
    let mut env = start(&[("HEMOSTAT_VERIFY_SECONDS", "60")]).await;
    let c = running(ContainerSpec::shell(SERVER)).await;
    // Ordered for a problem seen now: the run it starts begins after it.
    let cmd = env.command(&c, Action::Restart);
    env.send(&cmd).await;
    let restarted = wait_for(Duration::from_secs(15), || async { (starts(&c).await == 2).then_some(()) }).await;
    assert!(restarted.is_some(), "never restarted; log:\n{}", env.collector.log_tail(30));

    env.collector.kill();
    env.collector = collector(&env.redis, &env.host, &[]).await;
    let done = env.outcome(&cmd).await;
    assert_eq!(done.result.status, RemediationStatus::NotApplicable, "{done:?}");
    assert!(done.result.details.as_deref().is_some_and(|d| d.starts_with("already running again since")), "{done:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(starts(&c).await, 2, "restarted again after the crash");
    assert_eq!(env.completions(&cmd.id).await.len(), 1);
}

/// A restart that comes late (asked again after a cooldown) for a
/// container someone started since the problem and that is down again
/// (it failed again, or an operator stopped it): that run's end is its own
/// incident, and the operator's stop is not undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_restart_does_not_undo_a_stop_since_the_problem() {
    let mut env = start(&[]).await;
    let c = running(ContainerSpec::shell(SERVER)).await;
    // The problem is seen, then an operator starts it again and stops it.
    let cmd = env.command(&c, Action::Restart);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let docker = c.docker();
    let quick = bollard::query_parameters::RestartContainerOptions { t: Some(0), signal: None };
    docker.restart_container(c.id(), Some(quick)).await.unwrap();
    c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let stop = bollard::query_parameters::StopContainerOptions { t: Some(0), signal: None };
    docker.stop_container(c.id(), Some(stop)).await.unwrap();
    c.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;

    let done = env.run(&cmd).await;
    assert_eq!(done.result.status, RemediationStatus::NotApplicable, "{done:?}");
    assert!(done.result.details.as_deref().is_some_and(|d| d.starts_with("started again at")), "{done:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.state().await.running, Some(false), "the operator's stop was undone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_scope_and_own_containers_are_refused() {
    let mut env = start(&[("HEMOSTAT_EXEC_ALLOWLIST", "touch")]).await;
    let own = running(ContainerSpec::shell(SERVER).label("hemostat.role", "collector")).await;
    let foreign = running(ContainerSpec::shell(SERVER).label(TEST_LABEL, format!("{}-other", env.test))).await;
    for c in [&own, &foreign] {
        for action in [Action::Restart, Action::Stop, Action::ScaleUp, Action::Exec] {
            let mut cmd = env.command(c, action);
            cmd.args = vec!["touch".into(), "/tmp/x".into()];
            let done = env.run(&cmd).await;
            assert_eq!(done.result.status, RemediationStatus::Rejected, "{action} on {}: {done:?}", c.name());
            println!("attack refused: signed command: {action} on a container out of scope or HemoStat's own");
        }
        assert_eq!(starts(c).await, 1);
        assert_eq!(c.state().await.running, Some(true));
        assert!(!file_exists(c, "/tmp/x").await);
    }
}

/// The collector's own line, should the gate be bypassed (Redis written by
/// someone else, a stolen key): a validly signed command is still refused
/// when its name and id are of two containers, or when the container's
/// labels forbid it (none, notify, stop only, its own hourly cap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_commands_against_a_containers_labels_or_identity_are_refused() {
    let mut env = start(&[]).await;
    let none = running(ContainerSpec::shell(SERVER).label("hemostat.action", "none")).await;
    let notify = running(ContainerSpec::shell(SERVER).label("hemostat.action", "notify")).await;
    let stop_only = running(ContainerSpec::shell(SERVER).label("hemostat.action", "stop")).await;
    let capped = running(ContainerSpec::shell(SERVER).label("hemostat.max_actions_per_hour", "1")).await;
    let other = running(ContainerSpec::shell(SERVER)).await;

    for (c, action, why) in [
        (&none, Action::Stop, "policy: none (hemostat.action=none): its collector does not act on it"),
        (&notify, Action::Restart, "policy: notify (hemostat.action=notify): its collector does not act on it"),
        (
            &stop_only,
            Action::Restart,
            "policy: stop (hemostat.action=stop): its collector only stops it, never restart",
        ),
    ] {
        let done = env.run(&env.command(c, action)).await;
        assert_eq!(done.result.status, RemediationStatus::Rejected, "{done:?}");
        assert_eq!(done.result.error.as_deref(), Some(why));
        assert_eq!((starts(c).await, c.state().await.running), (1, Some(true)), "{}", c.name());
        println!("attack refused: signed command: {action} against the container's hemostat.action label");
    }

    // Its own cap of one action an hour: the second is refused here too.
    let first = env.run(&env.command(&capped, Action::Restart)).await;
    assert_eq!(first.result.status, RemediationStatus::Success, "{first:?}");
    let second = env.run(&env.command(&capped, Action::Restart)).await;
    assert_eq!(second.result.status, RemediationStatus::Rejected, "{second:?}");
    assert!(second.result.error.as_deref().unwrap_or("").starts_with("hourly cap: 1 actions on it in the last hour"));
    println!("attack refused: signed command: beyond the container's own hourly cap");
    assert_eq!(starts(&capped).await, 2);

    // The name of one container with the id of another: neither is touched.
    let mut cmd = env.command(&other, Action::Restart);
    cmd.container_id = Some(none.id().to_owned());
    let done = env.run(&cmd).await;
    assert_eq!(done.result.status, RemediationStatus::Rejected, "{done:?}");
    let why = done.result.error.unwrap_or_default();
    assert!(why.starts_with(&format!("name and id disagree: the command names {}", other.name())), "{why}");
    assert_eq!((starts(&other).await, starts(&none).await), (1, 1));
    println!("attack refused: signed command: one container's name with another's id");
}

/// A container that drains for 3 s on SIGTERM, then exits 0.
const DRAINS: &str = "trap 'echo draining; sleep 3; echo drained; exit 0' TERM; while :; do sleep 0.2; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_gives_the_container_its_own_stop_timeout_unless_a_label_says_otherwise() {
    // The collector's own default here is 1 s: the container's 30 s must win.
    let mut env = start(&[]).await;
    let own = running(ContainerSpec::shell(DRAINS).stop_timeout(30)).await;
    let labelled = running(ContainerSpec::shell(DRAINS).stop_timeout(30).label("hemostat.stop_timeout", "1s")).await;
    let autoheal = running(ContainerSpec::shell(DRAINS).label("autoheal.stop.timeout", "30")).await;

    let commands: Vec<Command> = [&own, &labelled, &autoheal].iter().map(|c| env.command(c, Action::Stop)).collect();
    for cmd in &commands {
        env.send(cmd).await;
    }
    let mut done = Vec::new();
    for cmd in &commands {
        done.push(env.outcome(cmd).await);
    }
    for (c, d) in [(&own, &done[0]), (&autoheal, &done[2])] {
        assert_eq!(d.result.status, RemediationStatus::Success, "{d:?}");
        assert_eq!(c.state().await.exit_code, Some(0), "not given its time to drain: {d:?}");
        assert!(c.logs().await.contains("drained"), "{}", c.logs().await);
        assert!(d.result.duration_ms.unwrap() >= 3000, "{d:?}");
    }
    // The label's 1 s cuts the drain short: killed.
    assert_eq!(labelled.state().await.exit_code, Some(137), "{:?}", done[1]);
    assert!(!labelled.logs().await.contains("drained"));
}
