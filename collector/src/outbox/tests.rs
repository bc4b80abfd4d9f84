use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use hemostat_protocol::{Envelope, EventKind, ProtocolError, Publisher, envelope::agent, event::SystemAlert};
use tokio_util::sync::CancellationToken;

use super::{
    AWAY_WAIT, FACTS_WAIT, FactsState, Outbox, Settings, publish_with_retry,
    testing::{TempDir, outbox, settings},
};

fn env(n: u32) -> Envelope {
    Envelope::new(agent::MONITOR, EventKind::HealthAlert, &serde_json::json!({ "n": n })).unwrap()
}

fn n(env: &Envelope) -> u64 {
    env.data["n"].as_u64().unwrap()
}

/// Redis that is down while `down` is set, refuses the events whose number
/// `refuse` lists with that error code; records what it accepted.
#[derive(Clone, Default)]
struct Fake {
    down: Arc<AtomicBool>,
    attempts: Arc<AtomicU32>,
    refuse: Arc<Mutex<HashMap<u64, &'static str>>>,
    accepted: Arc<Mutex<Vec<u64>>>,
    /// What it accepted that is not one of the test's numbered events
    /// (the outbox's own system alerts).
    others: Arc<Mutex<Vec<Envelope>>>,
}

impl Publisher for Fake {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(ProtocolError::RedisUrl("down".into()));
        }
        if env.data.get("n").is_none() {
            self.others.lock().unwrap().push(env.clone());
            return Ok("0-1".into());
        }
        if let Some(code) = self.refuse.lock().unwrap().get(&n(env)) {
            return Err(ProtocolError::Redis(redis::make_extension_error(
                (*code).into(),
                Some("refused by the fake".into()),
            )));
        }
        let mut accepted = self.accepted.lock().unwrap();
        accepted.push(n(env));
        Ok(format!("{}-0", accepted.len()))
    }
}

impl Fake {
    fn accepted(&self) -> Vec<u64> {
        self.accepted.lock().unwrap().clone()
    }

    fn down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

/// The longest wait between attempts (Backoff::redis' cap), and then some.
async fn one_retry() {
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
}

async fn stop(outbox: Outbox, task: tokio::task::JoinHandle<()>, cancel: CancellationToken) {
    cancel.cancel();
    drop(outbox);
    tokio::time::timeout(Duration::from_secs(60), task).await.expect("outbox task hung").unwrap();
}

#[tokio::test(start_paused = true)]
async fn retries_until_redis_is_back_and_stops_at_shutdown() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    fake.down(true);
    let up = {
        let down = fake.down.clone();
        async move {
            // Longer than the old 31 s give-up horizon.
            tokio::time::sleep(Duration::from_secs(300)).await;
            down.store(false, Ordering::SeqCst);
        }
    };
    let first = env(1);
    let (id, ()) = tokio::join!(publish_with_retry(&fake, &first, &cancel), up);
    assert_eq!(id.unwrap(), "1-0");
    assert!(fake.attempts.load(Ordering::SeqCst) > 6);

    fake.down(true);
    let stop = {
        let cancel = cancel.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            cancel.cancel();
        }
    };
    let second = env(2);
    let (r, ()) = tokio::join!(publish_with_retry(&fake, &second, &cancel), stop);
    assert!(r.is_err());

    // A final refusal is not retried.
    fake.down(false);
    fake.refuse.lock().unwrap().insert(3, "WRONGTYPE");
    let before = fake.attempts.load(Ordering::SeqCst);
    let r = publish_with_retry(&fake, &env(3), &CancellationToken::new()).await;
    assert!(r.is_err());
    assert_eq!(fake.attempts.load(Ordering::SeqCst), before + 1);
}

#[tokio::test(start_paused = true)]
async fn holds_events_during_an_outage_and_delivers_them_in_order() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    fake.down(true);
    let (outbox, task, _dir) = outbox(fake.clone(), cancel.clone());
    for i in 0..50 {
        outbox.send(env(i));
        // Events keep arriving during the outage, between retries.
        tokio::time::sleep(Duration::from_secs(7)).await;
    }
    assert!(fake.accepted().is_empty());
    assert_eq!(outbox.queued(), 50);
    fake.down(false);
    one_retry().await;
    assert_eq!(fake.accepted(), (0..50).collect::<Vec<_>>());
    assert_eq!((outbox.queued(), outbox.dropped()), (0, 0));
    stop(outbox, task, cancel).await;
}

/// An outbox whose alerts wait for the registry's facts, away at first.
fn facts_outbox(
    fake: Fake,
    cancel: CancellationToken,
) -> (Outbox, tokio::task::JoinHandle<()>, TempDir, tokio::sync::watch::Sender<FactsState>) {
    let dir = TempDir::new();
    let (current, facts) = tokio::sync::watch::channel(FactsState::Away);
    let settings = Settings { facts_current: Some(facts), ..settings(&dir, 1 << 20) };
    let (outbox, task) = Outbox::open(fake, settings, cancel).unwrap();
    (outbox, task, dir, current)
}

#[tokio::test(start_paused = true)]
async fn alerts_wait_for_current_facts_once_per_spell() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    let (outbox, task, _dir, current) = facts_outbox(fake.clone(), cancel.clone());
    outbox.send(env(1));
    // Redis away for the registry: the alert waits, and when Redis is back
    // it still waits for the facts.
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    current.send_replace(FactsState::Stale);
    tokio::time::sleep(Duration::from_secs(1)).await;
    settle().await;
    assert!(fake.accepted().is_empty(), "an alert went out before the facts were current");
    current.send_replace(FactsState::Current);
    settle().await;
    assert_eq!(fake.accepted(), [1]);

    // Stale and never current: one wait of FACTS_WAIT, then the alerts go
    // (the gate decides), and the next ones do not wait again.
    current.send_replace(FactsState::Stale);
    outbox.send(env(2));
    outbox.send(env(3));
    tokio::time::sleep(FACTS_WAIT - Duration::from_millis(100)).await;
    settle().await;
    assert_eq!(fake.accepted(), [1]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(fake.accepted(), [1, 2, 3]);

    // A wait that ran out while Redis was down is not spent: the alert
    // delivered when Redis is back waits for the facts again.
    current.send_replace(FactsState::Away);
    fake.down(true);
    outbox.send(env(4));
    tokio::time::sleep(AWAY_WAIT + Duration::from_secs(1)).await;
    settle().await;
    fake.down(false);
    one_retry().await;
    assert_eq!(fake.accepted(), [1, 2, 3], "delivered before the facts were current");
    current.send_replace(FactsState::Current);
    settle().await;
    assert_eq!(fake.accepted(), [1, 2, 3, 4]);
    stop(outbox, task, cancel).await;
}

#[tokio::test(start_paused = true)]
async fn a_flapping_registry_holds_an_alert_no_longer_than_the_away_wait() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    let (outbox, task, _dir, current) = facts_outbox(fake.clone(), cancel.clone());
    outbox.send(env(1));
    // Redis comes and goes every second and the facts are never current.
    for second in 0..AWAY_WAIT.as_secs() + 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        current.send_replace(if second % 2 == 0 { FactsState::Stale } else { FactsState::Away });
    }
    settle().await;
    assert_eq!(fake.accepted(), [1], "held past the away wait by a state that kept changing");
    stop(outbox, task, cancel).await;
}

#[tokio::test(start_paused = true)]
async fn a_full_outbox_drops_the_oldest_and_counts() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    fake.down(true);
    let dir = TempDir::new();
    let record = super::log::HEADER + env(10).to_json().len() as u64;
    // Room for 32 events, in segments of 2.
    let (outbox, task) = Outbox::open(fake.clone(), settings(&dir, 32 * record), cancel.clone()).unwrap();
    for i in 0..100 {
        outbox.send(env(i));
        settle().await;
    }
    let (queued, dropped) = (outbox.queued(), outbox.dropped());
    assert_eq!(queued + dropped, 100);
    assert!((30..=32).contains(&queued), "{queued} queued");
    fake.down(false);
    one_retry().await;
    assert_eq!(fake.accepted(), (dropped..100).collect::<Vec<_>>());
    stop(outbox, task, cancel).await;
}

#[tokio::test(start_paused = true)]
async fn a_publisher_waits_for_its_receipt_in_queue_order() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    fake.down(true);
    let (outbox, task, _dir) = outbox(fake.clone(), cancel.clone());
    outbox.send(env(1));
    let waiting = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.publish(&env(2)).await })
    };
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!waiting.is_finished());
    fake.down(false);
    let id = waiting.await.unwrap().unwrap();
    assert_eq!((id.as_str(), fake.accepted()), ("2-0", vec![1, 2]));
    stop(outbox, task, cancel).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_an_outage_does_not_hang_and_keeps_the_events_for_the_next_start() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    fake.down(true);
    let dir = TempDir::new();
    let (outbox, task) = Outbox::open(fake.clone(), settings(&dir, 1 << 20), cancel.clone()).unwrap();
    outbox.send(env(1));
    outbox.send(env(2));
    let waiting = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.publish(&env(3)).await })
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    cancel.cancel();
    assert!(waiting.await.unwrap().is_err());
    stop(outbox, task, cancel).await;
    assert!(fake.accepted().is_empty());

    // The next start delivers them first, in order, then what comes new.
    fake.down(false);
    let cancel = CancellationToken::new();
    let (outbox, task) = Outbox::open(fake.clone(), settings(&dir, 1 << 20), cancel.clone()).unwrap();
    outbox.send(env(4));
    settle().await;
    assert_eq!(fake.accepted(), [1, 2, 3, 4]);
    stop(outbox, task, cancel).await;
}

#[tokio::test(start_paused = true)]
async fn a_record_refused_for_good_is_dead_lettered_and_the_next_ones_go_on() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    fake.refuse.lock().unwrap().insert(2, "WRONGTYPE");
    fake.refuse.lock().unwrap().insert(4, "NOPERM");
    fake.refuse.lock().unwrap().insert(5, "NOPERM");
    let (outbox, task, dir) = outbox(fake.clone(), cancel.clone());
    outbox.send(env(1));
    let refused = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.publish(&env(2)).await })
    };
    settle().await;
    outbox.send(env(3));
    let e = tokio::time::timeout(Duration::from_secs(10), refused).await.expect("receipt hung").unwrap().unwrap_err();
    assert!(matches!(&e, ProtocolError::Undelivered(why) if why.contains("WRONGTYPE")), "{e}");
    one_retry().await;
    assert_eq!(fake.accepted(), [1, 3]);
    assert_eq!((outbox.dead_lettered(), outbox.queued()), (1, 0));
    let letters = std::fs::read_to_string(dir.0.join("outbox").join(super::dead_letters::FILE)).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.lines().next().unwrap()).unwrap();
    assert_eq!(letter["envelope"]["data"]["n"], 2);
    assert_eq!((letter["kind"].as_str(), letter["attempts"].as_u64()), (Some("health_alert"), Some(3)));
    assert!(letter["reason"].as_str().unwrap().contains("WRONGTYPE"), "{letter}");
    // Reported once as a system alert, naming the file and the reason.
    let reports = |fake: &Fake| fake.others.lock().unwrap().iter().map(|e| e.data.clone()).collect::<Vec<_>>();
    let first = reports(&fake);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["kind"], SystemAlert::OUTBOX_DEAD_LETTERED);
    let message = first[0]["message"].as_str().unwrap();
    assert!(message.contains("WRONGTYPE") && message.contains("dead-letters.jsonl"), "{message}");
    // Two more within the minute: one report at most a minute, which
    // then counts them.
    outbox.send(env(4));
    outbox.send(env(5));
    for _ in 0..4 {
        one_retry().await;
    }
    assert_eq!((outbox.dead_lettered(), reports(&fake).len()), (3, 1));
    tokio::time::sleep(Duration::from_secs(61)).await;
    outbox.send(env(6));
    fake.refuse.lock().unwrap().insert(7, "NOPERM");
    outbox.send(env(7));
    for _ in 0..4 {
        one_retry().await;
    }
    let all = reports(&fake);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[1]["message"].as_str().unwrap().contains("; 2 more dead-lettered in the minute before"), "{all:?}");
    stop(outbox, task, cancel).await;
}

#[tokio::test(start_paused = true)]
async fn out_of_memory_is_waited_out_for_the_patience_then_dead_lettered() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    fake.refuse.lock().unwrap().insert(1, "OOM");
    let dir = TempDir::new();
    let settings = Settings { refusal_patience: Duration::from_secs(60), ..settings(&dir, 1 << 20) };
    let (outbox, task) = Outbox::open(fake.clone(), settings, cancel.clone()).unwrap();
    outbox.send(env(1));
    outbox.send(env(2));
    // Redis frees memory within the patience: delivered, in order.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(fake.accepted().is_empty());
    fake.refuse.lock().unwrap().clear();
    one_retry().await;
    assert_eq!((fake.accepted(), outbox.dead_lettered()), (vec![1, 2], 0));

    // It does not: after the patience, the head is dead-lettered.
    fake.refuse.lock().unwrap().insert(3, "OOM");
    outbox.send(env(3));
    outbox.send(env(4));
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!((fake.accepted().len(), outbox.dead_lettered()), (2, 0));
    tokio::time::sleep(Duration::from_secs(15)).await;
    settle().await;
    assert_eq!((fake.accepted(), outbox.dead_lettered()), (vec![1, 2, 4], 1));
    stop(outbox, task, cancel).await;
}

/// Events waiting in memory, and on disk.
fn memory_and_disk(outbox: &Outbox) -> (usize, u64) {
    let s = outbox.shared.lock();
    (s.spill.len(), s.log.pending())
}

#[tokio::test(start_paused = true)]
async fn events_the_disk_refuses_wait_in_memory_behind_those_on_disk() {
    let cancel = CancellationToken::new();
    let fake = Fake::default();
    fake.down(true);
    let (outbox, task, _dir) = outbox(fake.clone(), cancel.clone());
    outbox.send(env(1));
    outbox.shared.lock().log.break_disk(true).unwrap();
    outbox.send(env(2));
    outbox.send(env(3));
    assert_eq!(outbox.shared.lock().spill.len(), 2, "the disk refused them: in memory");
    // Repaired, but what is in memory goes first: the next one follows it there.
    outbox.shared.lock().log.break_disk(false).unwrap();
    outbox.send(env(4));
    assert_eq!(memory_and_disk(&outbox), (3, 1));
    fake.down(false);
    one_retry().await;
    assert_eq!(fake.accepted(), [1, 2, 3, 4]);
    // Memory empty: to disk again.
    outbox.send(env(5));
    assert_eq!(memory_and_disk(&outbox), (0, 1));
    settle().await;
    assert_eq!(fake.accepted(), [1, 2, 3, 4, 5]);
    stop(outbox, task, cancel).await;
}
