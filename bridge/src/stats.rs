//! What happened to records, as typed events: each one is logged and
//! counted in the same place, so the log and the counters never disagree.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hemostat_protocol::liveness::BridgeTotals;

/// Counters of one bridge process, over every route.
#[derive(Debug, Default)]
pub struct Stats {
    invocations: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    taken_over: AtomicU64,
    passed_over: AtomicU64,
    stale: AtomicU64,
    relayed: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub invocations: u64,
    pub acked: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub taken_over: u64,
    pub passed_over: u64,
}

/// One thing that happened to records of a stream.
pub enum Event<'a> {
    /// A batch was handled and `records` of it acked.
    Acked { stream: &'a str, function: &'a str, records: usize, failed: usize, took_ms: u64 },
    /// An invocation failed as a whole; its records stay pending for a retry.
    InvocationFailed { stream: &'a str, function: &'a str, records: usize, error: &'a str },
    /// A record was given up on; `stale`: for being too old to act on.
    DeadLettered { stream: &'a str, id: &'a str, reason: &'a str, attempts: u64, stale: bool },
    /// A record pending at another (presumed dead) consumer was taken over.
    TakenOver { stream: &'a str, id: &'a str, from: &'a str, idle_ms: u64 },
    /// Dead letters replayed for another group of the stream, acked unseen.
    PassedOver { stream: &'a str, records: usize },
    /// A message published only on its seed channel was appended to its stream.
    Relayed { channel: &'a str },
}

impl Stats {
    pub fn record(&self, event: Event<'_>) {
        match event {
            Event::Acked { stream, function, records, failed, took_ms } => {
                self.invocations.fetch_add(1, Relaxed);
                self.acked.fetch_add(records as u64, Relaxed);
                self.failed.fetch_add(failed as u64, Relaxed);
                tracing::debug!(%stream, %function, acked = records, failed, took_ms, "batch delivered");
            }
            Event::InvocationFailed { stream, function, records, error } => {
                self.invocations.fetch_add(1, Relaxed);
                self.failed.fetch_add(records as u64, Relaxed);
                tracing::warn!(%stream, %function, records, %error, "invocation failed; records stay pending for retry");
            }
            Event::DeadLettered { stream, id, reason, attempts, stale } => {
                self.dead_lettered.fetch_add(1, Relaxed);
                if stale {
                    self.stale.fetch_add(1, Relaxed);
                }
                tracing::warn!(%stream, id, %reason, attempts, "dead-lettered record");
            }
            Event::TakenOver { stream, id, from, idle_ms } => {
                self.taken_over.fetch_add(1, Relaxed);
                tracing::info!(%stream, id, %from, idle_ms, "took over a record from an idle consumer");
            }
            Event::PassedOver { stream, records } => {
                self.passed_over.fetch_add(records as u64, Relaxed);
                tracing::debug!(%stream, records, "passed over replays for another group");
            }
            Event::Relayed { channel } => {
                self.relayed.fetch_add(1, Relaxed);
                tracing::info!(%channel, "relayed a message published only on its channel");
            }
        }
    }

    /// The counters as a heartbeat carries them.
    pub fn heartbeat_totals(&self) -> BridgeTotals {
        BridgeTotals {
            invocations: self.invocations.load(Relaxed),
            acked: self.acked.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            stale: self.stale.load(Relaxed),
            taken_over: self.taken_over.load(Relaxed),
            relayed: self.relayed.load(Relaxed),
        }
    }

    pub fn totals(&self) -> Totals {
        Totals {
            invocations: self.invocations.load(Relaxed),
            acked: self.acked.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            taken_over: self.taken_over.load(Relaxed),
            passed_over: self.passed_over.load(Relaxed),
        }
    }
}
