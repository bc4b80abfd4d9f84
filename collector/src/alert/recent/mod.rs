//! Recent per-container facts that an alert's evidence shows beside what
//! Docker says at that moment: the container's last Docker events (noted
//! by the watcher) and its last CPU and memory samples (noted by the
//! sampler), each in a small ring per container, summarised into
//! [`Provided`] when an alert is published.
//!
//! One store behind one mutex, shared by the watcher, the sampler and
//! `alerting`, so neither task needs the other. The lock is held for a
//! few hundred nanoseconds per event and once per sampling interval for
//! all readings together; nothing waits on I/O while holding it.
//!
//! Bounded: at most [`MAX_EVENTS`](rings::MAX_EVENTS) events no older than [`EVENT_HORIZON`]
//! and a fixed ring of compact samples per container; a destroyed
//! container is forgotten, and quiet ones are dropped once more than
//! [`MAX_CONTAINERS`] are remembered. An event keeps only its action, time,
//! exit code and signal: its attributes also carry every label of the
//! container, which may hold secrets.

mod rings;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bollard::models::EventMessage;
use chrono::Utc;

use super::evidence::Provided;
use rings::{EVENT_HORIZON, EventRing, SampleRing};
pub use rings::{Note, Noted, Sample};

/// The samples a summary covers: those of the last minute.
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(60);
/// Ring sizes allowed, whatever the sampling interval: a minute at 500 ms
/// fits; at 100 ms the summary covers the last 12 s.
const MIN_SAMPLES: usize = 2;
const MAX_SAMPLES: usize = 121;
/// Containers remembered before quiet ones are forgotten (a destroy event
/// missed while Docker was away would otherwise leave its ring for good).
pub const MAX_CONTAINERS: usize = 10_000;

/// The samples needed to cover [`SAMPLE_WINDOW`] at `interval`, within
/// the ring's bounds.
pub fn sample_capacity(interval: Duration) -> usize {
    if interval.is_zero() {
        return MIN_SAMPLES;
    }
    let n = (SAMPLE_WINDOW.as_secs_f64() / interval.as_secs_f64()).ceil() as usize + 1;
    n.clamp(MIN_SAMPLES, MAX_SAMPLES)
}

/// A reading to note: the container's id and what it measured.
pub struct Measurement<'a> {
    pub id: &'a str,
    /// When it was read.
    pub at: Instant,
    /// None for a run's first reading (no rate yet).
    pub cpu_pct: Option<f64>,
    pub mem_pct: f64,
    pub mem_bytes: u64,
    pub mem_limit: u64,
}

#[derive(Debug, Default)]
struct Inner {
    events: HashMap<String, EventRing>,
    samples: HashMap<String, SampleRing>,
}

/// The store; cheap to clone (one shared state).
#[derive(Clone)]
pub struct Recent {
    inner: Arc<Mutex<Inner>>,
    origin: Instant,
    capacity: usize,
}

impl Recent {
    /// Rings of `sample_capacity` samples (see [`sample_capacity`]).
    pub fn new(sample_capacity: usize) -> Recent {
        Recent { inner: Arc::default(), origin: Instant::now(), capacity: sample_capacity }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding it; if something did, the rings are
        // still consistent (each update is one push), so keep going.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin).as_secs_f64()
    }

    /// Notes a Docker event (the watcher calls this for every one).
    pub fn note(&self, msg: &EventMessage) {
        match Note::from_message(msg) {
            Some(Note::Event { id, event }) => {
                let mut inner = self.lock();
                if inner.events.len() >= MAX_CONTAINERS && !inner.events.contains_key(&id) {
                    let horizon = event.time_nano.saturating_sub(EVENT_HORIZON.as_nanos() as i64);
                    inner.events.retain(|_, ring| ring.newest().is_some_and(|t| t >= horizon));
                }
                inner.events.entry(id).or_default().push(event);
            }
            Some(Note::Destroyed { id }) => self.forget(&id),
            None => {}
        }
    }

    /// Notes one interval's readings, under one lock.
    pub fn record(&self, readings: &[Measurement<'_>]) {
        if readings.is_empty() {
            return;
        }
        let mut inner = self.lock();
        if inner.samples.len() >= MAX_CONTAINERS {
            let horizon = self.seconds(Instant::now()) - SAMPLE_WINDOW.as_secs_f64();
            inner.samples.retain(|_, ring| ring.newest().is_some_and(|t| t >= horizon));
        }
        for r in readings {
            let sample = Sample {
                t: self.seconds(r.at),
                mem_bytes: r.mem_bytes,
                cpu_pct: r.cpu_pct.map_or(f32::NAN, |c| c as f32),
                mem_pct: r.mem_pct as f32,
            };
            match inner.samples.get_mut(r.id) {
                Some(ring) => ring.push(sample, r.mem_limit),
                None => {
                    let mut ring = SampleRing::new(self.capacity);
                    ring.push(sample, r.mem_limit);
                    inner.samples.insert(r.id.to_owned(), ring);
                }
            }
        }
    }

    /// Forgets a container (destroyed).
    pub fn forget(&self, id: &str) {
        let mut inner = self.lock();
        inner.events.remove(id);
        inner.samples.remove(id);
    }

    /// The container's recent events as noted, oldest first (what
    /// [`super::grace`] reads).
    pub fn noted(&self, id: &str) -> Vec<Noted> {
        self.lock().events.get(id).map(EventRing::all).unwrap_or_default()
    }

    /// What an alert about container `id` carries from here, as of now.
    pub fn provided(&self, id: &str) -> Provided {
        let now_nano = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let now = self.seconds(Instant::now());
        let inner = self.lock();
        Provided {
            events: inner.events.get(id).map(|r| r.recent(now_nano)).unwrap_or_default(),
            samples: inner.samples.get(id).and_then(|r| r.summary(now, SAMPLE_WINDOW.as_secs_f64())),
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.events.len(), inner.samples.len())
    }
}

#[cfg(test)]
mod tests {
    use super::{rings::tests::msg, *};

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn ring_sizes_follow_the_interval_within_bounds() {
        assert_eq!(sample_capacity(Duration::from_millis(500)), 121);
        assert_eq!(sample_capacity(Duration::from_secs(10)), 7);
        assert_eq!(sample_capacity(Duration::from_millis(10)), MAX_SAMPLES);
        assert_eq!(sample_capacity(Duration::from_secs(600)), MIN_SAMPLES);
        assert_eq!(sample_capacity(Duration::ZERO), MIN_SAMPLES);
    }

    #[test]
    fn the_store_serves_both_rings_and_forgets_destroyed_containers() {
        let recent = Recent::new(8);
        let now = Utc::now().timestamp_nanos_opt().unwrap();
        recent.note(&msg("c1", "start", &[], now - 3 * SEC));
        recent.note(&msg("c1", "die", &[("exitCode", "1")], now - SEC));
        recent.note(&msg("c2", "start", &[], now));
        let at = Instant::now();
        let reading = |id, cpu_pct| Measurement { id, at, cpu_pct, mem_pct: 1.0, mem_bytes: 10, mem_limit: 1000 };
        recent.record(&[reading("c1", None), reading("c2", Some(5.0))]);
        let p = recent.provided("c1");
        let actions: Vec<_> = p.events.iter().map(|e| (e.action.as_str(), e.exit_code)).collect();
        assert_eq!(actions, [("start", None), ("die", Some(1))]);
        assert_eq!(p.samples.as_ref().map(|s| (s.count, s.cpu_pct)), Some((1, None)));
        assert_eq!(recent.provided("c2").samples.and_then(|s| s.cpu_pct).map(|c| c.max), Some(5.0));
        assert_eq!(recent.remembered(), (2, 2));
        recent.note(&msg("c1", "destroy", &[], now));
        assert_eq!(recent.remembered(), (1, 1));
        let p = recent.provided("c1");
        assert!(p.events.is_empty() && p.samples.is_none());
        recent.forget("c2");
        assert_eq!(recent.remembered(), (0, 0));
    }

    #[test]
    fn quiet_containers_go_once_too_many_are_remembered() {
        let recent = Recent::new(2);
        let now = Utc::now().timestamp_nanos_opt().unwrap();
        let old = now - 2 * EVENT_HORIZON.as_nanos() as i64;
        for i in 0..MAX_CONTAINERS {
            recent.note(&msg(&format!("old{i}"), "start", &[], old));
        }
        recent.note(&msg("busy", "start", &[], now - SEC));
        assert_eq!(recent.remembered().0, 1);
        assert_eq!(recent.provided("busy").events.len(), 1);
    }
}
