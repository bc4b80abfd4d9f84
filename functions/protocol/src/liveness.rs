//! What a bridge replica reports of its own progress: its heartbeat
//! ([`crate::keys::bridge_heartbeat`]), refreshed every interval, read by
//! `hemostat status`, the dashboard and anyone debugging a silent fleet.
//!
//! "Up" is not enough: a bridge whose reads hang, or whose functions cannot
//! keep up, is up and useless. So the heartbeat carries, per route, how
//! many records wait and for how long, and when the route last read.

use serde::{Deserialize, Serialize};

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
