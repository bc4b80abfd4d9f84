//! SIGTERM: the bridge stops reading, finishes the batches it is invoking,
//! acks them, and exits 0.
//!
//! Needs `cargo build --bins -p hemostat-bridge -p hemostat-local`.

mod bridge_support;

use std::time::Duration;

use bridge_support::*;
use hemostat_e2e::wait_for;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_batches_then_exits_0() {
    let env = Env::start(10).await;
    let mut conn = env.conn().await;
    // 4 batches of 2 in flight at once, each taking 6 s in the function (2 x 3 s; longer
    // than the SDK's default stalled-stream grace period, which must not apply).
    let bridge = env.bridge("bridge", &["--batch-size", "2", "--max-in-flight", "4"]).await;
    // One transaction: the blocked reader wakes up to all 8, not to the first.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..8 {
        let body = envelope(ALERTS, &format!("slow{i}"), "sleep", json!({"sleep_ms": 3000}));
        pipe.cmd("XADD").arg(ALERTS).arg("*").arg("envelope").arg(body).ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.expect("XADD");
    // All 8 read (pending) and none handled yet: the invocations are running.
    let in_flight = wait_for(Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move { (pending(&mut conn, ALERTS, ANALYZER_GROUP).await == 8).then_some(()) }
    })
    .await;
    assert!(in_flight.is_some(), "records not picked up\n{}", bridge.log_tail(20));
    assert!(seen(&mut conn).await.is_empty(), "the function should still be sleeping");

    bridge.signal(libc::SIGTERM);
    let status = bridge.wait_exit(Duration::from_secs(40)).await.expect("exited after SIGTERM");
    assert!(status.success(), "exit status {status}\n{}", bridge.log_tail(20));
    assert_eq!(pending(&mut conn, ALERTS, ANALYZER_GROUP).await, 0, "in-flight batches acked before exiting");
    let seen = seen(&mut conn).await;
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1));
    assert_eq!(stopped_counter(&bridge.log(), "acked"), Some(8));
    println!("SIGTERM: 8 in-flight records handled and acked, exit {status}");
}
