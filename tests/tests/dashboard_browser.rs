//! The dashboard in a real browser: Debian's headless Chromium driven by
//! playwright-core (`tests/browser/dashboard.mjs`), against the dashboard
//! function served by the Lambda emulator from template.yaml.
//!
//! - heal: the whole stack (dockerd, redis-server, the emulator running
//!   every function, bridge, collector) and a container that crashes (exit
//!   1). The page shows the container; after HemoStat restarts it, the
//!   history shows `restart` / `success` without a reload, the issue is no
//!   longer active, the container is running again and its charts have
//!   samples. Served under the emulator's `/urls/<function>/` prefix.
//! - hostile: names, reasons and issues that are markup and script, written
//!   straight to Redis (as any seed-protocol publisher could), are shown as
//!   literal text and nothing of them runs. Served at the root of the
//!   function's own port.
//!
//! Screenshots are kept under `$HEMOSTAT_TEST_ARTIFACTS` (default
//! `target/test-artifacts/`) and their paths printed.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, RedisServer, Stack, docker, free_port, paths::target_dir, start_emulator, start_stack,
    workspace_root,
};
use hemostat_protocol::{ContainerRef, EventKind, keys, publisher::ENVELOPE_FIELD};
use redis::AsyncCommands;
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

const FUNCTION: &str = "hemostat-dashboard";
const COMMAND_KEY: &str = "e2e-dashboard-key";

/// The browser, node and playwright-core, or a panic that says how to get them.
fn browser_tools() -> PathBuf {
    let install = "run `scripts/test-env.sh install` (it installs Debian's chromium, nodejs and npm, and playwright-core into tests/browser/node_modules)";
    let chromium =
        std::env::var_os("HEMOSTAT_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(chromium.is_file(), "Chromium not found at {}: {install}", chromium.display());
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(node.as_ref().is_ok_and(|o| o.status.success()), "`node` not found on PATH: {install}");
    let dir = workspace_root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core/package.json").is_file(),
        "playwright-core missing from {}: {install}",
        dir.join("node_modules").display()
    );
    dir.join("dashboard.mjs")
}

/// Where screenshots are kept.
fn artifact(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEMOSTAT_TEST_ARTIFACTS")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("test-artifacts"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir.join(name)
}

/// The node script, running; its stdout lines arrive on a channel and are
/// kept for failure messages.
struct Browser {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Browser {
    fn start(script: &Path, options: serde_json::Value) -> Browser {
        let mut child = Command::new("node")
            .arg(script)
            .arg(options.to_string())
            .current_dir(script.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        let (tx, lines) = mpsc::unbounded_channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _ = tx.send(line);
                }
            });
        }
        Browser { child, lines, seen: Vec::new() }
    }

    /// The first line starting with `prefix` (or FAIL, or the end), within `timeout`.
    async fn line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_owned());
                    }
                    if line.starts_with("FAIL") {
                        return Err(self.drain(Duration::from_secs(5)).await);
                    }
                }
                Ok(None) => {
                    return Err(format!("the browser script ended without {prefix}:\n{}", self.seen.join("\n")));
                }
                Err(_) => {
                    return Err(format!(
                        "no {prefix} from the browser script within {timeout:?}:\n{}",
                        self.seen.join("\n")
                    ));
                }
            }
        }
    }

    /// Everything it says until it exits.
    async fn drain(&mut self, timeout: Duration) -> String {
        let _ = tokio::time::timeout(timeout, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line);
            }
        })
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        self.seen.join("\n")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_a_crashed_container_healed_without_reloading() {
    let script = browser_tools();
    let redis = RedisServer::start().await;
    let url = redis.url();
    let docker = docker().await;
    let Stack { host, endpoint, emulator, bridge, collector } = start_stack(&url, COMMAND_KEY).await;

    // USR1 makes the process exit 1: a crash, not a requested stop.
    let container = ContainerSpec::shell(r#"trap "exit 1" USR1; while :; do sleep 0.2; done"#)
        .restart_policy(RestartPolicyNameEnum::NO)
        .start(&docker)
        .await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let key = ContainerRef::new(&host, container.name()).key();

    let screenshot = artifact("dashboard-heal.png");
    let page = format!("{endpoint}/urls/{FUNCTION}/");
    let mut browser = Browser::start(
        &script,
        json!({"scenario": "heal", "url": page, "container": key, "screenshot": screenshot, "timeoutMs": 60_000}),
    );
    let logs = |why: String| {
        format!(
            "{why}\nscreenshot: {}\ncollector:\n{}\nbridge:\n{}\nemulator:\n{}",
            screenshot.display(),
            collector.log_tail(30),
            bridge.log_tail(30),
            emulator.log_tail(30)
        )
    };
    let ready = browser.line("READY", Duration::from_secs(90)).await.unwrap_or_else(|e| panic!("{}", logs(e)));
    println!("page shows {key} after {ready} ms");

    let crashed = Instant::now();
    container.kill("USR1").await;
    let result = browser.line("RESULT", Duration::from_secs(120)).await.unwrap_or_else(|e| panic!("{}", logs(e)));
    println!(
        "history row restart/success shown {:.1} s after the crash, without a reload: {result}",
        crashed.elapsed().as_secs_f64()
    );
    let status = browser.child.wait().await.unwrap();
    assert!(status.success(), "{}", logs(browser.seen.join("\n")));
    println!("screenshot: {}", screenshot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_hostile_names_and_reasons_as_text() {
    let script = browser_tools();
    let template = workspace_root().join("template.yaml");
    let redis = RedisServer::start().await;
    let port = free_port();
    let (emulator, _) = start_emulator(|b| {
        b.args([
            "--template",
            template.to_str().unwrap(),
            "--functions",
            FUNCTION,
            "--url-port",
            &format!("{FUNCTION}={port}"),
        ])
        .env("REDIS_URL", redis.url())
        .env("RUST_LOG", "info")
    })
    .await;

    // Markup in every field the page shows. Docker would refuse such a
    // name, but Redis is written by any seed-protocol publisher, and reasons
    // come from LLMs: the page must treat all of it as text.
    let name = r#"<img src=x onerror="window.__pwned=true;alert(1)">"#;
    let reason = r#"<script>window.__pwned = true; alert(2)</script><b>bold</b>"#;
    let issue = r#"<svg onload="window.__pwned=true">Exited with code 1"#;
    let c = ContainerRef::new("h1", name);
    let mut conn = redis.connection().await;
    let _: () = conn.sadd(keys::CONTAINERS, c.key()).await.unwrap();
    let stats = json!({"name": name, "status": "running", "cpu_pct": 12.5, "memory_pct": 30.0, "health": "<i>healthy</i>", "image": "<b>img</b>"});
    let _: () = conn.set_ex(keys::stats(&c), stats.to_string(), 300).await.unwrap();
    let event = json!({"timestamp": "2025-11-03T10:30:48.456789", "agent": "<b>agent</b>", "type": "false_alarm",
        "data": {"container": name, "host": "h1", "reason": reason}});
    let _: () = conn.lpush(keys::events("all"), event.to_string()).await.unwrap();
    let alert = json!({"timestamp": "2025-11-03T10:30:45.123456", "agent": "HemoStat-Monitor", "type": "health_alert",
        "data": {"container": name, "host": "h1", "issues": [issue], "metrics": {"name": name},
                 "anomalies": [{"type": "non_zero_exit", "severity": "<u>high</u>"}]}});
    let _: String = redis::cmd("XADD")
        .arg(EventKind::HealthAlert.stream())
        .arg("*")
        .arg(ENVELOPE_FIELD)
        .arg(alert.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();

    let screenshot = artifact("dashboard-hostile.png");
    let mut browser = Browser::start(
        &script,
        json!({"scenario": "hostile", "url": format!("http://127.0.0.1:{port}/"), "container": c.key(),
               "name": name, "reason": reason, "issue": issue, "screenshot": screenshot, "timeoutMs": 30_000}),
    );
    let result = browser
        .line("RESULT", Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\nscreenshot: {}\nemulator:\n{}", screenshot.display(), emulator.log_tail(30)));
    assert!(browser.child.wait().await.unwrap().success());
    println!("hostile data shown as text, nothing ran: {result}");
    println!("screenshot: {}", screenshot.display());
}
