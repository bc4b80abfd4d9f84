//! A fleet for real: three Docker engines on this machine, each with its own
//! collector and `HEMOSTAT_HOST`, two bridge replicas, the emulator running
//! the real template's functions, all on a six-node Redis Cluster.
//!
//! - a crash on each host is healed by that host's collector only, and
//!   containers with the same name on different hosts are healed
//!   independently;
//! - the same image failing on all three hosts trips the fleet brake at the
//!   configured host count (2 here);
//! - a collector killed with `kill -9` is reported missing, and a command
//!   queued for its host while it is away is executed once when it returns.

use std::time::Duration;

use bollard::{models::ContainerStateStatusEnum, query_parameters::TagImageOptions};
use hemostat_e2e::{
    ContainerSpec, PrivateDockerd, Process, RedisCluster, TestContainer, start_bridge, start_emulator, stream_events,
    test_image, wait_for, workspace_root,
};
use hemostat_protocol::{
    Action, ContainerRef, Envelope, EventKind, Publisher, RedisPublisher,
    command::COMMAND_FIELD,
    envelope::agent,
    event::{RemediationComplete, RemediationNeeded, RemediationStatus, SystemAlert},
    keys,
};
use redis::AsyncCommands;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Runs until killed; prints `started` on each start.
const SERVER: &str = "echo started; while :; do sleep 0.2; done";

fn collector(url: &str, engine: &PrivateDockerd, host: &str) -> Process {
    hemostat_e2e::collector(url, host)
        .name(format!("collector-{host}"))
        .env("DOCKER_HOST", engine.host())
        .env("HEMOSTAT_HEARTBEAT_INTERVAL", "1s")
        .env("HEMOSTAT_STATS_INTERVAL", "0")
        .env("HEMOSTAT_STOP_TIMEOUT", "1")
        .env("HEMOSTAT_VERIFY_SECONDS", "1")
        .env("RUST_LOG", "info")
        .spawn()
}

async fn tag(engine: &PrivateDockerd, repo: &str, tag: &str) -> String {
    let docker = engine.docker().await;
    docker
        .tag_image(&test_image(), Some(TagImageOptions { repo: Some(repo.into()), tag: Some(tag.into()) }))
        .await
        .unwrap_or_else(|e| panic!("tagging {repo}:{tag}: {e}"));
    format!("{repo}:{tag}")
}

async fn completions(conn: &mut hemostat_protocol::connection::Connection) -> Vec<RemediationComplete> {
    stream_events::<RemediationComplete>(conn, EventKind::RemediationComplete)
        .await
        .into_iter()
        .map(|(_, c)| c)
        .collect()
}

/// Waits until `container` on `host` has `n` outcomes, and returns them.
async fn outcomes(
    conn: &hemostat_protocol::connection::Connection,
    host: &str,
    container: &str,
    n: usize,
    logs: &str,
) -> Vec<RemediationComplete> {
    let found = wait_for(TIMEOUT, || {
        let mut conn = conn.clone();
        async move {
            let mine: Vec<_> = completions(&mut conn)
                .await
                .into_iter()
                .filter(|c| c.host == host && c.container == container)
                .collect();
            (mine.len() >= n).then_some(mine)
        }
    })
    .await;
    found.unwrap_or_else(|| panic!("no {n} outcome(s) for {host}/{container}\n{logs}"))
}

async fn starts(c: &TestContainer) -> usize {
    c.logs().await.matches("started").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_on_a_cluster_heal_their_own_share_the_brake_and_survive_a_lost_collector() {
    let redis = RedisCluster::start().await;
    let url = redis.url();
    let (a, b, c) = tokio::join!(PrivateDockerd::start(), PrivateDockerd::start(), PrivateDockerd::start());
    let engines = [a, b, c];
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let hosts: Vec<String> = ["a", "b", "c"].iter().map(|h| format!("fleet-{h}-{suffix}")).collect();

    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        b.args(["--template", template.to_str().unwrap()])
            .args(["--functions", "hemostat-analyzer,hemostat-responder,hemostat-exporter"])
            .args(["--parameter-overrides", "ResponderFleetBrakeHosts=2"])
            .args(["--schedule-interval", "hemostat-exporter=500ms"])
            .env("REDIS_URL", &url)
            .env("HEMOSTAT_COMMAND_SIGNING_KEY", &hemostat_e2e::test_keys().private)
            .env("RUST_LOG", "info")
    })
    .await;
    let bridge = |name: &str| {
        let (url, endpoint, name) = (url.clone(), endpoint.clone(), name.to_owned());
        start_bridge(move |b| {
            b.name(&name)
                .env("REDIS_URL", &url)
                .env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint)
                .env("HEMOSTAT_BRIDGE_CONSUMER", &name)
                .args(["--routes", "health_alert=analyzer,remediation_needed=responder"])
                .env("RUST_LOG", "info")
        })
    };
    let (bridge1, bridge2) = tokio::join!(bridge("bridge-1"), bridge("bridge-2"));
    let mut collectors: Vec<Process> = engines.iter().zip(&hosts).map(|(e, h)| collector(&url, e, h)).collect();
    for c in &collectors {
        c.wait_for_line("collector ready", TIMEOUT).await;
    }
    let conn = hemostat_protocol::connection::connect(&url).await.unwrap();
    macro_rules! logs {
        ($what:expr) => {
            format!(
                "{}\nemulator:\n{}\nbridge-1:\n{}\nbridge-2:\n{}\ncollectors:\n{}",
                $what,
                emulator.log_tail(30),
                bridge1.log_tail(15),
                bridge2.log_tail(15),
                collectors.iter().map(|c| c.log_tail(15)).collect::<Vec<_>>().join("\n")
            )
        };
    }

    // 1. Every host runs a container named "web", each of its own image;
    //    all three crash. Each is restarted by its own host's collector.
    let mut webs = Vec::new();
    for (i, engine) in engines.iter().enumerate() {
        let image = tag(engine, "fleet/web", &format!("host{i}-{suffix}")).await;
        let docker = engine.docker().await;
        // Crashes once; after the restart it stays up.
        let script = "[ -e /tmp/crashed ] || { sleep 1; touch /tmp/crashed; exit 1; }; while :; do sleep 0.2; done";
        webs.push(ContainerSpec::shell(script).image(image).name(format!("web-{suffix}")).start(&docker).await);
    }
    for (host, web) in hosts.iter().zip(&webs) {
        let done = outcomes(&conn, host, web.name(), 1, &logs!("crash on every host")).await;
        assert_eq!(done.len(), 1, "{host}: {done:?}");
        assert_eq!(done[0].result.status, RemediationStatus::Success, "{host}: {done:?}");
        web.wait_for_status(ContainerStateStatusEnum::RUNNING, TIMEOUT).await;
    }
    // Each host's commands went to its own stream only.
    let mut c2 = conn.clone();
    for host in &hosts {
        let entries: redis::streams::StreamRangeReply = c2.xrange_all(keys::commands(host)).await.unwrap();
        assert_eq!(entries.ids.len(), 1, "{host}: one command");
        let body: String = entries.ids[0].get(COMMAND_FIELD).unwrap();
        assert!(body.contains(&format!("\"host\":\"{host}\"")), "{body}");
    }

    // 2. One image crashes everywhere: two hosts are healed, the third trips
    //    the fleet brake ("suspected bad release").
    let mut bad = Vec::new();
    for engine in &engines {
        let image = tag(engine, "fleet/bad", suffix).await;
        let docker = engine.docker().await;
        bad.push(
            ContainerSpec::shell("sleep 2; exit 3").image(image).name(format!("api-{suffix}")).start(&docker).await,
        );
    }
    let mut statuses = Vec::new();
    for (host, api) in hosts.iter().zip(&bad) {
        let done = outcomes(&conn, host, api.name(), 1, &logs!("fleet brake")).await;
        statuses.push((done[0].result.status, done[0].result.reason.clone().unwrap_or_default()));
    }
    let healed = statuses.iter().filter(|(s, _)| *s == RemediationStatus::Success).count();
    let braked: Vec<_> =
        statuses.iter().filter(|(s, r)| *s == RemediationStatus::Rejected && r.contains("fleet brake")).collect();
    assert_eq!((healed, braked.len()), (2, 1), "{statuses:?}");
    assert!(braked[0].1.contains(&format!("suspected bad release of fleet/bad:{suffix}")), "{statuses:?}");

    // 3. kill -9 host c's collector: reported missing. Its db container
    //    runs already, so its collector has reported it (the gate acts only
    //    on what a collector reports).
    let docker_c = engines[2].docker().await;
    let lonely = ContainerSpec::shell(SERVER).name(format!("db-{suffix}")).start(&docker_c).await;
    lonely.wait_for_status(ContainerStateStatusEnum::RUNNING, TIMEOUT).await;
    let facts_key = keys::facts(&ContainerRef::new(&hosts[2], lonely.name()));
    let reported = wait_for(TIMEOUT, || {
        let mut conn = conn.clone();
        let key = facts_key.clone();
        async move { conn.exists::<_, bool>(&key).await.ok()?.then_some(()) }
    })
    .await;
    assert!(reported.is_some(), "{}", logs!("db reported by its collector"));
    collectors[2].kill();
    let missing = wait_for(TIMEOUT, || {
        let mut conn = conn.clone();
        let host = hosts[2].clone();
        async move {
            stream_events::<SystemAlert>(&mut conn, EventKind::SystemAlert)
                .await
                .into_iter()
                .find(|(_, a)| a.host == host && a.kind == "collector_missing")
        }
    })
    .await;
    assert!(missing.is_some(), "{}", logs!("collector_missing"));

    //    A restart is requested for its container while it is away (as a
    //    custom analyzer would): queued in its stream, not executed.
    let needed = RemediationNeeded {
        container: lonely.name().into(),
        action: Action::Restart,
        reason: "requested while the collector was away".into(),
        confidence: 0.9,
        metrics: None,
        host: hosts[2].clone(),
        container_id: None,
        context: hemostat_protocol::event::IncidentContext {
            analysis_method: Some("custom".into()),
            ..Default::default()
        },
        fallback_reason: None,
        llm_cached: false,
    };
    let env = Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, &needed).unwrap();
    RedisPublisher::new(conn.clone()).publish(&env).await.unwrap();
    let queued = wait_for(TIMEOUT, || {
        let mut conn = conn.clone();
        let stream = keys::commands(&hosts[2]);
        let name = format!("\"container\":\"{}\"", lonely.name());
        async move {
            let entries: redis::streams::StreamRangeReply = conn.xrange_all(&stream).await.ok()?;
            entries.ids.iter().any(|e| e.get::<String>(COMMAND_FIELD).is_some_and(|c| c.contains(&name))).then_some(())
        }
    })
    .await;
    assert!(queued.is_some(), "{}", logs!("command queued for the missing host"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(starts(&lonely).await, 1, "executed while its collector was dead");

    //    The collector returns: the queued command runs, once.
    collectors[2] = collector(&url, &engines[2], &hosts[2]);
    collectors[2].wait_for_line("collector ready", TIMEOUT).await;
    let done = outcomes(&conn, &hosts[2], lonely.name(), 1, &logs!("queued command after return")).await;
    assert_eq!(done[0].result.status, RemediationStatus::Success, "{done:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(starts(&lonely).await, 2, "the queued command ran more than once, or not at all");
    let all: Vec<_> =
        completions(&mut conn.clone()).await.into_iter().filter(|c| c.container == lonely.name()).collect();
    assert_eq!(all.len(), 1, "one outcome: {all:?}");

    // Neither replica nor any collector ever saw a redirection or a
    // cross-slot error: the connection routes every command itself.
    for p in [&emulator, &bridge1, &bridge2].into_iter().chain(collectors.iter()) {
        let log = p.log();
        for word in ["MOVED", "Moved:", "ASK ", "CROSSSLOT", "CrossSlot"] {
            assert!(!log.contains(word), "{} logged {word}:\n{}", p.name(), p.log_tail(40));
        }
    }
}
