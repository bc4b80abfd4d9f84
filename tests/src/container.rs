//! Throwaway containers on the private engine.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, HealthConfig, HostConfig,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::TryStreamExt;

use crate::docker::test_image;
use crate::polling::wait_for;

/// Prefix of every test container's name, so leftovers are recognisable.
pub const NAME_PREFIX: &str = "hemostat-e2e-";

/// Label carrying the creating test's name. Deliberately outside the
/// `hemostat.` namespace, which the collector reads as configuration.
pub const TEST_LABEL: &str = "hemostat-e2e.test";

/// A shell script that runs until SIGUSR1, then exits 1: a crash on demand
/// (`container.kill("USR1")`).
pub const CRASH_ON_USR1: &str =
    r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#;

/// A time as Docker's inspect writes it (RFC 3339), present.
pub fn docker_time(s: &Option<String>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s.as_deref().expect("timestamp present")).expect("RFC 3339").into()
}

/// Starts [`CRASH_ON_USR1`] on `docker` with no restart policy (only
/// HemoStat may start it again) and waits until it runs.
pub async fn start_crash_on_usr1(docker: &Docker) -> TestContainer {
    let container = ContainerSpec::shell(CRASH_ON_USR1)
        .restart_policy(bollard::models::RestartPolicyNameEnum::NO)
        .start(docker)
        .await;
    container.wait_for_status(bollard::models::ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    container
}

/// What to run; build with [`ContainerSpec::new`] / [`ContainerSpec::shell`],
/// then [`ContainerSpec::start`].
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    image: String,
    cmd: Vec<String>,
    env: Vec<String>,
    labels: HashMap<String, String>,
    restart_policy: Option<RestartPolicy>,
    stop_timeout: Option<i64>,
    memory: Option<i64>,
    binds: Vec<String>,
    healthcheck: Option<HealthConfig>,
    name: Option<String>,
    memory_swap: Option<i64>,
    tmpfs: HashMap<String, String>,
    user: Option<String>,
}

impl ContainerSpec {
    /// Runs `cmd` (argv, no shell) in [`test_image`].
    pub fn new<I, S>(cmd: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut labels = HashMap::new();
        labels.insert(TEST_LABEL.to_string(), crate::current_test_name());
        Self {
            image: test_image(),
            cmd: cmd.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            labels,
            restart_policy: None,
            stop_timeout: None,
            memory: None,
            binds: Vec::new(),
            healthcheck: None,
            name: None,
            memory_swap: None,
            tmpfs: HashMap::new(),
            user: None,
        }
    }

    /// Runs `sh -c script`.
    pub fn shell(script: &str) -> Self {
        Self::new(["sh", "-c", script])
    }

    /// A name of the test's choosing instead of a random one, e.g. the same
    /// name on several engines (names repeat across hosts).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Docker restart policy; unset means the engine default (`no`).
    pub fn restart_policy(mut self, name: RestartPolicyNameEnum) -> Self {
        self.restart_policy = Some(RestartPolicy { name: Some(name), maximum_retry_count: None });
        self
    }

    /// Seconds `docker stop` waits before SIGKILL.
    pub fn stop_timeout(mut self, seconds: i64) -> Self {
        self.stop_timeout = Some(seconds);
        self
    }

    /// Memory limit in bytes (`docker run -m`).
    pub fn memory(mut self, bytes: i64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// Memory limit in bytes with no swap beside it (`-m N --memory-swap N`),
    /// so exceeding it is an OOM kill at once rather than a slow swap.
    pub fn memory_without_swap(mut self, bytes: i64) -> Self {
        self.memory = Some(bytes);
        self.memory_swap = Some(bytes);
        self
    }

    /// A tmpfs mount at `path` with mount `options` (`--tmpfs /data:size=1m`).
    pub fn tmpfs(mut self, path: impl Into<String>, options: impl Into<String>) -> Self {
        self.tmpfs.insert(path.into(), options.into());
        self
    }

    /// The user the command runs as (`docker run -u 65534`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// A bind or named-volume mount, as `docker run -v` (`vol:/data`).
    pub fn bind(mut self, spec: impl Into<String>) -> Self {
        self.binds.push(spec.into());
        self
    }

    /// A health check running `sh -c script` every `interval_ms`.
    pub fn healthcheck(mut self, script: &str, interval_ms: i64) -> Self {
        let nanos = interval_ms * 1_000_000;
        self.healthcheck = Some(HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), script.into()]),
            interval: Some(nanos),
            timeout: Some(nanos.max(1_000_000_000)),
            retries: Some(1),
            ..Default::default()
        });
        self
    }

    /// Creates and starts the container.
    pub async fn start(self, docker: &Docker) -> TestContainer {
        TestContainer::start(docker, self).await
    }

    /// [`start`](Self::start) that returns Docker's error instead of
    /// panicking (an engine that is restarting, in fault tests).
    pub async fn try_start(self, docker: &Docker) -> Result<TestContainer, bollard::errors::Error> {
        TestContainer::try_start(docker, self).await
    }
}

/// A running test container, force-removed (with its volumes) when dropped.
pub struct TestContainer {
    docker: Docker,
    id: String,
    name: String,
    removed: bool,
}

impl TestContainer {
    /// Creates and starts a container named `hemostat-e2e-{random}` (or as
    /// [`ContainerSpec::name`] says).
    pub async fn start(docker: &Docker, spec: ContainerSpec) -> Self {
        let (image, cmd) = (spec.image.clone(), spec.cmd.clone());
        Self::try_start(docker, spec).await.unwrap_or_else(|e| {
            panic!(
                "starting a container of {image} ({cmd:?}) failed: {e} \
                 (is the image built? scripts/test-env.sh start builds it)"
            )
        })
    }

    /// [`start`](Self::start), with Docker's error returned.
    pub async fn try_start(docker: &Docker, spec: ContainerSpec) -> Result<Self, bollard::errors::Error> {
        let name = spec
            .name
            .clone()
            .unwrap_or_else(|| format!("{NAME_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.cmd.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            labels: Some(spec.labels.clone()),
            stop_timeout: spec.stop_timeout,
            healthcheck: spec.healthcheck.clone(),
            user: spec.user.clone(),
            host_config: Some(HostConfig {
                restart_policy: spec.restart_policy.clone(),
                memory: spec.memory,
                memory_swap: spec.memory_swap,
                tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.clone()),
                binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
                // The private engine runs with --bridge=none.
                network_mode: Some("none".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker.create_container(Some(options), body).await?;
        // Own the container before starting it, so a failed start still cleans up.
        let container = Self { docker: docker.clone(), id: created.id, name, removed: false };
        docker.start_container(&container.id, None).await?;
        Ok(container)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub async fn inspect(&self) -> ContainerInspectResponse {
        self.docker
            .inspect_container(&self.id, None)
            .await
            .unwrap_or_else(|e| panic!("inspecting container {} failed: {e}", self.name))
    }

    pub async fn state(&self) -> ContainerState {
        self.inspect().await.state.unwrap_or_default()
    }

    /// The container once it runs again after a start later than `since`
    /// (its inspect then), or None after `within`.
    pub async fn restarted_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        within: Duration,
    ) -> Option<ContainerInspectResponse> {
        wait_for(within, || async {
            let inspect = self.inspect().await;
            let state = inspect.state.clone().unwrap_or_default();
            let restarted = state.running == Some(true) && docker_time(&state.started_at) > since;
            restarted.then_some(inspect)
        })
        .await
    }

    /// Sends `signal` (e.g. `"SIGUSR1"`, `"USR1"`, `"9"`) to the main process.
    pub async fn kill(&self, signal: &str) {
        let options = KillContainerOptionsBuilder::default().signal(signal).build();
        self.docker
            .kill_container(&self.id, Some(options))
            .await
            .unwrap_or_else(|e| panic!("sending {signal} to container {} failed: {e}", self.name));
    }

    /// `docker stop`: SIGTERM, then SIGKILL after `timeout_seconds`, as an
    /// operator would.
    pub async fn stop(&self, timeout_seconds: i32) {
        let options = bollard::query_parameters::StopContainerOptionsBuilder::default().t(timeout_seconds).build();
        self.docker
            .stop_container(&self.id, Some(options))
            .await
            .unwrap_or_else(|e| panic!("stopping container {} failed: {e}", self.name));
    }

    /// Everything the container wrote so far, stdout and stderr interleaved.
    pub async fn logs(&self) -> String {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).build();
        let chunks: Vec<_> = self
            .docker
            .logs(&self.id, Some(options))
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("reading logs of container {} failed: {e}", self.name));
        chunks.iter().map(|c| String::from_utf8_lossy(c.as_ref()).into_owned()).collect()
    }

    /// Waits until the container's output contains `needle`; panics with the
    /// output on timeout.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let seen = crate::polling::wait_until(timeout, || async { self.logs().await.contains(needle) }).await;
        if !seen {
            panic!(
                "container {} did not print {needle:?} within {timeout:?}; output:\n{}\nstate: {:?}",
                self.name,
                self.logs().await,
                self.state().await
            );
        }
    }

    /// Waits until the container's status is `status`; panics with the last
    /// seen state on timeout.
    pub async fn wait_for_status(&self, status: ContainerStateStatusEnum, timeout: Duration) -> ContainerState {
        let found = wait_for(timeout, || async {
            let state = self.state().await;
            (state.status == Some(status)).then_some(state)
        })
        .await;
        match found {
            Some(state) => state,
            None => panic!(
                "container {} did not reach status {status} within {timeout:?}; last state: {:?}",
                self.name,
                self.state().await
            ),
        }
    }

    /// Removes the container now, reporting errors (Drop only logs them).
    pub async fn remove(self) {
        let name = self.name.clone();
        self.try_remove().await.unwrap_or_else(|e| panic!("removing container {name} failed: {e}"));
    }

    /// [`remove`](Self::remove), with Docker's error returned.
    pub async fn try_remove(mut self) -> Result<(), bollard::errors::Error> {
        self.removed = true;
        remove(&self.docker, &self.id).await
    }
}

async fn remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match docker.remove_container(id, Some(options)).await {
        // Already gone (e.g. the test removed it through the API): fine.
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        other => other,
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // Drop cannot await, and blocking on the test's own runtime would
        // deadlock a current-thread runtime; a short-lived thread with its own
        // runtime works from any context, including during a panic.
        let docker = self.docker.clone();
        let id = self.id.clone();
        let name = self.name.clone();
        let joined = std::thread::Builder::new()
            .name(format!("rm-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                rt.block_on(async {
                    match tokio::time::timeout(Duration::from_secs(30), remove(&docker, &id)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => eprintln!("warning: removing container {name} failed: {e}"),
                        Err(_) => eprintln!("warning: removing container {name} timed out"),
                    }
                });
                Ok::<_, std::io::Error>(())
            })
            .map(|handle| handle.join());
        if !matches!(joined, Ok(Ok(Ok(())))) {
            eprintln!("warning: could not clean up container {}; scripts/test-env.sh stop will", self.name);
        }
    }
}

impl TestContainer {
    /// A fresh command for this container's collector on `host`, as the
    /// responder would issue it (unsigned: callers seal it with their key),
    /// for a problem seen now: a restart or start of a container running
    /// since before that is carried out (since after it, it is moot).
    pub fn command(&self, host: &str, action: hemostat_protocol::Action) -> hemostat_protocol::Command {
        hemostat_protocol::Command {
            id: uuid::Uuid::new_v4().to_string(),
            host: host.into(),
            container: self.name().into(),
            container_id: Some(self.id().into()),
            action,
            reason: "e2e".into(),
            confidence: 0.9,
            issued_at: chrono::Utc::now().to_rfc3339(),
            expires_at: Some((chrono::Utc::now() + hemostat_protocol::command::LIFETIME).to_rfc3339()),
            dry_run: false,
            context: hemostat_protocol::event::IncidentContext {
                detected_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
                ..Default::default()
            },
            args: Vec::new(),
        }
    }
}
