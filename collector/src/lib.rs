//! The HemoStat collector: the only HemoStat process on a Docker host, and
//! the only one that touches Docker.
//!
//! It turns Docker events into `health_alert`s within milliseconds of a
//! crash, keeps this host's entry in the fleet registry, and executes the
//! remediation commands addressed to this host, reporting each outcome as a
//! `remediation_complete`.
//!
//! Module map. The modules are private; what the binary uses is
//! re-exported here. The wiring (this file) comes first. Five folders follow
//! the path of a crash, each importing only what is listed after it (so no
//! two import each other), then the modules they share:
//!
//! - `watch/` — the Docker event stream (reconnecting without losing events), its cursor kept across restarts, reconciliation after a reconnect or a restart, this host's registry and heartbeat.
//! - `sample/` — the stats loop: cgroup (or stats API) readings, the stats keys written to Redis, `--once`'s snapshot.
//! - `act/` — the command stream: at-most-once execution in per-container lanes, one file per action, verification, dependents; restarts decided on the host while the control plane is away (`edge`).
//! - `alert/` — every `health_alert` built one way: policy, holds, silences, evidence (redacted), recent events and samples.
//! - `detect/` — pure decisions: crashes, thresholds, leaks, resources, restart loops.
//! - `liveness` — each long-running task's last progress, for the heartbeat, `/healthz` and `/metrics` (`HEMOSTAT_COLLECTOR_LISTEN`).
//! - `probe/` — probes from labels (`hemostat.probe`) for containers without a HEALTHCHECK, run inside each container's network namespace; their failures alert as Docker's `unhealthy` does.
//! - `outbox` — publishing that rides out Redis outages and collector restarts (a log on disk, bounded, ordered), dead-lettering what Redis refuses for good.
//! - `config` — [`Config`]: flags and environment variables.
//! - `verbs` — the binary's verbs besides running: `dead-letters list|replay`.
//! - `state` — the durable state folder (`HEMOSTAT_COLLECTOR_STATE_DIR`, `--state-dir`): what must outlive the process (cursor, outbox, edge restarts), created and checked at start, files replaced atomically.
//! - `docker` — connecting (unix, TLS, or an ssh forward in `docker/ssh`; API version negotiation), reading inspect, short ids.
//! - `namespace` — shared network namespaces, as alerts and actions read them.
//! - `inflight` — containers the collector is acting on, so its own restarts are not reported as crashes.
//! - `scope` — which containers this collector manages (labels, opt-in).
//! - `usage` — readings, the figures `docker stats` computes from them, a container as its stats key shows it.
//! - `event` — a Docker event reduced to what detection needs.
//! - `error` — [`CollectorError`]: the crate's error enum.
//!
//! `evidence` and `redact` (in `alert/`) are public for their tests; `fuzzing`
//! (feature `fuzzing`) exposes the parsers of others' input to `hemostat-fuzz`.

mod act;
mod alert;
mod config;
mod detect;
mod docker;
mod error;
mod event;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod inflight;
mod liveness;
mod namespace;
mod outbox;
mod probe;
mod sample;
mod scope;
mod state;
mod usage;
mod verbs;
mod watch;

use std::{future::Future, sync::Arc, time::Duration};

use bollard::Docker;
use hemostat_protocol::backoff::Backoff;
use hemostat_protocol::{
    RedisPublisher,
    connection::{Connection, Target, redact},
};
use tokio_util::sync::CancellationToken;

pub use alert::{evidence, redact};
pub use config::Config;
pub use error::CollectorError;
/// One probe as the collector runs it, for `hemostat-bench-collector --probes`.
pub use probe::{Checker as ProbeChecker, Probed};
pub use verbs::{Verb, run as run_verb};

use crate::{
    act::{Consumer, Edge, EdgeSettings, Executor},
    alert::{Alerts, Awaiting, FactsWriter, Graces, LabelSilences, Recent, evidence::Gatherer},
    inflight::InFlight,
    liveness::{Progress, Stop, Supervised, Supervisor, Task},
    outbox::Outbox,
    state::StateDir,
    watch::{Cursor, Registry, Watcher},
};

/// A stalled task's instance stops within this, or is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The consumer's, whose commands under way finish first (a restart and
/// its verification).
const COMMANDS_GRACE: Duration = Duration::from_secs(120);

/// Runs until `shutdown` completes. Docker or Redis being unreachable at
/// start is waited out (with backoff), not an error: the collector is
/// meant to come up before, and outlive restarts of, both.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), CollectorError> {
    let cancel = CancellationToken::new();
    let started = {
        let cancel = cancel.clone();
        async move {
            tokio::select! {
                _ = cancel.cancelled() => None,
                r = start(config, cancel.clone()) => Some(r),
            }
        }
    };
    tokio::pin!(started);
    tokio::pin!(shutdown);
    let tasks = tokio::select! {
        _ = &mut shutdown => {
            cancel.cancel();
            return Ok(());
        }
        r = &mut started => match r {
            Some(tasks) => tasks?,
            None => return Ok(()),
        },
    };
    shutdown.await;
    tracing::info!("shutting down");
    cancel.cancel();
    for task in tasks {
        let _ = task.await;
    }
    tracing::info!("collector stopped");
    Ok(())
}

async fn start(config: Config, cancel: CancellationToken) -> Result<Vec<tokio::task::JoinHandle<()>>, CollectorError> {
    // Before anything: a collector that cannot verify commands does not run
    // open by accident.
    let keys = config.command_keys()?;
    // So is a Docker endpoint whose TLS cannot work: it fails now, clearly,
    // not in the connect loop below.
    let endpoint = config.docker_endpoint()?;
    let key_ids: Vec<String> = keys.iter().flat_map(|k| k.ids()).map(str::to_owned).collect();
    if keys.is_none() {
        tracing::warn!(
            "HEMOSTAT_INSECURE_UNSIGNED_COMMANDS: unsigned commands are executed; anyone who can write this host's command stream can make it act"
        );
    }
    // Then the state folder: a collector that cannot keep its place would
    // forget every exit that happens while it is away.
    let state = StateDir::open(&config.state_dir())?;
    let cursor = Cursor::load(&state);
    let scope = config.scope()?;
    // Not waited for: Redis being down must not keep the collector from
    // watching Docker (alerts wait in the outbox). Each use reconnects.
    let target = Target::from_env(&config.redis_url)?;
    let conn: Connection = target.lazy()?;
    let blocking = target.lazy_blocking(act::BLOCK)?;
    let publisher = RedisPublisher::new(conn.clone());
    // Before Docker: what a previous run left undelivered goes out while
    // Docker is still awaited.
    let progress = Arc::new(expected_progress(&config));
    // The registry says when Redis holds its facts; alerts wait for that.
    let (facts_current, facts_current_rx) = tokio::sync::watch::channel(outbox::FactsState::Stale);
    let outbox_settings = outbox::Settings {
        dir: state.path().join("outbox"),
        max_bytes: config.outbox_max_bytes,
        refusal_patience: config.outbox_refusal_patience,
        host: config.host.clone(),
        progress: Some(progress.clone()),
        facts_current: Some(facts_current_rx),
    };
    let (outbox, outbox_task) = Outbox::open(publisher.clone(), outbox_settings, cancel.clone())?;
    let endpoint = endpoint.reach(&cancel).await?;
    let docker = retry("Docker", &cancel, || docker::connect(&endpoint)).await?;

    let inflight = InFlight::new();
    // Before any command is read or event replayed: a recreate this
    // collector's predecessor did not finish leaves a container aside.
    act::put_right_replacements(&docker, &inflight, &scope, config.stop_timeout).await;
    // Command tasks' markers and XACKs; not `blocking`, which XREADGROUP holds.
    let tasks_conn = conn.clone();
    let gatherer = Gatherer::new(
        docker.clone(),
        evidence::Settings {
            lines: config.evidence_lines,
            max_bytes: config.evidence_max_bytes,
            logs: config.evidence_logs,
            patterns: config.redact_patterns.iter().filter(|p| !p.is_empty()).cloned().collect(),
            ..evidence::Settings::default()
        },
    )?;
    // One redactor, the evidence's, for everything else from a container
    // that leaves the host: exec output, Docker's error text in reports.
    let redactor = gatherer.redactor().clone();
    let recent = Recent::new(alert::sample_capacity(config.stats_interval));
    let graces =
        Graces { operator: config.operator_grace, created: config.create_grace, recreated: config.recreate_grace };
    // One list of label silences, read at most every 2 s, for the alerts and
    // the registry alike.
    let label_silences = LabelSilences::new(conn.clone());
    // Crash alerts an edge restart may stand in for (off: none noted).
    let awaiting = (!config.edge_heal_after.is_zero()).then(Awaiting::default);
    let alerts = Alerts::new(config.host.clone(), outbox.clone())
        .with_evidence(gatherer)
        .with_recent(recent.clone())
        .with_graces(graces, inflight.clone())
        .with_silences(label_silences.clone())
        .with_facts(FactsWriter::new(conn.clone(), &graces));
    let alerts = match &awaiting {
        Some(awaiting) => alerts.with_awaiting(awaiting.clone()),
        None => alerts,
    };
    let sampler = sample::start(
        &config,
        sample::Deps {
            docker: docker.clone(),
            conn: conn.clone(),
            alerts: alerts.clone(),
            scope: scope.clone(),
            inflight: inflight.clone(),
            recent: recent.clone(),
            progress: progress.clone(),
        },
    );
    let (registry, registry_task) = Registry::spawn(
        conn,
        docker.clone(),
        config.host.clone(),
        config.heartbeat_interval,
        scope.clone(),
        label_silences.clone(),
        progress.clone(),
        facts_current,
        cancel.clone(),
    );
    // Each long-running task is started by the supervisor, from a closure
    // it can call again to restart the task once it stalls.
    let mut supervisor = {
        let outbox = outbox.clone();
        Supervisor::new(progress.clone(), config.host.clone(), move |env| outbox.send(env))
    };
    // Probes from labels: their alerts go the way the watcher's go.
    let prober = probe::Prober::new(
        docker.clone(),
        alerts.clone(),
        inflight.clone(),
        scope.clone(),
        config.proc_root.clone(),
        progress.clone(),
    )
    .map_err(|e| CollectorError::Config(format!("the probes' TLS client: {e}")))?;
    let executor = Executor::new(docker.clone(), &config, inflight.clone(), scope.clone(), redactor.clone())?;
    let watcher = {
        let (docker, inflight, scope, state, outbox, progress) =
            (docker.clone(), inflight, scope, state.clone(), outbox.clone(), progress.clone());
        let stats_tap = sampler.as_ref().map(|(tap, _)| tap.clone());
        let config = config.clone();
        // The first instance resumes from the cursor read at start; a
        // restarted one from the cursor its predecessor saved as it stopped.
        let mut first = Some(cursor);
        move |cancel: CancellationToken| -> liveness::Body {
            let watcher =
                Watcher::new(docker.clone(), alerts.clone(), inflight.clone(), registry.clone(), scope.clone());
            let (state, cursor, recent, outbox) = (state.clone(), first.take(), recent.clone(), outbox.clone());
            let (stats_tap, progress, redactor, config) =
                (stats_tap.clone(), progress.clone(), redactor.clone(), config.clone());
            Box::pin(async move {
                let cursor = cursor.unwrap_or_else(|| Cursor::load(&state));
                let watcher = watcher
                    .resume(state, cursor, config.resume_max_age)
                    .idle_watchdog(config.events_idle)
                    .alert_concurrency(usize::from(config.alert_concurrency))
                    .with_progress(progress)
                    .alert_daemon_exits(config.alert_daemon_restart_exits)
                    .with_recent(recent)
                    .with_dependents(outbox, config.verify_seconds, config.stop_timeout, redactor);
                let watcher = match stats_tap {
                    Some(tap) => watcher.with_stats(tap),
                    None => watcher,
                };
                watcher.run(cancel).await
            })
        }
    };
    supervisor = supervisor.supervise(Supervised::new(Task::Watcher, Stop::Cancel(STOP_GRACE), watcher));
    let consumer = {
        let (tasks_conn, outbox, executor, host, progress) =
            (tasks_conn.clone(), outbox.clone(), executor.clone(), config.host.clone(), progress.clone());
        let (concurrency, max_age) = (usize::from(config.command_concurrency), config.command_max_age);
        move |cancel: CancellationToken| -> liveness::Body {
            let consumer = Consumer::new(
                blocking.clone(),
                tasks_conn.clone(),
                // Outcomes share the alerts' bounded, ordered queue and wait for
                // delivery, so a command is acknowledged only once its outcome is out.
                outbox.clone(),
                // The edge healer's restarts share its limits and in-flight marks.
                executor.clone(),
                host.clone(),
                keys.clone(),
                concurrency,
            )
            .max_age(max_age)
            .with_progress(progress.clone());
            Box::pin(consumer.run(cancel))
        }
    };
    // Its commands under way finish and report before a new instance reads
    // (and their at-most-once markers stand if they must be aborted).
    supervisor = supervisor.supervise(Supervised::new(Task::Consumer, Stop::Cancel(COMMANDS_GRACE), consumer));
    if let Some((_, sampler)) = sampler {
        supervisor = supervisor.supervise(Supervised::new(Task::Sampler, Stop::Cancel(STOP_GRACE), sampler));
    }
    let edge_task = awaiting.map(|awaiting| {
        let edge = Edge {
            host: config.host.clone(),
            settings: EdgeSettings {
                after: config.edge_heal_after,
                cooldown: config.edge_cooldown,
                max_per_hour: config.edge_max_per_hour,
            },
            awaiting,
            conn: tasks_conn.clone(),
            docker: docker.clone(),
            executor: executor.clone(),
            outbox: outbox.clone(),
            silences: label_silences,
            state: state.clone(),
        };
        tokio::spawn(edge.run(cancel.clone()))
    });
    // The supervisor waits for its tasks at shutdown, the outbox last.
    let drain = outbox.restarter(publisher, cancel.clone());
    drop(outbox);
    supervisor = supervisor.supervise(Supervised::new(Task::Outbox, Stop::Abort, drain).running(outbox_task));
    let supervisor_task = tokio::spawn(supervisor.run(cancel.clone()));
    let mut tasks = vec![registry_task, tokio::spawn(prober.run(cancel.clone()))];
    if let Some(addr) = &config.listen {
        // Bound before "ready": a bad address is a start-up error.
        let server = liveness::Server::bind(addr).await?;
        tracing::info!(addr = ?server.addr(), "serving /healthz and /metrics");
        tasks.push(tokio::spawn(server.serve(progress.clone(), cancel.clone().cancelled_owned())));
    }

    let api = docker::api_version(&docker);
    tracing::info!(host = %config.host, docker_api = %api, redis = %redact(&config.redis_url), command_keys = ?key_ids, state = %state.path().display(), "collector ready");
    // The exact line tests and operators wait for, on stdout.
    println!("collector ready host={} docker API={api}", config.host);
    // The outbox ends last: it stops once every sender (watcher, sampler,
    // consumer) is gone and what they queued is delivered, or Redis fails
    // once more; what it holds then stays on disk for the next start.
    tasks.extend(edge_task);
    tasks.push(supervisor_task);
    Ok(tasks)
}

/// Each task's expected period: about three of its intervals plus a
/// margin without progress, and it is stalled.
fn expected_progress(config: &Config) -> Progress {
    const MARGIN: Duration = Duration::from_secs(10);
    let progress = Progress::default();
    // Without the idle watchdog, a quiet engine looks like a hung stream:
    // the watcher is then not judged.
    let idle = (!config.events_idle.is_zero()).then(|| config.events_idle * 3 + MARGIN);
    progress.expect(Task::Watcher, idle);
    let stats = (!config.stats_interval.is_zero()).then(|| config.stats_interval * 3 + MARGIN);
    progress.expect(Task::Sampler, stats);
    progress.expect(Task::Consumer, Some(act::BLOCK * 3 + MARGIN));
    // A publish may wait out Redis's response timeout before its backoff.
    progress.expect(Task::Outbox, Some(outbox::IDLE_TURN * 3 + MARGIN * 3));
    progress
}

/// Retries `connect` with backoff until it succeeds or shutdown.
async fn retry<T, F, Fut, E>(what: &str, cancel: &CancellationToken, mut connect: F) -> Result<T, CollectorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut backoff = Backoff::standard();
    loop {
        match connect().await {
            Ok(t) => return Ok(t),
            Err(e) => {
                tracing::warn!(error = %e, "{what} unreachable; retrying");
                if !backoff.wait_or(cancel.cancelled()).await {
                    return Err(CollectorError::Cancelled);
                }
            }
        }
    }
}

/// `--once`: a snapshot of this host's containers, as JSON.
pub async fn snapshot(config: &Config) -> Result<String, CollectorError> {
    // An ssh forward lives as long as the snapshot takes, no longer.
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let endpoint = config.docker_endpoint()?.reach(&cancel).await?;
    let docker: Docker = docker::connect(&endpoint).await?;
    Ok(serde_json::to_string(&sample::snapshot(&docker, &config.host, &sample::roots(config)).await?)?)
}
