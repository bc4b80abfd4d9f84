//! HemoStat's own long-running parts as test processes: the Lambda emulator,
//! the bridge and the collector, started and waited for in one place.
//!
//! The emulator authenticates its callers: every emulator and bridge started
//! here gets the test binary's [`lambda_token`] (`HEMOSTAT_LAMBDA_TOKEN`),
//! and a test calling the Invoke API itself sends it.

use std::{sync::OnceLock, time::Duration};

use hemostat_protocol::acl::Role;

use crate::{
    acl::{Users, create_users},
    container::TEST_LABEL,
    current_test_name,
    keys::test_keys,
    paths::{log_dir, state_dir, workspace_root},
    port::free_port,
    process::{Process, ProcessBuilder},
};

/// How long a part may take to come up on a loaded machine.
const READY: Duration = Duration::from_secs(20);
const COLLECTOR_READY: Duration = Duration::from_secs(60);

/// The emulator's token in this test binary: random, one per process, given
/// to every emulator and bridge started here.
pub fn lambda_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| format!("e2e-{}", uuid::Uuid::new_v4().simple()))
}

/// `Bearer <lambda_token>`: what a test sends to the Invoke API (or an
/// `AWS_IAM` function URL) itself.
pub fn lambda_bearer() -> String {
    format!("Bearer {}", lambda_token())
}

/// Starts `hemostat-local` on a free loopback port with [`lambda_token`],
/// after `configure` has added its template, functions and environment (it
/// may set another token), and waits until it listens. Returns the process
/// and its Invoke API endpoint (`http://127.0.0.1:PORT`).
pub async fn start_emulator(configure: impl FnOnce(ProcessBuilder) -> ProcessBuilder) -> (Process, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let builder = Process::builder("hemostat-local").env("HEMOSTAT_LAMBDA_TOKEN", lambda_token());
    let emulator = configure(builder).args(["--listen", &listen]).spawn();
    emulator.wait_for_line("listening on", READY).await;
    (emulator, format!("http://{listen}"))
}

/// Starts `hemostat-bridge` with [`lambda_token`] as `configure` sets it up
/// and waits until every route is ready.
pub async fn start_bridge(configure: impl FnOnce(ProcessBuilder) -> ProcessBuilder) -> Process {
    let builder = Process::builder("hemostat-bridge").env("HEMOSTAT_LAMBDA_TOKEN", lambda_token());
    let bridge = configure(builder).spawn();
    bridge.wait_for_line("bridge ready", READY).await;
    bridge
}

/// A unique host name for a test's collector: names repeat across hosts,
/// and tests share one Redis per test binary at most.
pub fn test_host() -> String {
    format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The collector as every test runs it: on `redis_url` as `host`, watching
/// only the running test's containers (tests share one engine), with a
/// state folder of its own ([`state_dir`] of `host`: started again under
/// the same host, it resumes from where it stopped), logging its own debug
/// lines. Add the test's settings, then `spawn` it, or use
/// [`start_collector`] to wait until it is ready.
pub fn collector(redis_url: &str, host: &str) -> ProcessBuilder {
    Process::builder("hemostat-collector")
        .env("REDIS_URL", redis_url)
        .env("HEMOSTAT_HOST", host)
        .env("HEMOSTAT_COLLECTOR_STATE_DIR", state_dir(host))
        .env("HEMOSTAT_LABEL_SELECTOR", format!("{TEST_LABEL}={}", current_test_name()))
        // Commands must be signed, with the run's key.
        .env("HEMOSTAT_COMMAND_PUBLIC_KEYS", &test_keys().public)
        .env("RUST_LOG", "info,hemostat_collector=debug")
}

/// Starts [`collector`] with `configure`'s settings on top and waits for
/// its ready line (Docker and Redis reachable take longer on a loaded
/// machine than the other parts: 60 s).
pub async fn start_collector(
    redis_url: &str,
    host: &str,
    configure: impl FnOnce(ProcessBuilder) -> ProcessBuilder,
) -> Process {
    let collector = configure(collector(redis_url, host)).spawn();
    collector.wait_for_line("collector ready", COLLECTOR_READY).await;
    collector
}

/// The whole stack of one test: the emulator running every function of the
/// real template.yaml, a bridge, and a collector on the test's dockerd
/// watching only this test's containers, under a host name of its own.
pub struct Stack {
    /// The collector's host name (unique per stack).
    pub host: String,
    /// The emulator's Invoke API endpoint (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    pub emulator: Process,
    pub bridge: Process,
    pub collector: Process,
    /// The components' Redis users, with [`StackEnv::least_privilege`].
    pub users: Option<Users>,
}

/// Settings a test gives its [`Stack`] on top of the defaults: environment
/// variables for the emulator (and through it the functions: it passes on
/// what template.yaml declares) and for the collector.
#[derive(Debug, Clone, Default)]
pub struct StackEnv {
    /// Set on `hemostat-local`, e.g. `RESPONDER_COOLDOWN_SECONDS`,
    /// `OPENAI_BASE_URL`.
    pub emulator: Vec<(String, String)>,
    /// Set on the collector, e.g. `HEMOSTAT_SUSTAIN_SECONDS`.
    pub collector: Vec<(String, String)>,
    /// Arguments of `hemostat-local`, e.g. `--schedule-interval
    /// hemostat-responder=1s` (the template's `rate(1 minute)`, faster).
    pub emulator_args: Vec<String>,
    /// Every component as its own Redis ACL user (collector, bridge, each
    /// function through the emulator's `--env-vars`), as `scripts/stack.sh`
    /// runs them, rather than all as the default user.
    pub least_privilege: bool,
}

impl StackEnv {
    pub fn emulator(mut self, key: &str, value: impl Into<String>) -> Self {
        self.emulator.push((key.to_owned(), value.into()));
        self
    }

    pub fn collector(mut self, key: &str, value: impl Into<String>) -> Self {
        self.collector.push((key.to_owned(), value.into()));
        self
    }

    pub fn emulator_arg(mut self, arg: impl Into<String>) -> Self {
        self.emulator_args.push(arg.into());
        self
    }

    /// See [`StackEnv::least_privilege`].
    pub fn least_privilege(mut self) -> Self {
        self.least_privilege = true;
        self
    }
}

/// Starts [`Stack`] against `redis_url`, signing commands with
/// the run's key ([`test_keys`]). Needs `DOCKER_HOST` (scripts/test.sh sets it).
pub async fn start_stack(redis_url: &str) -> Stack {
    start_stack_with(redis_url, &StackEnv::default()).await
}

/// [`start_stack`] with `env` on top of the defaults.
pub async fn start_stack_with(redis_url: &str, env: &StackEnv) -> Stack {
    let docker_host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST: run through scripts/test.sh");
    let host = test_host();
    let template = workspace_root().join("template.yaml");
    let users = match env.least_privilege {
        true => Some(create_users(redis_url, &Role::stack(&host)).await),
        false => None,
    };
    let url_of = |role: Role| users.as_ref().map_or(redis_url, |u| u.url(&role)).to_owned();
    // Each function's own user, as SAM's --env-vars takes them.
    let env_vars = users.as_ref().map(|users| {
        let functions = [Role::Analyzer, Role::Responder, Role::Alert, Role::Exporter, Role::Dashboard];
        let vars: serde_json::Map<String, serde_json::Value> = functions
            .into_iter()
            .map(|role| (format!("hemostat-{role}"), serde_json::json!({ "REDIS_URL": users.url(&role) })))
            .collect();
        let path = log_dir().join(format!("{}-{host}-env.json", current_test_name()));
        std::fs::write(&path, serde_json::Value::Object(vars).to_string()).expect("writing the --env-vars file");
        path
    });

    let (emulator, endpoint) = start_emulator(|b| {
        let mut b = b
            .args(["--template", template.to_str().unwrap()])
            .env("REDIS_URL", redis_url)
            .env("HEMOSTAT_COMMAND_SIGNING_KEY", &test_keys().private)
            .env("RUST_LOG", "info");
        if let Some(path) = &env_vars {
            b = b.args(["--env-vars", path.to_str().unwrap()]);
        }
        b = b.args(&env.emulator_args);
        // The test's settings last: they override the defaults.
        env.emulator.iter().fold(b, |b, (k, v)| b.env(k, v))
    })
    .await;
    let bridge = start_bridge(|b| {
        b.env("REDIS_URL", url_of(Role::Bridge)).env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint).env("RUST_LOG", "info")
    })
    .await;
    let collector = start_collector(&url_of(Role::Collector(host.clone())), &host, |b| {
        let b = b.env("DOCKER_HOST", &docker_host).env("RUST_LOG", "info");
        env.collector.iter().fold(b, |b, (k, v)| b.env(k, v))
    })
    .await;
    Stack { host, endpoint, emulator, bridge, collector, users }
}
