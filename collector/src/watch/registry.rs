//! This host's entry in the fleet: its containers in `hemostat:containers`,
//! what it says about each (`hemostat:facts:{host/name}`: identity, image,
//! policy from its labels; the only account of a container the safety gate
//! believes), and a heartbeat key that expires if the collector dies. The
//! heartbeat carries each task's progress ([`crate::liveness`]): a
//! collector whose tasks stalled is up, but not well, and says so.
//!
//! While a label silence holds, each heartbeat also writes which label
//! silences select each container to its facts (alerts write it too): a
//! silence added since a container's last alert holds at the gate for any
//! request, within a heartbeat.

use std::{collections::HashSet, sync::Arc, time::Duration};

use bollard::{Docker, query_parameters::ListContainersOptions};
use hemostat_protocol::{
    ContainerRef,
    envelope::seed_timestamp,
    facts::{self, Observed},
    keys,
    liveness::CollectorHeartbeat,
};
use hemostat_protocol::{ProtocolError, connection::Connection};
use redis::AsyncCommands;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{
    alert::LabelSilences,
    error::CollectorError,
    liveness::Progress,
    outbox::{FactsState, Refusal, classify},
    scope::Scope,
};

pub use hemostat_protocol::keys::heartbeat as heartbeat_key;

#[derive(Debug)]
enum Change {
    /// A container started: a member, with what its collector says of it.
    Add(String, Box<Observed>),
    Remove(String),
    /// Re-derive this host's members from Docker (startup, after a Docker
    /// reconnect, after a failed update).
    Resync,
}

/// Handle to the registry task; updates are queued so that Redis latency
/// never delays the Docker event loop.
#[derive(Clone)]
pub struct Registry {
    tx: mpsc::UnboundedSender<Change>,
}

impl Registry {
    // Each argument is one thing the registry keeps; a struct of them would
    // only be built here.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        conn: Connection,
        docker: Docker,
        host: String,
        interval: Duration,
        scope: Scope,
        silences: LabelSilences,
        progress: Arc<Progress>,
        current: watch::Sender<FactsState>,
        cancel: CancellationToken,
    ) -> (Registry, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Change::Resync);
        let task =
            Task { conn, docker, host, interval, scope, silences, progress, current, dirty: false, beating: true };
        (Registry { tx }, tokio::spawn(task.run(rx, cancel)))
    }

    pub fn add(&self, name: &str, observed: Observed) {
        let _ = self.tx.send(Change::Add(name.to_owned(), Box::new(observed)));
    }

    pub fn remove(&self, name: &str) {
        let _ = self.tx.send(Change::Remove(name.to_owned()));
    }

    pub fn resync(&self) {
        let _ = self.tx.send(Change::Resync);
    }

    /// A registry whose updates go nowhere (tests of the watcher alone).
    #[cfg(test)]
    pub(crate) fn detached() -> Registry {
        Registry { tx: mpsc::unbounded_channel().0 }
    }
}

struct Task {
    conn: Connection,
    docker: Docker,
    host: String,
    interval: Duration,
    scope: Scope,
    silences: LabelSilences,
    /// The other tasks' progress, in each heartbeat.
    progress: Arc<Progress>,
    /// Whether Redis holds every member's facts as Docker has them: stale
    /// from a failed write until a resync succeeds, away while heartbeats
    /// fail. The outbox holds alerts back until they are current (see
    /// [`FactsState`]): the gate refuses a container whose facts are
    /// missing, and a container that started during a Redis outage has
    /// none until the resync.
    current: watch::Sender<FactsState>,
    /// An update failed: resync on the next heartbeat instead of retrying
    /// each update, since a resync repairs everything at once.
    dirty: bool,
    /// The last heartbeat succeeded: failures and recoveries are logged
    /// once per outage, not once per tick.
    beating: bool,
}

/// How soon a failed heartbeat (and the registry with it) is tried again.
const OUTAGE_RETRY: Duration = Duration::from_secs(1);

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Change>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {
                    match self.heartbeat().await {
                        Ok(()) if self.beating => {}
                        Ok(()) => {
                            self.beating = true;
                            self.current.send_replace(FactsState::Stale);
                            tracing::info!("heartbeat resumed");
                        }
                        Err(e) => {
                            // The retry comes within a second, not an
                            // interval: alerts held in the outbox go out
                            // the moment Redis is back, and the gate
                            // refuses those whose container the registry
                            // does not list yet. A Redis that comes back
                            // may have lost our members (restarted without
                            // persistence), so resync once it answers.
                            tick.reset_after(self.interval.min(OUTAGE_RETRY));
                            self.dirty = true;
                            self.current.send_replace(FactsState::Away);
                            if std::mem::replace(&mut self.beating, false) {
                                tracing::warn!(error = %e, "heartbeat failed; retrying every second");
                            } else {
                                tracing::debug!(error = %e, "heartbeat failed again");
                            }
                        }
                    }
                    if self.dirty {
                        self.apply(Change::Resync).await;
                    }
                    if self.beating && let Err(e) = self.silenced().await {
                        tracing::debug!(error = %e, "label silences not written to the facts; next beat");
                    }
                }
                change = rx.recv() => match change {
                    Some(change) => {
                        let before = *self.current.borrow();
                        self.apply(change).await;
                        // Redis went away under this write: the next beat
                        // (which resyncs) within a second, as after a failed
                        // beat (once: later failures must not keep moving it).
                        if before != FactsState::Away && *self.current.borrow() == FactsState::Away {
                            tick.reset_after(self.interval.min(OUTAGE_RETRY));
                        }
                    }
                    None => return,
                },
            }
        }
    }

    async fn apply(&mut self, change: Change) {
        let result = match &change {
            Change::Add(name, observed) => self.add(name, observed).await,
            Change::Remove(name) => {
                let mut pipe = redis::pipe();
                pipe.srem(keys::CONTAINERS, self.member(name)).ignore();
                facts::forget(&mut pipe, &self.container(name));
                pipe.query_async(&mut self.conn).await.map_err(Into::into)
            }
            Change::Resync => self.resync().await,
        };
        match result {
            Ok(()) => {
                if matches!(change, Change::Resync) {
                    self.dirty = false;
                    self.current.send_replace(FactsState::Current);
                }
                tracing::debug!(?change, "registry updated");
            }
            Err(e) => {
                self.stale(&e);
                tracing::warn!(?change, error = %e, "registry update failed; will resync");
            }
        }
    }

    /// A write failed: resync on the next beat; alerts wait for it. A
    /// Redis that does not answer (an outage, not a refusal) makes the
    /// facts away at once, not only at the next failed heartbeat (up to an
    /// interval later): an alert must not take "stale" for "Redis answers"
    /// and go out the moment Redis is back, before the facts.
    fn stale(&mut self, error: &CollectorError) {
        self.dirty = true;
        let outage = match error {
            CollectorError::Redis(e) => classify(&ProtocolError::Redis(e.clone())) == Refusal::Transient,
            CollectorError::Protocol(e) => classify(e) == Refusal::Transient,
            _ => false,
        };
        self.current.send_if_modified(|state| {
            let was = *state;
            *state = match was {
                _ if outage => FactsState::Away,
                FactsState::Away => FactsState::Away,
                _ => FactsState::Stale,
            };
            was != *state
        });
    }

    fn container(&self, name: &str) -> ContainerRef {
        ContainerRef::new(&self.host, name.trim_start_matches('/'))
    }

    fn member(&self, name: &str) -> String {
        self.container(name).key()
    }

    async fn add(&mut self, name: &str, observed: &Observed) -> Result<(), CollectorError> {
        let mut pipe = redis::pipe();
        pipe.sadd(keys::CONTAINERS, self.member(name)).ignore();
        facts::observe(&mut pipe, &self.container(name), observed)?;
        let () = pipe.query_async(&mut self.conn).await?;
        Ok(())
    }

    async fn resync(&mut self) -> Result<(), CollectorError> {
        let containers =
            self.docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await?;
        let in_scope: Vec<(String, Observed)> = containers
            .iter()
            .filter(|c| c.labels.as_ref().is_none_or(|l| self.scope.excludes(l).is_none()))
            .filter_map(|c| {
                let name = c.names.as_ref()?.first()?;
                let labels = c.labels.clone().unwrap_or_default();
                Some((self.member(name), Observed::from_labels(c.id.as_deref()?, c.image.as_deref(), &labels)))
            })
            .collect();
        let present: HashSet<&String> = in_scope.iter().map(|(member, _)| member).collect();
        let members: HashSet<String> = self.conn.smembers(keys::CONTAINERS).await?;
        let prefix = format!("{}/", self.host);
        let stale: Vec<&String> = members.iter().filter(|m| m.starts_with(&prefix) && !present.contains(*m)).collect();
        if stale.is_empty() && present.is_empty() {
            // Nothing to write; an empty pipeline is an error to Redis.
            return Ok(());
        }
        let mut pipe = redis::pipe();
        if !stale.is_empty() {
            pipe.srem(keys::CONTAINERS, &stale).ignore();
            for member in &stale {
                if let Some(c) = ContainerRef::parse(member) {
                    facts::forget(&mut pipe, &c);
                }
            }
        }
        if !present.is_empty() {
            pipe.sadd(keys::CONTAINERS, present.iter().collect::<Vec<_>>()).ignore();
        }
        for (member, observed) in &in_scope {
            if let Some(c) = ContainerRef::parse(member) {
                facts::observe(&mut pipe, &c, observed)?;
            }
        }
        let () = pipe.query_async(&mut self.conn).await?;
        tracing::debug!(containers = present.len(), "registry resynced");
        Ok(())
    }

    /// While a label silence holds: the silences that select each container
    /// of this host, into its facts.
    async fn silenced(&mut self) -> Result<(), CollectorError> {
        if !self.silences.any().await {
            return Ok(());
        }
        let containers =
            self.docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await?;
        let mut pipe = redis::pipe();
        let mut written = 0usize;
        for c in &containers {
            let labels = c.labels.clone().unwrap_or_default();
            let Some(name) = c.names.as_ref().and_then(|n| n.first()) else { continue };
            if self.scope.excludes(&labels).is_some() {
                continue;
            }
            let ids = self.silences.selecting(&labels).await;
            facts::silenced(&mut pipe, &self.container(name), &ids)?;
            written += 1;
        }
        if written > 0 {
            let () = pipe.query_async(&mut self.conn).await?;
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), CollectorError> {
        let value = serde_json::to_string(&CollectorHeartbeat {
            host: self.host.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            interval_seconds: self.interval.as_secs_f64(),
            timestamp: seed_timestamp(),
            degraded: self.progress.degraded(),
            tasks: self.progress.tasks(),
        })?;
        let ttl = (self.interval * 3).as_secs().max(1);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        // The set outlives the heartbeat key, so a collector that went
        // silent is still known to whoever reports missing collectors. Two
        // slots on a cluster, so not one MULTI: a beat half-written is
        // completed by the next one.
        let () = redis::pipe()
            .set_ex(heartbeat_key(&self.host), value, ttl)
            .ignore()
            .zadd(keys::COLLECTORS, &self.host, now_ms)
            .ignore()
            .query_async(&mut self.conn)
            .await?;
        Ok(())
    }
}
