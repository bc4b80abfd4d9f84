//! Every `health_alert` this collector raises is built here, whichever
//! path found the problem (a Docker event through the watcher, a resource
//! reading or a restart loop through the sampler), so every alert carries
//! the same host, the same timestamps and the same figures.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use bollard::models::ContainerInspectResponse;
use chrono::{DateTime, SecondsFormat, Utc};
use hemostat_protocol::{
    envelope::seed_timestamp,
    event::{Anomaly, AnomalyKind, HealthAlert, Metrics, Severity},
};
use serde_json::{Value, json};

use super::{
    awaiting::Awaiting, evidence::Gatherer, facts::FactsWriter, grace::Graces, recent::Recent, silences::LabelSilences,
};
use crate::{
    detect::{Breach, Finding, FindingKind, Leak, RestartRule, Rules, Symptom},
    inflight::InFlight,
    outbox::Outbox,
    usage::{View, round2},
};

/// Builds alerts for this host and publishes them (never blocking: see
/// [`Outbox::send`]). Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    pub(super) host: String,
    pub(super) outbox: Outbox,
    /// None: alerts go without evidence (unit tests).
    pub(super) evidence: Option<Gatherer>,
    /// Recent events and samples per container; None: evidence goes without.
    pub(super) recent: Option<Recent>,
    /// Containers (by id) whose bad labels were reported already.
    pub(super) reported: Arc<Mutex<HashSet<String>>>,
    /// When to hold off (see [`super::grace`]), and the collector's own
    /// actions, which never count as an operator's.
    pub(super) graces: Graces,
    pub(super) inflight: InFlight,
    /// The operators' label silences; None: alerts name none (unit tests).
    pub(super) silences: Option<LabelSilences>,
    /// Writes what each alert found to the container's facts; None: not
    /// written (unit tests).
    pub(super) facts: Option<FactsWriter>,
    /// Crashes an edge restart may stand in for; None: edge healing off.
    pub(super) awaiting: Option<Awaiting>,
}

/// How long an event-driven alert took, for the log line: from the event
/// to its receipt, waiting for a judging slot (a burst of exits), and the
/// inspect after it.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub event_to_receipt_ms: i64,
    pub queued_ms: i64,
    pub inspect_ms: i64,
}

/// What evidence gathering may start from.
pub enum Inspected {
    /// The caller already inspected the container (the watcher, after the event).
    Yes(Box<ContainerInspectResponse>),
    /// Only its id or name is known: the gatherer inspects it.
    No(String),
}

/// A resource anomaly of one container, before it becomes an alert.
struct Alarm {
    kind: AnomalyKind,
    severity: Severity,
    threshold: f64,
    actual: f64,
    issue: String,
    /// Figures behind the anomaly, added to the container's metrics.
    extra: Vec<(&'static str, Value)>,
}

impl Alarm {
    fn breach(kind: AnomalyKind, what: &str, b: &Breach) -> Alarm {
        Alarm {
            kind,
            severity: b.severity,
            threshold: b.threshold,
            actual: round2(b.actual),
            issue: format!("High {what}: {:.1}%", b.actual),
            extra: vec![
                (Metrics::SUSTAINED_SECONDS, json!(round2(b.sustained))),
                (Metrics::SUSTAIN_SECONDS, json!(round2(b.sustain))),
            ],
        }
    }

    /// `horizon`: the leak rule's, the threshold the time to the limit beat.
    fn leak(leak: &Leak, horizon: f64) -> Alarm {
        let per_min = leak.slope * 60.0 / (1024.0 * 1024.0);
        let minutes = leak.time_to_limit / 60.0;
        Alarm {
            kind: AnomalyKind::MemoryLeak,
            // The limit is near: the analyzer treats critical as urgent.
            severity: if leak.time_to_limit < 120.0 { Severity::Critical } else { Severity::High },
            threshold: horizon,
            actual: round2(leak.time_to_limit),
            issue: format!("Memory leak: +{per_min:.1} MB/min, limit in ~{minutes:.1} min"),
            extra: vec![
                ("growth_bytes_per_second", json!(round2(leak.slope))),
                ("r_squared", json!(round2(leak.r2))),
                ("seconds_to_limit", json!(round2(leak.time_to_limit))),
            ],
        }
    }
}

impl Alerts {
    pub fn new(host: String, outbox: Outbox) -> Alerts {
        Alerts {
            host,
            outbox,
            evidence: None,
            recent: None,
            reported: Default::default(),
            graces: Graces::default(),
            inflight: InFlight::new(),
            silences: None,
            facts: None,
            awaiting: None,
        }
    }

    /// Crash alerts are noted in `awaiting` with their delivery, for edge
    /// healing (`act::edge`).
    pub fn with_awaiting(mut self, awaiting: Awaiting) -> Alerts {
        self.awaiting = Some(awaiting);
        self
    }

    /// Alerts name the label silences that select their container.
    pub fn with_silences(mut self, silences: LabelSilences) -> Alerts {
        self.silences = Some(silences);
        self
    }

    /// Each alert's findings go to the container's facts first.
    pub fn with_facts(mut self, facts: FactsWriter) -> Alerts {
        self.facts = Some(facts);
        self
    }

    /// Evidence also carries the container's recent events and samples
    /// from `recent`.
    pub fn with_recent(mut self, recent: Recent) -> Alerts {
        self.recent = Some(recent);
        self
    }

    /// Alerts say when someone else is at work on their container (see
    /// [`crate::grace`]); `inflight` tells the collector's own actions apart.
    pub fn with_graces(mut self, graces: Graces, inflight: InFlight) -> Alerts {
        self.graces = graces;
        self.inflight = inflight;
        self
    }

    /// Alerts published through [`Alerts::publish_with_evidence`] carry
    /// what `gatherer` finds.
    pub fn with_evidence(mut self, gatherer: Gatherer) -> Alerts {
        self.evidence = Some(gatherer);
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The alert for a crash, an OOM kill or a failing health check. Its
    /// times are the event's, not now: replayed events keep theirs.
    pub fn finding(&self, f: &Finding) -> HealthAlert {
        let time = DateTime::<Utc>::from_timestamp_nanos(f.time_nano);
        let code = f.exit_code.unwrap_or_default();
        let (issue, anomaly, severity, status) = match f.kind {
            FindingKind::Crash => {
                (format!("Exited with code {code}"), AnomalyKind::NonZeroExit, Severity::High, "exited")
            }
            FindingKind::Oom => {
                (format!("OOM killed (exit {code})"), AnomalyKind::OomKilled, Severity::Critical, "exited")
            }
            FindingKind::Unhealthy => {
                ("Health check failing".to_owned(), AnomalyKind::Unhealthy, Severity::High, "running")
            }
        };
        HealthAlert {
            container: f.container.clone(),
            issues: vec![issue],
            metrics: Metrics {
                name: f.container.clone(),
                status: Some(status.into()),
                memory_pct: 0.0,
                cpu_pct: 0.0,
                timestamp: Some(time.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
                ..Default::default()
            },
            host: self.host.clone(),
            container_id: Some(f.container_id.clone()),
            image: f.image.clone(),
            anomalies: vec![Anomaly {
                kind: anomaly,
                severity,
                threshold: None,
                actual: f.exit_code.map(|c| c as f64),
            }],
            exit_code: f.exit_code,
            detected_at: Some(time.to_rfc3339_opts(SecondsFormat::Nanos, true)),
            evidence: None,
            policy: None,
            held: None,
            silenced_by: Vec::new(),
        }
    }

    /// The alert for what a reading revealed.
    pub fn symptom(&self, view: &View<'_>, symptom: &Symptom, rules: &Rules) -> HealthAlert {
        let alarm = match symptom {
            Symptom::HighCpu(b) => Alarm::breach(AnomalyKind::HighCpu, "CPU", b),
            Symptom::HighMemory(b) => Alarm::breach(AnomalyKind::HighMemory, "memory", b),
            Symptom::Leak(leak) => Alarm::leak(leak, rules.leak.horizon),
        };
        self.resource(view, alarm)
    }

    /// The alert for `count` restarts within the rule's window.
    pub fn restart_loop(&self, view: &View<'_>, count: u32, rule: &RestartRule) -> HealthAlert {
        let window = rule.window_nanos / 1_000_000_000;
        self.resource(
            view,
            Alarm {
                kind: AnomalyKind::ExcessiveRestarts,
                severity: Severity::High,
                threshold: rule.max as f64,
                actual: count as f64,
                issue: format!("Excessive restarts: {count} in {window}s"),
                extra: vec![("restarts", json!(count)), ("window_seconds", json!(window))],
            },
        )
    }

    /// Sampler alerts carry the container's current stats, as its stats key
    /// shows them, so the analyzer sees the figures behind the anomaly.
    fn resource(&self, view: &View<'_>, alarm: Alarm) -> HealthAlert {
        let mut metrics = view.metrics(seed_timestamp());
        for (k, v) in alarm.extra {
            metrics.extra.insert(k.to_owned(), v);
        }
        HealthAlert {
            container: view.who.name.clone(),
            issues: vec![alarm.issue],
            metrics,
            host: self.host.clone(),
            container_id: Some(view.who.id.clone()),
            image: view.who.image.clone(),
            anomalies: vec![Anomaly {
                kind: alarm.kind,
                severity: alarm.severity,
                threshold: Some(alarm.threshold),
                actual: Some(alarm.actual),
            }],
            exit_code: None,
            detected_at: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)),
            evidence: None,
            policy: None,
            held: None,
            silenced_by: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {

    use hemostat_protocol::EventKind;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::{
        detect::{LeakRule, Rule},
        outbox::testing::{Recorder, TempDir},
        usage::{Identity, Usage},
    };

    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * SEC;
    const RULE: Rule = Rule { threshold: 85.0, sustain: 5.0, clear: 10.0, margin: 10.0 };
    const RULES: Rules = Rules { cpu: RULE, memory: RULE, leak: LeakRule { window: 10, horizon: 600.0 } };

    /// The folder is the outbox's: keep it while the alerts are used.
    fn alerts() -> (Alerts, Recorder, TempDir) {
        let recorder = Recorder::default();
        let (outbox, _task, dir) = crate::outbox::testing::outbox(recorder.clone(), CancellationToken::new());
        (Alerts::new("h1".into(), outbox), recorder, dir)
    }

    fn finding(kind: FindingKind, exit_code: Option<i64>) -> Finding {
        Finding {
            kind,
            container: "web".into(),
            container_id: "c1".into(),
            image: Some("app:1".into()),
            exit_code,
            time_nano: T0,
        }
    }

    fn who() -> Identity {
        Identity { host: "h1".into(), id: "c1".into(), name: "web".into(), image: Some("app:1".into()) }
    }

    #[tokio::test]
    async fn a_crash_is_high_and_dated_by_its_event() {
        let (alerts, _, _dir) = alerts();
        let a = alerts.finding(&finding(FindingKind::Crash, Some(1)));
        assert_eq!(a.issues, ["Exited with code 1"]);
        assert_eq!((a.anomalies[0].kind, a.anomalies[0].severity), (AnomalyKind::NonZeroExit, Severity::High));
        assert_eq!(a.anomalies[0].actual, Some(1.0));
        assert_eq!(a.metrics.status.as_deref(), Some("exited"));
        assert_eq!((a.host.as_str(), a.container.as_str(), a.image.as_deref()), ("h1", "web", Some("app:1")));
        assert_eq!(a.detected_at.as_deref(), Some("2023-11-14T22:13:20.000000000Z"));
        assert_eq!(a.metrics.timestamp.as_deref(), Some("2023-11-14T22:13:20.000000"));
    }

    #[tokio::test]
    async fn an_oom_kill_is_critical_and_unhealthy_has_no_exit_code() {
        let (alerts, _, _dir) = alerts();
        let a = alerts.finding(&finding(FindingKind::Oom, Some(137)));
        assert_eq!(a.issues, ["OOM killed (exit 137)"]);
        assert_eq!((a.anomalies[0].kind, a.anomalies[0].severity), (AnomalyKind::OomKilled, Severity::Critical));
        let a = alerts.finding(&finding(FindingKind::Unhealthy, None));
        assert_eq!((a.anomalies[0].kind, a.exit_code), (AnomalyKind::Unhealthy, None));
        assert_eq!(a.metrics.status.as_deref(), Some("running"));
    }

    #[tokio::test]
    async fn resource_alerts_carry_the_stats_and_the_figures_behind_them() {
        let (alerts, _, _dir) = alerts();
        let who = who();
        let usage = Usage { cpu_pct: 91.234, memory_pct: 40.0, pids: 7, ..Default::default() };
        let view = View { who: &who, status: "running", health: Some("healthy"), usage: Some(&usage) };
        let breach = Breach { severity: Severity::High, actual: 91.234, threshold: 85.0, sustained: 5.0, sustain: 5.0 };
        let a = alerts.symptom(&view, &Symptom::HighCpu(breach), &RULES);
        assert_eq!(a.issues, ["High CPU: 91.2%"]);
        assert_eq!(a.anomalies[0].kind, AnomalyKind::HighCpu);
        assert_eq!((a.anomalies[0].threshold, a.anomalies[0].actual), (Some(85.0), Some(91.23)));
        assert_eq!((a.metrics.cpu_pct, a.metrics.pids), (91.23, Some(7)));
        assert_eq!(a.metrics.extra["sustained_seconds"], json!(5.0));
        assert_eq!(a.metrics.extra["sustain_seconds"], json!(5.0));
        assert_eq!(a.metrics.health.as_deref(), Some("healthy"));
        assert_eq!((a.container_id.as_deref(), a.exit_code), (Some("c1"), None));
        let a = alerts.symptom(&view, &Symptom::HighMemory(breach), &RULES);
        assert_eq!(a.issues, ["High memory: 91.2%"]);

        let leak = Leak { slope: 1024.0 * 1024.0, r2: 0.99, time_to_limit: 90.0, fitted: 0.0 };
        let a = alerts.symptom(&view, &Symptom::Leak(leak), &RULES);
        assert_eq!(a.issues, ["Memory leak: +60.0 MB/min, limit in ~1.5 min"]);
        assert_eq!((a.anomalies[0].kind, a.anomalies[0].severity), (AnomalyKind::MemoryLeak, Severity::Critical));
        assert_eq!((a.anomalies[0].threshold, a.anomalies[0].actual), (Some(600.0), Some(90.0)));
        let far = Leak { time_to_limit: 300.0, ..leak };
        assert_eq!(alerts.symptom(&view, &Symptom::Leak(far), &RULES).anomalies[0].severity, Severity::High);

        let stopped = View { status: "exited", usage: None, ..view };
        let a = alerts.restart_loop(&stopped, 4, &RestartRule { max: 3, window_nanos: 300 * SEC });
        assert_eq!(a.issues, ["Excessive restarts: 4 in 300s"]);
        assert_eq!((a.anomalies[0].threshold, a.anomalies[0].actual), (Some(3.0), Some(4.0)));
        assert_eq!(
            (a.metrics.extra["restarts"].clone(), a.metrics.extra["window_seconds"].clone()),
            (json!(4), json!(300))
        );
        assert_eq!((a.metrics.status.as_deref(), a.metrics.cpu_pct), (Some("exited"), 0.0));
    }

    #[tokio::test]
    async fn published_alerts_reach_the_outbox_in_order() {
        let (alerts, recorder, _dir) = alerts();
        alerts.publish_with_evidence(
            alerts.finding(&finding(FindingKind::Crash, Some(1))),
            Inspected::No("c1".into()),
            None,
        );
        let latency = Latency { event_to_receipt_ms: 1, queued_ms: 0, inspect_ms: 2 };
        let oom = alerts.finding(&finding(FindingKind::Oom, Some(137)));
        alerts.publish_with_evidence(oom, Inspected::No("c1".into()), Some(latency));
        for _ in 0..100 {
            if recorder.0.lock().unwrap().len() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let got = recorder.0.lock().unwrap().clone();
        let issues: Vec<Value> = got.iter().map(|e| e.data["issues"][0].clone()).collect();
        assert_eq!(issues, [json!("Exited with code 1"), json!("OOM killed (exit 137)")]);
        assert!(got.iter().all(|e| e.kind == EventKind::HealthAlert && e.data["host"] == "h1"), "{got:?}");
    }
}
