//! Crashes waiting for the control plane's decision: the crash alerts
//! this host published that an edge restart may stand in for (see
//! `act::edge`), each with what became of its delivery. Only crashes and
//! OOM kills of containers whose labels allow a restart, not held (an
//! operator or a deploy at work on them) and not under a label silence,
//! are noted; one entry per container (its latest crash), at most
//! [`MAX_ENTRIES`]: a storm during an outage never grows it further.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::DateTime;
use hemostat_protocol::{
    ProtocolError,
    event::{AnomalyKind, HealthAlert},
    policy::ActionPolicy,
};
use tokio::sync::oneshot;

/// Containers waiting at most; beyond, a new crash is not noted (the
/// control plane still gets its alert).
pub const MAX_ENTRIES: usize = 10_000;

/// What became of a crash alert's delivery.
#[derive(Debug)]
pub enum Delivery {
    /// In the outbox: Redis has not taken it yet.
    Queued(oneshot::Receiver<Result<String, ProtocolError>>),
    /// In the alert stream under this id.
    Delivered(String),
    /// Never will be (dead-lettered, dropped): the control plane cannot see it.
    Lost(String),
}

/// One crash waiting for a decision.
#[derive(Debug)]
pub struct Crash {
    pub container_id: String,
    pub container: String,
    pub image: Option<String>,
    /// When the collector saw it (the event's time, nanoseconds), and as
    /// the alert says it (RFC 3339).
    pub time_nano: i64,
    pub detected_at: String,
    pub delivery: Delivery,
}

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Awaiting {
    crashes: Arc<Mutex<HashMap<String, Crash>>>,
}

impl Awaiting {
    /// Whether an edge restart may stand in for `alert`'s decision: a
    /// crash or an OOM kill, of a container whose policy allows restarts,
    /// not held and not silenced. Returns the crash to note, given its
    /// delivery.
    pub fn candidate(alert: &HealthAlert) -> Option<impl FnOnce(Delivery) -> Crash + use<>> {
        let crashed =
            alert.anomalies.iter().any(|a| matches!(a.kind, AnomalyKind::NonZeroExit | AnomalyKind::OomKilled));
        let allowed = alert.policy.as_ref().is_none_or(|p| p.action == ActionPolicy::Restart);
        if !crashed || !allowed || alert.held.is_some() || !alert.silenced_by.is_empty() {
            return None;
        }
        let container_id = alert.container_id.clone().filter(|id| !id.is_empty())?;
        let detected_at = alert.detected_at.clone()?;
        let time_nano = DateTime::parse_from_rfc3339(&detected_at).ok()?.timestamp_nanos_opt()?;
        let (container, image) = (alert.container.clone(), alert.image.clone());
        Some(move |delivery| Crash { container_id, container, image, time_nano, detected_at, delivery })
    }

    /// Notes `crash`, replacing an earlier one of its container.
    pub fn note(&self, crash: Crash) {
        let mut crashes = self.crashes.lock().unwrap_or_else(|e| e.into_inner());
        if crashes.len() >= MAX_ENTRIES && !crashes.contains_key(&crash.container_id) {
            tracing::warn!(container = %crash.container, max = MAX_ENTRIES, "too many crashes waiting for a decision: this one is left to the control plane");
            return;
        }
        crashes.insert(crash.container_id.clone(), crash);
    }

    /// The crashes seen at least `after` before `now_nano`, taken out;
    /// every delivery learnt so far is updated first.
    pub fn due(&self, now_nano: i64, after: Duration) -> Vec<Crash> {
        let mut crashes = self.crashes.lock().unwrap_or_else(|e| e.into_inner());
        let cutoff = now_nano.saturating_sub(after.as_nanos().min(i64::MAX as u128) as i64);
        let due: Vec<String> = crashes
            .iter_mut()
            .filter_map(|(id, crash)| {
                crash.learn();
                (crash.time_nano <= cutoff).then(|| id.clone())
            })
            .collect();
        due.iter().filter_map(|id| crashes.remove(id)).collect()
    }

    /// Crashes waiting now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.crashes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Crash {
    /// Reads the outbox's receipt, if it came.
    fn learn(&mut self) {
        let Delivery::Queued(rx) = &mut self.delivery else { return };
        self.delivery = match rx.try_recv() {
            Ok(Ok(id)) => Delivery::Delivered(id),
            Ok(Err(e)) => Delivery::Lost(e.to_string()),
            Err(oneshot::error::TryRecvError::Empty) => return,
            Err(oneshot::error::TryRecvError::Closed) => Delivery::Lost("the outbox stopped".into()),
        };
    }
}

#[cfg(test)]
mod tests {
    use hemostat_protocol::{
        event::{Anomaly, Severity},
        policy::Policy,
    };

    use super::*;

    fn alert(kind: AnomalyKind) -> HealthAlert {
        let mut alert: HealthAlert = serde_json::from_value(serde_json::json!({
            "container": "api",
            "issues": ["Exited with code 1"],
            "metrics": {"name": "api", "memory_pct": 0.0, "cpu_pct": 0.0},
            "host": "h",
            "container_id": "abc",
            "detected_at": "2026-12-06T10:00:00Z",
        }))
        .unwrap();
        alert.anomalies = vec![Anomaly { kind, severity: Severity::High, threshold: None, actual: Some(1.0) }];
        alert
    }

    #[test]
    fn only_crashes_the_labels_let_the_collector_restart_and_nobody_holds() {
        assert!(Awaiting::candidate(&alert(AnomalyKind::NonZeroExit)).is_some());
        assert!(Awaiting::candidate(&alert(AnomalyKind::OomKilled)).is_some());
        assert!(Awaiting::candidate(&alert(AnomalyKind::Unhealthy)).is_none());
        assert!(Awaiting::candidate(&alert(AnomalyKind::HighCpu)).is_none());
        for action in [ActionPolicy::Stop, ActionPolicy::Notify, ActionPolicy::None] {
            let mut a = alert(AnomalyKind::NonZeroExit);
            a.policy = Some(Policy { action, ..Policy::default() });
            assert!(Awaiting::candidate(&a).is_none(), "{action:?}");
        }
        let mut held = alert(AnomalyKind::NonZeroExit);
        held.held = Some("operator stop".into());
        assert!(Awaiting::candidate(&held).is_none());
        let mut silenced = alert(AnomalyKind::NonZeroExit);
        silenced.silenced_by = vec!["s1".into()];
        assert!(Awaiting::candidate(&silenced).is_none());
    }

    #[tokio::test]
    async fn due_after_the_wait_with_what_became_of_the_delivery() {
        let awaiting = Awaiting::default();
        let (tx, rx) = oneshot::channel();
        let make = Awaiting::candidate(&alert(AnomalyKind::NonZeroExit)).unwrap();
        awaiting.note(make(Delivery::Queued(rx)));
        let t0 = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z").unwrap().timestamp_nanos_opt().unwrap();
        let after = Duration::from_secs(30);
        assert!(awaiting.due(t0 + 29_000_000_000, after).is_empty());
        tx.send(Ok("1-0".into())).unwrap();
        let due = awaiting.due(t0 + 30_000_000_000, after);
        assert_eq!(due.len(), 1);
        assert!(matches!(&due[0].delivery, Delivery::Delivered(id) if id == "1-0"), "{:?}", due[0].delivery);
        assert_eq!(awaiting.len(), 0);
    }
}
