//! The bridge under faults, with real processes: redis-server, the Lambda
//! emulator running `bridge-test-function`, and the `hemostat-bridge`
//! binary (SDK invoker, the default).
//!
//! Needs `cargo build --bins -p hemostat-bridge -p hemostat-local`.

mod bridge_support;

use std::{collections::HashMap, time::Duration};

use bridge_support::*;
use hemostat_e2e::wait_for;
use serde_json::json;

/// Ten `kill -9`s of the bridge during a 10,000-event run: every event is
/// handled at least once; duplicates are counted and printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_ten_times_loses_nothing() {
    const EVENTS: usize = 10_000;
    const KILLS: usize = 10;
    let env = Env::start(10).await;
    let mut conn = env.conn().await;
    // Half before the first bridge starts, half while it is being killed.
    publish_range(&mut conn, ALERTS, "e", 0, EVENTS / 2).await;
    let late = {
        let mut conn = env.conn().await;
        tokio::spawn(async move {
            for from in (EVENTS / 2..EVENTS).step_by(250) {
                publish_range(&mut conn, ALERTS, "e", from, from + 250).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Default consumer names (host-pid): every restart is a new replica, and
    // the dead one's records are taken over once idle.
    let flags = ["--reclaim-idle-ms", "1000", "--batch-size", "10"];
    let mut bridge = env.bridge("bridge", &flags).await;
    for kill in 1..=KILLS {
        let target = (kill * EVENTS / (KILLS + 1)) as u64;
        let progressed = wait_for(Duration::from_secs(120), || {
            let mut conn = conn.clone();
            async move { (seen(&mut conn).await.len() as u64 >= target).then_some(()) }
        })
        .await;
        assert!(progressed.is_some(), "kill {kill}: fewer than {target} handled\n{}", bridge.log_tail(30));
        bridge.kill();
        bridge = env.bridge("bridge", &flags).await;
    }
    late.await.expect("publisher");
    let all = wait_for(Duration::from_secs(120), || {
        let mut conn = conn.clone();
        async move {
            let seen = seen(&mut conn).await;
            (seen.len() == EVENTS && pending(&mut conn, ALERTS, ANALYZER_GROUP).await == 0).then_some(seen)
        }
    })
    .await;
    let Some(seen) = all else {
        let seen = seen(&mut conn).await;
        let pending = pending(&mut conn, ALERTS, ANALYZER_GROUP).await;
        let dead: Vec<String> = dead_letters(&mut conn)
            .await
            .into_iter()
            .take(10)
            .map(|d| format!("{} {}", d["id"], d["reason"]))
            .collect();
        panic!(
            "not every event handled and acked in time: {} of {EVENTS} seen, {pending} pending, dead letters (first 10): {dead:#?}\n--- bridge ---\n{}\n--- emulator ---\n{}",
            seen.len(),
            bridge.log_tail(40),
            env.emulator_log_tail()
        );
    };
    let missing: Vec<String> = (0..EVENTS).map(|i| format!("e{i}")).filter(|id| !seen.contains_key(id)).collect();
    assert!(missing.is_empty(), "lost events: {missing:?}");
    let duplicates: u64 = seen.values().map(|n| n - 1).sum();
    let twice = seen.values().filter(|n| **n > 1).count();
    println!(
        "kill -9 x{KILLS}: {EVENTS} events, all handled; {duplicates} duplicate deliveries ({twice} events more than once)"
    );
    assert!(dead_letters(&mut conn).await.is_empty(), "nothing should be dead-lettered");
}

/// redis-server restarted under the bridge: it reconnects, recreates its
/// groups, and delivers every event published after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_run_then_every_new_event_is_delivered() {
    let mut env = Env::start_on(hemostat_e2e::RedisServer::start_node().await, 10).await;
    let mut conn = env.conn().await;
    let bridge = env.bridge("bridge", &[]).await;
    publish_range(&mut conn, ALERTS, "before", 0, 500).await;
    let before = wait_for(Duration::from_secs(60), || {
        let mut conn = conn.clone();
        async move { (seen(&mut conn).await.len() == 500).then_some(()) }
    })
    .await;
    assert!(before.is_some(), "first 500 not handled\n{}", bridge.log_tail(30));

    env.redis.restart().await; // empty: no persistence
    let mut conn = env.conn().await;
    // Published while the bridge is still reconnecting.
    publish_range(&mut conn, ALERTS, "after", 0, 500).await;
    publish_range(&mut conn, NEEDED, "after-needed", 0, 100).await;
    let after = wait_for(Duration::from_secs(60), || {
        let mut conn = conn.clone();
        async move {
            let seen = seen(&mut conn).await;
            let alerts = (0..500).all(|i| seen.contains_key(&format!("after{i}")));
            let needed = (0..100).all(|i| seen.contains_key(&format!("after-needed{i}")));
            (alerts && needed && pending(&mut conn, ALERTS, ANALYZER_GROUP).await == 0).then_some(seen)
        }
    })
    .await;
    let seen = after.unwrap_or_else(|| panic!("events after the restart not delivered\n{}", bridge.log_tail(40)));
    assert!(bridge.is_running(), "the bridge must survive a Redis restart");
    println!(
        "redis restart: 600/600 events published after the restart delivered ({} handled in total since)",
        seen.len()
    );
}

/// A function that returns an error, panics, or outlives its timeout: its
/// records are retried, then dead-lettered with the reason; the healthy
/// function on the other route keeps being served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_functions_are_dead_lettered_and_others_keep_being_served() {
    let env = Env::start(2).await; // the responder times out after 2 s
    let mut conn = env.conn().await;
    let bridge = env.bridge("bridge", &["--batch-size", "10"]).await;
    let broken = [
        ("err", "error", json!({})),
        ("boom", "panic", json!({})),
        ("slow", "sleep", json!({"sleep_ms": 5000})),
        ("flaky", "fail_item", json!({})),
        ("bad", "reject", json!({})),
    ];
    for (id, mode, extra) in &broken {
        publish(&mut conn, NEEDED, id, mode, extra.clone()).await;
    }
    // Healthy neighbours on the broken stream share batches with the broken.
    publish_range(&mut conn, NEEDED, "fine", 0, 5).await;
    let started = std::time::Instant::now();
    publish_range(&mut conn, ALERTS, "healthy", 0, 200).await;
    let served = wait_for(Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move {
            let seen = seen(&mut conn).await;
            (0..200).all(|i| seen.contains_key(&format!("healthy{i}"))).then_some(())
        }
    })
    .await;
    assert!(served.is_some(), "the healthy route stalled\n{}", bridge.log_tail(30));
    let healthy_after = started.elapsed();
    let pending_broken = pending(&mut conn, NEEDED, RESPONDER_GROUP).await;

    let expected = broken.len();
    let dead = wait_for(Duration::from_secs(90), || {
        let mut conn = conn.clone();
        async move {
            let dead = dead_letters(&mut conn).await;
            (dead.len() >= expected && pending(&mut conn, NEEDED, RESPONDER_GROUP).await == 0).then_some(dead)
        }
    })
    .await
    .unwrap_or_else(|| {
        panic!("broken records not dead-lettered\n{}\n{}", bridge.log_tail(40), env.emulator_log_tail())
    });
    let by_id: HashMap<String, &HashMap<String, String>> = dead
        .iter()
        .map(|d| {
            (
                serde_json::from_str::<serde_json::Value>(&d["envelope"]).unwrap()["data"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                d,
            )
        })
        .collect();
    for (id, _, _) in &broken {
        let d = by_id.get(*id).unwrap_or_else(|| panic!("{id} not dead-lettered: {dead:?}"));
        println!("dead letter {id}: attempts={} reason={}", d["attempts"], d["reason"]);
        assert_eq!(d["stream"], NEEDED);
        assert_eq!(d["function"], "hemostat-responder");
    }
    assert_eq!(dead.len(), broken.len(), "only the broken records: {dead:?}");
    assert!(by_id["err"]["reason"].contains("asked to fail"), "{:?}", by_id["err"]);
    assert!(by_id["boom"]["reason"].to_lowercase().contains("panic"), "{:?}", by_id["boom"]);
    assert!(by_id["slow"]["reason"].to_lowercase().contains("timed out"), "{:?}", by_id["slow"]);
    assert!(by_id["flaky"]["reason"].contains("batchItemFailures"), "{:?}", by_id["flaky"]);
    assert!(by_id["bad"]["reason"].contains("rejected by hemostat-responder: asked to reject"), "{:?}", by_id["bad"]);
    for id in ["err", "boom", "slow", "flaky"] {
        assert_eq!(by_id[id]["attempts"], "3", "{id} retried up to --max-attempts");
    }
    let seen = seen(&mut conn).await;
    assert!((0..5).all(|i| seen.contains_key(&format!("fine{i}"))), "healthy batch-mates delivered: {seen:?}");
    println!(
        "healthy route: 200 events handled {healthy_after:?} after publishing, while {pending_broken} broken records were still pending"
    );
    assert!(bridge.is_running());
}

/// Malformed records on every routed stream are dead-lettered with a
/// reason; the bridge neither crashes nor stops delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_on_every_stream_are_dead_lettered() {
    let env = Env::start(10).await;
    let mut conn = env.conn().await;
    let bridge = env.bridge("bridge", &[]).await;
    let streams = [(ALERTS, ANALYZER_GROUP), (NEEDED, RESPONDER_GROUP)];
    let malformed: [(&str, Vec<u8>); 5] = [
        ("envelope", b"{not json".to_vec()),
        ("envelope", br#"{"agent":"x"}"#.to_vec()),
        ("envelope", br#"{"timestamp":"t","agent":"a","type":"no_such_type","data":{}}"#.to_vec()),
        ("envelope", vec![0xff, 0xfe, 0x00]),
        ("something", b"else".to_vec()),
    ];
    for (stream, _) in streams {
        for (field, value) in &malformed {
            let _: String =
                redis::AsyncCommands::xadd(&mut conn, stream, "*", &[(*field, value.as_slice())]).await.expect("XADD");
        }
        publish(&mut conn, stream, &format!("valid-{stream}"), "ok", json!({})).await;
    }
    let expected = 2 * malformed.len();
    let dead = wait_for(Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move {
            let dead = dead_letters(&mut conn).await;
            let mut idle = true;
            for (stream, group) in streams {
                idle &= pending(&mut conn, stream, group).await == 0;
            }
            (dead.len() >= expected && idle).then_some(dead)
        }
    })
    .await
    .unwrap_or_else(|| panic!("malformed records not dead-lettered\n{}", bridge.log_tail(40)));
    assert_eq!(dead.len(), 2 * malformed.len(), "{dead:?}");
    for (stream, _) in streams {
        let reasons: Vec<&str> = dead.iter().filter(|d| d["stream"] == stream).map(|d| d["reason"].as_str()).collect();
        println!("{stream}: {reasons:?}");
        assert_eq!(reasons.len(), malformed.len());
        assert!(reasons.iter().all(|r| !r.is_empty()));
        assert!(reasons.iter().any(|r| r.contains("not JSON")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("missing field")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("no_such_type")), "{reasons:?}");
        assert!(reasons.iter().filter(|r| r.contains("no UTF-8")).count() >= 1, "{reasons:?}");
    }
    let seen = seen(&mut conn).await;
    for (stream, _) in streams {
        assert_eq!(
            seen.get(&format!("valid-{stream}")),
            Some(&1),
            "the valid record after the malformed ones: {seen:?}"
        );
    }
    assert!(bridge.is_running(), "malformed input must not crash the bridge");
}
