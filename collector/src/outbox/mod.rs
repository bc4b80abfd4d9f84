//! Getting events to Redis despite Redis outages, collector restarts and
//! records Redis refuses.
//!
//! Every event the collector emits goes through one outbox: an append-only
//! log on disk in the state folder (`<HEMOSTAT_COLLECTOR_STATE_DIR>/outbox/`, see
//! [`log`]), drained by one task ([`drain`]) strictly in order: the head is retried
//! (capped exponential backoff) until Redis takes it, and only then is the
//! next one sent. So an outage delays events but neither reorders nor loses
//! them, and neither does a collector killed meanwhile: on start, what was
//! not delivered is sent first, in order. The outbox is bounded in bytes on
//! disk (`HEMOSTAT_OUTBOX_MAX_BYTES`); when full, the OLDEST events are
//! dropped (and counted), because the newest news matters most to a
//! remediation loop. Memory holds no record, only the log's positions.
//! Queueing never blocks on Redis: the Docker event loop is never stalled
//! behind it (an append is one `write`; `fsync` happens apart, see
//! [`SYNC_INTERVAL`]).
//!
//! A record Redis refuses for good (see [`refusal`]) is written to the
//! dead-letter file beside the log ([`dead_letters`]) with Redis' reason,
//! counted, and the next one goes: a `WRONGTYPE` key or a missing ACL
//! permission no longer holds every later event and outcome back.
//!
//! When the disk cannot be written (full, read-only), events are held in
//! memory instead (at most [`SPILL_MAX_BYTES`], oldest dropped), after
//! those on disk, until it can again; those are lost if the collector
//! stops before Redis takes them.
//!
//! Callers that must know when their event is delivered (the command
//! consumer acknowledges a command only after its outcome is out) use the
//! [`Publisher`] implementation of [`Outbox`]: it queues like everyone else
//! and waits for the delivery receipt, which may also say the event was
//! dead-lettered or dropped ([`ProtocolError::Undelivered`]).

pub(crate) mod dead_letters;
mod drain;
mod log;
mod refusal;

use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use hemostat_protocol::{Envelope, EventKind, ProtocolError, Publisher};
use tokio::{
    sync::{Notify, oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use hemostat_protocol::backoff::Backoff;

use crate::{
    error::CollectorError,
    liveness::{Body, Progress},
};
use drain::run;
use log::{AppendError, Dropped, Log};
pub use refusal::{Refusal, classify};

/// Appends are synced to disk together, at most this long after the
/// first: one `fsync` per burst, not per event, off the callers' path. A
/// power loss can lose this much of the newest events (a killed process
/// loses none: they are in the page cache).
pub const SYNC_INTERVAL: Duration = Duration::from_millis(50);
/// Attempts before a final refusal is dead-lettered (an ACL being
/// reloaded, a key being repaired, get this moment), and the least a
/// refusal "for now" gets once the patience is over.
const REFUSED_ATTEMPTS: u64 = 3;
/// Dead letters are reported as a `system_alert` at most this often.
const DEAD_LETTER_REPORT_EVERY: Duration = Duration::from_secs(60);
/// With nothing to send, the delivery loop still turns this often, so its
/// progress tells an idle outbox from a stuck one.
pub const IDLE_TURN: Duration = Duration::from_secs(5);
/// Events held in memory while the disk cannot be written.
pub const SPILL_MAX_BYTES: usize = 4 << 20;

/// Where the outbox lives and its bounds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The outbox's own folder (`<state dir>/outbox`).
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub refusal_patience: Duration,
    /// The collector's host, named in the `system_alert` a dead letter raises.
    pub host: String,
    /// Where each turn of the delivery loop counts as progress.
    pub progress: Option<Arc<Progress>>,
    /// Whether the registry's facts in Redis are current (None: not
    /// waited for). A `health_alert` is delivered only once they are (see
    /// [`FactsState`]): the gate believes only the facts, so an alert held
    /// through a Redis outage must not reach it before the facts of a
    /// container that started meanwhile.
    pub facts_current: Option<watch::Receiver<FactsState>>,
}

/// The registry's facts in Redis, as its task last knew them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactsState {
    /// Redis holds every member's facts as Docker has them.
    Current,
    /// Redis answers, but a write of the facts failed (or none was made
    /// yet): an alert waits [`FACTS_WAIT`] for them, once per spell.
    Stale,
    /// Redis does not answer the registry's heartbeat: an alert waits for
    /// it to be back and the facts written, at most [`AWAY_WAIT`] at a time.
    Away,
}

/// How long an alert waits for the registry's facts while Redis answers,
/// once per spell of stale facts: a registry that cannot write does not
/// hold every alert up.
pub const FACTS_WAIT: Duration = Duration::from_secs(5);
/// How long an alert waits at a time while Redis is away for the registry
/// (shorter than the outbox task's expected period in the heartbeat).
pub const AWAY_WAIT: Duration = Duration::from_secs(20);

/// Publishes, retrying with capped backoff until it succeeds, the error is
/// final ([`Refusal::Final`]: the outbox dead-lettered or dropped the
/// event), or shutdown is requested (after the attempt in progress), so
/// shutdown is not held up by a dead Redis.
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
            Err(e) if !cancel.is_cancelled() && classify(&e) != Refusal::Final => {
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
type Receipt = oneshot::Sender<Result<String, ProtocolError>>;

/// An event held in memory while the disk cannot be written.
struct Spilled {
    id: u64,
    payload: Vec<u8>,
    receipt: Option<Receipt>,
}

/// The record being sent, identified across the unlocked publish: if it
/// was dropped meanwhile (outbox full), its successor must not be taken
/// for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    Log(u64),
    Spill(u64),
}

struct State {
    log: Log,
    /// By sequence number: the receipts of records in the log.
    receipts: BTreeMap<u64, Receipt>,
    spill: VecDeque<Spilled>,
    spill_bytes: usize,
    next_spill: u64,
    /// Events dropped because the outbox was full, since start.
    dropped: u64,
    /// Events Redis refused for good, since start.
    dead_lettered: u64,
    /// When a dead letter was last reported as a `system_alert`, and how
    /// many were not since (one report a minute at most).
    reported_at: Option<Instant>,
    unreported: u64,
    /// Appended since the last sync.
    dirty: bool,
    /// The disk refused the last append: events go to memory.
    disk_failing: bool,
    /// Every `Outbox` handle is gone: drain and stop.
    closed: bool,
    /// The task has stopped: receipts are answered at once.
    stopped: bool,
}

impl State {
    /// Whether a dead letter of `kind` is reported now (`Some`: with how
    /// many went unreported since the last report): at most one a minute,
    /// and never about a `system_alert` (the report of a report Redis
    /// refuses would refuse again, forever).
    fn report_dead_letter(&mut self, kind: &str) -> Option<u64> {
        if kind == EventKind::SystemAlert.as_str() {
            return None;
        }
        if self.reported_at.is_some_and(|t| t.elapsed() < DEAD_LETTER_REPORT_EVERY) {
            self.unreported += 1;
            return None;
        }
        self.reported_at = Some(Instant::now());
        Some(std::mem::take(&mut self.unreported))
    }

    /// Drops the records of `d` (the log made room) and answers their receipts.
    fn dropped(&mut self, d: Dropped, max_bytes: u64) {
        let before = self.dropped;
        self.dropped += d.count();
        let seqs: Vec<u64> = self.receipts.range(d.first..=d.last).map(|(s, _)| *s).collect();
        for seq in seqs {
            if let Some(r) = self.receipts.remove(&seq) {
                let _ = r.send(Err(ProtocolError::Undelivered("dropped: outbox full".into())));
            }
        }
        // Powers of two: the count stays visible without one line per
        // event during a long outage.
        if (before + 1..=self.dropped).any(u64::is_power_of_two) {
            tracing::warn!(
                dropped_total = self.dropped,
                max_bytes,
                "outbox full while Redis is unreachable: dropped the oldest events"
            );
        }
    }

    /// The record to send next: the log's head, then what memory holds.
    fn head(&mut self) -> std::io::Result<Option<(Head, Vec<u8>)>> {
        if let Some(r) = self.log.peek()? {
            return Ok(Some((Head::Log(r.seq), r.payload)));
        }
        Ok(self.spill.front().map(|s| (Head::Spill(s.id), s.payload.clone())))
    }

    /// `head` is done with (delivered, or given up): the next one goes.
    fn finish(&mut self, head: Head) -> Option<Receipt> {
        match head {
            Head::Log(seq) => {
                if let Err(e) = self.log.advance(seq) {
                    tracing::error!(error = %e, "outbox: cannot record the delivery on disk (sent again after a restart)");
                }
                self.receipts.remove(&seq)
            }
            Head::Spill(id) if self.spill.front().is_some_and(|s| s.id == id) => {
                let done = self.spill.pop_front()?;
                self.spill_bytes -= done.payload.len();
                done.receipt
            }
            Head::Spill(_) => None,
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the drain: something was queued, or the last handle went away.
    wake: Notify,
    /// Wakes the syncer: something was appended.
    sync: Notify,
    settings: Settings,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a usable outbox.
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

/// Handle to the outbox. Cheap to clone; the task ends when shutdown was
/// requested and either every clone is dropped and everything delivered,
/// or Redis failed once more (what is left stays on disk for the next
/// start).
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
    _handles: Arc<Handles>,
}

impl Outbox {
    /// Opens the log in `settings.dir` (replaying what a previous run left
    /// undelivered first) and starts the task that drains it into
    /// `publisher`. Fails when the folder cannot be used.
    pub fn open<P: Publisher + 'static>(
        publisher: P,
        settings: Settings,
        cancel: CancellationToken,
    ) -> Result<(Outbox, JoinHandle<()>), CollectorError> {
        let (log, recovery) = Log::open(&settings.dir, settings.max_bytes).map_err(|e| {
            CollectorError::Config(format!(
                "HEMOSTAT_COLLECTOR_STATE_DIR: the outbox folder {} cannot be used: {e}",
                settings.dir.display()
            ))
        })?;
        if recovery.pending > 0 || recovery.dropped > 0 {
            tracing::info!(
                pending = recovery.pending,
                dropped = recovery.dropped,
                dir = %settings.dir.display(),
                "outbox: events a previous run did not deliver are sent first, in order"
            );
        }
        if recovery.truncated_bytes > 0 || recovery.corrupt_bytes > 0 {
            tracing::warn!(
                truncated_bytes = recovery.truncated_bytes,
                corrupt_bytes = recovery.corrupt_bytes,
                corrupt_records = recovery.corrupt_records,
                "outbox: repaired on start (a write cut short, or damaged records); every valid record kept"
            );
        }
        let state = State {
            log,
            receipts: BTreeMap::new(),
            spill: VecDeque::new(),
            spill_bytes: 0,
            next_spill: 0,
            dropped: 0,
            dead_lettered: 0,
            reported_at: None,
            unreported: 0,
            dirty: false,
            disk_failing: false,
            closed: false,
            stopped: false,
        };
        let shared = Arc::new(Shared { state: Mutex::new(state), wake: Notify::new(), sync: Notify::new(), settings });
        let task = tokio::spawn(run(publisher, shared.clone(), cancel));
        Ok((Outbox { _handles: Arc::new(Handles(shared.clone())), shared }, task))
    }

    /// Another instance of the delivery loop, for the supervisor to start
    /// once it has stopped (aborted) a stalled one: one drain per log at a
    /// time is the caller's to ensure. An abort loses nothing: the head is
    /// advanced only after Redis took it (so it may be sent twice), and
    /// the lock is never held across an await. Holds no [`Outbox`] handle,
    /// so it does not keep the outbox open.
    pub fn restarter<P: Publisher + Clone + 'static>(
        &self,
        publisher: P,
        cancel: CancellationToken,
    ) -> impl FnMut(CancellationToken) -> Body + Send + 'static {
        let shared = self.shared.clone();
        move |_| Box::pin(run(publisher.clone(), shared.clone(), cancel.clone()))
    }

    /// Queues `env` for delivery; never waits for Redis.
    pub fn send(&self, env: Envelope) {
        self.push(&env, None);
    }

    /// Queues `env` like [`send`](Self::send), never waiting; the receiver
    /// learns its stream id once Redis took it (or why it never will).
    pub fn send_tracked(&self, env: Envelope) -> oneshot::Receiver<Result<String, ProtocolError>> {
        let (tx, rx) = oneshot::channel();
        self.push(&env, Some(tx));
        rx
    }

    /// Events waiting for Redis (including the one being sent).
    #[cfg(test)]
    pub fn queued(&self) -> u64 {
        let s = self.shared.lock();
        s.log.pending() + s.spill.len() as u64
    }

    /// Events dropped because the outbox was full, since start.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// Events Redis refused for good, since start.
    #[cfg(test)]
    pub fn dead_lettered(&self) -> u64 {
        self.shared.lock().dead_lettered
    }

    fn push(&self, env: &Envelope, receipt: Option<Receipt>) {
        push(&self.shared, env, receipt)
    }
}

/// Queues `env` in the log (or in memory while the disk refuses), its
/// receipt kept for its delivery; wakes the drain.
fn push(shared: &Shared, env: &Envelope, receipt: Option<Receipt>) {
    let payload = env.to_json().into_bytes();
    let max_bytes = shared.settings.max_bytes;
    let mut s = shared.lock();
    // Once events are in memory, the next ones follow them there, so
    // that the order holds; the disk is tried again when they are out.
    let mut receipt = receipt;
    if s.spill.is_empty() {
        match s.log.append(&payload) {
            Ok((seq, dropped)) => {
                for d in dropped {
                    s.dropped(d, max_bytes);
                }
                if std::mem::take(&mut s.disk_failing) {
                    tracing::info!("outbox: writing to disk again");
                }
                if s.stopped {
                    // The task is gone (so is its syncer): the event
                    // waits on disk for the next start.
                    let _ = s.log.sync_all();
                    if let Some(r) = receipt {
                        let _ = r.send(Err(stopping()));
                    }
                } else if let Some(r) = receipt {
                    s.receipts.insert(seq, r);
                }
                s.dirty = true;
                drop(s);
                shared.sync.notify_one();
                shared.wake.notify_one();
                return;
            }
            Err(AppendError::TooLarge(bytes)) => {
                tracing::error!(kind = %env.kind, bytes, max_bytes, "event larger than the outbox allows: dropped");
                s.dropped += 1;
                if let Some(r) = receipt {
                    let _ = r.send(Err(ProtocolError::Undelivered(format!(
                        "{bytes} bytes: larger than the outbox allows (HEMOSTAT_OUTBOX_MAX_BYTES / 4)"
                    ))));
                }
                return;
            }
            Err(AppendError::Io(e)) => {
                if !std::mem::replace(&mut s.disk_failing, true) {
                    tracing::error!(
                        error = %e, dir = %s.log.dir().display(),
                        "outbox: cannot write to disk; holding events in memory until it can (lost if the collector stops first)"
                    );
                }
            }
        }
    }
    if s.stopped
        && let Some(r) = receipt.take()
    {
        let _ =
            r.send(Err(ProtocolError::Undelivered("the collector is stopping and the disk refused the event".into())));
    }
    let id = s.next_spill;
    s.next_spill += 1;
    s.spill_bytes += payload.len();
    s.spill.push_back(Spilled { id, payload, receipt });
    while s.spill_bytes > SPILL_MAX_BYTES && s.spill.len() > 1 {
        let Some(old) = s.spill.pop_front() else { break };
        s.spill_bytes -= old.payload.len();
        s.dropped += 1;
        if let Some(r) = old.receipt {
            let _ = r.send(Err(ProtocolError::Undelivered("dropped: outbox full".into())));
        }
    }
    drop(s);
    shared.wake.notify_one();
}

/// What a receipt says when the outbox task stopped before delivering.
fn stopping() -> ProtocolError {
    ProtocolError::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "not delivered yet",
        "the collector is stopping; the event is on disk for its next start".to_owned(),
    )))
}

/// Queues like [`Outbox::send`] and waits until Redis has the event: the
/// outbox's order and bound apply to callers that need a receipt too.
impl Publisher for Outbox {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        let (tx, rx) = oneshot::channel();
        self.push(env, Some(tx));
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(stopping()),
        }
    }
}

#[cfg(test)]
mod bench;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
