//! compose.yaml for real: the images are built from host files
//! (`infra/images/stage.sh`, `infra/Dockerfile*`), the whole stack comes up
//! on the private dockerd (which has no bridge network: compose.host.yaml,
//! `HEMOSTAT_NETWORK=host`) through `scripts/compose.sh` (which makes its
//! secrets: tokens, signing keys, a Redis user per component and no user
//! without a password), a crashing demo container is
//! restarted by HemoStat with its `remediation_complete` in the stack's
//! Redis, a demo script (`scripts/demo/restart-limit.sh`) reports what
//! HemoStat did, Prometheus (profile `prometheus`) runs with HemoStat's
//! rules, and `docker-compose down -v` tears it all down, also when the test
//! fails.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use hemostat_e2e::{bin_dir, docker, free_port, show_output, wait_for, wait_until, workspace_root};
use hemostat_protocol::{
    EventKind,
    event::{RemediationComplete, RemediationStatus},
    keys,
};
use redis::AsyncCommands;

fn compose_file() -> PathBuf {
    workspace_root().join("compose.yaml")
}

/// docker-compose on compose.yaml and `extra`: compose.override.yaml (the
/// published ports of bridge networking, the default) or compose.host.yaml.
fn docker_compose_with(extra: &str) -> Command {
    let found = Command::new("docker-compose").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(found, "docker-compose not found: run scripts/test-env.sh install (it installs Debian's docker-compose)");
    let mut cmd = Command::new("timeout");
    // No compose step may hang the suite: a wedged build or daemon fails the test.
    cmd.args(["600", "docker-compose", "--ansi", "never", "-f"]).arg(compose_file());
    cmd.arg("-f").arg(workspace_root().join(extra));
    cmd
}

fn docker_compose() -> Command {
    docker_compose_with("compose.override.yaml")
}

/// `docker-compose config` insists that every build context exists; the
/// staged ones (`target/images/*`, filled by `infra/images/stage.sh` before a
/// build) may not yet on a fresh checkout. Empty is enough to check the file.
fn ensure_build_contexts() {
    let text = std::fs::read_to_string(compose_file()).expect("read compose.yaml");
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("compose.yaml is YAML");
    for service in compose["services"].as_mapping().expect("services").values() {
        if let Some(context) = service["build"]["context"].as_str() {
            let dir = workspace_root().join(context);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
    }
}

#[test]
fn compose_config_is_valid() {
    ensure_build_contexts();
    for extra in ["compose.override.yaml", "compose.host.yaml"] {
        for profile in [None, Some("demo"), Some("prometheus")] {
            let mut cmd = docker_compose_with(extra);
            if let Some(p) = profile {
                cmd.args(["--profile", p]);
            }
            let output = cmd.args(["config", "-q"]).output().expect("run docker-compose config");
            assert!(output.status.success(), "{}", show_output("docker-compose config", &output));
        }
    }
    let output = docker_compose().args(["config", "--services"]).output().expect("run docker-compose config");
    let services = String::from_utf8_lossy(&output.stdout);
    for service in ["redis", "functions", "bridge", "collector"] {
        assert!(services.lines().any(|s| s == service), "service {service} missing: {services}");
    }
    // The demo target only on request (profile demo).
    let text = std::fs::read_to_string(compose_file()).expect("read compose.yaml");
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("compose.yaml is YAML");
    let profiles = &compose["services"]["demo"]["profiles"];
    assert_eq!(profiles.as_sequence().map(Vec::len), Some(1), "demo's profiles: {profiles:?}");
    assert_eq!(profiles[0].as_str(), Some("demo"));

    // Bridge networking by default, every published port on loopback; the
    // host's network with compose.host.yaml.
    let config = |extra| {
        let output = docker_compose_with(extra)
            .args(["--profile", "demo", "--profile", "prometheus", "config"])
            .output()
            .expect("run docker-compose config");
        assert!(output.status.success(), "{}", show_output("docker-compose config", &output));
        serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(&output.stdout).expect("config is YAML")
    };
    let bridge = config("compose.override.yaml");
    for (name, service) in bridge["services"].as_mapping().expect("services") {
        let mode = service["network_mode"].as_str().unwrap_or("");
        assert!(mode != "host", "{name:?} is on the host's network by default");
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let published = serde_yaml_ng::to_string(port).unwrap_or_default();
            assert!(published.contains("127.0.0.1"), "{name:?} publishes beyond loopback: {published}");
        }
    }
    let host = config("compose.host.yaml");
    for (name, service) in host["services"].as_mapping().expect("services") {
        assert_eq!(service["network_mode"].as_str(), Some("host"), "{name:?} with compose.host.yaml");
        assert!(service["ports"].is_null(), "{name:?} publishes ports on the host's network");
    }
}

/// The emulator hands a function only the variables template.yaml declares,
/// so compose's `functions` service must pass every one of them through:
/// otherwise a setting in .env silently never reaches its function.
#[test]
fn compose_passes_every_template_variable_to_the_functions() {
    ensure_build_contexts();
    let output = docker_compose().args(["config"]).output().expect("run docker-compose config");
    assert!(output.status.success(), "{}", show_output("docker-compose config", &output));
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&output.stdout).expect("config is YAML");
    let passed = config["services"]["functions"]["environment"].as_mapping().expect("functions.environment");

    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("read template.yaml");
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template.yaml is YAML");
    let mut scopes = vec![&template["Globals"]["Function"]["Environment"]["Variables"]];
    for resource in template["Resources"].as_mapping().expect("Resources").values() {
        if resource["Type"].as_str() == Some("AWS::Serverless::Function") {
            scopes.push(&resource["Properties"]["Environment"]["Variables"]);
        }
    }
    let missing: Vec<&str> = scopes
        .iter()
        .filter_map(|vars| vars.as_mapping())
        .flat_map(|vars| vars.keys())
        .filter(|k| !passed.contains_key(*k))
        .filter_map(|k| k.as_str())
        .collect();
    assert!(missing.is_empty(), "compose.yaml's functions service does not pass {missing:?} through");
}

/// One compose project on the private dockerd, run by `scripts/compose.sh`
/// with its own state folder; `down -v` when dropped, so a failing assertion
/// still leaves nothing behind.
struct Project {
    name: String,
    env: Vec<(String, String)>,
}

impl Project {
    fn compose(&self) -> Command {
        let mut cmd = Command::new("timeout");
        // No compose step may hang the suite: a wedged build or daemon fails the test.
        cmd.args(["600", "bash"]).arg(workspace_root().join("scripts/compose.sh"));
        cmd.args(["--ansi", "never", "-p", &self.name]);
        // Its own Redis, not the suite's.
        cmd.env_remove("REDIS_URL");
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = self.compose().args(args).output().expect("run docker-compose");
        assert!(output.status.success(), "{}", show_output(&format!("docker-compose {}", args.join(" ")), &output));
        output
    }

    fn logs(&self) -> String {
        self.compose()
            .args(["logs", "--no-color", "--tail", "40"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // With the profiles, or down would leave their containers.
        let down = ["--profile", "demo", "--profile", "prometheus", "down", "-v", "--remove-orphans", "--timeout", "5"];
        match self.compose().args(down).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("{}", show_output("docker-compose down", &o)),
            Err(e) => eprintln!("docker-compose down: {e}"),
        }
        // Each rebuild leaves the previous HemoStat images dangling; without
        // this, reruns on one engine would pile up hundreds of MB each.
        let _ = Command::new("docker").args(["image", "prune", "-f", "--filter", "label=hemostat.role"]).output();
    }
}

/// The body of `GET path` on 127.0.0.1:`port` if it answered 200 (plain
/// HTTP/1.0: the tests need no HTTP client for one request).
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_stack_heals_a_crashing_demo_container() {
    let docker_host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST: run through scripts/test.sh");
    let socket = docker_host.strip_prefix("unix://").expect("DOCKER_HOST is a unix:// socket").to_owned();
    // Checks once that docker-compose is there (scripts/compose.sh runs it).
    let _ = docker_compose();
    let name = format!("hemostat-ship-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let redis_port = free_port();
    let prometheus_port = free_port();
    let state = hemostat_e2e::log_dir().join(format!("{name}-state"));
    let env: Vec<(String, String)> = [
        ("DOCKER_HOST", docker_host.clone()),
        // The test engine has no bridge network (--bridge=none).
        ("HEMOSTAT_NETWORK", "host".to_owned()),
        ("DOCKER_SOCKET", socket),
        ("HEMOSTAT_REDIS_PORT", redis_port.to_string()),
        ("HEMOSTAT_STATE_DIR", state.display().to_string()),
        ("HEMOSTAT_SKIP_BUILD", "1".to_owned()),
        ("HEMOSTAT_BIN_DIR", bin_dir().display().to_string()),
        ("HEMOSTAT_LOCAL_PORT", free_port().to_string()),
        ("HEMOSTAT_DEMO_PORT", free_port().to_string()),
        ("HEMOSTAT_PROMETHEUS_PORT", prometheus_port.to_string()),
        ("HEMOSTAT_HOST", name.clone()),
        // Tests share the engine: this collector manages this project only.
        ("HEMOSTAT_LABEL_SELECTOR", format!("com.docker.compose.project={name}")),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let project = Project { name: name.clone(), env };

    let started = std::time::Instant::now();
    project.run(&["--profile", "demo", "--profile", "prometheus", "up", "-d"]);
    println!("scripts/compose.sh up (staging, build, start): {:.1} s", started.elapsed().as_secs_f64());

    // Its Redis: no user without a password, the operator's URL in the state folder.
    let redis_url = std::fs::read_to_string(state.join("redis.url")).expect("compose.sh writes redis.url");
    let redis_url = redis_url.trim().to_owned();
    let anonymous = format!("redis://127.0.0.1:{redis_port}");
    let refused = wait_for(Duration::from_secs(30), || {
        let anonymous = anonymous.clone();
        async move {
            let mut conn =
                redis::Client::open(anonymous.as_str()).ok()?.get_multiplexed_async_connection().await.ok()?;
            let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
            pong.err().map(|e| e.to_string())
        }
    })
    .await;
    assert!(
        refused.as_deref().is_some_and(|e| e.contains("NOAUTH")),
        "a client without a password was not refused: {refused:?}\n{}",
        project.logs()
    );

    let client = redis::Client::open(redis_url.as_str()).expect("redis url");
    let conn = wait_for(Duration::from_secs(30), || {
        let client = client.clone();
        async move { client.get_multiplexed_async_connection().await.ok() }
    })
    .await
    .unwrap_or_else(|| panic!("the stack's Redis never answered on {redis_url}\n{}", project.logs()));

    // Ready: the collector's heartbeat is in, and the bridge made its consumer groups.
    let ready = wait_until(Duration::from_secs(60), || {
        let mut conn = conn.clone();
        let host = name.clone();
        async move {
            let heartbeat: Option<f64> = conn.zscore(keys::COLLECTORS, &host).await.unwrap_or(None);
            let groups: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
                conn.xinfo_groups(EventKind::HealthAlert.stream()).await;
            heartbeat.is_some() && groups.is_ok_and(|g| !g.groups.is_empty())
        }
    })
    .await;
    assert!(ready, "stack not ready within 60 s (collector heartbeat, bridge groups)\n{}", project.logs());
    println!("stack ready {:.1} s after up", started.elapsed().as_secs_f64());

    // Prometheus (profile `prometheus`), from the host's package, with
    // infra/prometheus mounted: up, and HemoStat's alert rules loaded.
    let rules = wait_for(Duration::from_secs(30), || async move {
        http_get(prometheus_port, "/api/v1/rules").filter(|body| body.contains("\"status\":\"success\""))
    })
    .await
    .unwrap_or_else(|| panic!("Prometheus never answered on 127.0.0.1:{prometheus_port}\n{}", project.logs()));
    assert!(rules.contains("HemoStatCollectorMissing"), "infra/prometheus rules not loaded: {rules}");

    // The demo service: crash it (exit 1); no restart policy, so only HemoStat brings it back.
    let demo_id =
        String::from_utf8_lossy(&project.run(&["--profile", "demo", "ps", "-q", "demo"]).stdout).trim().to_owned();
    assert!(!demo_id.is_empty(), "no demo container\n{}", project.logs());
    let docker = docker().await;
    let inspect = docker.inspect_container(&demo_id, None).await.expect("inspect demo");
    let demo_name = inspect.name.clone().unwrap_or_default().trim_start_matches('/').to_owned();
    let first_start = inspect.state.and_then(|s| s.started_at).unwrap_or_default();

    let crash = Command::new("docker").args(["exec", &demo_id, "demo-crash"]).output().expect("docker exec");
    assert!(crash.status.success(), "{}", show_output("docker exec demo-crash", &crash));
    let crashed_at = std::time::Instant::now();

    let healed = wait_for(Duration::from_secs(45), || {
        let mut conn = conn.clone();
        let demo_name = demo_name.clone();
        async move {
            hemostat_e2e::stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
                .await
                .into_iter()
                .map(|(_, c)| c)
                .find(|c| c.container == demo_name && c.result.status == RemediationStatus::Success)
        }
    })
    .await
    .unwrap_or_else(|| panic!("no successful remediation_complete for {demo_name}\n{}", project.logs()));
    println!("crash to remediation_complete: {:.1} s", crashed_at.elapsed().as_secs_f64());
    assert_eq!(healed.host, name);

    let demo_state = docker.inspect_container(&demo_id, None).await.expect("inspect demo").state.unwrap_or_default();
    assert_eq!(demo_state.running, Some(true), "demo not running after HemoStat's restart");
    assert!(demo_state.started_at.unwrap_or_default() > first_start, "demo was not restarted");
    // The collector container keeps its place in Docker's events in the
    // host's state folder (the compose volume).
    let cursor = hemostat_e2e::log_dir().join(format!("{name}-state")).join("collector/cursor.json");
    assert!(
        cursor.exists(),
        "no {}
{}",
        cursor.display(),
        project.logs()
    );

    // A demo script against the same stack: the first crash is restarted,
    // the second refused (cooldown), and the script says so.
    let demo = Command::new("timeout")
        .args(["120", "bash"])
        .arg(workspace_root().join("scripts/demo/restart-limit.sh"))
        .arg("2")
        .env("DOCKER_HOST", &docker_host)
        .env("REDIS_URL", &redis_url)
        .env("HEMOSTAT_DEMO_LABELS", format!("com.docker.compose.project={name}"))
        .output()
        .expect("run scripts/demo/restart-limit.sh");
    let said = String::from_utf8_lossy(&demo.stdout);
    println!("scripts/demo/restart-limit.sh 2:\n{said}");
    assert!(demo.status.success(), "{}\n{}", show_output("restart-limit.sh", &demo), project.logs());
    assert!(
        said.contains("restarted the target 1 time(s), declined 1 time(s) out of 2 crashes"),
        "unexpected demo outcome:\n{said}\n{}",
        project.logs()
    );
    assert!(said.contains("cooldown"), "the refusal should say why:\n{said}");

    // Its Redis is durable: SIGKILLed (once the AOF's every-second fsync
    // ran) and started again, it loads what HemoStat wrote from the state
    // folder's redis/data.
    let outcomes = |conn: redis::aio::MultiplexedConnection| async move {
        let mut conn = conn;
        let reply: redis::RedisResult<usize> = conn.xlen(EventKind::RemediationComplete.stream()).await;
        reply.ok()
    };
    let before = outcomes(conn.clone()).await.expect("XLEN of remediation_complete");
    assert!(before >= 3, "the heal and the demo's two crashes: {before}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    project.run(&["kill", "-s", "SIGKILL", "redis"]);
    project.run(&["start", "redis"]);
    let after = wait_for(Duration::from_secs(30), || {
        let client = client.clone();
        async move { outcomes(client.get_multiplexed_async_connection().await.ok()?).await }
    })
    .await
    .unwrap_or_else(|| panic!("the stack's Redis did not come back\n{}", project.logs()));
    assert_eq!(after, before, "Redis lost events across its crash");
    assert!(state.join("redis/data/appendonlydir").is_dir(), "no AOF in the state folder");
}

/// `curl` in the engine's network namespace: the HTTP status of `url`.
fn status_in(engine: &hemostat_e2e::PrivateDockerd, url: &str, headers: &[String]) -> String {
    let mut cmd = engine.in_netns("curl");
    cmd.args(["-s", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("run curl through nsenter");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// compose.yaml's default, bridge networking, on an engine that has it (a
/// private dockerd in a network namespace of its own; the shared test
/// engine runs --bridge=none): the parts reach Redis by its service name,
/// the dashboard and the demo target (profile demo) answer on the published
/// loopback ports, and a crash of the demo target is healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_bridge_network_publishes_on_loopback_and_heals() {
    if hemostat_e2e::redis_server::cluster_mode() {
        eprintln!("node pass only (compose runs its own Redis); skipped on the cluster pass");
        return;
    }
    let _ = docker_compose();
    // Declared first: dropped after the project is down.
    let engine = hemostat_e2e::PrivateDockerd::start_bridged().await;
    let name = format!("hemostat-bridged-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let state = hemostat_e2e::log_dir().join(format!("{name}-state"));
    let env: Vec<(String, String)> = [
        ("DOCKER_HOST", engine.host()),
        ("DOCKER_SOCKET", engine.socket().display().to_string()),
        ("HEMOSTAT_STATE_DIR", state.display().to_string()),
        ("HEMOSTAT_SKIP_BUILD", "1".to_owned()),
        ("HEMOSTAT_BIN_DIR", bin_dir().display().to_string()),
        ("HEMOSTAT_HOST", name.clone()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let project = Project { name: name.clone(), env };
    let started = std::time::Instant::now();
    project.run(&["--profile", "demo", "up", "-d"]);
    println!("scripts/compose.sh up on a bridge network: {:.1} s", started.elapsed().as_secs_f64());

    let logs = |service: &str| {
        let out = project.compose().args(["logs", "--no-color", service]).output().expect("docker-compose logs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ready = wait_until(Duration::from_secs(90), || async { logs("collector").contains("collector ready") }).await;
    assert!(ready, "collector not ready within 90 s\n{}", project.logs());
    assert!(
        logs("collector").contains("@redis:6379"),
        "the collector reaches Redis by its name\n{}",
        logs("collector")
    );

    let token = std::fs::read_to_string(state.join("dashboard.token")).expect("compose.sh writes dashboard.token");
    let dashboard = "http://127.0.0.1:9001/urls/hemostat-dashboard/";
    let with_token = [format!("Authorization: Bearer {}", token.trim())];
    let answered = wait_for(Duration::from_secs(30), || async {
        Some(status_in(&engine, dashboard, &with_token)).filter(|s| s == "200")
    })
    .await;
    assert!(answered.is_some(), "the dashboard on the published port\n{}", project.logs());
    assert_eq!(status_in(&engine, dashboard, &[]), "401", "the dashboard without its token");
    let demo = wait_for(Duration::from_secs(30), || async {
        Some(status_in(&engine, "http://127.0.0.1:8080/", &[])).filter(|s| s == "200")
    })
    .await;
    assert!(demo.is_some(), "the demo target on the published port\n{}", project.logs());

    let demo_id =
        String::from_utf8_lossy(&project.run(&["--profile", "demo", "ps", "-q", "demo"]).stdout).trim().to_owned();
    let docker = engine.docker().await;
    let first = docker.inspect_container(&demo_id, None).await.expect("inspect demo").state.unwrap_or_default();
    let crash = Command::new("docker")
        .env("DOCKER_HOST", engine.host())
        .args(["exec", &demo_id, "demo-crash"])
        .output()
        .expect("docker exec");
    assert!(crash.status.success(), "{}", show_output("docker exec demo-crash", &crash));
    let healed = wait_until(Duration::from_secs(60), || {
        let docker = docker.clone();
        let (demo_id, before) = (demo_id.clone(), first.started_at.clone());
        async move {
            let state = docker.inspect_container(&demo_id, None).await.ok().and_then(|i| i.state).unwrap_or_default();
            state.running == Some(true) && state.started_at > before
        }
    })
    .await;
    assert!(healed, "the demo target was not restarted within 60 s\n{}", project.logs());
}
