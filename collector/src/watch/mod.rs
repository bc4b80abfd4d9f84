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
//! (`reconcile`), then resubscribes. A collector that was itself away (an
//! upgrade, a crash, `kill -9`) does the same from the place it kept in
//! the state folder (`cursor`), so an exit while it was stopped is
//! reported once it is back; on a first start it follows events from now.
//!
//! - `catch_up`: replaying the event log, then reconciling from state.
//! - `cursor`: the place in the event stream, kept across restarts.
//! - `reconcile`: after a reconnect or a restart, the exits no event reported.
//! - `judge`: a suspect's inspection, detection and alert.
//! - `judging`: judging suspects concurrently, in order per container.
//! - `registry`: `hemostat:containers` membership and the heartbeat.
//! - `unhealthy`: waiting out a container's `hemostat.unhealthy_grace`.

mod catch_up;
mod cursor;
mod judge;
mod judging;
mod reconcile;
mod registry;
mod saving;
#[cfg(test)]
mod tests;
mod unhealthy;

use std::{collections::HashMap, sync::Arc, time::Duration};

use bollard::{Docker, models::EventMessage, query_parameters::EventsOptionsBuilder};
use futures::StreamExt;
use hemostat_protocol::{backoff::Backoff, facts::Observed};
use tokio_util::sync::CancellationToken;

pub use cursor::Cursor;
pub use registry::Registry;

use catch_up::timestamp;
use cursor::Saver;
use judging::Judging;

use crate::{
    act::Recovery,
    alert::{Alerts, Recent},
    detect::Detector,
    event::{ContainerEvent, Happening},
    inflight::{InFlight, now_nanos},
    liveness::{Progress, Task},
    sample::Tap,
    scope::Scope,
    state::StateDir,
};

/// Containers remembered in `seen` before quiet ones are forgotten.
const SEEN_MAX: usize = 10_000;
/// How long quiet containers are remembered past [`SEEN_MAX`], and exits
/// reported from state past a catch-up.
const SEEN_HORIZON_NANOS: i64 = 10 * 60 * 1_000_000_000;
/// At shutdown, how long alerts still being gathered may take to reach
/// the outbox before the cursor is written short of them.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// `stop` and `restart` are only noted for evidence (for the alerts' evidence).
/// `remove` is Podman's name for Docker's `destroy` (its Docker-compatible
/// API passes it on as it is).
const EVENTS: [&str; 9] = ["die", "oom", "kill", "start", "destroy", "remove", "health_status", "stop", "restart"];

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
    /// Writes the cursor to the state folder; None: nothing is kept (tests).
    saver: Option<Saver>,
    /// Something the cursor is made of changed since it was last offered.
    dirty: bool,
    /// Suspects being judged (inspected, their alerts' evidence gathered),
    /// off the event loop: the cursor stays short of them.
    judging: Judging,
    /// The start of a catch-up not finished yet (see [`cursor`]).
    catching_up_from: Option<i64>,
    /// Catch up from the cursor before following live events.
    resuming: bool,
    /// The idle watchdog: a live stream silent this long is reopened from
    /// the cursor (None: never).
    idle: Option<Duration>,
    /// Events handled that were news (not replayed duplicates): how a
    /// reopening tells a stalled stream from a quiet engine.
    handled: u64,
    /// Times the idle watchdog reopened the stream, and how many of those
    /// found events the stream had not delivered.
    reopenings: u64,
    stalls: u64,
    /// Where the watcher's progress is recorded (None: tests).
    progress: Option<Arc<Progress>>,
}

impl Watcher {
    pub fn new(docker: Docker, alerts: Alerts, inflight: InFlight, registry: Registry, scope: Scope) -> Self {
        let judge = judge::Judge {
            docker: docker.clone(),
            alerts: alerts.clone(),
            inflight: inflight.clone(),
            scope: scope.clone(),
            waits: unhealthy::Waits::default(),
        };
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
            judging: Judging::new(judge),
            saver: None,
            dirty: true,
            catching_up_from: None,
            resuming: false,
            idle: None,
            handled: 0,
            reopenings: 0,
            stalls: 0,
            progress: None,
        }
    }

    /// Keeps the watcher's place in `dir`, and starts from `cursor`, the
    /// place a previous run kept there, if any: the catch-up after a lost
    /// stream runs first, from it. A cursor older than `max_age` catches up
    /// on the last `max_age` only; `max_age` zero ignores it.
    pub fn resume(mut self, dir: StateDir, cursor: Option<Cursor>, max_age: Duration) -> Self {
        self.saver = Some(Saver::new(dir));
        let Some(cursor) = cursor else { return self };
        let now = now_nanos();
        let away = Duration::from_nanos(now.saturating_sub(cursor.time_nano).max(0) as u64);
        if max_age.is_zero() {
            tracing::info!(cursor = %cursor.time, "HEMOSTAT_RESUME_MAX_AGE=0: not catching up, following Docker events from now");
            return self;
        }
        let bound = now.saturating_sub(max_age.as_nanos().min(i64::MAX as u128) as i64);
        if cursor.time_nano < bound {
            tracing::warn!(
                cursor = %cursor.time, away_s = away.as_secs(), max_age_s = max_age.as_secs(),
                "the collector was away longer than HEMOSTAT_RESUME_MAX_AGE: catching up on the exits of the last {} s only; older ones are not reported",
                max_age.as_secs()
            );
        } else {
            tracing::info!(cursor = %cursor.time, away_ms = away.as_millis() as u64, "resuming from the cursor: catching up on what happened while the collector was away");
        }
        self.last = cursor.time_nano.max(bound);
        self.seen = cursor.seen.into_iter().map(|s| (s.id, (s.time_nano, s.event))).collect();
        self.reported = cursor.reported.into_iter().map(|r| (r.id, r.finished_nano)).collect();
        for kill in cursor.kills {
            self.detector.remember_kill(&kill.id, kill.signal, kill.time_nano);
        }
        self.resuming = true;
        self
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
        let gone = Default::default();
        let recovery = Recovery { docker, scope, inflight, outbox, host, verify_window, stop_timeout, redactor, gone };
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

    /// Reopens the live stream from the cursor after `idle` without an
    /// event (zero: never). Docker's client timeout covers a response's
    /// headers only, so a stream whose connection goes silent would
    /// otherwise leave the collector blind while it looks alive.
    pub fn idle_watchdog(mut self, idle: Duration) -> Self {
        self.idle = (!idle.is_zero()).then_some(idle);
        self
    }

    /// Judges `n` suspects (exits, unhealthy flags) at a time: inspects
    /// them and gathers their alerts' evidence (at least one).
    pub fn alert_concurrency(mut self, n: usize) -> Self {
        self.judging.set_at_once(n);
        self
    }

    /// Records the watcher's progress (events handled, catch-ups) in `progress`.
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
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
        let mut lost = std::mem::take(&mut self.resuming);
        // Set by the idle watchdog when the engine answered: catch up as
        // after a lost stream (the one replay path), but Docker did not go
        // away, so no backoff and no registry resync.
        let mut reopen = false;
        let mut save = tokio::time::interval(cursor::SAVE_EVERY);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if lost || reopen {
                let started = std::time::Instant::now();
                let handled = self.handled;
                let caught_up = tokio::select! {
                    _ = cancel.cancelled() => return self.stop().await,
                    r = self.catch_up(&filters, lost) => r,
                };
                if let Err(e) = caught_up {
                    tracing::warn!(error = %e, "Docker unreachable; retrying");
                    (lost, reopen) = (true, false);
                    if !backoff.wait_or(cancel.cancelled()).await {
                        return self.stop().await;
                    }
                    continue;
                }
                backoff.reset();
                // Caught up: the watcher sees the engine again (a failed
                // catch-up is no progress: the collector is blind).
                self.alive();
                if lost {
                    tracing::info!(catch_up_ms = started.elapsed().as_millis() as u64, "Docker event stream back");
                    // Containers may have come and gone while Docker was away.
                    self.registry.resync();
                } else {
                    self.reopened(self.handled - handled, started.elapsed());
                }
                (lost, reopen) = (false, false);
            }
            let since = timestamp(self.last);
            let options = EventsOptionsBuilder::new().since(&since).filters(&filters).build();
            let mut stream = self.docker.events(Some(options));
            tracing::debug!(%since, "subscribed to Docker events");
            // Never fires without an idle setting (a century is never here).
            let idle = self.idle.unwrap_or(Duration::from_secs(100 * 365 * 86_400));
            let watchdog = tokio::time::sleep(idle);
            tokio::pin!(watchdog);
            let error = loop {
                tokio::select! {
                    _ = cancel.cancelled() => return self.stop().await,
                    _ = save.tick() => self.save(),
                    item = stream.next() => match item {
                        Some(Ok(msg)) => {
                            backoff.reset();
                            self.alive();
                            watchdog.as_mut().reset(tokio::time::Instant::now() + idle);
                            self.handle(&msg).await;
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "stream ended".to_owned(),
                    },
                    _ = &mut watchdog => {
                        self.reopenings += 1;
                        // A quiet engine and a hung stream look alike from
                        // here; the engine's answer to a ping (on another
                        // connection, with its own timeout) and the replay
                        // tell them apart.
                        match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
                            Ok(Ok(_)) => {
                                tracing::debug!(idle_ms = idle.as_millis() as u64, "no Docker event for the idle time; the engine answers: reopening the stream from the cursor");
                                reopen = true;
                                break String::new();
                            }
                            Ok(Err(e)) => break format!("no event for {} ms and the engine's ping failed: {e}", idle.as_millis()),
                            Err(_) => break format!("no event for {} ms and the engine's ping got no answer within {} s", idle.as_millis(), PING_TIMEOUT.as_secs()),
                        }
                    }
                }
            };
            if reopen {
                continue;
            }
            tracing::warn!(%error, "Docker event stream lost; reconnecting");
            lost = true;
            if !backoff.wait_or(cancel.cancelled()).await {
                return self.stop().await;
            }
        }
    }

    /// After the idle watchdog's reopening: a replay that found events the
    /// live stream had not delivered means the stream had stalled.
    fn reopened(&mut self, missed: u64, took: Duration) {
        if let Some(p) = &self.progress {
            p.reopened(missed > 0);
        }
        if missed > 0 {
            self.stalls += 1;
            tracing::warn!(
                missed_events = missed,
                reopenings = self.reopenings,
                stalls = self.stalls,
                catch_up_ms = took.as_millis() as u64,
                "Docker event stream had stalled: reopened from the cursor, replaying the events it had not delivered"
            );
        } else {
            // Routine on a quiet engine: once per idle time.
            tracing::debug!(
                reopenings = self.reopenings,
                stalls = self.stalls,
                catch_up_ms = took.as_millis() as u64,
                "Docker event stream idle: reopened from the cursor, nothing missed"
            );
        }
    }

    /// The stream (or a catch-up) delivered: the watcher is not stuck.
    fn alive(&self) {
        if let Some(p) = &self.progress {
            p.alive(Task::Watcher);
        }
    }

    async fn handle(&mut self, msg: &EventMessage) {
        let received_nano = now_nanos();
        // Before detection, so the alert this event may raise lists it; the
        // store drops replayed duplicates itself.
        if let Some(recent) = &self.recent {
            recent.note(msg);
        }
        let Some(event) = ContainerEvent::from_message(msg) else {
            return;
        };
        let identity = event.happening.identity();
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
        self.handled += 1;
        if let Some(p) = &self.progress {
            p.progressed(Task::Watcher);
        }
        self.seen.insert(event.id.clone(), (event.time_nano, identity));
        self.dirty = true;
        if self.seen.len() > SEEN_MAX {
            // Bounded: containers quiet for minutes cannot be replayed.
            let horizon = self.last - SEEN_HORIZON_NANOS;
            self.seen.retain(|_, (time, _)| *time >= horizon);
        }
        // The parent may be out of scope; its dependents are checked one by one.
        if let (Happening::Started, Some(dependents)) = (&event.happening, &self.dependents) {
            dependents.parent_started(&event.id, &event.name, event.time_nano);
        }
        // Before the start of its successor, which may strand its dependents.
        if let (Happening::Destroyed, Some(dependents)) = (&event.happening, &self.dependents) {
            dependents.container_removed(&event.id, &event.name);
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
            self.judging.start(suspect, judge::Basis::Inspect, received_nano).await;
        }
    }
}

/// How long the idle watchdog waits for the engine's answer to a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
