//! Exponential backoff with jitter, for every retry loop of every component.
//!
//! Jitter matters for a fleet: after a Redis outage or failover, a thousand
//! collectors and every bridge replica retry at once; without it they keep
//! retrying in lockstep. Each delay is half fixed, half random ("equal
//! jitter"), so the average stays near the nominal delay and none is
//! shorter than half of it.

use std::{
    future::Future,
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Doubling from `initial` up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, next: initial }
    }

    /// 1 s doubling to 30 s: slow enough not to hammer a restarting daemon
    /// (Docker), fast enough that a short outage costs little.
    pub fn standard() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// 100 ms doubling to 2 s, for Redis: a cluster failover takes a node
    /// timeout plus an election (seconds), and remediation waits for it, so
    /// the wait after it is over must be short.
    pub fn redis() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
    }

    /// The next delay, jittered; the nominal delay doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        nominal / 2 + nominal.mul_f64(random_fraction() / 2.0)
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Waits the next delay; `false` when `stop` completed first.
    pub async fn wait_or(&mut self, stop: impl Future) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = stop => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

/// A number in [0, 1), different on every call and in every process: the
/// std hasher's random keys over a counter (no RNG dependency for jitter).
fn random_fraction() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let hash = std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::standard();
        for nominal in [1, 2, 4, 8, 16, 30, 30] {
            let d = b.next_delay();
            let n = Duration::from_secs(nominal);
            assert!(d >= n / 2 && d <= n, "{d:?} for nominal {n:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn replicas_do_not_retry_in_lockstep() {
        let delays: Vec<Duration> = (0..20).map(|_| Backoff::redis().next_delay()).collect();
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 15, "{delays:?}");
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(50) && *d <= Duration::from_millis(100)));
    }

    #[tokio::test]
    async fn stops_early_when_told() {
        assert!(!Backoff::standard().wait_or(std::future::ready(())).await);
        let mut b = Backoff::new(Duration::from_millis(2), Duration::from_millis(2));
        assert!(b.wait_or(std::future::pending::<()>()).await);
    }
}
