//! Judging a suspect: inspect it, let [`crate::detect`] decide, then
//! publish its alert with evidence, wait out its unhealthy grace, or log
//! why it is not reported. Runs off the event loop, several suspects at
//! once ([`super::judging`]).

use bollard::{Docker, models::ContainerInspectResponse};
use tokio::task::JoinHandle;

use super::unhealthy;
use crate::{
    alert::{Alerts, Inspected, Latency},
    detect::{Detection, Facts, FindingKind, Suspect, assess},
    docker,
    inflight::{InFlight, now_nanos},
    scope::Scope,
};

/// What judging needs; cloned into each judging task.
#[derive(Clone)]
pub(super) struct Judge {
    pub docker: Docker,
    pub alerts: Alerts,
    pub inflight: InFlight,
    pub scope: Scope,
    /// Containers waiting out their unhealthy grace.
    pub waits: unhealthy::Waits,
}

/// What a suspect is judged on.
pub(super) enum Basis {
    /// An event: the container is inspected now.
    Inspect,
    /// An exit found in state by a reconciliation, with the facts read there.
    State(Facts),
}

/// When the watcher took a suspect's event, and when its judging began
/// (after its container's earlier suspects and a free slot).
#[derive(Clone, Copy)]
pub(super) struct Times {
    pub received_nano: i64,
    pub started_nano: i64,
}

impl Judge {
    /// Judges `suspect`; returns once its alert, if it raised one, is in
    /// the outbox (evidence gathered), or its unhealthy wait has begun.
    pub(super) async fn judge(&self, suspect: Suspect, basis: Basis, times: Times) {
        let (facts, inspect) = match basis {
            Basis::State(facts) => (Some(facts), None),
            Basis::Inspect => match docker::inspect(&self.docker, &suspect.id).await {
                Ok(inspect) => (Some(Facts::of(&inspect)), Some(inspect)),
                Err(e) => {
                    // Removed already (--rm): the event's attributes still carry
                    // the labels, and the oom event, if any, was seen.
                    tracing::debug!(container = %suspect.name, error = %e, "inspect after event failed");
                    (None, None)
                }
            },
        };
        if let Some(gathering) = self.alert_or_ignore(suspect, facts, inspect, times) {
            // A gathering that panicked has nothing left to wait for.
            let _ = gathering.await;
        }
    }

    /// Publishes the suspect's alert, or logs why there is none; the task
    /// gathering the alert's evidence, if any. `inspect`, when the caller
    /// made one, is the evidence's starting point.
    fn alert_or_ignore(
        &self,
        suspect: Suspect,
        facts: Option<Facts>,
        inspect: Option<ContainerInspectResponse>,
        times: Times,
    ) -> Option<JoinHandle<()>> {
        // The window of an action stays after it (see `InFlight`), so
        // judging later than the event does not un-hide the collector's own
        // restarts.
        let in_flight = self.inflight.covers(&suspect.id, suspect.time_nano)
            || self.inflight.covers(&suspect.name, suspect.time_nano);
        match assess(&suspect, facts.as_ref(), in_flight, &self.scope) {
            Detection::Alert(finding) => {
                let ms = |from: i64, to: i64| (to - from) / 1_000_000;
                let latency = Latency {
                    event_to_receipt_ms: ms(suspect.time_nano, times.received_nano),
                    queued_ms: ms(times.received_nano, times.started_nano),
                    inspect_ms: ms(times.started_nano, now_nanos()),
                };
                let grace = inspect.as_ref().and_then(|i| docker::policy(i).policy.unhealthy_grace());
                if let (FindingKind::Unhealthy, Some(grace)) = (finding.kind, grace.filter(|g| !g.is_zero())) {
                    self.waits.start(self.docker.clone(), self.alerts.clone(), finding, grace);
                    return None;
                }
                let from = match inspect {
                    Some(inspect) => Inspected::Yes(Box::new(inspect)),
                    None => Inspected::No(suspect.id.clone()),
                };
                self.alerts.publish_with_evidence(self.alerts.finding(&finding), from, Some(latency))
            }
            Detection::Ignore(reason) => {
                tracing::info!(container = %suspect.name, %reason, "exit not reported");
                None
            }
        }
    }
}
