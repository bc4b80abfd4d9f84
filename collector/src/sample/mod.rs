//! Sample: the stats loop. Every interval, one reading per running
//! container (`source`: its cgroup files, else the Docker stats API), fed
//! to that container's resource detectors ([`crate::detect`]), then one
//! Redis pipeline with every `hemostat:stats:<host/name>` key (`store`).
//! Start events feed the restart-loop detector. What they find goes out
//! through [`crate::alert`], like the watcher's crash alerts.
//!
//! The set of containers comes from one list at startup, then from the
//! watcher's Docker events through a [`Tap`] (no second event stream, no
//! polling of the container list). Per container it keeps the open cgroup
//! files, the previous reading, two gauges and the leak window: a few KiB.
//! Each interval's readings are also noted, under one lock, in the alerts'
//! recent facts, whose last minute an alert's evidence summarises.
//!
//! - `source`: where a running container's readings come from.
//! - `cgroup`: readings from cgroup v1/v2 files and `/proc`.
//! - `store`: the stats keys and chart samples, one pipeline per interval.
//! - `snapshot`: `--once`, a JSON snapshot of this host's containers.

mod cgroup;
mod snapshot;
mod source;
mod store;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bollard::{Docker, query_parameters::ListContainersOptions};
use hemostat_protocol::connection::Connection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use snapshot::take as snapshot;

use cgroup::{ReadBuffer, Roots, Version};
use source::Source;
use store::{Batch, Store};

use crate::{
    alert::{Alerts, Inspected, Measurement, Recent},
    config::Config,
    detect::{LeakRule, RestartRule, Restarts, Rule, Rules, Vitals},
    docker,
    error::CollectorError,
    event::{ContainerEvent, Happening},
    inflight::InFlight,
    liveness::{Body, Progress, Task},
    scope::Scope,
    usage::{Identity, View},
};

/// Exited containers' keys are rewritten this often (their TTL is 300 s):
/// nothing changes while they are down, so every interval would be waste.
const EXITED_REFRESH: Duration = Duration::from_secs(100);
/// Leak windows hold at most this many samples.
const MAX_LEAK_SAMPLES: usize = 600;

/// Everything the sampler needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    pub roots: Roots,
    pub rules: Rules,
    pub restarts: RestartRule,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        let rule = |threshold| Rule {
            threshold,
            sustain: c.sustain_seconds.as_secs_f64(),
            clear: c.clear_seconds.as_secs_f64(),
            margin: c.clear_margin,
        };
        let interval = c.stats_interval;
        let samples =
            if interval.is_zero() { 0 } else { (c.leak_window.as_secs_f64() / interval.as_secs_f64()).ceil() as usize };
        Settings {
            interval,
            roots: roots(c),
            rules: Rules {
                cpu: rule(c.threshold_cpu_percent),
                memory: rule(c.threshold_memory_percent),
                leak: LeakRule { window: samples.clamp(10, MAX_LEAK_SAMPLES), horizon: c.leak_horizon.as_secs_f64() },
            },
            restarts: RestartRule {
                max: c.max_restarts,
                window_nanos: c.restart_window.as_nanos().min(i64::MAX as u128) as i64,
            },
        }
    }
}

pub fn roots(c: &Config) -> Roots {
    Roots { proc: c.proc_root.clone(), cgroup: c.cgroup_root.clone() }
}

/// What the sampler works with, shared with the rest of the collector.
#[derive(Clone)]
pub struct Deps {
    pub docker: Docker,
    /// For the stats keys; alerts go through `alerts`' outbox instead.
    pub conn: Connection,
    pub alerts: Alerts,
    pub scope: Scope,
    pub inflight: InFlight,
    /// Where every reading is noted for alerts' evidence.
    pub recent: Recent,
    /// Where each round of readings counts as the sampler's progress.
    pub progress: Arc<Progress>,
}

/// What the sampler needs to hear of a Docker event.
#[derive(Debug)]
enum Notice {
    Started { id: String, name: String, time_nano: i64, attributes: HashMap<String, String> },
    Died { id: String },
    Destroyed { id: String },
    Health { id: String, healthy: bool },
}

/// The watcher's hook into the sampler: it hands over each container
/// event without waiting (unbounded queue, drained every interval at the
/// latest), so the sampler can never slow the crash path down.
#[derive(Clone)]
pub struct Tap {
    tx: mpsc::UnboundedSender<Notice>,
}

impl Tap {
    pub fn observe(&self, e: &ContainerEvent) {
        let id = e.id.clone();
        let notice = match e.happening {
            Happening::Started => {
                Notice::Started { id, name: e.name.clone(), time_nano: e.time_nano, attributes: e.attributes.clone() }
            }
            Happening::Died { .. } => Notice::Died { id },
            Happening::Destroyed => Notice::Destroyed { id },
            Happening::Health { healthy } => Notice::Health { id, healthy },
            Happening::Oom | Happening::Killed { .. } => return,
        };
        let _ = self.tx.send(notice);
    }
}

/// The sampler unless `--stats-interval` is 0: the tap goes to the
/// watcher; each call of the closure makes an instance, which ends on its
/// token, dropping its outbox handle. Instances take the tap's queue in
/// turn (a restarted sampler gets the notices its predecessor left).
pub fn start(config: &Config, deps: Deps) -> Option<(Tap, impl FnMut(CancellationToken) -> Body + Send + 'static)> {
    if config.stats_interval.is_zero() {
        tracing::info!("stats sampling off (--stats-interval 0)");
        return None;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let settings = Settings::from_config(config);
    let start = move |cancel: CancellationToken| -> Body {
        let (deps, settings, rx) = (deps.clone(), settings.clone(), rx.clone());
        Box::pin(async move {
            // Held by one instance at a time; the previous one has ended.
            let mut rx = rx.lock_owned().await;
            Sampler::new(deps, settings).run(&mut rx, cancel).await
        })
    };
    Some((Tap { tx }, start))
}

#[derive(Debug)]
struct Tracked {
    who: Identity,
    status: String,
    health: Option<String>,
    /// None while the container is not running.
    source: Option<Source>,
    vitals: Vitals,
    /// The fleet's rules with the container's own labels applied.
    rules: Rules,
    /// When the key of a container that is not running is due.
    write_at: Option<Instant>,
}

impl Tracked {
    fn new(who: Identity, rules: Rules) -> Tracked {
        Tracked {
            who,
            status: "created".into(),
            health: None,
            source: None,
            vitals: Vitals::default(),
            rules,
            write_at: Some(Instant::now()),
        }
    }

    fn running(&self) -> bool {
        self.source.is_some()
    }

    fn view(&self) -> View<'_> {
        View {
            who: &self.who,
            status: &self.status,
            health: self.health.as_deref(),
            usage: if self.running() { self.vitals.usage() } else { None },
        }
    }
}

struct Sampler {
    progress: Arc<Progress>,
    docker: Docker,
    alerts: Alerts,
    scope: Scope,
    inflight: InFlight,
    recent: Recent,
    settings: Settings,
    version: Option<Version>,
    host_memory: u64,
    tracked: HashMap<String, Tracked>,
    restarts: Restarts,
    store: Store,
    origin: Instant,
    /// What every container's cgroup files are read into, in turn.
    buf: ReadBuffer,
}

impl Sampler {
    fn new(deps: Deps, settings: Settings) -> Sampler {
        let Deps { docker, conn, alerts, scope, inflight, recent, progress } = deps;
        Sampler {
            progress,
            docker,
            alerts,
            scope,
            inflight,
            recent,
            version: settings.roots.version(),
            host_memory: cgroup::host_memory(&settings.roots.proc),
            store: Store::new(conn, settings.interval),
            settings,
            tracked: HashMap::new(),
            restarts: Restarts::default(),
            origin: Instant::now(),
            buf: ReadBuffer::default(),
        }
    }

    async fn run(mut self, rx: &mut mpsc::UnboundedReceiver<Notice>, cancel: CancellationToken) {
        let budget = cgroup::raise_fd_limit();
        match self.version {
            Some(v) => {
                tracing::info!(cgroup = ?v, root = %self.settings.roots.cgroup.display(), fd_budget = budget, interval = ?self.settings.interval, "sampling container stats from cgroup files")
            }
            None => {
                tracing::warn!(root = %self.settings.roots.cgroup.display(), "no cgroup filesystem readable there; sampling through the Docker stats API (costlier)")
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = self.sync() => if let Err(e) = r {
                // Events still bring containers in as they start.
                tracing::warn!(error = %e, "could not list containers for stats");
            },
        }
        let mut tick = tokio::time::interval(self.settings.interval);
        // A late tick is skipped, not bunched: rates are per elapsed time anyway.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                notice = rx.recv() => match notice {
                    Some(n) => self.handle(n).await,
                    None => return,
                },
                _ = tick.tick() => {
                    self.sample().await;
                    self.progress.progressed(Task::Sampler);
                }
            }
        }
    }

    fn identity(&self, id: String, name: String, image: Option<String>) -> Identity {
        Identity { host: self.alerts.host().to_owned(), id, name, image }
    }

    /// Every container at startup: running ones are sampled, the others
    /// shown with their status.
    async fn sync(&mut self) -> Result<(), CollectorError> {
        let list = self.docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await?;
        for c in list {
            // A long list read through a slow engine is work, not a stall.
            self.progress.alive(Task::Sampler);
            let Some(id) = c.id else { continue };
            if c.labels.as_ref().is_some_and(|l| self.scope.excludes(l).is_some()) {
                continue;
            }
            let status = c.state.map(|s| s.to_string()).unwrap_or_default();
            if status == "running" {
                self.track(&id).await;
            } else {
                let name = c.names.and_then(|n| n.into_iter().next()).unwrap_or_else(|| id.clone());
                // Not sampled until it starts, when `track` reads its labels.
                let who = self.identity(id.clone(), name.trim_start_matches('/').to_owned(), c.image);
                let mut t = Tracked::new(who, self.settings.rules);
                t.status = status;
                self.tracked.insert(id, t);
            }
        }
        tracing::debug!(containers = self.tracked.len(), "stats sampler synced");
        Ok(())
    }

    /// (Re)reads a container that is (or just was) started: its process,
    /// hence its cgroup and network namespace, are new.
    async fn track(&mut self, id: &str) {
        let inspect = match docker::inspect(&self.docker, id).await {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "inspect for stats failed");
                return;
            }
        };
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        if self.scope.excludes(&labels).is_some() {
            return;
        }
        let who = self.identity(
            id.to_owned(),
            docker::name(&inspect).unwrap_or_else(|| id.to_owned()),
            inspect.config.as_ref().and_then(|c| c.image.clone()),
        );
        let state = inspect.state.as_ref();
        let running = docker::is_running(&inspect);
        let pid = state.and_then(|s| s.pid).filter(|p| *p > 0).and_then(|p| u32::try_from(p).ok());
        let source = running.then(|| Source::open(&self.settings.roots, self.version, pid, id, &who.name));
        // Bad labels are reported by the alert that reads them (alerting).
        let rules = self.settings.rules.with_policy(&docker::policy(&inspect).policy);
        let mut t = Tracked::new(who, rules);
        t.status = state.and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_else(|| "running".into());
        t.health = state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none");
        t.source = source;
        t.write_at = (!running).then(Instant::now);
        self.tracked.insert(id.to_owned(), t);
    }

    async fn handle(&mut self, notice: Notice) {
        match notice {
            Notice::Started { id, name, time_nano, attributes } => {
                if self.scope.excludes(&attributes).is_some() {
                    return;
                }
                // The collector's own restarts are remediation, not a loop.
                let ours = self.inflight.covers(&id, time_nano) || self.inflight.covers(&name, time_nano);
                let looping = self.restarts.started(&id, time_nano, ours, &self.settings.restarts);
                self.track(&id).await;
                if let (Some(count), Some(t)) = (looping, self.tracked.get(&id)) {
                    let alert = self.alerts.restart_loop(&t.view(), count, &self.settings.restarts);
                    self.alerts.publish_with_evidence(alert, Inspected::No(t.who.id.clone()), None);
                }
            }
            Notice::Died { id } => {
                if let Some(t) = self.tracked.get_mut(&id) {
                    self.restarts.died(&id);
                    t.status = "exited".into();
                    t.source = None;
                    t.vitals.stopped();
                    t.write_at = Some(Instant::now());
                }
            }
            Notice::Destroyed { id } => {
                self.restarts.forget(&id);
                // The watcher forgot it too, but a reading may have been
                // noted since; after this notice none is.
                self.recent.forget(&id);
                if let Some(t) = self.tracked.remove(&id) {
                    self.store.remove(t.who.key());
                }
            }
            Notice::Health { id, healthy } => {
                if let Some(t) = self.tracked.get_mut(&id) {
                    t.health = Some(if healthy { "healthy" } else { "unhealthy" }.into());
                }
            }
        }
    }

    /// One interval: read, detect, note, alert, write.
    async fn sample(&mut self) {
        let due =
            self.tracked.iter_mut().filter_map(|(id, t)| Some((id.as_str(), t.who.name.as_str(), t.source.as_mut()?)));
        let readings = source::read_all(&self.docker, due, &mut self.buf).await;
        let now = self.origin.elapsed().as_secs_f64();
        let mut noted = Vec::with_capacity(readings.len());
        let mut alerts = Vec::new();
        for (id, timed) in &readings {
            let Some(t) = self.tracked.get_mut(id) else {
                continue;
            };
            // A reading racing a die event is stale: drop it.
            if !t.running() {
                continue;
            }
            let rated = t.vitals.rated();
            for symptom in t.vitals.observe(*timed, self.host_memory, now, &t.rules) {
                alerts.push(self.alerts.symptom(&t.view(), &symptom, &t.rules));
            }
            if let Some(u) = t.vitals.usage() {
                noted.push(Measurement {
                    id,
                    at: timed.at,
                    cpu_pct: rated.then_some(u.cpu_pct),
                    mem_pct: u.memory_pct,
                    mem_bytes: u.memory_usage,
                    mem_limit: u.memory_limit,
                });
            }
        }
        // Noted before the alerts go, so each one's summary has the
        // reading that raised it.
        self.recent.record(&noted);
        drop(noted);
        for alert in alerts {
            let id = alert.container_id.clone().unwrap_or_else(|| alert.container.clone());
            self.alerts.publish_with_evidence(alert, Inspected::No(id), None);
        }
        self.write().await;
    }

    /// Every running container's key and chart sample, and the due keys of
    /// stopped ones.
    async fn write(&mut self) {
        let now = Instant::now();
        let mut batch = Batch::now();
        for t in self.tracked.values_mut() {
            let due = t.running() || t.write_at.is_some_and(|at| at <= now);
            if !due {
                continue;
            }
            batch.add(&t.view());
            if !t.running() {
                t.write_at = Some(now + EXITED_REFRESH);
            }
        }
        self.store.write(batch).await;
    }
}
