//! What a bridge replica and a collector report of their own progress:
//! their heartbeats ([`crate::keys::bridge_heartbeat`],
//! [`crate::keys::heartbeat`]), refreshed every interval, read by `hemostat
//! status`, the dashboard, the exporter and anyone debugging a silent fleet;
//! and [`Beat`], the time of a task's last progress both keep.
//!
//! "Up" is not enough: a bridge whose reads hang, or whose functions cannot
//! keep up, is up and useless, and so is a collector whose Docker event
//! stream hangs. So the heartbeats carry, per route or per task, when it
//! last progressed.

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// What every [`Beat`] counts from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// The time of a task's last progress, shared without a lock (a task's hot
/// path stores one integer).
#[derive(Debug)]
pub struct Beat(AtomicU64);

impl Default for Beat {
    /// Starts as "now": a task is given its first interval to progress.
    fn default() -> Self {
        let beat = Beat(AtomicU64::new(0));
        beat.now();
        beat
    }
}

impl Beat {
    /// The task progressed.
    pub fn now(&self) {
        self.0.store(EPOCH.elapsed().as_millis() as u64, Relaxed);
    }

    /// Since its last progress.
    pub fn ago(&self) -> Duration {
        let at = Duration::from_millis(self.0.load(Relaxed));
        EPOCH.elapsed().saturating_sub(at)
    }
}

/// A collector's heartbeat. The fields after `timestamp` came later:
/// optional, so a reader of either age parses a writer of the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorHeartbeat {
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub interval_seconds: f64,
    /// When it was written (RFC 3339).
    pub timestamp: String,
    /// A task stayed stalled after it was restarted: the collector is up
    /// but partly blind or deaf (see `tasks`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    /// Each long-running task's progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskProgress>,
}

/// One of a collector's long-running tasks (the event watcher, the stats
/// sampler, the command consumer, the outbox) as the collector sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskProgress {
    pub task: String,
    /// Seconds since its last progress (an event handled, a sample taken,
    /// a command read (an empty read counts), an outbox turn).
    pub progress_seconds_ago: f64,
    /// Beyond this many seconds without progress, it counts as stalled.
    pub stalled_after_seconds: f64,
    /// Progress made since the collector started.
    pub count: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// Times the collector restarted it for want of progress.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u64,
    /// Stalled still after its restart, until it progresses again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One bridge replica's heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeHeartbeat {
    /// Its consumer name in every group.
    pub consumer: String,
    /// When it was written, epoch ms.
    pub at_ms: u64,
    /// Every route it serves: false when one has not read for too long or
    /// the relay's subscription stopped hearing its keepalive.
    pub healthy: bool,
    pub routes: Vec<RouteProgress>,
    /// Seconds since the relay last heard its own keepalive; `None` when
    /// it does not relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_heard_seconds_ago: Option<u64>,
    /// Since this replica started.
    pub totals: BridgeTotals,
}

/// One route (stream -> function) as the replica sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteProgress {
    pub stream: String,
    pub group: String,
    pub function: String,
    /// Records in the stream not yet read by the group (Redis's `lag`);
    /// `None` when Redis cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Records read by the group and not yet acknowledged (all replicas).
    pub pending: u64,
    /// Age of the oldest record not yet read by the group, seconds; `None`
    /// when none waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_waiting_seconds: Option<u64>,
    /// Seconds since this replica's last successful read of the route.
    pub read_seconds_ago: u64,
}

/// A replica's counters since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeTotals {
    pub invocations: u64,
    pub acked: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    /// Of which dead-lettered as stale (too old to act on).
    pub stale: u64,
    pub taken_over: u64,
    pub relayed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_heartbeats_of_either_age_parse() {
        let old =
            r#"{"host":"h1","pid":7,"version":"0.1.0","interval_seconds":10.0,"timestamp":"2026-12-06T10:00:00Z"}"#;
        let beat: CollectorHeartbeat = serde_json::from_str(old).unwrap();
        assert!(!beat.degraded && beat.tasks.is_empty());
        let new = CollectorHeartbeat {
            degraded: true,
            tasks: vec![TaskProgress {
                task: "watcher".into(),
                progress_seconds_ago: 1.5,
                stalled_after_seconds: 190.0,
                count: 3,
                stalled: false,
                restarts: 1,
                degraded: false,
            }],
            ..beat
        };
        let json = serde_json::to_value(&new).unwrap();
        // An older reader takes what it knows and ignores the rest.
        assert_eq!(json["interval_seconds"], 10.0);
        assert_eq!(json["tasks"][0]["task"], "watcher");
        assert_eq!(serde_json::from_value::<CollectorHeartbeat>(json).unwrap(), new);
    }

    #[test]
    fn a_beat_ages_until_the_next_progress() {
        let beat = Beat::default();
        std::thread::sleep(Duration::from_millis(30));
        assert!(beat.ago() >= Duration::from_millis(30));
        beat.now();
        assert!(beat.ago() < Duration::from_millis(30));
    }
}
