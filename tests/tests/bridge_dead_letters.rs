//! A record the bridge gave up on, replayed with `hemostat dead-letters
//! replay` once its cause is fixed: with real processes (redis-server, a
//! single node or a cluster under HEMOSTAT_TEST_REDIS=cluster, the Lambda
//! emulator running `bridge-test-function`, `hemostat-bridge`, `hemostat`).
//!
//! Needs `cargo build --bins -p hemostat-bridge -p hemostat-local -p hemostat-cli`.

mod bridge_support;

use std::time::Duration;

use bridge_support::*;
use hemostat_e2e::{hemostat_cli, wait_for};
use hemostat_protocol::publisher::{REPLAY_FOR_FIELD, REPLAY_OF_FIELD};
use redis::AsyncCommands;
use serde_json::json;

fn run(url: &str, args: &[&str]) -> String {
    let out = hemostat_cli(url, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "hemostat {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The entries of `stream` whose envelope names `id`, with their replay fields.
async fn entries_of(conn: &mut hemostat_protocol::connection::Connection, stream: &str, id: &str) -> Vec<Vec<String>> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(stream).await.expect("XRANGE");
    reply
        .ids
        .iter()
        .filter(|e| e.get::<String>("envelope").is_some_and(|env| env.contains(&format!("\"id\":\"{id}\""))))
        .map(|e| [REPLAY_OF_FIELD, REPLAY_FOR_FIELD].iter().map(|f| e.get::<String>(f).unwrap_or_default()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_once_its_cause_is_fixed_is_handled_once() {
    let env = Env::start(10).await;
    let url = env.redis.url();
    let mut conn = env.conn().await;
    // The function's own key is the wrong type: every record it handles
    // fails (WRONGTYPE), is retried, then dead-lettered.
    let _: () = conn.set(SEEN, "not a hash").await.unwrap();
    let bridge = env.bridge("bridge", &[]).await;
    publish(&mut conn, ALERTS, "victim", "ok", json!({})).await;
    let dead = wait_for(Duration::from_secs(60), || {
        let mut conn = conn.clone();
        async move { Some(dead_letters(&mut conn).await).filter(|d| !d.is_empty()) }
    })
    .await
    .unwrap_or_else(|| panic!("not dead-lettered\n{}\n{}", bridge.log_tail(30), env.emulator_log_tail()));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["stream"], ALERTS);
    assert!(dead[0]["reason"].contains("WRONGTYPE"), "{dead:?}");
    let ids: redis::streams::StreamRangeReply = conn.xrange_all(DEAD_LETTER).await.unwrap();
    let dead_id = ids.ids[0].id.clone();
    let listed = run(&url, &["dead-letters", "list", "--stream", ALERTS]);
    assert!(listed.contains("DEAD LETTERS (1)") && listed.contains("WRONGTYPE"), "{listed}");

    // Fixed. A dry run changes nothing.
    let _: () = conn.del(SEEN).await.unwrap();
    let dry = run(&url, &["dead-letters", "replay", "--stream", ALERTS, "--dry-run"]);
    assert!(dry.contains("would replay 1"), "{dry}");
    assert_eq!(dead_letters(&mut conn).await.len(), 1);
    assert_eq!(entries_of(&mut conn, ALERTS, "victim").await.len(), 1, "only the original");

    // Replayed: in its stream once more, for the group that gave up on it,
    // handled, and gone from the dead letters.
    let out = run(&url, &["dead-letters", "replay", "--stream", ALERTS]);
    println!("replay: {out}");
    assert!(out.contains("replayed 1, kept 0"), "{out}");
    let handled = wait_for(Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move { (seen(&mut conn).await.get("victim") == Some(&1)).then_some(()) }
    })
    .await;
    assert!(handled.is_some(), "the replay was not handled\n{}", bridge.log_tail(30));
    assert!(dead_letters(&mut conn).await.is_empty());
    let entries = entries_of(&mut conn, ALERTS, "victim").await;
    assert_eq!(entries.len(), 2, "the original and one replay: {entries:?}");
    assert_eq!(entries[1], [dead_id, ANALYZER_GROUP.to_owned()]);

    // Again: nothing to replay, nothing appended, handled once.
    let again = run(&url, &["dead-letters", "replay", "--all"]);
    assert!(again.contains("replayed 0"), "{again}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(entries_of(&mut conn, ALERTS, "victim").await.len(), 2);
    assert_eq!(seen(&mut conn).await.get("victim"), Some(&1));
    assert!(bridge.is_running());
}

/// A replay that stopped between appending the record and deleting the
/// dead letter: run again, it finds its entry and only deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_interrupted_before_the_delete_does_not_append_twice() {
    let env = Env::start(10).await;
    let url = env.redis.url();
    let mut conn = env.conn().await;
    let body = envelope(NEEDED, "twice", "ok", json!({}));
    let fields = [("stream", NEEDED), ("group", RESPONDER_GROUP), ("reason", "x"), ("envelope", body.as_str())];
    let dead_id: String = conn.xadd(DEAD_LETTER, "*", &fields).await.unwrap();
    // What the first run appended before it stopped.
    let first: String = conn
        .xadd(
            NEEDED,
            "*",
            &[("envelope", body.as_str()), (REPLAY_FOR_FIELD, RESPONDER_GROUP), (REPLAY_OF_FIELD, &dead_id)],
        )
        .await
        .unwrap();
    let out = run(&url, &["dead-letters", "replay", "--id", &dead_id]);
    assert!(
        out.contains(&format!("{dead_id} was already replayed into {NEEDED} for group {RESPONDER_GROUP} as {first}")),
        "{out}"
    );
    assert_eq!(entries_of(&mut conn, NEEDED, "twice").await.len(), 1, "not appended twice");
    assert!(dead_letters(&mut conn).await.is_empty());
    // Bad input: a stream HemoStat does not read.
    let out = hemostat_cli(&url, &["dead-letters", "replay", "--stream", "hemostat:stream:nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
