//! Judging suspects off the event loop. A suspect's judging (an inspect,
//! then its alert's evidence and the hand-over to the outbox) takes a
//! fraction of a second, more on a loaded engine; judged one after another
//! in the event loop, a storm of exits on one host (200 containers at
//! once) queued a minute or two before its last alert left, and the
//! engine drops events for a subscriber that lags. So the loop keeps the
//! cheap, ordered part (dedup, registry, stats, the detector's memory) and
//! hands each suspect here, where:
//!
//! - at most `at_once` suspects are judged at a time (`HEMOSTAT_ALERT_CONCURRENCY`),
//!   so a storm does not bury the engine under inspects and log reads;
//! - one container's suspects are judged one after another, in the order
//!   of their events: its alerts leave in order, and its unhealthy waits
//!   see its flags in order;
//! - every judging not finished is pending: the cursor stays short of its
//!   event and forgets its container (see [`super::cursor`]), so a crash
//!   of the collector then replays it, and at shutdown the watcher lets
//!   them finish for a few seconds;
//! - at most [`QUEUED_MAX`] are unfinished: past that the event loop waits
//!   for one to finish (memory stays bounded whatever the flood).

use std::sync::Arc;

use tokio::{sync::Semaphore, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use super::judge::{Basis, Judge, Times};
use crate::{config::ALERT_CONCURRENCY, detect::Suspect, inflight::now_nanos};

/// Judgings started and not finished, at most.
const QUEUED_MAX: usize = 4096;

/// One judging started and not known to be finished.
struct Entry {
    id: String,
    time_nano: i64,
    task: JoinHandle<()>,
    /// Cancelled when the judging ends (finished, panicked or aborted): the
    /// container's next judging waits for it.
    done: CancellationToken,
}

pub(super) struct Judging {
    judge: Judge,
    slots: Arc<Semaphore>,
    room: Arc<Semaphore>,
    /// In the order they were started.
    entries: Vec<Entry>,
}

impl Judging {
    pub(super) fn new(judge: Judge) -> Self {
        Judging {
            judge,
            slots: Arc::new(Semaphore::new(usize::from(ALERT_CONCURRENCY))),
            room: Arc::new(Semaphore::new(QUEUED_MAX)),
            entries: Vec::new(),
        }
    }

    /// Judges `at_once` suspects at a time (at least one).
    pub(super) fn set_at_once(&mut self, at_once: usize) {
        self.slots = Arc::new(Semaphore::new(at_once.max(1)));
    }

    /// Starts judging `suspect`, after the container's earlier suspects;
    /// waits only when [`QUEUED_MAX`] judgings are unfinished.
    /// `received_nano`: when the watcher took its event.
    pub(super) async fn start(&mut self, suspect: Suspect, basis: Basis, received_nano: i64) {
        // Never closed: the semaphores live as long as the watcher.
        let Ok(room) = self.room.clone().acquire_owned().await else { return };
        self.prune();
        let before = self.entries.iter().rev().find(|e| e.id == suspect.id).map(|e| e.done.clone());
        let done = CancellationToken::new();
        let ended = done.clone().drop_guard();
        let (judge, slots) = (self.judge.clone(), self.slots.clone());
        let (id, time_nano) = (suspect.id.clone(), suspect.time_nano);
        let task = tokio::spawn(async move {
            let (_room, _ended) = (room, ended);
            if let Some(before) = before {
                before.cancelled().await;
            }
            let Ok(_slot) = slots.acquire_owned().await else { return };
            let times = Times { received_nano, started_nano: now_nanos() };
            judge.judge(suspect, basis, times).await;
        });
        self.entries.push(Entry { id, time_nano, task, done });
    }

    /// Forgets the judgings that ended.
    fn prune(&mut self) {
        self.entries.retain(|e| !e.task.is_finished());
    }

    /// (container id, event time) of each judging not finished.
    pub(super) fn pending(&mut self) -> Vec<(&str, i64)> {
        self.prune();
        self.entries.iter().map(|e| (e.id.as_str(), e.time_nano)).collect()
    }

    pub(super) fn is_idle(&mut self) -> bool {
        self.prune();
        self.entries.is_empty()
    }

    /// Waits, until `deadline` at most, for the judgings under way to end.
    pub(super) async fn settle(&mut self, deadline: Instant) {
        for entry in &mut self.entries {
            let _ = tokio::time::timeout_at(deadline, &mut entry.task).await;
        }
        self.prune();
    }
}
