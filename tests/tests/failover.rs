//! A Redis Cluster master dies while containers crash: `kill -9` of the
//! master that holds the `health_alert` stream, with the whole stack
//! (collector, bridge, emulator, functions) running on the cluster. Its
//! replica takes over; every component must reconnect by itself, and every
//! crash after the failover must be healed. Prints how long remediation
//! paused and how many alerts were healed, refused or lost in the window.

use std::time::{Duration, Instant};

use bollard::models::ContainerStateStatusEnum;
use hemostat_e2e::{
    ContainerSpec, RedisCluster, TestContainer, docker, key_slot, start_bridge, start_emulator, stream_events,
    wait_for, workspace_root,
};
use hemostat_protocol::{
    EventKind,
    event::{RemediationComplete, RemediationStatus},
};

/// Containers, crashing one every [`SPACING`] from [`FIRST_CRASH`] on.
const CONTAINERS: usize = 16;
const FIRST_CRASH: Duration = Duration::from_secs(2);
const SPACING: Duration = Duration::from_millis(600);
/// When the master dies, counted from the containers' start.
const KILL_AT: Duration = Duration::from_secs(4);

fn crash_once(after: Duration) -> String {
    format!(
        "[ -e /tmp/crashed ] || {{ sleep {:.1}; touch /tmp/crashed; exit 1; }}; while :; do sleep 0.2; done",
        after.as_secs_f64()
    )
}

fn epoch_ms(t: &str) -> Option<u64> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_millis() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remediation_resumes_by_itself_after_a_master_dies() {
    let mut redis = RedisCluster::start().await;
    let url = redis.url();
    let docker_host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST: run through scripts/test.sh");
    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        b.args(["--template", template.to_str().unwrap()])
            .args(["--functions", "hemostat-analyzer,hemostat-responder"])
            .env("REDIS_URL", &url)
            .env("HEMOSTAT_COMMAND_SIGNING_KEY", &hemostat_e2e::test_keys().private)
            .env("RUST_LOG", "info")
    })
    .await;
    let bridge = start_bridge(|b| {
        b.env("REDIS_URL", &url)
            .env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint)
            .args(["--routes", "health_alert=analyzer,remediation_needed=responder"])
            .args(["--retry-base-ms", "200"])
            .env("RUST_LOG", "info")
    })
    .await;
    let host = format!("failover-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let collector = hemostat_e2e::start_collector(&url, &host, |b| {
        b.env("DOCKER_HOST", &docker_host)
            .env("HEMOSTAT_STATS_INTERVAL", "0")
            .env("HEMOSTAT_VERIFY_SECONDS", "1")
            .env("HEMOSTAT_STOP_TIMEOUT", "1")
            .env("RUST_LOG", "info")
    })
    .await;

    let docker = docker().await;
    let started = Instant::now();
    let mut containers: Vec<(Duration, TestContainer)> = Vec::new();
    for i in 0..CONTAINERS {
        let at = FIRST_CRASH + SPACING * i as u32;
        containers.push((at, ContainerSpec::shell(&crash_once(at)).start(&docker).await));
    }
    // The master holding every health alert: the worst one to lose.
    let stream = EventKind::HealthAlert.stream();
    let victim = redis.master_of_slot(key_slot(&stream)).await;
    tokio::time::sleep(KILL_AT.saturating_sub(started.elapsed())).await;
    let killed_at = chrono::Utc::now().timestamp_millis() as u64;
    redis.kill(victim);
    let failover = redis.wait_for_failover(victim, Duration::from_secs(30)).await;
    let failover_done = killed_at + failover.as_millis() as u64;

    // Every container crashing from here on must be healed; earlier ones
    // are counted. Wait until the last crash has had time to be handled.
    let last_crash = FIRST_CRASH + SPACING * (CONTAINERS as u32 - 1);
    let conn = hemostat_protocol::connection::connect(&url).await.unwrap();
    // A container's outcome: its success if it has one (an alert published
    // twice across the failover is refused by the cooldown the first one
    // set, at once, while the restart it caused is still being verified).
    let outcome = |all: &[(u64, RemediationComplete)], name: &str| {
        let mine = || all.iter().filter(|(_, c)| c.container == name && c.host == host);
        mine()
            .find(|(_, c)| c.result.status == RemediationStatus::Success)
            .or_else(|| mine().next())
            .map(|(ms, c)| (*ms, c.result.status))
    };
    let deadline = Duration::from_secs(60);
    let _ = wait_for(last_crash + deadline, || {
        let mut conn = conn.clone();
        let names: Vec<String> =
            containers.iter().filter(|(at, _)| *at > KILL_AT + failover).map(|(_, c)| c.name().to_owned()).collect();
        let host = host.clone();
        async move {
            let all = stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete).await;
            names.iter().all(|n| all.iter().any(|(_, c)| &c.container == n && c.host == host)).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let all = stream_events::<RemediationComplete>(&mut conn.clone(), EventKind::RemediationComplete).await;
    let (mut healed, mut refused, mut lost, mut pause) = (0, 0, Vec::new(), 0u64);
    println!("failover: master :{victim} killed, replica took over in {} ms", failover.as_millis());
    println!("{:<26} {:>9} {:>9} {:>10}  outcome", "container", "crash ms", "fixed ms", "latency");
    for (at, c) in &containers {
        let state = c.inspect().await.state.unwrap_or_default();
        let crashed = state.finished_at.as_deref().and_then(epoch_ms).unwrap_or(0);
        let found = outcome(&all, c.name());
        let rel = |ms: u64| ms as i64 - killed_at as i64;
        match found {
            Some((ms, status)) => {
                if status == RemediationStatus::Success {
                    healed += 1;
                } else {
                    refused += 1;
                }
                let latency = ms.saturating_sub(crashed);
                if crashed >= killed_at.saturating_sub(500) {
                    pause = pause.max(ms.saturating_sub(killed_at.max(crashed)));
                }
                println!("{:<26} {:>9} {:>9} {:>8}ms  {status:?}", c.name(), rel(crashed), rel(ms), latency);
            }
            None => {
                lost.push((*at, c.name().to_owned()));
                println!("{:<26} {:>9} {:>9} {:>10}  LOST", c.name(), rel(crashed), "-", "-");
            }
        }
    }
    println!(
        "kill -9 of the health_alert master: remediation paused {pause} ms at most (failover {} ms); \
         {healed} healed, {refused} refused, {} lost of {CONTAINERS}",
        failover.as_millis(),
        lost.len()
    );

    // After the failover, nothing is lost: every component reconnected.
    let after: Vec<_> = lost.iter().filter(|(at, _)| *at > KILL_AT + failover + Duration::from_millis(500)).collect();
    assert!(
        after.is_empty(),
        "crashes after the failover were not healed: {after:?}\nbridge:\n{}\ncollector:\n{}\nemulator:\n{}",
        bridge.log_tail(30),
        collector.log_tail(30),
        emulator.log_tail(30)
    );
    assert!(failover_done > killed_at);
    for (_, c) in &containers {
        if outcome(&all, c.name()).is_some_and(|(_, s)| s == RemediationStatus::Success) {
            c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
        }
    }
    for p in [&emulator, &bridge, &collector] {
        assert!(p.is_running(), "{} died in the failover:\n{}", p.name(), p.log_tail(40));
    }
}
