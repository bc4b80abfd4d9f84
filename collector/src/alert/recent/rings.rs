//! The two rings per container: its last Docker events, and its last CPU
//! and memory samples, compact and bounded.

use std::{collections::VecDeque, time::Duration};

use bollard::models::{EventMessage, EventMessageTypeEnum};
use chrono::{DateTime, SecondsFormat, Utc};
use hemostat_protocol::evidence::{DockerEvent, SampleSummary, SeriesSummary};

/// Events kept per container.
pub const MAX_EVENTS: usize = 20;
/// Events older than this (before the newest one noted) are dropped.
pub const EVENT_HORIZON: Duration = Duration::from_secs(10 * 60);
use crate::event::parse_signal;

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
        // `remove`: Podman's name for Docker's `destroy`.
        if raw == "destroy" || raw == "remove" {
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
    /// Every event kept, oldest first.
    pub fn all(&self) -> Vec<Noted> {
        self.events.iter().copied().collect()
    }

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

    pub(super) fn newest(&self) -> Option<i64> {
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

    pub(super) fn newest(&self) -> Option<f64> {
        self.samples.back().map(|s| s.t)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use bollard::models::EventActor;

    use super::{super::sample_capacity, *};

    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * SEC;

    pub(in crate::alert::recent) fn msg(
        id: &str,
        action: &str,
        attrs: &[(&str, &str)],
        time_nano: i64,
    ) -> EventMessage {
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
}
