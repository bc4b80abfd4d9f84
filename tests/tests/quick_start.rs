//! The README's first command, `scripts/stack.sh`, as a user runs it
//! against their own Redis: a crashed container is healed. Run on a single
//! node and (with `HEMOSTAT_TEST_REDIS=cluster`) on a Redis Cluster reached
//! through the URL of one of its nodes, which the stack must recognise as a
//! cluster by itself; no component may ever meet a redirection.
//!
//! On a single node the script runs its own redis-server, as a user who sets
//! nothing does: no user without a password, each component its own ACL
//! user, and `hemostat` finds the operator's URL in the state folder.
//!
//! Also what the script does for trust: the emulator's token (new every
//! start), the dashboard's token, the command signing key and the Redis
//! passwords are private files (0600) in the state folder, never in its
//! output or any component's log; the emulator refuses a caller without its
//! token; the dashboard asks for its token (a Basic challenge, what a
//! browser shows as a password prompt) and serves with it.

use std::{
    os::unix::{fs::PermissionsExt, process::CommandExt},
    process::{Child, Command, Stdio},
    time::Duration,
};

use bollard::models::ContainerStateStatusEnum;
use hemostat_e2e::{
    ContainerSpec, RedisServer, container::TEST_LABEL, current_test_name, docker, free_port, http_get, http_request,
    log_dir, process::file_tail, redis_server::cluster_mode, stream_events, wait_for, workspace_root,
};
use hemostat_protocol::{
    EventKind,
    connection::connect,
    event::{RemediationComplete, RemediationStatus},
    keys,
};

/// `scripts/stack.sh` in its own process group, stopped (SIGTERM to the
/// group: the script's trap stops what it started) when dropped.
struct StackScript {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for StackScript {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signalling a process group this test created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// How the test runs `scripts/stack.sh`, every time the same way.
struct Script {
    /// A cluster node's URL, or `None`: the script's own Redis on `own_port`.
    url: Option<String>,
    own_port: u16,
    host: String,
    listen: String,
    state: std::path::PathBuf,
}

impl Script {
    /// Starts the script (its output in `<test>-<name>.log`) and waits until
    /// its collector is ready.
    async fn start(&self, name: &str) -> StackScript {
        let log = log_dir().join(format!("{}-{name}.log", current_test_name()));
        let out = std::fs::File::create(&log).unwrap();
        let profile = if hemostat_e2e::bin_dir().ends_with("release") { "release" } else { "debug" };
        let mut command = Command::new("bash");
        match &self.url {
            Some(url) => command.env("REDIS_URL", url),
            None => command.env_remove("REDIS_URL").env("HEMOSTAT_REDIS_PORT", self.own_port.to_string()),
        };
        let child = command
            .arg(workspace_root().join("scripts/stack.sh"))
            .current_dir(workspace_root())
            .env("HEMOSTAT_SKIP_BUILD", "1")
            .env("HEMOSTAT_PROFILE", profile)
            .env("HEMOSTAT_LOCAL_LISTEN", &self.listen)
            .env("HEMOSTAT_STATE_DIR", &self.state)
            .env_remove("HEMOSTAT_LAMBDA_TOKEN")
            .env_remove("HEMOSTAT_COMMAND_SIGNING_KEY")
            .env_remove("HEMOSTAT_COMMAND_PUBLIC_KEYS")
            .env_remove("DASHBOARD_AUTH_TOKEN")
            .env("HEMOSTAT_HOST", &self.host)
            // Only this test's containers: the engine is shared with other tests.
            .env("HEMOSTAT_LABEL_SELECTOR", format!("{TEST_LABEL}={}", current_test_name()))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("bash runs scripts/stack.sh");
        let stack = StackScript { child, log };
        let ready = wait_for(Duration::from_secs(60), || async {
            std::fs::read_to_string(&stack.log).unwrap_or_default().contains("collector ready").then_some(())
        })
        .await;
        assert!(ready.is_some(), "stack.sh never came up:\n{}", file_tail(&stack.log, 40));
        stack
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_heals_a_crashed_container() {
    // On a cluster, a user points REDIS_URL at one node; else the script
    // starts its own Redis, on a port of the test's.
    let cluster = cluster_mode().then(RedisServer::start);
    let cluster = match cluster {
        Some(starting) => Some(starting.await),
        None => None,
    };
    let url = cluster.as_ref().map(|r| r.cluster().expect("cluster mode").urls()[0].clone());
    let own_port = free_port();
    let host = format!("quick-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let listen = format!("127.0.0.1:{}", free_port());
    // Its own state folder: the tokens it writes are this test's.
    let state = log_dir().join(format!("{}-state", current_test_name()));
    let _ = std::fs::remove_dir_all(&state);
    let stack_sh =
        Script { url: url.clone(), own_port, host: host.clone(), listen: listen.clone(), state: state.clone() };
    let stack = stack_sh.start("stack").await;

    let docker = docker().await;
    let script = "[ -e /tmp/crashed ] || { sleep 1; touch /tmp/crashed; exit 1; }; while :; do sleep 0.2; done";
    let c = ContainerSpec::shell(script).start(&docker).await;
    // The operator's URL, where the script keeps it for `hemostat`.
    let operator_url = match &url {
        Some(url) => url.clone(),
        None => {
            let file = state.join("redis.url");
            let mode =
                std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{} has mode {:o}", file.display(), mode & 0o777);
            std::fs::read_to_string(&file).unwrap().trim().to_owned()
        }
    };
    let conn = connect(&operator_url).await.unwrap_or_else(|e| panic!("the operator's URL: {e}"));
    let healed = wait_for(Duration::from_secs(60), || {
        let mut conn = conn.clone();
        let (host, name) = (host.clone(), c.name().to_owned());
        async move {
            stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
                .await
                .into_iter()
                .map(|(_, d)| d)
                .find(|d| d.host == host && d.container == name)
        }
    })
    .await;
    let Some(done) = healed else { panic!("no remediation_complete:\n{}", file_tail(&stack.log, 60)) };
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert_eq!(done.result.verified, Some(true), "{done:?}");
    c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;

    let log = std::fs::read_to_string(&stack.log).unwrap_or_default();
    for word in ["MOVED", "Moved:", "ASK ", "CROSSSLOT", "CrossSlot"] {
        assert!(!log.contains(word), "stack.sh's components logged {word}:\n{}", file_tail(&stack.log, 60));
    }

    // The collector keeps its place in Docker's events in a folder of its
    // own in the state folder, private.
    let collector_state = state.join("collector");
    let cursor = collector_state.join("cursor.json");
    assert!(cursor.exists(), "no {}", cursor.display());
    let mode = std::fs::metadata(&collector_state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{} has mode {:o}", collector_state.display(), mode & 0o777);

    // The secrets: private files, in no output.
    let mut tokens = Vec::new();
    let mut secrets =
        vec![state.join("lambda.token"), state.join("dashboard.token"), state.join("command_signing.key")];
    if url.is_none() {
        let passwords = std::fs::read_dir(state.join("redis")).unwrap().map(|e| e.unwrap().path());
        secrets.extend(passwords.filter(|p| p.extension().is_some_and(|e| e == "password")));
        assert!(secrets.len() >= 3 + 7, "one password per component: {secrets:?}");
    }
    for path in &secrets {
        let mode = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{} has mode {:o}", path.display(), mode & 0o777);
        let token = std::fs::read_to_string(path).unwrap().trim().to_owned();
        assert!(token.len() >= 40, "{}: at least 32 random bytes", path.display());
        tokens.push(token);
    }
    assert!(log.contains(&state.join("command_signing.key").display().to_string()), "it says where the signing key is");
    assert!(
        log.contains(&format!("{}", state.join("dashboard.token").display())),
        "it says where the dashboard's token is"
    );
    let mut logs = vec![log];
    for entry in std::fs::read_dir(state.join("logs")).unwrap() {
        logs.push(std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    for token in &tokens {
        assert!(logs.iter().all(|l| !l.contains(token.as_str())), "a token is in stack.sh's output or a log");
    }

    // The emulator refuses a caller without its token; the dashboard asks
    // for its own, and serves with it.
    let (lambda, dashboard) = (&tokens[0], &tokens[1]);
    let invoke = format!("http://{listen}/2015-03-31/functions/hemostat-dashboard/invocations");
    let refused = http_request("POST", &invoke, &[], "{}").await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let page = format!("http://{listen}/urls/hemostat-dashboard/");
    let asked = http_get(&page, &[]).await;
    assert_eq!(asked.status, 401, "{}", asked.body);
    assert!(asked.header("www-authenticate").is_some_and(|c| c.starts_with("Basic ")), "{}", asked.head);
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("me:{dashboard}")));
    let served = http_get(&page, &[("Authorization", &basic)]).await;
    assert_eq!(served.status, 200, "{}", served.body);
    assert!(served.body.starts_with("<!doctype html>"));
    let not_the_lambda_token = http_get(&page, &[("Authorization", &format!("Bearer {lambda}"))]).await;
    assert_eq!(not_the_lambda_token.status, 401, "the emulator's token is not the dashboard's");

    if url.is_none() {
        // Its own Redis: nobody gets in without a password...
        let anonymous = redis::Client::open(format!("redis://127.0.0.1:{own_port}")).unwrap();
        let mut anonymous = anonymous.get_multiplexed_async_connection().await.unwrap();
        let ping: Result<String, _> = redis::cmd("PING").query_async(&mut anonymous).await;
        assert!(ping.as_ref().is_err_and(|e| e.to_string().contains("NOAUTH")), "{ping:?}");
        // ...the collector's password opens its host's keys only...
        let collector =
            std::fs::read_to_string(state.join(format!("redis/hemostat-collector-{host}.password"))).unwrap();
        let collector = format!("redis://hemostat-collector-{host}:{}@127.0.0.1:{own_port}", collector.trim());
        let mut collector = connect(&collector).await.unwrap();
        let forged: Result<String, _> = redis::cmd("XADD")
            .arg(keys::commands("another-host"))
            .arg("*")
            .arg("k")
            .arg("v")
            .query_async(&mut collector)
            .await;
        assert!(forged.as_ref().is_err_and(|e| e.to_string().contains("NoPerm")), "{forged:?}");
        // ...and `hemostat`, run in the state folder's reach, finds the operator's URL.
        let status = Command::new(hemostat_e2e::bin_dir().join("hemostat"))
            .args(["status", "--json"])
            .env("HEMOSTAT_STATE_DIR", &state)
            .env_remove("REDIS_URL")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&status.stdout);
        assert!(status.status.success() && out.contains(&host), "{out}{}", String::from_utf8_lossy(&status.stderr));

        // Its Redis keeps its data in the state folder (0700), and a
        // restarted stack loads it: the remediation is still in its stream,
        // and the cooldown it started still holds for the container.
        let data = state.join("redis/data");
        let mode = std::fs::metadata(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display())).permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{} has mode {:o}", data.display(), mode & 0o777);
        drop(stack);
        assert!(data.join("appendonlydir").is_dir(), "no AOF in {}", data.display());
        let _again = stack_sh.start("stack-again").await;
        let conn = connect(&operator_url).await.unwrap_or_else(|e| panic!("the operator's URL: {e}"));
        let mut events = conn.clone();
        let kept = stream_events::<RemediationComplete>(&mut events, EventKind::RemediationComplete)
            .await
            .into_iter()
            .any(|(_, d)| d.host == host && d.container == c.name() && d.result.status == RemediationStatus::Success);
        assert!(kept, "the restarted stack's Redis lost the remediation");
        let explain = Command::new(hemostat_e2e::bin_dir().join("hemostat"))
            .args(["--json", "explain", &format!("{host}/{}", c.name())])
            .env("HEMOSTAT_STATE_DIR", &state)
            .env_remove("REDIS_URL")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&explain.stdout);
        assert!(
            explain.status.success() && out.contains("would refuse: cooldown"),
            "{out}{}",
            String::from_utf8_lossy(&explain.stderr)
        );
    }
}
