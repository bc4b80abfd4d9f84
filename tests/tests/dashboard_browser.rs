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
//! - silences: two silences (one with markup in its reason) and an open
//!   circuit breaker, written with the protocol's types: the page lists the
//!   silences and marks the containers, then drops the removed one and the
//!   one that ends by itself without a reload. Its driver is this file's
//!   `SILENCES_SCRIPT`, run with the same node and playwright-core.
//!
//! - access: the dashboard's function URL as the local stack serves it
//!   (AuthType NONE) refuses a caller without the dashboard's token (401
//!   with a Basic challenge, which is how the browser above is asked for
//!   it) and serves one with it; with the template's default AuthType,
//!   AWS_IAM, the emulator refuses an unauthenticated request before the
//!   dashboard runs; without a token and without IAM it serves nobody.
//! - cross-origin: a page of another site (served by the test, opened as
//!   `http://evil.example:PORT/`, a name Chromium resolves to 127.0.0.1)
//!   tries what any web page can: `fetch(..., {mode: "no-cors"})` POSTs
//!   of `text/plain` to the emulator's Invoke API, also by a name that
//!   merely resolves there (DNS rebinding). The emulator sees and refuses
//!   every one, and the function is never invoked.
//!
//! - approvals: a parked approval is listed with Approve and Deny buttons.
//!   A page of another site (another loopback port) tries to answer it:
//!   its fetch with the dashboard's header is stopped by the CORS
//!   preflight, and the form it submits (the browser adds the Basic
//!   credentials it holds) is refused with a 403; nothing is published and
//!   the approval stays pending. Then Approve, clicked on the page, is
//!   published as the dashboard's attested `approval_answer`.
//!
//! The browser gives the dashboard's token as HTTP Basic credentials, as a
//! user types it into the browser's prompt. Screenshots are kept under
//! `$HEMOSTAT_TEST_ARTIFACTS` (default `target/test-artifacts/`) and their
//! paths printed.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, Process, RedisServer, Stack, StackEnv, bin_dir, docker, free_port, http_get, lambda_bearer,
    lambda_token, log_dir, paths::target_dir, start_emulator, start_stack_with, wait_for, workspace_root,
};
use hemostat_protocol::{ContainerRef, Envelope, EventKind, keys, publisher::ENVELOPE_FIELD};
use redis::AsyncCommands;
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

const FUNCTION: &str = "hemostat-dashboard";
/// The dashboard's own token (`DASHBOARD_AUTH_TOKEN`), the browser's password.
const DASHBOARD_TOKEN: &str = "e2e-dashboard-token";
/// As scripts/stack.sh serves the dashboard: its own token, not IAM.
const DASHBOARD_URL_NONE: &str = "DashboardUrlAuthType=NONE";

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
    let redis = RedisServer::start_node().await;
    let url = redis.url();
    let docker = docker().await;
    let env = StackEnv::default()
        .emulator("HEMOSTAT_LOCAL_PARAMETER_OVERRIDES", DASHBOARD_URL_NONE)
        .emulator("DASHBOARD_AUTH_TOKEN", DASHBOARD_TOKEN);
    let Stack { host, endpoint, emulator, bridge, collector, .. } = start_stack_with(&url, &env).await;

    // USR1 makes the process exit 1: a crash, not a requested stop.
    let container = ContainerSpec::shell(
        r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#,
    )
    .restart_policy(RestartPolicyNameEnum::NO)
    .start(&docker)
    .await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let key = ContainerRef::new(&host, container.name()).key();

    let screenshot = artifact("dashboard-heal.png");
    let page = format!("{endpoint}/urls/{FUNCTION}/");
    let mut browser = Browser::start(
        &script,
        json!({"scenario": "heal", "url": page, "container": key, "screenshot": screenshot, "timeoutMs": 60_000,
               "password": DASHBOARD_TOKEN}),
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

/// The dashboard function alone under the emulator, on Redis `redis`, with
/// the template parameters `overrides` and the dashboard's token `token`:
/// the emulator, and the port of the dashboard's function URL.
async fn dashboard_with(redis: &RedisServer, overrides: &str, token: Option<&str>) -> (Process, u16) {
    let template = workspace_root().join("template.yaml");
    let port = free_port();
    let (emulator, _) = start_emulator(|b| {
        let b = b
            .args([
                "--template",
                template.to_str().unwrap(),
                "--functions",
                FUNCTION,
                "--url-port",
                &format!("{FUNCTION}={port}"),
            ])
            .env("HEMOSTAT_LOCAL_PARAMETER_OVERRIDES", overrides)
            .env("REDIS_URL", redis.url())
            .env("RUST_LOG", "info");
        match token {
            Some(token) => b.env("DASHBOARD_AUTH_TOKEN", token),
            None => b.env_remove("DASHBOARD_AUTH_TOKEN"),
        }
    })
    .await;
    (emulator, port)
}

/// The dashboard as scripts/stack.sh serves it: AuthType NONE, its own token.
async fn dashboard_alone(redis: &RedisServer) -> (Process, u16) {
    dashboard_with(redis, DASHBOARD_URL_NONE, Some(DASHBOARD_TOKEN)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_hostile_names_and_reasons_as_text() {
    let script = browser_tools();
    let redis = RedisServer::start_node().await;
    let (emulator, port) = dashboard_alone(&redis).await;

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
               "name": name, "reason": reason, "issue": issue, "screenshot": screenshot, "timeoutMs": 30_000,
               "password": DASHBOARD_TOKEN}),
    );
    let result = browser
        .line("RESULT", Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\nscreenshot: {}\nemulator:\n{}", screenshot.display(), emulator.log_tail(30)));
    assert!(browser.child.wait().await.unwrap().success());
    println!("hostile data shown as text, nothing ran: {result}");
    println!("screenshot: {}", screenshot.display());
}

/// The silences scenario's driver: written next to the screenshots and run
/// with the same node and playwright-core (found through `browserDir`).
/// Protocol as `dashboard.mjs`'s: `READY`, `RESULT <json>` or `FAIL <reason>`.
const SILENCES_SCRIPT: &str = r#"
import { createRequire } from 'node:module';
const opts = JSON.parse(process.argv[2] || '{}');
const { chromium } = createRequire(opts.browserDir + '/package.json')('playwright-core');
const timeout = opts.timeoutMs || 60000;
const started = Date.now();
const since = () => Date.now() - started;
const consoleErrors = [], pageErrors = [], dialogs = [];
let browser, page, last;
function fail(reason) { const e = new Error(reason); e.expected = true; throw e; }

// What the page shows of the two silences and the two containers.
function look() {
  return page.evaluate((o) => {
    const card = (k) => [...document.querySelectorAll('#grid .card')].find((c) => c.dataset.container === k);
    const row = (id) => [...document.querySelectorAll('#silences tr')].find((r) => r.dataset.silence === id);
    const text = (e, sel) => { const x = e && e.querySelector(sel); return x ? x.textContent : null; };
    const info = (k) => {
      const c = card(k);
      if (!c) return null;
      const s = c.querySelector('.flag.silenced');
      return { silence: s ? s.dataset.silence : null, silence_reason: text(c, '.flag.silenced .reason'), breaker: text(c, '.flag.breaker .reason') };
    };
    const silence = (id) => { const r = row(id); return r ? { reason: text(r, '.reason'), left: text(r, '.left'), cells: [...r.cells].map((td) => td.textContent) } : null; };
    return {
      a: silence(o.a.id), b: silence(o.b.id), web: info(o.a.key), db: info(o.b.key),
      count: document.getElementById('silence-count').textContent,
      injected: document.querySelectorAll('main img, main script, main b, main iframe, [onerror], [onload]').length,
      pwned: window.__pwned === true, loaded: window.__hemostatLoaded === true,
    };
  }, opts);
}

async function until(pred, what, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    last = await look();
    if (pred(last)) return last;
    if (Date.now() > deadline) fail(`${what} within ${ms} ms: ${JSON.stringify(last)}`);
    await page.waitForTimeout(200);
  }
}

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.HEMOSTAT_CHROMIUM || '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 },
    httpCredentials: { username: 'hemostat', password: opts.password } });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await page.goto(opts.url, { waitUntil: 'load', timeout });

  const { a, b } = opts;
  let s = await until((s) => s.a && s.b && s.web && s.db && s.web.silence === a.id && s.db.silence === b.id && s.web.breaker,
    'both silences listed and both containers marked', timeout);
  if (s.a.reason !== a.reason) fail(`silence ${a.id}'s reason ${JSON.stringify(s.a.reason)} is not the literal ${JSON.stringify(a.reason)}`);
  if (s.b.reason !== b.reason) fail(`silence ${b.id}'s reason ${JSON.stringify(s.b.reason)} is not the literal`);
  if (s.web.silence_reason !== a.reason) fail(`${a.key}'s card shows ${JSON.stringify(s.web.silence_reason)}, not the silence's reason`);
  if (s.web.breaker !== opts.breaker) fail(`${a.key}'s card shows the breaker as ${JSON.stringify(s.web.breaker)}`);
  if (s.db.breaker !== null) fail(`${b.key} has no breaker, its card shows ${JSON.stringify(s.db.breaker)}`);
  for (const want of [a.target, a.by, a.id]) {
    if (!s.a.cells.includes(want)) fail(`the row of ${a.id} lacks ${JSON.stringify(want)}: ${JSON.stringify(s.a.cells)}`);
  }
  if (!s.b.cells.includes('image:' + b.target)) fail(`the row of ${b.id} does not show its target: ${JSON.stringify(s.b.cells)}`);
  if (!/ left$/.test(s.a.left) || !/ left$/.test(s.b.left)) fail(`no time left shown: ${s.a.left} / ${s.b.left}`);
  await page.evaluate(() => { window.__hemostatLoaded = true; });
  await page.screenshot({ path: opts.screenshot, fullPage: true });
  const readyMs = since();
  console.log(`READY ${readyMs}`);

  // The caller removes silence a: gone from the list and the card, the breaker stays.
  s = await until((s) => !s.a && s.web && s.web.silence === null, `silence ${a.id} still shown after its removal`, timeout);
  if (s.web.breaker !== opts.breaker) fail(`the breaker vanished with the silence: ${JSON.stringify(s.web)}`);
  if (!s.b) fail(`silence ${b.id} vanished with ${a.id}`);
  const removedMs = since();
  console.log(`REMOVED ${removedMs}`);

  // b ends by itself.
  s = await until((s) => !s.b && s.db && s.db.silence === null, `silence ${b.id} still shown after it ended`, timeout);
  const expiredLateMs = Date.now() - b.untilMs;
  if (expiredLateMs < -1000) fail(`silence ${b.id} vanished ${-expiredLateMs} ms before it ended`);
  if (s.count !== '0') fail(`the silence count says ${s.count}`);
  if (!s.loaded) fail('the page was reloaded');
  if (s.injected !== 0) fail(`${s.injected} injected element(s) in the page`);
  await page.waitForTimeout(500);
  if (s.pwned || (await page.evaluate(() => window.__pwned === true))) fail('injected script ran');
  if (dialogs.length) fail(`injected script opened dialogs: ${JSON.stringify(dialogs)}`);
  const csp = consoleErrors.filter((e) => /Content Security Policy/i.test(e));
  if (csp.length) fail(`CSP violations: ${JSON.stringify(csp)}`);
  if (pageErrors.length) fail(`script errors: ${JSON.stringify(pageErrors)}`);
  console.log('RESULT ' + JSON.stringify({ ready_ms: readyMs, removed_ms: removedMs, expired_shown_after_end_ms: expiredLateMs, total_ms: since() }));
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.log(`FAIL ${e.expected ? e.message : e.stack || e}`);
  if (last) console.log('PAGE ' + JSON.stringify(last));
  if (page) await page.screenshot({ path: opts.screenshot, fullPage: true }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
"#;

/// Silences and open circuit breakers: the page lists a live silence with
/// its reason (markup in it stays text), marks the containers it holds for
/// and the one whose breaker is open, and without a reload drops a silence
/// once removed and one that ends by itself. Silences are written with the
/// protocol's own `silence::add` and removed with `silence::remove`, as the
/// CLI does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_silences_and_open_breakers_live() {
    use hemostat_protocol::silence::{self, Silence, TargetKind};

    let tools = browser_tools();
    let redis = RedisServer::start_node().await;
    let (emulator, port) = dashboard_alone(&redis).await;

    let web = ContainerRef::new("h1", "web");
    let db = ContainerRef::new("h1", "db");
    let mut conn = redis.connection().await;
    let _: () = conn.sadd(keys::CONTAINERS, &[web.key(), db.key()]).await.unwrap();
    for (c, image) in [(&web, "nginx:1.27"), (&db, "shop/db:16")] {
        let stats = json!({"name": c.name, "status": "running", "cpu_pct": 1.5, "memory_pct": 10.0, "image": image});
        let _: () = conn.set_ex(keys::stats(c), stats.to_string(), 300).await.unwrap();
    }
    let breaker =
        "circuit breaker open: 3 actions in the last hour did not hold (max 3), open for 600s or until hemostat reset";
    let _: () = conn.set_ex(keys::breaker(&web), breaker, 600).await.unwrap();

    let now = chrono::Utc::now();
    let silence = |id: &str, kind, target: &str, reason: &str, for_ms: i64| Silence {
        id: id.into(),
        kind,
        target: target.into(),
        reason: reason.into(),
        created: now.to_rfc3339(),
        until: (now + chrono::Duration::milliseconds(for_ms)).to_rfc3339(),
        by: "ops@example".into(),
        window: None,
    };
    // a is removed while the page is open; b (every tag of shop/db) ends by itself.
    let a = silence(
        "a1b2c3",
        TargetKind::Container,
        &web.key(),
        r#"<script>window.__pwned = true; alert(1)</script><b>db migration</b>"#,
        600_000,
    );
    let b = silence("d4e5f6", TargetKind::Image, "shop/db", "rollout of shop/db:17", 25_000);
    for s in [&a, &b] {
        silence::add(&mut conn, s).await.unwrap();
    }

    let script = artifact("dashboard-silences.mjs");
    std::fs::write(&script, SILENCES_SCRIPT).unwrap();
    let screenshot = artifact("dashboard-silences.png");
    let side = |s: &Silence, key: &str| json!({"id": s.id, "reason": s.reason, "target": s.target, "by": s.by, "key": key, "untilMs": s.until_ms()});
    let mut browser = Browser::start(
        &script,
        json!({"url": format!("http://127.0.0.1:{port}/"), "browserDir": tools.parent().unwrap(),
               "a": side(&a, &web.key()), "b": side(&b, &db.key()), "breaker": breaker,
               "screenshot": screenshot, "timeoutMs": 30_000, "password": DASHBOARD_TOKEN}),
    );
    let failed = |e: String| format!("{e}\nscreenshot: {}\nemulator:\n{}", screenshot.display(), emulator.log_tail(30));
    let ready = browser.line("READY", Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{}", failed(e)));
    println!("page lists both silences and marks both containers after {ready} ms");

    assert!(silence::remove(&mut conn, &a.id).await.unwrap(), "silence {} was stored", a.id);
    let result = browser.line("RESULT", Duration::from_secs(90)).await.unwrap_or_else(|e| panic!("{}", failed(e)));
    assert!(browser.child.wait().await.unwrap().success(), "{}", browser.seen.join("\n"));
    println!("removed and expired silences left the page without a reload: {result}");
    println!("screenshot: {}", screenshot.display());
}

/// One GET with `headers`: status, `WWW-Authenticate`, body.
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let answer = http_get(url, headers).await;
    let challenge = answer.header("www-authenticate").map(str::to_owned);
    (answer.status, challenge, answer.body)
}

fn basic(password: &str) -> String {
    use base64::{Engine, engine::general_purpose::STANDARD};
    format!("Basic {}", STANDARD.encode(format!("hemostat:{password}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_refuses_callers_without_its_token_and_serves_those_with_it() {
    let redis = RedisServer::start_node().await;

    // As the local stack serves it: AuthType NONE, the dashboard's own token.
    let (emulator, port) = dashboard_alone(&redis).await;
    let page = format!("http://127.0.0.1:{port}/");
    let api = format!("http://127.0.0.1:{port}/api/containers");
    let (status, challenge, body) = get(&page, &[]).await;
    assert_eq!(status, 401, "{body}\n{}", emulator.log_tail(20));
    assert!(challenge.is_some_and(|c| c.starts_with("Basic ")), "browsers are asked for the token");
    assert!(!body.contains("<!doctype html>"));
    println!("attack refused: dashboard: no credentials");
    for wrong in [basic("wrong"), "Bearer wrong".to_owned(), lambda_bearer()] {
        assert_eq!(get(&api, &[("authorization", &wrong)]).await.0, 401, "{wrong}");
        // The lines `scripts/security-figures.sh` counts.
        println!("attack refused: dashboard: a wrong token or another component's");
    }
    let (status, _, body) = get(&page, &[("authorization", &basic(DASHBOARD_TOKEN))]).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("<!doctype html>"), "{body}");
    let (status, _, body) = get(&api, &[("authorization", &format!("Bearer {DASHBOARD_TOKEN}"))]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"containers\""), "{body}");
    assert!(!emulator.log().contains(DASHBOARD_TOKEN), "the token is never logged");
    drop(emulator);

    // The template's default: AuthType AWS_IAM, which the emulator checks
    // (with its own token) before the dashboard runs.
    let (emulator, port) = dashboard_with(&redis, "", None).await;
    let api = format!("http://127.0.0.1:{port}/api/containers");
    let (status, _, body) = get(&api, &[]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing credentials"), "the emulator's refusal, not the dashboard's: {body}");
    assert_eq!(get(&api, &[("authorization", &basic(DASHBOARD_TOKEN))]).await.0, 403);
    let (status, _, body) = get(&api, &[("authorization", &lambda_bearer())]).await;
    assert_eq!(status, 200, "{body}\n{}", emulator.log_tail(20));
    drop(emulator);

    // A public URL and no token: the dashboard serves nobody.
    let (_emulator, port) = dashboard_with(&redis, DASHBOARD_URL_NONE, None).await;
    let (status, _, body) = get(&format!("http://127.0.0.1:{port}/"), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("DASHBOARD_AUTH_TOKEN"), "{body}");
}

/// A page of another site, which on load POSTs `body` (no-CORS, text/plain)
/// to every one of `targets`, and says when all settled.
fn attacker_page(targets: &[String], body: &str) -> String {
    format!(
        r#"<!doctype html><title>a page of another site</title><script>
window.__attack = {{ done: false, results: [] }};
const targets = {targets};
Promise.allSettled(targets.map((url) =>
  fetch(url, {{ method: 'POST', mode: 'no-cors', headers: {{ 'Content-Type': 'text/plain' }}, body: {body} }})
    .then((r) => 'sent: ' + r.type)))
  .then((all) => {{
    window.__attack.results = all.map((r, i) => ({{ url: targets[i], outcome: r.status === 'fulfilled' ? r.value : 'blocked: ' + r.reason }}));
    window.__attack.done = true;
  }});
</script>"#,
        targets = serde_json::to_string(targets).unwrap(),
        body = serde_json::to_string(body).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_site_cannot_invoke_a_function_through_the_emulator() {
    use hemostat_bridge::{HttpInvoker, Invocation, Invoker};
    use hemostat_protocol::secret::Secret;

    let script = browser_tools();
    let redis = RedisServer::start_node().await;
    // The responder's name, run by a function that counts every record it
    // is invoked with in Redis (`bridge-test:seen`, field `data.id`).
    let template = log_dir().join(format!("{}-template.yaml", hemostat_e2e::current_test_name()));
    std::fs::write(
        &template,
        format!(
            "Resources:\n  Responder:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        \
             Binary: bridge-test-function\n    Properties:\n      FunctionName: hemostat-responder\n      \
             Environment:\n        Variables:\n          BRIDGE_TEST_REDIS_URL: {}\n",
            redis.url()
        ),
    )
    .unwrap();
    let (emulator, endpoint) = start_emulator(|b| {
        b.args(["--template".to_owned(), template.display().to_string()])
            .args(["--bin-dir".to_owned(), bin_dir().display().to_string()])
            .env_remove("BRIDGE_TEST_REDIS_URL")
            .env("RUST_LOG", "info")
    })
    .await;
    let port = endpoint.rsplit(':').next().unwrap().to_owned();
    let record = |id: &str| {
        let data = json!({"id": id, "container": "web", "host": "h1", "action": "restart", "reason": "forged"});
        let envelope = Envelope::new("a-web-page", EventKind::RemediationNeeded, &data).unwrap();
        json!({"Records": [{"messageId": "1-0", "eventSourceARN": EventKind::RemediationNeeded.stream(),
            "eventSource": "hemostat:redis-stream", "attributes": {"ApproximateReceiveCount": "1"}, "body": envelope.to_json()}]})
        .to_string()
    };

    // The page: another site's, on a port of its own.
    let path = "/2015-03-31/functions/hemostat-responder/invocations";
    let targets = vec![
        format!("http://127.0.0.1:{port}{path}"),
        format!("http://localhost:{port}{path}"),
        // DNS rebinding: the attacker's own name, resolving to 127.0.0.1.
        format!("http://evil.example:{port}{path}"),
    ];
    let html = attacker_page(&targets, &record("from-a-web-page"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move || {
        let html = html.clone();
        async move { ([(http::header::CONTENT_TYPE, "text/html; charset=utf-8")], html) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let screenshot = artifact("cross-origin.png");
    let mut browser = Browser::start(
        &script,
        json!({"scenario": "cross-origin", "url": format!("http://evil.example:{page_port}/"),
               "hostResolverRules": "MAP evil.example 127.0.0.1", "screenshot": screenshot, "timeoutMs": 30_000}),
    );
    let result = browser
        .line("RESULT", Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\nemulator:\n{}", emulator.log_tail(30)));
    assert!(browser.child.wait().await.unwrap().success(), "{}", browser.seen.join("\n"));
    let outcome: serde_json::Value = serde_json::from_str(&result).unwrap();
    println!("the page's requests: {}", outcome["results"]);
    let sent = outcome["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"].as_str().is_some_and(|o| o.starts_with("sent")))
        .count();
    assert!(sent >= 1, "the browser must have sent the page's requests for this to prove anything: {outcome}");

    // Every request that left the browser reached the emulator and was refused.
    let refusals = || emulator.log().matches("a web page's request").count();
    let seen = wait_for(Duration::from_secs(10), || async { (refusals() >= sent).then_some(()) }).await;
    assert!(seen.is_some(), "{sent} requests sent, {} refused:\n{}", refusals(), emulator.log_tail(30));
    let mut conn = redis.connection().await;
    let invoked: std::collections::HashMap<String, u64> =
        redis::AsyncCommands::hgetall(&mut conn, "bridge-test:seen").await.unwrap();
    assert!(invoked.is_empty(), "the function was invoked from a web page: {invoked:?}");

    // The same request from a caller with the token is carried out: the
    // function does record what reaches it.
    let token = Secret::new(lambda_token());
    let invoker = HttpInvoker::new(&endpoint, Duration::from_secs(30), Some(&token)).unwrap();
    let reply = invoker.invoke("hemostat-responder", bytes::Bytes::from(record("with-the-token"))).await.unwrap();
    assert!(matches!(reply, Invocation::Ok(_)), "{reply:?}");
    let invoked: std::collections::HashMap<String, u64> =
        redis::AsyncCommands::hgetall(&mut conn, "bridge-test:seen").await.unwrap();
    assert_eq!(invoked.into_keys().collect::<Vec<_>>(), ["with-the-token"]);
}

/// A page of another site that answers approval `target` by itself once
/// loaded: a fetch with the dashboard's header (preflighted), then a form
/// (a JSON body as text/plain, the classic trick), submitted.
fn forged_answer_page(target: &str) -> String {
    format!(
        r#"<!doctype html><title>a page of another site</title>
<form id="f" method="POST" action={target} enctype="text/plain"><input type="hidden" name='{{"reason":"' value='x"}}'></form>
<script>
window.addEventListener('load', () => {{
  fetch({target}, {{ method: 'POST', credentials: 'include', headers: {{ 'x-hemostat-request': '1', 'content-type': 'application/json' }}, body: '{{}}' }})
    .then((r) => 'sent: ' + r.status, (e) => 'blocked: ' + e)
    .then((outcome) => {{ console.log('FETCH ' + outcome); setTimeout(() => document.getElementById('f').submit(), 100); }});
}});
</script>"#,
        target = serde_json::to_string(target).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_answers_approvals_and_a_page_of_another_site_cannot() {
    use hemostat_protocol::{
        approval::{self, ApprovalAnswer, Decision, State},
        event::RemediationNeeded,
    };

    let tools = browser_tools();
    let redis = RedisServer::start_node().await;
    let (emulator, port) = dashboard_alone(&redis).await;
    let conn = redis.connection().await;
    let web = ContainerRef::new("h1", "web");
    let request: RemediationNeeded = serde_json::from_value(json!({"container": "web", "host": "h1",
        "action": "restart", "reason": "exit 1 <b>twice</b>", "confidence": 0.9}))
    .unwrap();
    let id = match approval::park(&mut conn.clone(), &web, &request, Duration::from_secs(600)).await.unwrap() {
        approval::Parked::New { id, .. } => id,
        other => panic!("{other:?}"),
    };
    let answers = || {
        let mut conn = conn.clone();
        async move { conn.xlen::<_, usize>(EventKind::ApprovalAnswer.stream()).await.unwrap() }
    };

    // Another site's page, on another loopback port.
    let target = format!("http://127.0.0.1:{port}/api/approvals/{id}/approve");
    let html = forged_answer_page(&target);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move || {
        let html = html.clone();
        async move { ([(http::header::CONTENT_TYPE, "text/html; charset=utf-8")], html) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let screenshot = artifact("dashboard-forged-answer.png");
    let mut browser = Browser::start(
        &tools,
        json!({"scenario": "forged-answer", "url": format!("http://127.0.0.1:{page_port}/"), "target": target,
               "screenshot": screenshot, "timeoutMs": 30_000, "password": DASHBOARD_TOKEN}),
    );
    let failed = |e: String| format!("{e}\nscreenshot: {}\nemulator:\n{}", screenshot.display(), emulator.log_tail(30));
    let result = browser.line("RESULT", Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{}", failed(e)));
    assert!(browser.child.wait().await.unwrap().success(), "{}", browser.seen.join("\n"));
    let outcome: serde_json::Value = serde_json::from_str(&result).unwrap();
    println!("the other site's attempts: {outcome}");
    assert!(outcome["fetch"].as_str().unwrap().starts_with("blocked"), "the preflighted fetch went through: {outcome}");
    let statuses: Vec<u64> =
        outcome["statuses"].as_array().unwrap().iter().filter_map(|r| r["status"].as_u64()).collect();
    assert!(statuses.contains(&403) && !statuses.contains(&202), "{outcome}");
    assert!(outcome["body"].as_str().unwrap().contains("refused"), "{outcome}");
    assert!(emulator.log().contains("approval answer refused"), "{}", emulator.log_tail(30));
    // The line `scripts/security-figures.sh` counts.
    println!("attack refused: dashboard: a page of another site answers an approval");
    assert_eq!(answers().await, 0, "the other site's answer was published");
    let a = approval::get(&mut conn.clone(), &id).await.unwrap().unwrap();
    assert_eq!(a.state, State::Pending);

    // The page's own button.
    let screenshot = artifact("dashboard-approve.png");
    let mut browser = Browser::start(
        &tools,
        json!({"scenario": "approve", "url": format!("http://127.0.0.1:{port}/"), "approval": id,
               "screenshot": screenshot, "timeoutMs": 30_000, "password": DASHBOARD_TOKEN}),
    );
    let failed = |e: String| format!("{e}\nscreenshot: {}\nemulator:\n{}", screenshot.display(), emulator.log_tail(30));
    let result = browser.line("RESULT", Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{}", failed(e)));
    assert!(browser.child.wait().await.unwrap().success(), "{}", browser.seen.join("\n"));
    println!("clicked Approve: {result}");
    let mut conn2 = conn.clone();
    let sent: Vec<ApprovalAnswer> =
        hemostat_e2e::stream_events::<ApprovalAnswer>(&mut conn2, EventKind::ApprovalAnswer)
            .await
            .into_iter()
            .map(|(_, a)| a)
            .collect();
    assert_eq!(sent, [ApprovalAnswer::from_dashboard(&id, Decision::Approve, Some("hemostat"), None)]);
    // Attested as the dashboard's: what the responder will check.
    let reply: redis::streams::StreamRangeReply = conn2.xrange_all(EventKind::ApprovalAnswer.stream()).await.unwrap();
    let json: String = reply.ids[0].get(ENVELOPE_FIELD).unwrap();
    let env = Envelope::parse(json.as_bytes()).unwrap();
    assert!(hemostat_protocol::attestation::is_attested(&conn, &env).await.unwrap());
    println!("screenshot: {}", screenshot.display());
}
