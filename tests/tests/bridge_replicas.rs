//! Two bridge replicas on the same consumer groups share the work, and in
//! the steady state (nobody dies, nothing fails) no record is delivered twice.
//!
//! Needs `cargo build --bins -p hemostat-bridge -p hemostat-local`.

mod bridge_support;

use std::time::Duration;

use bridge_support::*;
use hemostat_e2e::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_work_without_duplicates() {
    const EVENTS: usize = 4000;
    let env = Env::start(10).await;
    let mut conn = env.conn().await;
    let one = env.bridge("bridge-1", &["--consumer", "replica-1"]).await;
    let two = env.bridge("bridge-2", &["--consumer", "replica-2"]).await;
    // A steady trickle, so both replicas are idle-blocked and take turns.
    for from in (0..EVENTS).step_by(100) {
        publish_range(&mut conn, ALERTS, "r", from, from + 100).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = wait_for(Duration::from_secs(60), || {
        let mut conn = conn.clone();
        async move {
            let seen = seen(&mut conn).await;
            (seen.len() == EVENTS && pending(&mut conn, ALERTS, ANALYZER_GROUP).await == 0).then_some(seen)
        }
    })
    .await
    .unwrap_or_else(|| panic!("not all delivered\n{}\n{}", one.log_tail(20), two.log_tail(20)));
    let duplicates: u64 = seen.values().map(|n| n - 1).sum();

    let (s1, s2) = (one.stop(Duration::from_secs(10)), two.stop(Duration::from_secs(10)));
    assert!(s1.is_some_and(|s| s.success()) && s2.is_some_and(|s| s.success()), "{s1:?} {s2:?}");
    let acked1 = stopped_counter(&one.log(), "acked").expect("replica 1 final counters");
    let acked2 = stopped_counter(&two.log(), "acked").expect("replica 2 final counters");
    println!("replicas: {EVENTS} events, replica-1 acked {acked1}, replica-2 acked {acked2}, {duplicates} duplicates");
    assert_eq!(duplicates, 0, "no record delivered twice in the steady state");
    assert_eq!(acked1 + acked2, EVENTS as u64, "every record acked by exactly one replica");
    assert!(acked1 > 0 && acked2 > 0, "both replicas delivered: {acked1} / {acked2}");
}
