//! Getting events to Redis despite Redis outages.
//!
//! Every event the collector emits goes through one bounded in-memory queue
//! drained by one task, strictly in order: the head is retried (capped
//! exponential backoff, indefinitely) until Redis takes it, and only then is
//! the next one sent. So an outage delays events but neither reorders nor
//! loses them, unless it lasts long enough to fill the queue; then the
//! OLDEST event is dropped (and counted), because the newest news matters
//! most to a remediation loop. Queueing never blocks: the Docker event loop
//! is never stalled behind Redis.
//!
//! Callers that must know when their event is delivered (the command
//! consumer acknowledges a command only after its outcome is out) use the
//! [`Publisher`] implementation of [`Outbox`]: it queues like everyone else
//! and waits for the delivery receipt.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use hemostat_protocol::{Envelope, ProtocolError, Publisher};
use tokio::{
    sync::{Notify, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use hemostat_protocol::backoff::Backoff;

use crate::error::CollectorError;

/// The default `--outbox-capacity`: a few hours of a busy host's alerts.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Publishes, retrying with capped backoff until it succeeds. Stops retrying
/// once shutdown is requested (after the attempt in progress), so shutdown
/// is not held up by a dead Redis.
pub async fn publish_with_retry<P: Publisher>(
    publisher: &P,
    env: &Envelope,
    cancel: &CancellationToken,
) -> Result<String, CollectorError> {
    let mut backoff = Backoff::redis();
    let mut attempt = 1u64;
    loop {
        match publisher.publish(env).await {
            Ok(id) => return Ok(id),
            Err(e) if !cancel.is_cancelled() => {
                tracing::warn!(kind = %env.kind, attempt, error = %e, "publish failed; retrying");
                if !backoff.wait_or(cancel.cancelled()).await {
                    return Err(e.into());
                }
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a waiting publisher learns: the stream id, or why not.
type Receipt = oneshot::Sender<Result<String, String>>;

struct Item {
    /// Identifies the head across the unlocked publish: if it was dropped
    /// meanwhile (queue full), the task must not pop its successor.
    seq: u64,
    env: Envelope,
    receipt: Option<Receipt>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Item>,
    next_seq: u64,
    /// Events dropped because the queue was full, since start.
    dropped: u64,
    /// Every `Outbox` handle is gone: drain and stop.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the task: something was queued, or the last handle went away.
    wake: Notify,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a usable queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Dropped with the last `Outbox` clone; tells the task no more will come.
struct Handles(Arc<Shared>);

impl Drop for Handles {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

/// Handle to the queue. Cheap to clone; the task ends when shutdown was
/// requested, every clone is dropped, and the queue is drained (one last
/// attempt per event).
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
    _handles: Arc<Handles>,
}

impl Outbox {
    /// `capacity` is clamped to at least 1.
    pub fn spawn<P: Publisher + 'static>(
        publisher: P,
        capacity: usize,
        cancel: CancellationToken,
    ) -> (Outbox, JoinHandle<()>) {
        let shared =
            Arc::new(Shared { state: Mutex::new(State::default()), wake: Notify::new(), capacity: capacity.max(1) });
        let task = tokio::spawn(drain(publisher, shared.clone(), cancel));
        let outbox = Outbox { _handles: Arc::new(Handles(shared.clone())), shared };
        (outbox, task)
    }

    /// Queues `env` for delivery; never blocks.
    pub fn send(&self, env: Envelope) {
        self.push(env, None);
    }

    /// Events waiting for Redis (including the one being sent).
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Events dropped because the queue was full, since start.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    fn push(&self, env: Envelope, receipt: Option<Receipt>) {
        let mut state = self.shared.lock();
        if state.queue.len() >= self.shared.capacity
            && let Some(old) = state.queue.pop_front()
        {
            state.dropped += 1;
            let dropped = state.dropped;
            if let Some(r) = old.receipt {
                let _ = r.send(Err("dropped: outbox full".into()));
            }
            // Powers of two: the count stays visible without one line per
            // event during a long outage.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped_total = dropped,
                    capacity = self.shared.capacity,
                    kind = %old.env.kind,
                    "outbox full while Redis is unreachable: dropped the oldest event"
                );
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.queue.push_back(Item { seq, env, receipt });
        drop(state);
        self.shared.wake.notify_one();
    }
}

/// Queues like [`Outbox::send`] and waits until Redis has the event: the
/// queue's order and bound apply to callers that need a receipt too.
impl Publisher for Outbox {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        let (tx, rx) = oneshot::channel();
        self.push(env.clone(), Some(tx));
        let why = match rx.await {
            Ok(Ok(id)) => return Ok(id),
            Ok(Err(why)) => why,
            Err(_) => "outbox stopped".to_owned(),
        };
        Err(ProtocolError::Redis(redis::RedisError::from((redis::ErrorKind::Io, "event not delivered", why))))
    }
}

async fn drain<P: Publisher>(publisher: P, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut backoff = Backoff::redis();
    // Failed attempts in the current outage, for the recovery summary.
    let mut failures = 0u64;
    let mut dropped_before = 0u64;
    let mut lost_at_shutdown = 0u64;
    loop {
        let head = {
            let state = shared.lock();
            match state.queue.front() {
                Some(item) => Some((item.seq, item.env.clone())),
                // No handle left: nothing more can come.
                None if state.closed => break,
                None => None,
            }
        };
        let Some((seq, env)) = head else {
            // A permit stored by notify_one covers a push between the
            // check above and this wait.
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = cancel.cancelled(), if !cancel.is_cancelled() => {}
            }
            continue;
        };
        let result = publisher.publish(&env).await;
        let finishing = cancel.is_cancelled();
        if result.is_err() && !finishing {
            let (queued, dropped) = {
                let s = shared.lock();
                (s.queue.len(), s.dropped)
            };
            if failures == 0 {
                dropped_before = dropped;
            }
            failures += 1;
            if let Err(e) = &result {
                tracing::warn!(kind = %env.kind, queued, attempt = failures, error = %e, "publish failed; holding events until Redis is back");
            }
            // Shutdown during the wait: the loop comes back for one last try.
            backoff.wait_or(cancel.cancelled()).await;
            continue;
        }
        let receipt = {
            let mut s = shared.lock();
            match s.queue.front() {
                Some(item) if item.seq == seq => s.queue.pop_front().and_then(|i| i.receipt),
                // Dropped (queue full) while we were sending it.
                _ => None,
            }
        };
        match result {
            Ok(id) => {
                tracing::debug!(kind = %env.kind, stream_id = %id, "event published");
                if failures > 0 {
                    let dropped = shared.lock().dropped - dropped_before;
                    tracing::info!(
                        failed_attempts = failures,
                        dropped,
                        "Redis is back; delivering held events in order"
                    );
                    failures = 0;
                }
                backoff.reset();
                if let Some(r) = receipt {
                    let _ = r.send(Ok(id));
                }
            }
            Err(e) => {
                lost_at_shutdown += 1;
                tracing::error!(kind = %env.kind, error = %e, "event lost: Redis unreachable at shutdown");
                if let Some(r) = receipt {
                    let _ = r.send(Err(e.to_string()));
                }
            }
        }
    }
    if lost_at_shutdown > 0 {
        tracing::error!(lost = lost_at_shutdown, "outbox stopped with undelivered events");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    };

    use hemostat_protocol::{EventKind, ProtocolError, envelope::agent};

    use super::*;
    use std::time::Duration;

    fn env(n: u32) -> Envelope {
        Envelope::new(agent::MONITOR, EventKind::HealthAlert, &serde_json::json!({ "n": n })).unwrap()
    }

    fn n(env: &Envelope) -> u64 {
        env.data["n"].as_u64().unwrap()
    }

    /// Redis that is down while `down` is set; records what it accepted.
    #[derive(Clone, Default)]
    struct Fake {
        down: Arc<AtomicBool>,
        attempts: Arc<AtomicU32>,
        accepted: Arc<Mutex<Vec<u64>>>,
    }

    impl Publisher for Fake {
        async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(ProtocolError::RedisUrl("down".into()));
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
    }

    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_redis_is_back_and_stops_at_shutdown() {
        let cancel = CancellationToken::new();
        let fake = Fake::default();
        fake.down.store(true, Ordering::SeqCst);
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

        fake.down.store(true, Ordering::SeqCst);
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
    }

    #[tokio::test(start_paused = true)]
    async fn holds_events_during_an_outage_and_delivers_them_in_order() {
        let cancel = CancellationToken::new();
        let fake = Fake::default();
        fake.down.store(true, Ordering::SeqCst);
        let (outbox, task) = Outbox::spawn(fake.clone(), 100, cancel.clone());
        for i in 0..50 {
            outbox.send(env(i));
            // Events keep arriving during the outage, between retries.
            tokio::time::sleep(Duration::from_secs(7)).await;
        }
        assert!(fake.accepted().is_empty());
        assert_eq!(outbox.queued(), 50);
        fake.down.store(false, Ordering::SeqCst);
        // The longest wait between attempts (Backoff::redis' cap).
        tokio::time::sleep(Duration::from_secs(2)).await;
        settle().await;
        assert_eq!(fake.accepted(), (0..50).collect::<Vec<_>>());
        assert_eq!((outbox.queued(), outbox.dropped()), (0, 0));
        cancel.cancel();
        drop(outbox);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_the_oldest_and_counts() {
        let cancel = CancellationToken::new();
        let fake = Fake::default();
        fake.down.store(true, Ordering::SeqCst);
        let (outbox, task) = Outbox::spawn(fake.clone(), 3, cancel.clone());
        for i in 0..10 {
            outbox.send(env(i));
            settle().await;
        }
        assert_eq!((outbox.queued(), outbox.dropped()), (3, 7));
        fake.down.store(false, Ordering::SeqCst);
        // The longest wait between attempts (Backoff::redis' cap).
        tokio::time::sleep(Duration::from_secs(2)).await;
        settle().await;
        assert_eq!(fake.accepted(), [7, 8, 9]);
        cancel.cancel();
        drop(outbox);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_publisher_waits_for_its_receipt_in_queue_order() {
        let cancel = CancellationToken::new();
        let fake = Fake::default();
        fake.down.store(true, Ordering::SeqCst);
        let (outbox, task) = Outbox::spawn(fake.clone(), 10, cancel.clone());
        outbox.send(env(1));
        let waiting = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.publish(&env(2)).await })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished());
        fake.down.store(false, Ordering::SeqCst);
        let id = waiting.await.unwrap().unwrap();
        assert_eq!((id.as_str(), fake.accepted()), ("2-0", vec![1, 2]));
        cancel.cancel();
        drop(outbox);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_during_an_outage_does_not_hang() {
        let cancel = CancellationToken::new();
        let fake = Fake::default();
        fake.down.store(true, Ordering::SeqCst);
        let (outbox, task) = Outbox::spawn(fake.clone(), 10, cancel.clone());
        outbox.send(env(1));
        outbox.send(env(2));
        let waiting = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.publish(&env(3)).await })
        };
        tokio::time::sleep(Duration::from_secs(30)).await;
        cancel.cancel();
        assert!(waiting.await.unwrap().is_err());
        drop(outbox);
        tokio::time::timeout(Duration::from_secs(60), task).await.expect("outbox task hung").unwrap();
        assert!(fake.accepted().is_empty());
    }
}
