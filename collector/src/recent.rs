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
//! Bounded: at most [`MAX_EVENTS`] events no older than [`EVENT_HORIZON`]
//! and a fixed ring of compact samples per container; a destroyed
//! container is forgotten, and quiet ones are dropped once more than
//! [`MAX_CONTAINERS`] are remembered. An event keeps only its action, time,
//! exit code and signal: its attributes also carry every label of the
//! container, which may hold secrets.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bollard::models::{EventMessage, EventMessageTypeEnum};
use chrono::{DateTime, SecondsFormat, Utc};
use hemostat_protocol::evidence::{DockerEvent, SampleSummary, SeriesSummary};

use crate::{event::parse_signal, evidence::Provided};

/// Events kept per container.
pub const MAX_EVENTS: usize = 20;
/// Events older than this (before the newest one noted) are dropped.
pub const EVENT_HORIZON: Duration = Duration::from_secs(10 * 60);
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

/// A Docker event as evidence keeps it: 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noted {
    pub time_nano: i64,
    /// One of Docker's actions, spelled as Docker does (never free text).
    pub action: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
}

/// Actions worth showing, as Docker spells them. A `destroy` forgets the
/// container instead.
const ACTIONS: [&str; 12] = [
    "create",
    "start",
    "die",
    "oom",
    "kill",
    "stop",
    "restart",
    "pause",
    "unpause",
    "health_status: healthy",
    "health_status: unhealthy",
    "health_status: starting",
];

/// What a Docker event message means for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Event { id: String, event: Noted },
    Destroyed { id: String },
}

impl Note {
    /// None for events of other types and actions evidence does not show.
    pub fn from_message(msg: &EventMessage) -> Option<Note> {
        if msg.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return None;
        }
        let actor = msg.actor.as_ref()?;
        let id = actor.id.clone().filter(|id| !id.is_empty())?;
        let raw = msg.action.as_deref()?.trim();
        if raw == "destroy" {
            return Some(Note::Destroyed { id });
        }
        // `health_status: unhealthy`, also when an engine drops the space.
        let action = match raw.strip_prefix("health_status") {
            Some(status) => {
                let status = status.trim_start_matches(':').trim();
                ACTIONS.iter().copied().find(|a| a.strip_prefix("health_status: ") == Some(status))?
            }
            None => ACTIONS.iter().copied().find(|a| *a == raw)?,
        };
        let attr = |key: &str| actor.attributes.as_ref().and_then(|a| a.get(key)).map(|v| v.trim());
        let exit_code = (action == "die").then(|| attr("exitCode")?.parse().ok()).flatten();
        let signal = (action == "kill").then(|| parse_signal(attr("signal")?)).flatten();
        let time_nano = msg.time_nano.or_else(|| msg.time.map(|t| t.saturating_mul(1_000_000_000))).unwrap_or_default();
        Some(Note::Event { id, event: Noted { time_nano, action, exit_code, signal } })
    }
}

/// One container's recent events, oldest first.
#[derive(Debug, Default)]
pub struct EventRing {
    events: VecDeque<Noted>,
}

impl EventRing {
    /// Notes `e` in time order (a replayed event arrives late); an event
    /// already noted (same time and action) is not noted twice.
    pub fn push(&mut self, e: Noted) {
        if self.events.iter().any(|x| x.time_nano == e.time_nano && x.action == e.action) {
            return;
        }
        let at = self.events.iter().rposition(|x| x.time_nano <= e.time_nano).map_or(0, |i| i + 1);
        self.events.insert(at, e);
        let newest = self.events.back().map_or(e.time_nano, |x| x.time_nano);
        let horizon = newest.saturating_sub(EVENT_HORIZON.as_nanos() as i64);
        while self.events.len() > MAX_EVENTS || self.events.front().is_some_and(|x| x.time_nano < horizon) {
            self.events.pop_front();
        }
    }

    /// The events within [`EVENT_HORIZON`] of `now_nano`, oldest first.
    pub fn recent(&self, now_nano: i64) -> Vec<DockerEvent> {
        let horizon = now_nano.saturating_sub(EVENT_HORIZON.as_nanos() as i64);
        self.events
            .iter()
            .filter(|e| e.time_nano >= horizon)
            .map(|e| DockerEvent {
                action: e.action.to_owned(),
                time: Some(
                    DateTime::<Utc>::from_timestamp_nanos(e.time_nano).to_rfc3339_opts(SecondsFormat::Millis, true),
                ),
                exit_code: e.exit_code.map(i64::from),
                signal: e.signal,
            })
            .collect()
    }

    fn newest(&self) -> Option<i64> {
        self.events.back().map(|e| e.time_nano)
    }
}

/// One sample: 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the store's origin (monotonic).
    pub t: f64,
    /// Memory in use, bytes.
    pub mem_bytes: u64,
    /// Percent of one core; NaN for a run's first reading, which has no
    /// rate yet (its 0 would drag every minimum and trend down).
    pub cpu_pct: f32,
    /// Percent of the limit.
    pub mem_pct: f32,
}

/// One container's last samples, oldest first, in a ring of fixed size.
#[derive(Debug)]
pub struct SampleRing {
    samples: VecDeque<Sample>,
    capacity: usize,
    /// The limit of the latest sample (bytes).
    limit: u64,
}

impl SampleRing {
    pub fn new(capacity: usize) -> SampleRing {
        SampleRing { samples: VecDeque::with_capacity(capacity), capacity: capacity.max(1), limit: 0 }
    }

    pub fn push(&mut self, s: Sample, limit: u64) {
        if self.samples.len() >= self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
        self.limit = limit;
    }

    /// The samples of the last `window` before `now` (seconds, the
    /// samples' clock), summarised; None without one.
    pub fn summary(&self, now: f64, window: f64) -> Option<SampleSummary> {
        let from = now - window;
        let start = self.samples.iter().position(|s| s.t >= from)?;
        let covered = self.samples.range(start..);
        let points = |f: fn(&Sample) -> f64| -> Vec<(f64, f64)> { covered.clone().map(|s| (s.t, f(s))).collect() };
        let first = self.samples.get(start)?.t;
        let last = self.samples.back()?.t;
        Some(SampleSummary {
            count: u32::try_from(self.samples.len() - start).unwrap_or(u32::MAX),
            window_seconds: ((last - first) * 100.0).round() / 100.0,
            cpu_pct: SeriesSummary::from_points(&points(|s| f64::from(s.cpu_pct))),
            memory_pct: SeriesSummary::from_points(&points(|s| f64::from(s.mem_pct))),
            memory_bytes: SeriesSummary::from_points(&points(|s| s.mem_bytes as f64)),
            memory_limit_bytes: (self.limit > 0).then_some(self.limit),
        })
    }

    fn newest(&self) -> Option<f64> {
        self.samples.back().map(|s| s.t)
    }
}

/// A reading to note: the container's id and what it measured.
pub struct Reading<'a> {
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
    pub fn record(&self, readings: &[Reading<'_>]) {
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
    /// [`crate::grace`] reads).
    pub fn noted(&self, id: &str) -> Vec<Noted> {
        self.lock().events.get(id).map(|r| r.events.iter().copied().collect()).unwrap_or_default()
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
    use bollard::models::EventActor;

    use super::*;

    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * SEC;

    fn msg(id: &str, action: &str, attrs: &[(&str, &str)], time_nano: i64) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: Some(attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            }),
            scope: None,
            time: Some(time_nano / SEC),
            time_nano: Some(time_nano),
        }
    }

    fn noted(action: &'static str, time_nano: i64) -> Noted {
        Noted { time_nano, action, exit_code: None, signal: None }
    }

    #[test]
    fn events_keep_their_action_time_and_codes_and_nothing_else() {
        let secret = ("com.example.db-password", "hunter2");
        let die = Note::from_message(&msg("c1", "die", &[("exitCode", "137"), ("name", "web"), secret], T0));
        assert_eq!(
            die,
            Some(Note::Event {
                id: "c1".into(),
                event: Noted { time_nano: T0, action: "die", exit_code: Some(137), signal: None }
            })
        );
        let kill = Note::from_message(&msg("c1", "kill", &[("signal", "SIGTERM"), secret], T0));
        assert!(matches!(kill, Some(Note::Event { event: Noted { signal: Some(15), exit_code: None, .. }, .. })));
        let unhealthy = Note::from_message(&msg("c1", "health_status: unhealthy", &[], T0));
        assert!(matches!(unhealthy, Some(Note::Event { event: Noted { action: "health_status: unhealthy", .. }, .. })));
        let tight = Note::from_message(&msg("c1", "health_status:healthy", &[], T0));
        assert!(matches!(tight, Some(Note::Event { event: Noted { action: "health_status: healthy", .. }, .. })));
        // Free text never becomes an action.
        assert_eq!(Note::from_message(&msg("c1", "exec_start: sh -c 'echo hunter2'", &[], T0)), None);
        assert_eq!(Note::from_message(&msg("c1", "health_status: hunter2", &[], T0)), None);
        assert_eq!(Note::from_message(&msg("", "die", &[], T0)), None);
        assert_eq!(Note::from_message(&msg("c1", "destroy", &[], T0)), Some(Note::Destroyed { id: "c1".into() }));
        let e = EventRing { events: [Noted { exit_code: Some(137), ..noted("die", T0) }].into() }.recent(T0);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"[{"action":"die","time":"2023-11-14T22:13:20.000Z","exit_code":137}]"#);
    }

    #[test]
    fn the_event_ring_is_ordered_deduplicated_and_bounded() {
        let mut ring = EventRing::default();
        ring.push(noted("start", T0));
        ring.push(noted("die", T0 + 2 * SEC));
        // Replayed after a reconnect: late, and one of them twice.
        ring.push(noted("kill", T0 + SEC));
        ring.push(noted("die", T0 + 2 * SEC));
        let actions = |r: &EventRing| r.events.iter().map(|e| e.action).collect::<Vec<_>>();
        assert_eq!(actions(&ring), ["start", "kill", "die"]);
        // Two events at the same nanosecond are both kept, in arrival order.
        ring.push(noted("stop", T0 + 2 * SEC));
        assert_eq!(actions(&ring), ["start", "kill", "die", "stop"]);

        for i in 0..100 {
            ring.push(noted(if i % 2 == 0 { "start" } else { "die" }, T0 + (10 + i) * SEC));
        }
        assert_eq!(ring.events.len(), MAX_EVENTS);
        assert_eq!(ring.events.back().unwrap().time_nano, T0 + 109 * SEC);
        assert_eq!(ring.events.front().unwrap().time_nano, T0 + (110 - MAX_EVENTS as i64) * SEC);

        // Older than the horizon: gone as soon as a newer event comes, and
        // never shown, even before.
        let late = T0 + 109 * SEC + EVENT_HORIZON.as_nanos() as i64;
        assert_eq!(ring.recent(late).len(), 1);
        ring.push(noted("start", late + SEC));
        assert_eq!(actions(&ring), ["start"]);
        assert_eq!(ring.recent(late + SEC).len(), 1);
    }

    fn sample(t: f64, cpu: Option<f32>, mem_pct: f32, mem_bytes: u64) -> Sample {
        Sample { t, mem_bytes, cpu_pct: cpu.unwrap_or(f32::NAN), mem_pct }
    }

    #[test]
    fn the_sample_summary_covers_the_last_window() {
        let mut ring = SampleRing::new(sample_capacity(Duration::from_secs(1)));
        assert_eq!(ring.capacity, 61);
        assert_eq!(ring.summary(0.0, 60.0), None);
        // A run's first reading has no CPU rate: it is left out of CPU only.
        ring.push(sample(100.0, None, 10.0, 1000), 10_000);
        for i in 1..=120 {
            let t = 100.0 + i as f64;
            // CPU climbs 1 %/s, memory 2 bytes/s.
            ring.push(sample(t, Some(i as f32), 10.0, 1000 + 2 * i as u64), 10_000);
        }
        assert_eq!(ring.samples.len(), 61, "a fixed ring");
        let s = ring.summary(220.0, 60.0).unwrap();
        assert_eq!((s.count, s.window_seconds, s.memory_limit_bytes), (61, 60.0, Some(10_000)));
        let cpu = s.cpu_pct.unwrap();
        assert_eq!((cpu.min, cpu.max, cpu.last, cpu.trend_per_minute), (60.0, 120.0, 120.0, 60.0));
        let bytes = s.memory_bytes.unwrap();
        assert_eq!((bytes.min, bytes.last, bytes.trend_per_minute), (1120.0, 1240.0, 120.0));
        assert_eq!(s.memory_pct.unwrap().trend_per_minute, 0.0);
        // Later, only what is still within the window counts.
        let s = ring.summary(250.0, 60.0).unwrap();
        assert_eq!((s.count, s.window_seconds), (31, 30.0));
        assert_eq!(ring.summary(400.0, 60.0), None);

        // Only first readings: no CPU series, memory still summarised.
        let mut ring = SampleRing::new(4);
        ring.push(sample(1.0, None, 50.0, 5), 0);
        let s = ring.summary(1.0, 60.0).unwrap();
        assert_eq!((s.count, s.cpu_pct, s.memory_limit_bytes), (1, None, None));
        assert_eq!(s.memory_pct.map(|m| m.max), Some(50.0));
    }

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
        let reading = |id, cpu_pct| Reading { id, at, cpu_pct, mem_pct: 1.0, mem_bytes: 10, mem_limit: 1000 };
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
