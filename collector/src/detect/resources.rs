//! Resource detection, one interval at a time: what a running container's
//! new reading means for its CPU and memory gauges ([`super::thresholds`])
//! and its leak window ([`super::leak`]).
//!
//! Pure: no Docker, no Redis, no clock of its own (the caller passes the
//! time), so what a run of readings yields is unit-tested here, and the
//! sampler is left with reading, tracking and publishing.

use hemostat_protocol::policy::Policy;

use super::{
    leak::{Leak, LeakDetector, LeakRule},
    thresholds::{Breach, Gauge, Rule},
};
use crate::usage::{self, Timed, Usage};

/// The resource rules, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub cpu: Rule,
    pub memory: Rule,
    pub leak: LeakRule,
}

impl Rules {
    /// These rules with a container's own thresholds and sustain window
    /// (its `hemostat.cpu_threshold`, `hemostat.memory_threshold` and
    /// `hemostat.sustain` labels).
    pub fn with_policy(mut self, policy: &Policy) -> Rules {
        if let Some(t) = policy.cpu_threshold {
            self.cpu.threshold = t;
        }
        if let Some(t) = policy.memory_threshold {
            self.memory.threshold = t;
        }
        if let Some(s) = policy.sustain_seconds {
            self.cpu.sustain = s;
            self.memory.sustain = s;
        }
        self
    }
}

/// What one reading revealed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Symptom {
    HighCpu(Breach),
    HighMemory(Breach),
    Leak(Leak),
}

/// One container's detection state across intervals. A new run of the
/// container (a new process, a new cgroup) gets a new one, so a restart
/// starts with clean gauges and an empty leak window.
#[derive(Debug, Default)]
pub struct Vitals {
    prev: Option<Timed>,
    last: Option<Usage>,
    cpu: Gauge,
    memory: Gauge,
    leak: LeakDetector,
}

impl Vitals {
    /// The usage of the latest interval; None before the first reading and
    /// once the container stopped.
    pub fn usage(&self) -> Option<&Usage> {
        self.last.as_ref()
    }

    /// Whether the next reading yields a CPU rate (there is a previous
    /// reading of this run to compute it against).
    pub fn rated(&self) -> bool {
        self.prev.is_some()
    }

    /// The container stopped: no usage to show, and its next reading, if it
    /// runs again, has no rate to be computed against.
    pub fn stopped(&mut self) {
        self.prev = None;
        self.last = None;
    }

    /// Feeds the reading taken at `now` (seconds, any monotonic origin).
    pub fn observe(&mut self, timed: Timed, host_memory: u64, now: f64, rules: &Rules) -> Vec<Symptom> {
        let first = self.prev.is_none();
        let usage = usage::usage(self.prev.as_ref(), &timed, host_memory);
        self.prev = Some(timed);
        self.last = Some(usage);
        let mut symptoms = Vec::new();
        // The first reading has no CPU rate yet: its 0 % must not clear a gauge.
        if !first && let Some(b) = self.cpu.observe(usage.cpu_pct, now, &rules.cpu) {
            symptoms.push(Symptom::HighCpu(b));
        }
        if let Some(b) = self.memory.observe(usage.memory_pct, now, &rules.memory) {
            symptoms.push(Symptom::HighMemory(b));
        }
        if let Some(leak) = self.leak.observe(now, usage.memory_usage, usage.memory_limit, &rules.leak) {
            symptoms.push(Symptom::Leak(leak));
        }
        symptoms
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use hemostat_protocol::event::Severity;

    use super::*;
    use crate::usage::Reading;

    const MB: u64 = 1 << 20;
    const LIMIT: u64 = 100 * MB;
    const RULE: Rule = Rule { threshold: 85.0, sustain: 5.0, clear: 10.0, margin: 10.0 };
    const RULES: Rules = Rules { cpu: RULE, memory: RULE, leak: LeakRule { window: 10, horizon: 600.0 } };

    /// One reading per second: `cpu` percent of a core over the last second
    /// and `mem` bytes in use; returns (second, symptoms) where there were any.
    fn run(
        vitals: &mut Vitals,
        seconds: std::ops::Range<u64>,
        cpu: f64,
        mem: impl Fn(u64) -> u64,
    ) -> Vec<(u64, Symptom)> {
        let origin = Instant::now();
        let mut out = Vec::new();
        for s in seconds {
            let reading = Reading {
                cpu_ns: (s as f64 * cpu * 10_000_000.0) as u64,
                mem_usage: mem(s),
                mem_limit: Some(LIMIT),
                ..Default::default()
            };
            let timed = Timed { reading, at: origin + Duration::from_secs(s) };
            out.extend(vitals.observe(timed, 0, s as f64, &RULES).into_iter().map(|sym| (s, sym)));
        }
        out
    }

    #[test]
    fn a_containers_labels_set_its_own_thresholds_and_sustain() {
        let policy = Policy { cpu_threshold: Some(50.0), sustain_seconds: Some(2.0), ..Default::default() };
        let rules = RULES.with_policy(&policy);
        assert_eq!((rules.cpu.threshold, rules.cpu.sustain), (50.0, 2.0));
        assert_eq!((rules.memory.threshold, rules.memory.sustain), (85.0, 2.0));
        assert_eq!(RULES.with_policy(&Policy::default()), RULES);
    }

    #[test]
    fn quiet_container_yields_nothing() {
        let mut v = Vitals::default();
        assert!(run(&mut v, 0..60, 20.0, |_| 30 * MB).is_empty());
        let u = v.usage().unwrap();
        assert_eq!((u.cpu_pct.round(), u.memory_pct.round(), u.memory_limit), (20.0, 30.0, LIMIT));
    }

    #[test]
    fn sustained_cpu_is_one_breach_after_the_sustain_window() {
        let mut v = Vitals::default();
        let got = run(&mut v, 0..30, 90.0, |_| 10 * MB);
        // Rated from the second reading on (t = 1), sustained 5 s at t = 6.
        let [(at, Symptom::HighCpu(b))] = got[..] else { panic!("{got:?}") };
        assert_eq!((at, b.severity, b.threshold, b.sustained), (6, Severity::High, 85.0, 5.0));
        assert!((b.actual - 90.0).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn sustained_memory_is_one_breach_counted_from_the_first_reading() {
        let mut v = Vitals::default();
        let got = run(&mut v, 0..30, 0.0, |_| 90 * MB);
        let [(at, Symptom::HighMemory(b))] = got[..] else { panic!("{got:?}") };
        assert_eq!((at, b.severity), (5, Severity::High));
    }

    #[test]
    fn steady_growth_towards_the_limit_is_a_leak() {
        let mut v = Vitals::default();
        // 20 MB, +1 MB/s: the limit in 80 s, well inside the horizon; a leak
        // once the window is full, long before the memory gauge would fire.
        let got = run(&mut v, 0..30, 0.0, |s| 20 * MB + s * MB);
        let [(at, Symptom::Leak(leak))] = got[..] else { panic!("{got:?}") };
        assert_eq!(at, 9);
        assert!((leak.slope - MB as f64).abs() < 1.0 && leak.time_to_limit < 80.0, "{leak:?}");
    }

    #[test]
    fn after_a_stop_the_next_reading_has_no_rate() {
        let mut v = Vitals::default();
        run(&mut v, 0..3, 50.0, |_| 10 * MB);
        v.stopped();
        assert!(v.usage().is_none());
        // A huge counter jump right after the stop is not read as a rate.
        let timed = Timed {
            reading: Reading { cpu_ns: u64::MAX / 2, mem_limit: Some(LIMIT), ..Default::default() },
            at: Instant::now(),
        };
        assert!(v.observe(timed, 0, 100.0, &RULES).is_empty());
        assert_eq!(v.usage().unwrap().cpu_pct, 0.0);
    }
}
