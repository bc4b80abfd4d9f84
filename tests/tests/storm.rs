//! A small storm through the whole stack, with the defaults a user runs:
//! 30 containers on one host crash (exit 1) at the same moment, and every
//! one runs again, restarted exactly once by HemoStat (one alert, one
//! command, one successful outcome each), none lost, none refused.
//! `hemostat-bench-storm` measures the same at 200 beside Docker's restart
//! policy.

use std::time::Duration;

use hemostat_e2e::{
    RedisServer, current_test_name, docker, start_stack,
    storm::{Healer, Pipeline, Storm},
    wait_until,
};

const CONTAINERS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_crashes_at_once_is_healed_once_each_nothing_lost_or_refused() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let stack = start_stack(&redis.url()).await;
    let conn = redis.connection().await;

    let storm = Storm::start(&docker, CONTAINERS, Healer::HemoStat, &current_test_name()).await;
    let names = storm.names();
    let outcome = storm.crash(&docker, Duration::from_secs(90), Duration::from_secs(4)).await;
    let logs = || format!("collector:\n{}\nbridge:\n{}", stack.collector.log_tail(30), stack.bridge.log_tail(30));
    assert_eq!(outcome.crashed, CONTAINERS, "not every container crashed: {outcome:?}");
    assert!(outcome.crash_spread_ms < 5_000.0, "not at once: exits {:.0} ms apart", outcome.crash_spread_ms);
    assert!(outcome.lost.is_empty(), "never running again: {:?}\n{}", outcome.lost, logs());
    assert_eq!(outcome.healed, CONTAINERS);
    assert_eq!(outcome.restarted_twice, 0, "started more than once after the crash: {outcome:?}");
    assert_eq!(outcome.running_at_end, CONTAINERS, "not all running at the end");

    // Every outcome is published after its verification.
    let all_reported = wait_until(Duration::from_secs(30), || {
        let (mut conn, names) = (conn.clone(), names.clone());
        let outcome = outcome.clone();
        let host = stack.host.clone();
        async move {
            let p = Pipeline::read(&mut conn, &host, &names, &outcome).await;
            p.outcomes.values().sum::<usize>() >= CONTAINERS
        }
    })
    .await;
    let p = Pipeline::read(&mut conn.clone(), &stack.host, &names, &outcome).await;
    assert!(all_reported, "not every outcome reported: {p:?}\n{}", logs());
    assert!(p.refusals.is_empty(), "refused or failed: {:?}", p.refusals);
    assert_eq!(p.outcomes.get("success"), Some(&CONTAINERS), "outcomes: {:?}", p.outcomes);
    assert_eq!((p.alerts, p.alerted_twice, p.false_alarms), (CONTAINERS, 0, 0), "{p:?}");
    assert_eq!(p.commands, CONTAINERS, "one command per container: {p:?}");
    println!(
        "storm of {CONTAINERS}: all running again {:.0} ms after the crash (exits within {:.0} ms); \
         exit to start p50 {:.0} ms, max {:.0} ms",
        outcome.all_running_ms.unwrap_or(f64::NAN),
        outcome.crash_spread_ms,
        hemostat_e2e::bench::percentile(&outcome.heal_ms, 0.5).unwrap_or(f64::NAN),
        outcome.heal_ms.last().copied().unwrap_or(f64::NAN)
    );
    storm.remove().await;
}
