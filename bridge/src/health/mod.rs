//! Liveness: what this replica knows of its own progress, and who hears of
//! it. A bridge that is up but whose reads hang, whose functions cannot
//! keep up, or whose relay listens on a half-open connection delivers
//! nothing while looking fine; each of those is measured here.
//!
//! - [`Beat`]: the time of a task's last progress (a route's last read, the
//!   relay's last keepalive heard), shared without a lock.
//! - `heartbeat`: every interval, each route's lag from Redis, the
//!   heartbeat key, and the `system_alert`s (lag, stale dead letters).
//! - `http`: `/healthz` and `/metrics` for a supervisor and Prometheus.

mod heartbeat;
mod http;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hemostat_protocol::liveness::{BridgeHeartbeat, RouteProgress};

/// The collector keeps the same; one implementation, in the protocol crate.
pub(crate) use hemostat_protocol::liveness::Beat;

pub(crate) use heartbeat::run as heartbeat;
pub(crate) use http::Server;

use crate::{binding::Binding, stats::Stats};

/// This replica's liveness, shared by the routes, the relay, the heartbeat
/// and the HTTP server.
pub(crate) struct Health {
    consumer: String,
    routes: Vec<(Binding, Arc<Beat>)>,
    /// `None` when the replica does not relay.
    relay: Option<Arc<Beat>>,
    stats: Arc<Stats>,
    /// A route that has not read for this long is stalled.
    stall_after: Duration,
    /// A relay that has not heard its keepalive for this long is deaf.
    deaf_after: Duration,
    /// The latest heartbeat, with the lags Redis gave (for `/metrics`).
    last: Mutex<Option<BridgeHeartbeat>>,
}

impl Health {
    pub(crate) fn new(
        consumer: String,
        routes: Vec<(Binding, Arc<Beat>)>,
        relay: Option<Arc<Beat>>,
        stats: Arc<Stats>,
        block: Duration,
        keepalive: Duration,
    ) -> Self {
        Health {
            consumer,
            routes,
            relay,
            stats,
            stall_after: (block * 3).max(Duration::from_secs(10)),
            deaf_after: keepalive * 3,
            last: Mutex::default(),
        }
    }

    /// What is wrong now; empty when healthy.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (binding, beat) in &self.routes {
            let ago = beat.ago();
            if ago > self.stall_after {
                problems.push(format!("{} has not read for {}s", binding.stream, ago.as_secs()));
            }
        }
        if let Some(relay) = &self.relay {
            let ago = relay.ago();
            if ago > self.deaf_after {
                problems.push(format!("the relay has not heard its keepalive for {}s", ago.as_secs()));
            }
        }
        problems
    }

    /// Each route's progress, with what Redis said of its lag (`lags`, in
    /// the routes' order; `None`: unknown).
    fn heartbeat(&self, lags: Vec<(Option<u64>, u64, Option<u64>)>, at_ms: u64) -> BridgeHeartbeat {
        let routes = self
            .routes
            .iter()
            .zip(lags.into_iter().chain(std::iter::repeat((None, 0, None))))
            .map(|((binding, beat), (lag, pending, oldest))| RouteProgress {
                stream: binding.stream.clone(),
                group: binding.group.clone(),
                function: binding.function.clone(),
                lag,
                pending,
                oldest_waiting_seconds: oldest,
                read_seconds_ago: beat.ago().as_secs(),
            })
            .collect();
        BridgeHeartbeat {
            consumer: self.consumer.clone(),
            at_ms,
            healthy: self.problems().is_empty(),
            routes,
            relay_heard_seconds_ago: self.relay.as_ref().map(|b| b.ago().as_secs()),
            totals: self.stats.heartbeat_totals(),
        }
    }

    fn remember(&self, heartbeat: BridgeHeartbeat) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(heartbeat);
    }

    fn latest(&self) -> Option<BridgeHeartbeat> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
