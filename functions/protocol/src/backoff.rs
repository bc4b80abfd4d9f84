//! Exponential backoff with jitter, for every retry loop of every component.
//!
//! Jitter matters for a fleet: after a Redis outage or failover, a thousand
//! collectors and every bridge replica retry at once; without it they keep
//! retrying in lockstep. Each delay is half fixed, half random ("equal
//! jitter"), so the average stays near the nominal delay and none is
//! shorter than half of it.
//!
//! A retry loop that sleeps holds a [`Backoff`] and asks it for the
//! [`next_delay`](Backoff::next_delay); one that counts its attempts itself
//! (the alert's deliveries, the bridge's redeliveries, counted by Redis)
//! asks for the [`delay`](Backoff::delay) after so many failures.

use std::{
    future::Future,
    hash::{BuildHasher, DefaultHasher, Hash, Hasher},
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
    /// Doubling from `initial` up to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max: max.max(initial), next: initial }
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
        jittered(nominal, random_fraction())
    }

    /// The nominal delay after `failures` failed attempts: `initial` after
    /// the first, doubled after each further one, up to the cap. No jitter.
    pub fn nominal(&self, failures: u64) -> Duration {
        // Doubling 31 times is past any cap worth having.
        let doublings = failures.saturating_sub(1).min(31) as u32;
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }

    /// The delay after `failures` failed attempts: [`Backoff::nominal`],
    /// jittered. For a loop that counts its attempts itself.
    pub fn delay(&self, failures: u64) -> Duration {
        jittered(self.nominal(failures), random_fraction())
    }

    /// [`Backoff::delay`] with the jitter drawn from `seed` (and `failures`)
    /// instead of at random: the same every time it is asked, in every
    /// process. For a delay asked again and again for one retry (is it due
    /// yet?), where a fresh draw each time would make the shortest delay the
    /// usual one; different seeds (records) still spread out.
    pub fn delay_for(&self, failures: u64, seed: impl Hash) -> Duration {
        // DefaultHasher::new() has fixed keys: the same in every process.
        let mut hasher = DefaultHasher::new();
        (seed, failures).hash(&mut hasher);
        jittered(self.nominal(failures), fraction(hasher.finish()))
    }

    /// The shortest delay the jitter can give after `failures`: half the nominal.
    pub fn shortest(&self, failures: u64) -> Duration {
        self.nominal(failures) / 2
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

/// Equal jitter: half of `nominal`, plus `fraction` (in [0, 1)) of the other half.
fn jittered(nominal: Duration, fraction: f64) -> Duration {
    nominal / 2 + nominal.mul_f64(fraction / 2.0)
}

/// A number in [0, 1), different on every call and in every process: the
/// std hasher's random keys over a counter (no RNG dependency for jitter).
fn random_fraction() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    fraction(std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed)))
}

/// A hash's top 53 bits as a number in [0, 1).
fn fraction(hash: u64) -> f64 {
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

    #[test]
    fn the_delay_after_n_failures_doubles_from_the_first_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let nominal: Vec<u64> = (0..=6).map(|n| b.nominal(n).as_millis() as u64).collect();
        assert_eq!(nominal, [100, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.nominal(u64::MAX), Duration::from_secs(1), "no overflow");
        for n in 1..=6 {
            let (d, seeded, nominal) = (b.delay(n), b.delay_for(n, "1-0"), b.nominal(n));
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} for nominal {nominal:?}");
            assert!(seeded >= b.shortest(n) && seeded <= nominal, "{seeded:?} for nominal {nominal:?}");
        }
        // The cap is never below the first delay.
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!((b.nominal(1), b.nominal(3)), (Duration::from_secs(5), Duration::from_secs(5)));
    }

    #[test]
    fn a_seeded_delay_is_stable_for_its_seed_and_spread_across_seeds() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(b.delay_for(2, "1700000000000-0"), b.delay_for(2, "1700000000000-0"));
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|i| b.delay_for(2, format!("1700000000000-{i}"))).collect();
        assert!(delays.len() > 15, "{delays:?}");
        let random: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(2)).collect();
        assert!(random.len() > 15, "{random:?}");
    }

    #[tokio::test]
    async fn stops_early_when_told() {
        assert!(!Backoff::standard().wait_or(std::future::ready(())).await);
        let mut b = Backoff::new(Duration::from_millis(2), Duration::from_millis(2));
        assert!(b.wait_or(std::future::pending::<()>()).await);
    }
}
