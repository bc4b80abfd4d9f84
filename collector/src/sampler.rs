//! The stats loop: every interval, one reading per running container, one
//! Redis pipeline with every `hemostat:stats:<host/name>` key, and the
//! detectors (thresholds, leak, restart loop) fed from the same readings.
//!
//! The set of containers comes from one list at startup, then from the
//! watcher's Docker events through a [`Tap`] (no second event stream, no
//! polling of the container list). Per container it keeps the open cgroup
//! files, the previous reading, two gauges and the leak window: a few KiB.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    query_parameters::{ListContainersOptions, StatsOptionsBuilder},
};
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use hemostat_protocol::connection::Connection;
use hemostat_protocol::{
    ContainerRef, Envelope, EventKind,
    envelope::{agent, seed_timestamp},
    event::{Anomaly, AnomalyKind, HealthAlert, Severity},
    keys,
    series::SeriesSample,
};
use serde_json::json;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    cgroup::{self, Probe, Roots, Version},
    config::Config,
    docker,
    error::CollectorError,
    event::{ContainerEvent, Happening},
    inflight::InFlight,
    leak::{Leak, LeakDetector, LeakRule},
    outbox::Outbox,
    restarts::{RestartRule, Restarts},
    scope::Scope,
    stats::{self, Identity, Timed, Usage, round2},
    thresholds::{Breach, Gauge, Rule},
};

/// Stats API calls in flight at once for containers without readable
/// cgroup files: enough to finish a few hundred within an interval,
/// without stampeding dockerd.
const API_CONCURRENCY: usize = 8;
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
    pub cpu: Rule,
    pub memory: Rule,
    pub leak: LeakRule,
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
            cpu: rule(c.threshold_cpu_percent),
            memory: rule(c.threshold_memory_percent),
            leak: LeakRule { window: samples.clamp(10, MAX_LEAK_SAMPLES), horizon: c.leak_horizon.as_secs_f64() },
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

/// Starts the sampler unless `--stats-interval` is 0; the tap goes to the
/// watcher. The task ends on `cancel`, dropping its outbox handle.
#[allow(clippy::too_many_arguments)]
pub fn start(
    config: &Config,
    docker: Docker,
    conn: Connection,
    outbox: Outbox,
    scope: Scope,
    inflight: InFlight,
    cancel: CancellationToken,
) -> (Option<Tap>, JoinHandle<()>) {
    if config.stats_interval.is_zero() {
        tracing::info!("stats sampling off (--stats-interval 0)");
        return (None, tokio::spawn(async {}));
    }
    let settings = Settings::from_config(config);
    let (tap, task) = Sampler::spawn(docker, conn, outbox, scope, inflight, settings, config.host.clone(), cancel);
    (Some(tap), task)
}

/// Where a running container's readings come from.
#[derive(Debug)]
enum Source {
    /// Boxed: a probe holds open files and buffers, the API variant nothing.
    Cgroup(Box<Probe>),
    /// The Docker stats API: cgroup files not readable.
    Api,
}

#[derive(Debug)]
struct Tracked {
    who: Identity,
    status: String,
    health: Option<String>,
    source: Option<Source>,
    prev: Option<Timed>,
    last: Option<Usage>,
    cpu: Gauge,
    memory: Gauge,
    leak: LeakDetector,
    /// When the key of a container that is not running is due.
    write_at: Option<Instant>,
}

impl Tracked {
    fn running(&self) -> bool {
        self.source.is_some()
    }
}

pub struct Sampler {
    docker: Docker,
    conn: Connection,
    outbox: Outbox,
    scope: Scope,
    inflight: InFlight,
    settings: Settings,
    host: String,
    version: Option<Version>,
    host_memory: u64,
    tracked: HashMap<String, Tracked>,
    restarts: Restarts,
    /// Keys of removed containers, deleted with the next pipeline.
    deleted: Vec<String>,
    origin: Instant,
    /// Whether the last Redis write failed (log once per outage).
    redis_down: bool,
}

impl Sampler {
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        docker: Docker,
        conn: Connection,
        outbox: Outbox,
        scope: Scope,
        inflight: InFlight,
        settings: Settings,
        host: String,
        cancel: CancellationToken,
    ) -> (Tap, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let version = settings.roots.version();
        let sampler = Sampler {
            docker,
            conn,
            outbox,
            scope,
            inflight,
            host_memory: stats::host_memory(&settings.roots.proc),
            settings,
            host,
            version,
            tracked: HashMap::new(),
            restarts: Restarts::default(),
            deleted: Vec::new(),
            origin: Instant::now(),
            redis_down: false,
        };
        (Tap { tx }, tokio::spawn(sampler.run(rx, cancel)))
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Notice>, cancel: CancellationToken) {
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
                _ = tick.tick() => self.sample().await,
            }
        }
    }

    /// Every container at startup: running ones are sampled, the others
    /// shown with their status.
    async fn sync(&mut self) -> Result<(), CollectorError> {
        let list = self.docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await?;
        for c in list {
            let Some(id) = c.id else { continue };
            if c.labels.as_ref().is_some_and(|l| self.scope.excludes(l).is_some()) {
                continue;
            }
            let status = c.state.map(|s| s.to_string()).unwrap_or_default();
            if status == "running" {
                self.track(&id).await;
            } else {
                let name = c.names.and_then(|n| n.into_iter().next()).unwrap_or_else(|| id.clone());
                let mut t = self.new_tracked(Identity {
                    host: self.host.clone(),
                    id: id.clone(),
                    name: name.trim_start_matches('/').to_owned(),
                    image: c.image,
                });
                t.status = status;
                self.tracked.insert(id, t);
            }
        }
        tracing::debug!(containers = self.tracked.len(), "stats sampler synced");
        Ok(())
    }

    fn new_tracked(&self, who: Identity) -> Tracked {
        Tracked {
            who,
            status: "created".into(),
            health: None,
            source: None,
            prev: None,
            last: None,
            cpu: Gauge::default(),
            memory: Gauge::default(),
            leak: LeakDetector::default(),
            write_at: Some(Instant::now()),
        }
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
        let who = Identity {
            host: self.host.clone(),
            id: id.to_owned(),
            name: docker::name(&inspect).unwrap_or_else(|| id.to_owned()),
            image: inspect.config.as_ref().and_then(|c| c.image.clone()),
        };
        let state = inspect.state.as_ref();
        let running = docker::is_running(&inspect);
        let pid = state.and_then(|s| s.pid).filter(|p| *p > 0).and_then(|p| u32::try_from(p).ok());
        let source = running.then(|| match self.version {
            Some(v) => match Probe::open(&self.settings.roots, v, pid, id) {
                Ok(p) => Source::Cgroup(Box::new(p)),
                Err(e) => {
                    tracing::debug!(container = %who.name, error = %e, "cgroup not readable; using the stats API");
                    Source::Api
                }
            },
            None => Source::Api,
        });
        let mut t = self.new_tracked(who);
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
                    let window = self.settings.restarts.window_nanos / 1_000_000_000;
                    let alert = self.alert(
                        t,
                        AnomalyKind::ExcessiveRestarts,
                        Severity::High,
                        self.settings.restarts.max as f64,
                        count as f64,
                        format!("Excessive restarts: {count} in {window}s"),
                        vec![("restarts", json!(count)), ("window_seconds", json!(window))],
                    );
                    self.publish(alert);
                }
            }
            Notice::Died { id } => {
                if let Some(t) = self.tracked.get_mut(&id) {
                    self.restarts.died(&id);
                    t.status = "exited".into();
                    t.source = None;
                    t.prev = None;
                    t.last = None;
                    t.write_at = Some(Instant::now());
                }
            }
            Notice::Destroyed { id } => {
                self.restarts.forget(&id);
                if let Some(t) = self.tracked.remove(&id) {
                    self.deleted.push(t.who.key());
                }
            }
            Notice::Health { id, healthy } => {
                if let Some(t) = self.tracked.get_mut(&id) {
                    t.health = Some(if healthy { "healthy" } else { "unhealthy" }.into());
                }
            }
        }
    }

    /// One interval: read, detect, write.
    async fn sample(&mut self) {
        let mut readings: Vec<(String, Timed)> = Vec::with_capacity(self.tracked.len());
        let mut from_api: Vec<String> = Vec::new();
        // The files are kernel pseudo-files served from memory (never disk),
        // so reading them inline costs microseconds and cannot stall.
        for (id, t) in self.tracked.iter_mut() {
            match &mut t.source {
                Some(Source::Cgroup(probe)) => match probe.read() {
                    Ok(reading) => readings.push((id.clone(), Timed { reading, at: Instant::now() })),
                    Err(e) => {
                        // Usually the container just exited (its cgroup is
                        // gone) and the die event is on its way; otherwise
                        // the API still works.
                        tracing::debug!(container = %t.who.name, error = %e, "cgroup read failed; using the stats API");
                        t.source = Some(Source::Api);
                    }
                },
                Some(Source::Api) => from_api.push(id.clone()),
                None => {}
            }
        }
        if !from_api.is_empty() {
            let docker = &self.docker;
            let fetched: Vec<(String, Option<Timed>)> = futures::stream::iter(from_api)
                .map(|id| async move {
                    let r = api_reading(docker, &id).await;
                    (id, r)
                })
                .buffer_unordered(API_CONCURRENCY)
                .collect()
                .await;
            readings.extend(fetched.into_iter().filter_map(|(id, r)| Some((id, r?))));
        }

        let now = self.origin.elapsed().as_secs_f64();
        let (mut alerts, mut leaks) = (Vec::new(), Vec::new());
        for (id, timed) in readings {
            let Some(t) = self.tracked.get_mut(&id) else {
                continue;
            };
            // A reading racing a die event is stale: drop it.
            if !t.running() {
                continue;
            }
            let first = t.prev.is_none();
            let usage = stats::usage(t.prev.as_ref(), &timed, self.host_memory);
            t.prev = Some(timed);
            t.last = Some(usage);
            // The first reading has no CPU rate yet.
            if !first && let Some(b) = t.cpu.observe(usage.cpu_pct, now, &self.settings.cpu) {
                alerts.push((id.clone(), AnomalyKind::HighCpu, b));
            }
            if let Some(b) = t.memory.observe(usage.memory_pct, now, &self.settings.memory) {
                alerts.push((id.clone(), AnomalyKind::HighMemory, b));
            }
            if let Some(leak) = t.leak.observe(now, usage.memory_usage, usage.memory_limit, &self.settings.leak) {
                leaks.push((id.clone(), leak));
            }
        }
        for (id, kind, breach) in alerts {
            if let Some(t) = self.tracked.get(&id) {
                let alert = self.breach_alert(t, kind, &breach);
                self.publish(alert);
            }
        }
        for (id, leak) in leaks {
            if let Some(t) = self.tracked.get(&id) {
                let alert = self.leak_alert(t, &leak);
                self.publish(alert);
            }
        }
        self.write().await;
    }

    /// One pipeline: every running container's key and chart sample, due
    /// keys of stopped ones, deletions of removed ones.
    async fn write(&mut self) {
        let timestamp = seed_timestamp();
        let ttl = keys::STATS_TTL.as_secs();
        let series_ttl = keys::SERIES_TTL.as_secs() as i64;
        let now_ms = Utc::now().timestamp_millis();
        let now = Instant::now();
        let mut pipe = redis::pipe();
        let mut writes = 0usize;
        for t in self.tracked.values_mut() {
            let due = t.running() || t.write_at.is_some_and(|at| at <= now);
            if !due {
                continue;
            }
            let usage = if t.running() { t.last.as_ref() } else { None };
            let m = stats::metrics(&t.who, &t.status, t.health.as_deref(), usage, timestamp.clone());
            match serde_json::to_string(&m) {
                Ok(json) => {
                    pipe.set_ex(t.who.key(), json, ttl).ignore();
                    writes += 1;
                }
                Err(e) => {
                    tracing::warn!(container = %t.who.name, error = %e, "stats not serialisable")
                }
            }
            // The dashboard's charts: a short capped list per container,
            // in the same round trip as the stats.
            if let Some(u) = usage {
                let series = keys::series(&ContainerRef::new(&t.who.host, &t.who.name));
                let sample = SeriesSample { t: now_ms, cpu: round2(u.cpu_pct), mem: round2(u.memory_pct) };
                // Numbers only: serialising cannot fail.
                pipe.lpush(&series, serde_json::to_string(&sample).unwrap_or_default())
                    .ignore()
                    .ltrim(&series, 0, keys::SERIES_MAX as isize - 1)
                    .ignore()
                    .expire(&series, series_ttl)
                    .ignore();
            }
            if !t.running() {
                t.write_at = Some(now + EXITED_REFRESH);
            }
        }
        let deleted = std::mem::take(&mut self.deleted);
        for key in &deleted {
            pipe.del(key).ignore();
        }
        if writes == 0 && deleted.is_empty() {
            return;
        }
        // Bounded by the interval: a stuck Redis must not pile up ticks; the
        // next interval writes fresher values anyway.
        let limit = self.settings.interval.max(Duration::from_secs(1));
        let result = tokio::time::timeout(limit, pipe.query_async::<()>(&mut self.conn)).await;
        match result {
            Ok(Ok(())) => {
                if self.redis_down {
                    tracing::info!("stats written to Redis again");
                }
                self.redis_down = false;
            }
            Ok(Err(e)) if !self.redis_down => {
                self.redis_down = true;
                tracing::warn!(error = %e, "writing stats to Redis failed; retrying every interval");
            }
            Err(_) if !self.redis_down => {
                self.redis_down = true;
                tracing::warn!("writing stats to Redis timed out; retrying every interval");
            }
            _ => {}
        }
        if self.redis_down {
            // Removals must not be forgotten during an outage.
            self.deleted.extend(deleted);
        }
    }

    fn leak_alert(&self, t: &Tracked, leak: &Leak) -> HealthAlert {
        let per_min = leak.slope * 60.0 / (1024.0 * 1024.0);
        let minutes = leak.time_to_limit / 60.0;
        // The limit is near: the analyzer treats critical as urgent.
        let severity = if leak.time_to_limit < 120.0 { Severity::Critical } else { Severity::High };
        self.alert(
            t,
            AnomalyKind::MemoryLeak,
            severity,
            self.settings.leak.horizon,
            round2(leak.time_to_limit),
            format!("Memory leak: +{per_min:.1} MB/min, limit in ~{minutes:.1} min"),
            vec![
                ("growth_bytes_per_second", json!(round2(leak.slope))),
                ("r_squared", json!(round2(leak.r2))),
                ("seconds_to_limit", json!(round2(leak.time_to_limit))),
            ],
        )
    }

    fn breach_alert(&self, t: &Tracked, kind: AnomalyKind, b: &Breach) -> HealthAlert {
        let what = if kind == AnomalyKind::HighCpu { "CPU" } else { "memory" };
        self.alert(
            t,
            kind,
            b.severity,
            b.threshold,
            round2(b.actual),
            format!("High {what}: {:.1}%", b.actual),
            vec![("sustained_seconds", json!(round2(b.sustained)))],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        t: &Tracked,
        kind: AnomalyKind,
        severity: Severity,
        threshold: f64,
        actual: f64,
        issue: String,
        extra: Vec<(&str, serde_json::Value)>,
    ) -> HealthAlert {
        let usage = if t.running() { t.last.as_ref() } else { None };
        let mut metrics = stats::metrics(&t.who, &t.status, t.health.as_deref(), usage, seed_timestamp());
        for (k, v) in extra {
            metrics.extra.insert(k.to_owned(), v);
        }
        HealthAlert {
            container: t.who.name.clone(),
            issues: vec![issue],
            metrics,
            host: self.host.clone(),
            container_id: Some(t.who.id.clone()),
            image: t.who.image.clone(),
            anomalies: vec![Anomaly { kind, severity, threshold: Some(threshold), actual: Some(actual) }],
            exit_code: None,
            detected_at: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)),
        }
    }

    fn publish(&self, alert: HealthAlert) {
        tracing::info!(container = %alert.container, issues = ?alert.issues, anomaly = ?alert.anomalies.first().map(|a| a.kind), "health alert");
        match Envelope::new(agent::MONITOR, EventKind::HealthAlert, &alert) {
            Ok(env) => self.outbox.send(env),
            Err(e) => tracing::error!(error = %e, "could not build health alert"),
        }
    }
}

/// One reading through the Docker stats API (`stream=false`, `one-shot`:
/// no second sample inside dockerd; the rate comes from our previous one).
pub async fn api_reading(docker: &Docker, id: &str) -> Option<Timed> {
    let options = StatsOptionsBuilder::new().stream(false).one_shot(true).build();
    let mut stream = docker.stats(id, Some(options));
    match stream.next().await {
        Some(Ok(s)) => stats::from_api(&s).map(|reading| Timed { reading, at: Instant::now() }),
        Some(Err(e)) => {
            tracing::debug!(container = %id, error = %e, "stats API failed");
            None
        }
        None => None,
    }
}
