//! The all-in-one image (`infra/Dockerfile.all-in-one`, staged by
//! `infra/images/stage.sh --build all-in-one collector` from the binaries the
//! test command built) on the real engine: `docker run` with the socket
//! mounted and nothing else to set up heals a crashed container, serves the
//! dashboard behind its token (and prints no secret), restarts a part
//! killed with SIGKILL, keeps its keys across a restart of the container,
//! and exits non-zero when a part keeps dying. The collector-only image
//! reports to a central Redis. `infra/Dockerfile.source`, which needs a
//! registry to build, is checked against the workspace and the staged image.
//!
//! The engine runs with --bridge=none: the containers use the host's
//! network, each with ports of its own. The images carry their own Redis, so
//! the Docker tests run on the node pass only.

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command, Output},
    sync::OnceLock,
    time::{Duration, Instant},
};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, RedisServer, bin_dir, container::CRASH_ON_USR1, docker, free_port, http_get, show_output, test_keys,
    wait_for, wait_until, workspace_root,
};
use hemostat_protocol::keys;
use redis::AsyncCommands;

const ALL_IN_ONE: &str = "hemostat/all-in-one:local";
const COLLECTOR: &str = "hemostat/collector:local";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn docker_cli(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

fn node_pass_only(test: &str) -> bool {
    if hemostat_e2e::redis_server::cluster_mode() {
        eprintln!("{test}: node pass only (the image runs its own Redis); skipped on the cluster pass");
        return false;
    }
    true
}

/// Stages and builds both images once per test binary, from the test
/// command's debug binaries; prints their sizes.
fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new("timeout")
            .args(["900", "bash"])
            .arg(workspace_root().join("infra/images/stage.sh"))
            .arg("--bin-dir")
            .arg(bin_dir())
            .args(["--build", "all-in-one", "collector"])
            .output()
            .expect("run infra/images/stage.sh");
        assert!(out.status.success(), "{}", show_output("infra/images/stage.sh --build all-in-one collector", &out));
        println!("stage.sh --build all-in-one collector: {:.1} s", started.elapsed().as_secs_f64());
        for image in [ALL_IN_ONE, COLLECTOR, "hemostat/base:local"] {
            let out = docker_cli(&["image", "inspect", "-f", "{{.Size}}", image]);
            assert!(out.status.success(), "{}", show_output("docker image inspect", &out));
            let bytes: f64 = text(&out.stdout).trim().parse().unwrap_or_default();
            println!("image {image}: {:.1} MB", bytes / 1e6);
        }
    });
}

/// A container run with `docker run`, and its volume: removed when dropped,
/// its log printed first if the test failed.
struct Running {
    name: String,
    volume: Option<String>,
}

impl Running {
    fn start(name: &str, volume: Option<&str>, args: &[String]) -> Running {
        let mut cmd = vec!["run".to_owned(), "-d".to_owned(), "--name".to_owned(), name.to_owned()];
        cmd.extend(args.iter().cloned());
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let running = Running { name: name.to_owned(), volume: volume.map(str::to_owned) };
        let out = docker_cli(&cmd);
        assert!(out.status.success(), "{}", show_output("docker run", &out));
        running
    }

    fn logs(&self) -> String {
        let out = docker_cli(&["logs", &self.name]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    fn exec(&self, args: &[&str]) -> Output {
        let mut cmd = vec!["exec", self.name.as_str()];
        cmd.extend(args);
        docker_cli(&cmd)
    }

    /// Succeeds, or panics with what it said and the container's log.
    fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{}\n--- log\n{}",
            show_output(&format!("docker exec {args:?}"), &out),
            self.logs()
        );
        text(&out.stdout)
    }

    async fn wait_log(&self, what: &str, times: usize, within: Duration) {
        let found = wait_until(within, || async { self.logs().matches(what).count() >= times }).await;
        assert!(found, "{what:?} not {times} time(s) in the log within {within:?}\n--- log\n{}", self.logs());
    }

    fn pid_of(&self, program: &str) -> Option<String> {
        let out = self.exec(&["pidof", program]);
        out.status.success().then(|| text(&out.stdout).trim().to_owned()).filter(|p| !p.is_empty())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of {}\n{}", self.name, self.logs());
        }
        let _ = docker_cli(&["rm", "-f", "-v", &self.name]);
        if let Some(volume) = &self.volume {
            let _ = docker_cli(&["volume", "rm", "-f", volume]);
        }
    }
}

fn socket() -> String {
    let host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST: run through scripts/test.sh");
    host.strip_prefix("unix://").expect("DOCKER_HOST is a unix:// socket").to_owned()
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// `key_id=...` of the first log line that has `what`.
fn key_id_in(log: &str, what: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(what))?;
    let at = line.find("key_id=")? + "key_id=".len();
    Some(line[at..].split_whitespace().next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_heals_restarts_its_parts_and_keeps_its_keys() {
    if !node_pass_only("all_in_one_heals_restarts_its_parts_and_keeps_its_keys") {
        return;
    }
    images();
    let docker = docker().await;
    let id = short_id();
    let (name, volume) = (format!("hemostat-aio-{id}"), format!("hemostat-aio-{id}"));
    let dashboard_port = free_port();
    // What it manages: this test's containers only (tests share the engine).
    let scope = format!("hemostat-e2e.aio={id}");
    let target = ContainerSpec::shell(CRASH_ON_USR1)
        .label("hemostat-e2e.aio", &id)
        .restart_policy(RestartPolicyNameEnum::NO)
        .start(&docker)
        .await;
    target.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;

    let started = Instant::now();
    let env = [
        format!("HEMOSTAT_HOST={name}"),
        format!("HEMOSTAT_LABEL_SELECTOR={scope}"),
        format!("HEMOSTAT_REDIS_PORT={}", free_port()),
        format!("HEMOSTAT_LOCAL_PORT={}", free_port()),
        format!("HEMOSTAT_DASHBOARD_PORT={dashboard_port}"),
        "HEMOSTAT_DASHBOARD_ADDRESS=127.0.0.1".to_owned(),
    ];
    let mut args = vec![
        "--network".to_owned(),
        "host".to_owned(),
        "-v".to_owned(),
        format!("{}:/var/run/docker.sock", socket()),
        "-v".to_owned(),
        format!("{volume}:/var/lib/hemostat"),
    ];
    for e in &env {
        args.extend(["-e".to_owned(), e.clone()]);
    }
    args.push(ALL_IN_ONE.to_owned());
    let hemostat = Running::start(&name, Some(&volume), &args);
    hemostat.wait_log("collector ready", 1, Duration::from_secs(90)).await;
    println!("docker run to collector ready: {:.1} s", started.elapsed().as_secs_f64());

    // HemoStat's own container says so: no collector acts on it.
    let label = docker_cli(&["inspect", "-f", "{{index .Config.Labels \"hemostat.role\"}}", &name]);
    assert_eq!(text(&label.stdout).trim(), "hemostat", "{}", show_output("docker inspect", &label));

    // The dashboard, on its own port, asks for the token the first start made.
    let token = hemostat.exec_ok(&["cat", "/var/lib/hemostat/dashboard.token"]).trim().to_owned();
    assert_eq!(token.len(), 64, "a 32-byte token in hex");
    let url = format!("http://127.0.0.1:{dashboard_port}/");
    let refused = http_get(&url, &[]).await;
    assert_eq!(refused.status, 401, "the dashboard without its token: {}", refused.body);
    let bearer = format!("Bearer {token}");
    let page = http_get(&url, &[("Authorization", &bearer)]).await;
    assert_eq!(page.status, 200, "the dashboard with its token: {}", page.body);

    // A crash of a container in scope: restarted by HemoStat (no restart policy).
    let before = target.state().await.started_at.unwrap_or_default();
    let crash = docker_cli(&["kill", "-s", "USR1", target.name()]);
    assert!(crash.status.success(), "{}", show_output("docker kill -s USR1", &crash));
    let crashed_at = Instant::now();
    let healed = wait_until(Duration::from_secs(60), || async {
        let state = target.state().await;
        state.running == Some(true) && state.started_at.unwrap_or_default() > before
    })
    .await;
    assert!(healed, "the crashed container was not restarted within 60 s\n{}", hemostat.logs());
    println!("crash to healed: {:.1} s", crashed_at.elapsed().as_secs_f64());
    // `hemostat` in the container finds the operator's Redis URL and key in the volume.
    let container_ref = format!("{name}/{}", target.name());
    let audit = wait_for(Duration::from_secs(30), || async {
        let out = hemostat.exec(&["hemostat", "audit", &container_ref]);
        let said = text(&out.stdout);
        (out.status.success() && said.contains("restart")).then_some(said)
    })
    .await
    .unwrap_or_else(|| panic!("no restart in `hemostat audit {container_ref}`\n{}", hemostat.logs()));
    println!("hemostat audit {container_ref}:\n{audit}");

    // Redis runs as nobody, in no group: not the Docker socket's owner, not
    // a reader of the passwords beside its data.
    let redis = hemostat.pid_of("redis-server").expect("redis-server runs");
    let status = hemostat.exec_ok(&["cat", &format!("/proc/{redis}/status")]);
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert_eq!(field("Uid:").split_whitespace().nth(1), Some("65534"), "{status}");
    assert_eq!(field("Gid:").split_whitespace().nth(1), Some("65534"), "{status}");
    assert_eq!(field("Groups:").split_whitespace().count(), 1, "supplementary groups: {status}");
    // What that user may read there, asked as that user (the control: a
    // file anyone may read is read).
    let as_redis = |path: &str| docker_cli(&["exec", "--user", "65534:65534", hemostat.name.as_str(), "cat", path]);
    assert!(as_redis("/etc/hostname").status.success(), "{}", show_output("cat", &as_redis("/etc/hostname")));
    for path in ["/var/lib/hemostat/redis/hemostat-operator.password", "/var/run/docker.sock"] {
        let out = as_redis(path);
        assert!(!out.status.success(), "redis' user reads {path}: {}", show_output("cat", &out));
        assert!(text(&out.stderr).contains("ermission denied"), "{}", show_output("cat", &out));
    }

    // A part killed with SIGKILL is started again.
    let bridge = hemostat.pid_of("hemostat-bridge").expect("the bridge runs");
    hemostat.exec_ok(&["kill", "-9", &bridge]);
    let again =
        wait_for(Duration::from_secs(30), || async { hemostat.pid_of("hemostat-bridge").filter(|p| *p != bridge) })
            .await;
    assert!(again.is_some(), "the bridge was not restarted after kill -9\n{}", hemostat.logs());
    hemostat.wait_log("killed by signal 9", 1, Duration::from_secs(5)).await;

    // No secret in its log: only where the files are.
    let secrets = [
        token.clone(),
        hemostat.exec_ok(&["cat", "/var/lib/hemostat/lambda.token"]).trim().to_owned(),
        hemostat.exec_ok(&["cat", "/var/lib/hemostat/command_signing.key"]).trim().to_owned(),
        hemostat.exec_ok(&["cat", "/var/lib/hemostat/redis/hemostat-operator.password"]).trim().to_owned(),
    ];
    let log = hemostat.logs();
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret is in the container's log");
    }
    assert!(log.contains("/var/lib/hemostat/dashboard.token"), "the log says where the dashboard's token is");

    // Stopped (SIGTERM, a clean stop) and started again: the same keys and token.
    let public = hemostat.exec_ok(&["cat", "/var/lib/hemostat/command_signing.pub"]);
    let generated = key_id_in(&log, "command signing key generated").expect("the first start generated the key");
    // docker stop: SIGTERM, every part stopped, exit 0 (not Docker's SIGKILL after 10 s).
    let stopping = Instant::now();
    let stop = docker_cli(&["stop", "-t", "10", &name]);
    assert!(stop.status.success(), "{}", show_output("docker stop", &stop));
    assert!(stopping.elapsed() < Duration::from_secs(9), "stopping took {:?}", stopping.elapsed());
    let code = docker_cli(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(text(&code.stdout).trim(), "0", "exit code after docker stop\n{}", hemostat.logs());
    assert!(hemostat.logs().contains("stopped (exited with code 0) part=\"redis\""), "Redis stopped cleanly");
    let start = docker_cli(&["start", &name]);
    assert!(start.status.success(), "{}", show_output("docker start", &start));
    hemostat.wait_log("collector ready", 2, Duration::from_secs(90)).await;
    let log = hemostat.logs();
    assert_eq!(key_id_in(&log, "command signing key reused"), Some(generated), "the key was not reused");
    assert_eq!(hemostat.exec_ok(&["cat", "/var/lib/hemostat/command_signing.pub"]), public);
    assert_eq!(hemostat.exec_ok(&["cat", "/var/lib/hemostat/dashboard.token"]).trim(), token);
    let running = docker_cli(&["inspect", "-f", "{{.State.Running}}", &name]);
    assert_eq!(text(&running.stdout).trim(), "true", "running after the restart");
}

/// A part that keeps dying ends the container with exit 1, so Docker's
/// restart policy and `docker ps` show it: here Redis, whose port is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_gives_up_on_a_part_that_keeps_dying() {
    if !node_pass_only("all_in_one_gives_up_on_a_part_that_keeps_dying") {
        return;
    }
    images();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("its address").port();
    let name = format!("hemostat-aio-dying-{}", short_id());
    let args: Vec<String> = [
        "--network",
        "host",
        "-e",
        &format!("HEMOSTAT_REDIS_PORT={port}"),
        "-e",
        &format!("HEMOSTAT_LOCAL_PORT={}", free_port()),
        "-e",
        &format!("HEMOSTAT_DASHBOARD_PORT={}", free_port()),
        "-e",
        "HEMOSTAT_DASHBOARD_ADDRESS=127.0.0.1",
        "-e",
        &format!("HEMOSTAT_HOST={name}"),
        "-e",
        "HEMOSTAT_SUPERVISOR_MAX_FAILURES=3",
        ALL_IN_ONE,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let started = Instant::now();
    let dying = Running::start(&name, None, &args);
    let exited = wait_for(Duration::from_secs(60), || async {
        let out = docker_cli(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", &name]);
        let said = text(&out.stdout);
        said.trim().strip_prefix("false ").map(str::to_owned)
    })
    .await
    .unwrap_or_else(|| panic!("still running after 60 s with Redis failing\n{}", dying.logs()));
    println!("gave up after {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(exited, "1", "exit code\n{}", dying.logs());
    let log = dying.logs();
    assert!(log.contains("redis died 3 times in a row"), "the reason is in the log\n{log}");
    assert!(log.matches("restarting in").count() >= 2, "restarted with backoff before giving up\n{log}");
    drop(taken);
}

/// The fleet host's image: configured by its environment alone, it reports
/// to a central Redis (its heartbeat in the collectors' registry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_image_reports_to_a_central_redis() {
    if !node_pass_only("collector_image_reports_to_a_central_redis") {
        return;
    }
    images();
    let redis = RedisServer::start().await;
    let name = format!("hemostat-collector-{}", short_id());
    let args = collector_image_args(&redis, &name, &format!("hemostat-e2e.collector-image={name}"), &[]);
    let collector = Running::start(&name, None, &args);
    collector.wait_log("collector ready", 1, Duration::from_secs(60)).await;
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect to the test's Redis");
    let seen = wait_until(Duration::from_secs(30), || {
        let mut conn = conn.clone();
        let name = name.clone();
        async move { conn.zscore::<_, _, Option<f64>>(keys::COLLECTORS, &name).await.ok().flatten().is_some() }
    })
    .await;
    assert!(seen, "no heartbeat of {name} in {}\n{}", keys::COLLECTORS, collector.logs());
    let _: redis::RedisResult<()> = conn.zrem(keys::COLLECTORS, &name).await;
}

/// The collector-only image runs label probes (`hemostat.probe`) inside
/// each probed container's network namespace, as the book says, given
/// `--pid host` and `--cap-add SYS_ADMIN --cap-add SYS_PTRACE`: a container
/// whose loopback-only HTTP health endpoint starts failing is alerted on as
/// unhealthy by its probe. Without them, the probe is reported unavailable
/// and no alert is made up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_image_probes_inside_containers_given_host_pid_and_two_capabilities() {
    if !node_pass_only("collector_image_probes_inside_containers_given_host_pid_and_two_capabilities") {
        return;
    }
    images();
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let name = format!("hemostat-collector-{}", short_id());
    let selector = format!("hemostat-e2e.collector-image={name}");
    // Serves /healthz on its own loopback (published nowhere) for 4 s, then 404.
    let probed = ContainerSpec::shell(
        "mkdir -p /www; echo ok > /www/healthz; httpd -f -p 127.0.0.1:8080 -h /www & sleep 4; rm /www/healthz; wait",
    )
    .restart_policy(RestartPolicyNameEnum::NO)
    .label("hemostat-e2e.collector-image", &name)
    .label("hemostat.probe", "http://:8080/healthz")
    .label("hemostat.probe.interval", "1s")
    .label("hemostat.probe.timeout", "500ms")
    .label("hemostat.probe.retries", "2")
    .start(&docker)
    .await;
    probed.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let collector_args = |host: &str, extra: &[&str]| collector_image_args(&redis, host, &selector, extra);
    let unprivileged_name = format!("{name}-bare");
    let unprivileged = Running::start(&unprivileged_name, None, &collector_args(&unprivileged_name, &[]));
    let privileged = Running::start(
        &name,
        None,
        &collector_args(&name, &["--pid", "host", "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE"]),
    );
    privileged.wait_log("unhealthy by its probe: alerting", 1, Duration::from_secs(45)).await;
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect to the test's Redis");
    let entries: redis::streams::StreamRangeReply =
        conn.xrange_all(hemostat_protocol::EventKind::HealthAlert.stream()).await.unwrap();
    let alerted = entries.ids.iter().any(|e| {
        e.map.values().any(|v| {
            redis::from_redis_value::<String>(v.clone()).is_ok_and(|t| t.contains(probed.name()) && t.contains(&name))
        })
    });
    assert!(alerted, "no health_alert from {name} for {}\n{}", probed.name(), privileged.logs());
    // Without --pid host and the capabilities: said, counted, not probed.
    unprivileged.wait_log("probe unavailable", 1, Duration::from_secs(30)).await;
    assert!(!unprivileged.logs().contains("unhealthy by its probe"), "{}", unprivileged.logs());
    for host in [&name, &unprivileged_name] {
        let _: redis::RedisResult<()> = conn.zrem(keys::COLLECTORS, host).await;
    }
}

/// `docker run` arguments for the collector image on the host's network,
/// with the engine's socket, reporting as `host` to `redis`, watching only
/// containers labelled `selector`; `extra` (options) first.
fn collector_image_args(redis: &RedisServer, host: &str, selector: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.extend([
        "--network".to_owned(),
        "host".to_owned(),
        "-v".to_owned(),
        format!("{}:/var/run/docker.sock", socket()),
        "-e".to_owned(),
        format!("REDIS_URL={}", redis.url()),
        "-e".to_owned(),
        format!("HEMOSTAT_HOST={host}"),
        "-e".to_owned(),
        format!("HEMOSTAT_COMMAND_PUBLIC_KEYS={}", test_keys().public),
        "-e".to_owned(),
        format!("HEMOSTAT_LABEL_SELECTOR={selector}"),
        COLLECTOR.to_owned(),
    ]);
    args
}

/// The lines of a Dockerfile, continuations joined.
fn instructions(path: &Path) -> Vec<String> {
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in source.lines().filter(|l| !l.trim_start().starts_with('#')) {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                let joined = current.split_whitespace().collect::<Vec<_>>().join(" ");
                if !joined.is_empty() {
                    lines.push(joined);
                }
                current.clear();
            }
        }
    }
    lines
}

/// What the staged image holds: stage.sh's list (the long-running parts,
/// every function template.yaml names) and `hemostat`, the supervisor.
fn staged_binaries() -> BTreeSet<String> {
    let template = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("read template.yaml");
    let functions = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary:"))
        .map(|b| b.trim().trim_matches(['"', '\'']).to_owned());
    ["hemostat-local", "hemostat-bridge", "hemostat-collector", "hemostat", "hemostat-supervisor"]
        .into_iter()
        .map(str::to_owned)
        .chain(functions)
        .collect()
}

/// The workspace's binaries, from `cargo metadata`.
fn workspace_binaries() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "{}", show_output("cargo metadata", &out));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

/// `infra/Dockerfile.source` cannot be built here (no registry): it builds
/// binaries the workspace has, exactly the ones the staged image holds, and
/// ends in the same entrypoint, label, variables, volume and port.
#[test]
fn source_dockerfile_builds_what_the_staged_image_holds() {
    let source = instructions(&workspace_root().join("infra/Dockerfile.source"));
    let local = instructions(&workspace_root().join("infra/Dockerfile.all-in-one"));
    let build = source.iter().find(|l| l.starts_with("RUN cargo build")).expect("a RUN cargo build");
    let words: Vec<&str> = build.split_whitespace().collect();
    let built: BTreeSet<String> = words.windows(2).filter(|w| w[0] == "--bin").map(|w| w[1].to_owned()).collect();
    let copied: BTreeSet<String> =
        words.iter().filter_map(|w| w.strip_prefix("target/dist/")).map(str::to_owned).collect();

    let workspace = workspace_binaries();
    let unknown: Vec<&String> = built.difference(&workspace).collect();
    assert!(unknown.is_empty(), "Dockerfile.source builds binaries the workspace lacks: {unknown:?}");
    let staged = staged_binaries();
    assert_eq!(built, staged, "Dockerfile.source builds (left) what stage.sh stages into all-in-one (right)");
    assert_eq!(copied, staged, "Dockerfile.source copies (left) what stage.sh stages (right)");

    let tail = |lines: &[String]| -> BTreeSet<String> {
        lines
            .iter()
            .filter(|l| ["ENTRYPOINT", "LABEL", "ENV", "VOLUME", "EXPOSE", "CMD"].iter().any(|k| l.starts_with(k)))
            .cloned()
            .collect()
    };
    assert_eq!(tail(&source), tail(&local), "the runtime stage of Dockerfile.source and Dockerfile.all-in-one differ");
    assert!(tail(&local).contains("ENTRYPOINT [\"hemostat-supervisor\"]"));
}

/// The documented command, as is, on an engine with bridge networking (a
/// private dockerd in a network namespace of its own): `docker run -d
/// --name hemostat -v /var/run/docker.sock:... -v hemostat:/var/lib/hemostat
/// -p 127.0.0.1:8080:8080 hemostat/all-in-one:local` serves the dashboard on
/// the published port and heals a crash of any container of that engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_command_heals_on_a_bridge_network() {
    if !node_pass_only("the_documented_command_heals_on_a_bridge_network") {
        return;
    }
    images();
    let engine = hemostat_e2e::PrivateDockerd::start_bridged().await;
    let on_engine = |args: &[&str]| {
        Command::new("timeout")
            .arg("300")
            .arg("docker")
            .args(args)
            .env("DOCKER_HOST", engine.host())
            .output()
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
    };
    // The staged image into that engine (its own image store).
    let out = Command::new("sh")
        .arg("-c")
        .arg("docker save hemostat/all-in-one:local | DOCKER_HOST=\"$1\" docker load -q")
        .arg("sh")
        .arg(engine.host())
        .output()
        .expect("docker save | docker load");
    assert!(out.status.success(), "{}", show_output("docker save | docker load", &out));

    let socket = format!("{}:/var/run/docker.sock", engine.socket().display());
    let run = on_engine(&[
        "run",
        "-d",
        "--name",
        "hemostat",
        "-v",
        &socket,
        "-v",
        "hemostat:/var/lib/hemostat",
        "-p",
        "127.0.0.1:8080:8080",
        ALL_IN_ONE,
    ]);
    assert!(run.status.success(), "{}", show_output("docker run", &run));
    let logs = || {
        let out = on_engine(&["logs", "hemostat"]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    let ready = wait_until(Duration::from_secs(90), || async { logs().contains("collector ready") }).await;
    assert!(ready, "no collector ready within 90 s\n{}", logs());

    let status = |headers: &[String]| {
        let mut cmd = engine.in_netns("curl");
        cmd.args(["-s", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}"]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let out = cmd.arg("http://127.0.0.1:8080/").output().expect("curl through nsenter");
        text(&out.stdout).trim().to_owned()
    };
    let token = text(&on_engine(&["exec", "hemostat", "cat", "/var/lib/hemostat/dashboard.token"]).stdout);
    assert_eq!(status(&[]), "401", "the published dashboard without its token\n{}", logs());
    assert_eq!(status(&[format!("Authorization: Bearer {}", token.trim())]), "200", "with its token\n{}", logs());

    let docker = engine.docker().await;
    let target = ContainerSpec::shell(CRASH_ON_USR1).restart_policy(RestartPolicyNameEnum::NO).start(&docker).await;
    target.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let before = target.state().await.started_at.unwrap_or_default();
    let crash = on_engine(&["kill", "-s", "USR1", target.name()]);
    assert!(crash.status.success(), "{}", show_output("docker kill -s USR1", &crash));
    let healed = wait_until(Duration::from_secs(60), || async {
        let state = target.state().await;
        state.running == Some(true) && state.started_at.unwrap_or_default() > before
    })
    .await;
    assert!(healed, "the crash was not healed within 60 s\n{}", logs());
}
