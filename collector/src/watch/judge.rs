//! Judging a suspect: inspect it, let [`crate::detect`] decide, then
//! publish its alert with evidence, wait out its unhealthy grace, or log
//! why it is not reported.

use bollard::models::ContainerInspectResponse;

use super::Watcher;
use crate::{
    alert::{Inspected, Latency},
    detect::{Detection, Facts, FindingKind, Suspect, assess},
    docker,
    inflight::now_nanos,
};

impl Watcher {
    pub(super) async fn judge(&mut self, suspect: Suspect) {
        let received_nano = now_nanos();
        let inspect = match docker::inspect(&self.docker, &suspect.id).await {
            Ok(inspect) => Some(inspect),
            Err(e) => {
                // Removed already (--rm): the event's attributes still carry
                // the labels, and the oom event, if any, was seen.
                tracing::debug!(container = %suspect.name, error = %e, "inspect after event failed");
                None
            }
        };
        let facts = inspect.as_ref().map(Facts::of);
        self.alert_or_ignore(suspect, facts, inspect, received_nano);
    }

    /// Publishes the suspect's alert, or logs why there is none.
    /// `inspect`, when the caller made one, is the evidence's starting point.
    pub(super) fn alert_or_ignore(
        &mut self,
        suspect: Suspect,
        facts: Option<Facts>,
        inspect: Option<ContainerInspectResponse>,
        received_nano: i64,
    ) {
        let in_flight = self.inflight.covers(&suspect.id, suspect.time_nano)
            || self.inflight.covers(&suspect.name, suspect.time_nano);
        match assess(&suspect, facts.as_ref(), in_flight, &self.scope) {
            Detection::Alert(finding) => {
                let ms = |from: i64, to: i64| (to - from) / 1_000_000;
                let latency = Latency {
                    event_to_receipt_ms: ms(suspect.time_nano, received_nano),
                    inspect_ms: ms(received_nano, now_nanos()),
                };
                let grace = inspect.as_ref().and_then(|i| docker::policy(i).policy.unhealthy_grace());
                if let (FindingKind::Unhealthy, Some(grace)) = (finding.kind, grace.filter(|g| !g.is_zero())) {
                    self.waits.start(self.docker.clone(), self.alerts.clone(), finding, grace);
                    return;
                }
                let from = match inspect {
                    Some(inspect) => Inspected::Yes(Box::new(inspect)),
                    None => Inspected::No(suspect.id.clone()),
                };
                let gathering = self.alerts.publish_with_evidence(self.alerts.finding(&finding), from, Some(latency));
                if let Some(task) = gathering {
                    self.pending.push((suspect.id.clone(), suspect.time_nano, task));
                }
            }
            Detection::Ignore(reason) => {
                tracing::info!(container = %suspect.name, %reason, "exit not reported")
            }
        }
    }
}
