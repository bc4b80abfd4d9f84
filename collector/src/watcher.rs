//! Following the Docker event stream: crashes become `health_alert`s,
//! starts and removals update the registry.

use std::collections::HashMap;

use bollard::{Docker, models::EventMessage, query_parameters::EventsOptionsBuilder};
use futures::StreamExt;
use hemostat_protocol::{Envelope, EventKind, envelope::agent};
use tokio_util::sync::CancellationToken;

use crate::{
    backoff::Backoff,
    detector::{Detector, Suspect, Verdict, assess},
    scope::Scope,
    docker,
    event::{ContainerEvent, Happening},
    inflight::{InFlight, now_nanos},
    outbox::Outbox,
    registry::Registry,
};

const EVENTS: [&str; 6] = ["die", "oom", "kill", "start", "destroy", "health_status"];

pub struct Watcher {
    docker: Docker,
    host: String,
    detector: Detector,
    inflight: InFlight,
    outbox: Outbox,
    registry: Registry,
    scope: Scope,
    /// Time and identity of the last event handled: the resubscription
    /// starts there, so nothing is missed across a reconnect, and the
    /// replayed boundary event is not handled twice.
    last: (i64, String),
}

impl Watcher {
    pub fn new(
        docker: Docker,
        host: String,
        inflight: InFlight,
        outbox: Outbox,
        registry: Registry,
        scope: Scope,
    ) -> Self {
        Watcher {
            docker,
            host,
            detector: Detector::new(),
            inflight,
            outbox,
            registry,
            scope,
            // From now: the registry's startup sync covers what came before.
            last: (now_nanos(), String::new()),
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Backoff::standard();
        let filters = HashMap::from([("type", vec!["container"]), ("event", EVENTS.to_vec())]);
        loop {
            let since = format!(
                "{}.{:09}",
                self.last.0 / 1_000_000_000,
                self.last.0 % 1_000_000_000
            );
            let options = EventsOptionsBuilder::new()
                .since(&since)
                .filters(&filters)
                .build();
            let mut stream = self.docker.events(Some(options));
            tracing::debug!(%since, "subscribed to Docker events");
            let error = loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    item = stream.next() => match item {
                        Some(Ok(msg)) => {
                            backoff.reset();
                            self.handle(&msg).await;
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "stream ended".to_owned(),
                    },
                }
            };
            tracing::warn!(%error, "Docker event stream lost; reconnecting");
            if !backoff.wait(&cancel).await {
                return;
            }
            // Containers may have come and gone while Docker was away.
            self.registry.resync();
        }
    }

    async fn handle(&mut self, msg: &EventMessage) {
        let Some(event) = ContainerEvent::from_message(msg) else {
            return;
        };
        let identity = format!("{}:{:?}", event.id, event.happening);
        if event.time_nano < self.last.0
            || (event.time_nano == self.last.0 && identity == self.last.1)
        {
            return;
        }
        self.last = (event.time_nano, identity);
        match event.happening {
            Happening::Started if self.scope.excludes(&event.attributes).is_none() => {
                self.registry.add(&event.name)
            }
            Happening::Destroyed => self.registry.remove(&event.name),
            _ => {}
        }
        if let Some(suspect) = self.detector.observe(&event) {
            self.judge(suspect).await;
        }
    }

    async fn judge(&mut self, suspect: Suspect) {
        let received_nano = now_nanos();
        let facts = match docker::inspect(&self.docker, &suspect.id).await {
            Ok(inspect) => Some(docker::facts(&inspect)),
            Err(e) => {
                // Removed already (--rm): the event's attributes still carry
                // the labels, and the oom event, if any, was seen.
                tracing::debug!(container = %suspect.name, error = %e, "inspect after event failed");
                None
            }
        };
        let in_flight = self.inflight.covers(&suspect.id, suspect.time_nano)
            || self.inflight.covers(&suspect.name, suspect.time_nano);
        match assess(&suspect, facts.as_ref(), in_flight, &self.scope) {
            Verdict::Alert(finding) => {
                let alert = finding.health_alert(&self.host);
                let ms = |from: i64, to: i64| (to - from) / 1_000_000;
                tracing::info!(
                    container = %alert.container, issues = ?alert.issues,
                    event_to_receipt_ms = ms(suspect.time_nano, received_nano),
                    inspect_ms = ms(received_nano, now_nanos()),
                    "health alert"
                );
                match Envelope::new(agent::MONITOR, EventKind::HealthAlert, &alert) {
                    Ok(env) => self.outbox.send(env),
                    Err(e) => tracing::error!(error = %e, "could not build health alert"),
                }
            }
            Verdict::Ignore(reason) => {
                tracing::info!(container = %suspect.name, %reason, "exit not reported")
            }
        }
    }
}
