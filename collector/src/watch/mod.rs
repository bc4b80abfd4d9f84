//! Watch: following the Docker event stream, the first step of every
//! crash. A die, an OOM kill or an unhealthy status becomes a suspect for
//! [`crate::detect`], then a `health_alert` through [`crate::alert`];
//! starts and removals update this host's registry and the sampler's set
//! of containers; a parent's start that someone else made recovers its
//! namespace dependents ([`crate::act`]).
//!
//! When the stream is lost (dockerd restarting, a dropped connection), the
//! watcher reconnects with backoff and catches up before following live
//! events again: it replays the engine's event log from the last event it
//! handled, then reconciles from state the exits no event reported
//! (`reconcile`), then resubscribes.
//!
//! - `reconcile`: after a reconnect, the exits no event reported.
//! - `registry`: `hemostat:containers` membership and the heartbeat.
//! - `unhealthy`: waiting out a container's `hemostat.unhealthy_grace`.

mod reconcile;
mod registry;
mod unhealthy;

use std::{collections::HashMap, time::Duration};

use bollard::{
    Docker,
    models::{ContainerInspectResponse, EventMessage},
    query_parameters::EventsOptionsBuilder,
};
use futures::StreamExt;
use hemostat_protocol::{backoff::Backoff, facts::Observed};
use tokio_util::sync::CancellationToken;

pub use registry::Registry;

use reconcile::Decision;

use crate::{
    act::Recovery,
    alert::{Alerts, Inspected, Latency, Recent},
    detect::{Detection, Detector, Facts, FindingKind, Suspect, assess},
    docker,
    event::{ContainerEvent, Happening},
    inflight::{InFlight, now_nanos},
    sample::Tap,
    scope::Scope,
};

/// Containers remembered in `seen` before quiet ones are forgotten.
const SEEN_MAX: usize = 10_000;
/// `stop` and `restart` are only noted for evidence (for the alerts' evidence).
const EVENTS: [&str; 8] = ["die", "oom", "kill", "start", "destroy", "health_status", "stop", "restart"];

pub struct Watcher {
    docker: Docker,
    alerts: Alerts,
    detector: Detector,
    inflight: InFlight,
    registry: Registry,
    scope: Scope,
    /// Time of the latest event handled: a resubscription starts there, so
    /// nothing is missed across a reconnect.
    last: i64,
    /// Per container: time and identity of its last event handled, so a
    /// replayed event is not handled twice. Per container, not one for the
    /// engine: Docker orders each container's events, but two containers'
    /// events may arrive a hair out of time order, and a global "older than
    /// the last one" would drop a real exit.
    seen: HashMap<String, (i64, String)>,
    /// Alert exits that look like the daemon's own kills; see
    /// [`crate::reconcile`].
    alert_daemon_exits: bool,
    /// While catching up: container id -> time of the latest `die` event
    /// replayed, so reconciliation does not report an exit twice.
    replayed_dies: Option<HashMap<String, i64>>,
    /// Container id -> `FinishedAt` of exits reported from state: their
    /// `die` event, if it still comes, is not reported again.
    reported: HashMap<String, i64>,
    /// The stats sampler's hook: it hears starts, dies, removals and
    /// health changes from here instead of following events itself.
    stats: Option<Tap>,
    /// Where every event is noted for alerts' evidence.
    recent: Option<Recent>,
    /// Starts the dependents that went down with a container someone
    /// else restarted (see [`crate::dependents`]).
    dependents: Option<Recovery>,
    /// Containers waiting out their unhealthy grace.
    waits: unhealthy::Waits,
}

impl Watcher {
    pub fn new(docker: Docker, alerts: Alerts, inflight: InFlight, registry: Registry, scope: Scope) -> Self {
        Watcher {
            docker,
            alerts,
            detector: Detector::new(),
            inflight,
            registry,
            scope,
            // From now: the registry's startup sync covers what came before.
            last: now_nanos(),
            seen: HashMap::new(),
            alert_daemon_exits: false,
            replayed_dies: None,
            reported: HashMap::new(),
            stats: None,
            recent: None,
            dependents: None,
            waits: unhealthy::Waits::default(),
        }
    }

    /// Recovers dependents after their parent's restart, reporting each on
    /// `outbox`, verified for `verify_window`; `stop_timeout` when one
    /// must be restarted and says nothing of its own.
    pub fn with_dependents(
        mut self,
        outbox: crate::outbox::Outbox,
        verify_window: Duration,
        stop_timeout: Duration,
        redactor: crate::alert::redact::Redactor,
    ) -> Self {
        let host = self.alerts.host().to_owned();
        let (docker, scope, inflight) = (self.docker.clone(), self.scope.clone(), self.inflight.clone());
        let recovery = Recovery { docker, scope, inflight, outbox, host, verify_window, stop_timeout, redactor };
        self.dependents = Some(recovery);
        self
    }

    /// Notes every container event in `recent` (alerts' evidence).
    pub fn with_recent(mut self, recent: Recent) -> Self {
        self.recent = Some(recent);
        self
    }

    /// Hands every container event to the stats sampler too.
    pub fn with_stats(mut self, tap: Tap) -> Self {
        self.stats = Some(tap);
        self
    }

    /// Report exits with kill codes found after the stream was lost, which
    /// are normally attributed to a daemon restart.
    pub fn alert_daemon_exits(mut self, alert: bool) -> Self {
        self.alert_daemon_exits = alert;
        self
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Backoff::standard();
        let filters = HashMap::from([("type", vec!["container"]), ("event", EVENTS.to_vec())]);
        let mut lost = false;
        loop {
            if lost {
                let started = std::time::Instant::now();
                let caught_up = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = self.catch_up(&filters) => r,
                };
                if let Err(e) = caught_up {
                    tracing::warn!(error = %e, "Docker unreachable; retrying");
                    if !backoff.wait_or(cancel.cancelled()).await {
                        return;
                    }
                    continue;
                }
                backoff.reset();
                tracing::info!(catch_up_ms = started.elapsed().as_millis() as u64, "Docker event stream back");
                // Containers may have come and gone while Docker was away.
                self.registry.resync();
            }
            let since = timestamp(self.last);
            let options = EventsOptionsBuilder::new().since(&since).filters(&filters).build();
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
            lost = true;
            if !backoff.wait_or(cancel.cancelled()).await {
                return;
            }
        }
    }

    /// Replays the engine's event log from the last event handled up to
    /// now, then reports from state the exits that no event covered.
    async fn catch_up(&mut self, filters: &HashMap<&str, Vec<&str>>) -> Result<(), crate::error::CollectorError> {
        let cutoff = self.last;
        let until = now_nanos();
        let options =
            EventsOptionsBuilder::new().since(&timestamp(cutoff)).until(&timestamp(until)).filters(filters).build();
        self.replayed_dies = Some(HashMap::new());
        self.reported.clear();
        let mut stream = self.docker.events(Some(options));
        let mut replayed = 0u32;
        // A finite query: the engine closes it after `until`.
        let replay: Result<(), crate::error::CollectorError> = loop {
            match tokio::time::timeout(REPLAY_TIMEOUT, stream.next()).await {
                Ok(Some(Ok(msg))) => {
                    replayed += 1;
                    self.handle(&msg).await;
                }
                Ok(Some(Err(e))) => break Err(e.into()),
                Ok(None) => break Ok(()),
                Err(_) => break Ok(()),
            }
        };
        let dies = self.replayed_dies.take().unwrap_or_default();
        replay?;
        let exits = reconcile::exits_since(&self.docker, cutoff).await?;
        let mut reported = 0u32;
        for exit in exits {
            match exit.decide(cutoff, dies.get(&exit.id).copied(), self.alert_daemon_exits) {
                Decision::Report => {
                    tracing::info!(container = %exit.name, exit_code = exit.code, "exit found in state after reconnecting (no event for it)");
                    reported += 1;
                    self.reported.insert(exit.id.clone(), exit.finished_nano);
                    let suspect = exit.suspect();
                    let facts = exit.facts.clone();
                    self.alert_or_ignore(suspect, Some(facts), None, now_nanos());
                }
                Decision::Skip(why) => {
                    tracing::info!(container = %exit.name, exit_code = exit.code, reason = why, "exit found in state not reported");
                }
                Decision::Seen => {}
            }
        }
        tracing::info!(replayed_events = replayed, reported_from_state = reported, "caught up with Docker");
        Ok(())
    }

    async fn handle(&mut self, msg: &EventMessage) {
        // Before detection, so the alert this event may raise lists it; the
        // store drops replayed duplicates itself.
        if let Some(recent) = &self.recent {
            recent.note(msg);
        }
        let Some(event) = ContainerEvent::from_message(msg) else {
            return;
        };
        let identity = format!("{:?}", event.happening);
        // A die replayed while catching up counts as covered by an event,
        // also when it was handled before the engine went away.
        if let Happening::Died { .. } = event.happening
            && let Some(dies) = &mut self.replayed_dies
        {
            dies.insert(event.id.clone(), event.time_nano);
        }
        if let Some((time, last)) = self.seen.get(&event.id)
            && (event.time_nano < *time || (event.time_nano == *time && identity == *last))
        {
            return;
        }
        self.last = self.last.max(event.time_nano);
        self.seen.insert(event.id.clone(), (event.time_nano, identity));
        if self.seen.len() > SEEN_MAX {
            // Bounded: containers quiet for minutes cannot be replayed.
            let horizon = self.last - 10 * 60 * 1_000_000_000;
            self.seen.retain(|_, (time, _)| *time >= horizon);
        }
        // The parent may be out of scope; its dependents are checked one by one.
        if let (Happening::Started, Some(dependents)) = (&event.happening, &self.dependents) {
            dependents.parent_started(&event.id, &event.name, event.time_nano);
        }
        match event.happening {
            Happening::Started if self.scope.excludes(&event.attributes).is_none() => self
                .registry
                .add(&event.name, Observed::from_labels(&event.id, event.image.as_deref(), &event.attributes)),
            Happening::Destroyed => self.registry.remove(&event.name),
            _ => {}
        }
        if let Some(tap) = &self.stats {
            tap.observe(&event);
        }
        // A run that started after an exit reported from state ends with
        // a die of its own, which is news.
        if let Happening::Started = event.happening
            && self.reported.get(&event.id).is_some_and(|f| event.time_nano > *f)
        {
            self.reported.remove(&event.id);
        }
        if let Some(suspect) = self.detector.observe(&event) {
            if let Happening::Died { .. } = event.happening
                && self.reported.get(&event.id).is_some_and(|f| event.time_nano >= *f)
            {
                self.reported.remove(&event.id);
                tracing::debug!(container = %event.name, "die already reported from state");
                return;
            }
            self.judge(suspect).await;
        }
    }

    async fn judge(&mut self, suspect: Suspect) {
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
    fn alert_or_ignore(
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
                self.alerts.publish_with_evidence(self.alerts.finding(&finding), from, Some(latency));
            }
            Detection::Ignore(reason) => {
                tracing::info!(container = %suspect.name, %reason, "exit not reported")
            }
        }
    }
}

/// Docker's `since`/`until` format: seconds.nanoseconds.
fn timestamp(nanos: i64) -> String {
    format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
}

/// A replay that goes silent this long is over (the engine should close
/// it at `until`; this guards against one that does not).
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);
