//! Probes from labels: a health check for containers whose image has none
//! (`hemostat.probe=http://:8080/healthz`, `tcp://:5432`; see
//! [`hemostat_protocol::probe`]), run by the collector inside each
//! container's own network namespace, so a port published nowhere is
//! probed all the same.
//!
//! After `hemostat.probe.retries` failures in a row the container is
//! unhealthy, exactly as after Docker's `health_status: unhealthy`: the
//! same alert (`unhealthy`, "Health check failing"), which also names the
//! probe and its last failure, after the same `hemostat.unhealthy_grace`;
//! a probe that passes again ends the spell, and a restart (the
//! container's main process changed) starts counting over. A container
//! with a HEALTHCHECK of its own is left to Docker's: its label is ignored
//! (logged once), so one failure is never alerted twice.
//!
//! - `check`: one probe (TCP, HTTP, HTTPS accepting any certificate).
//! - `netns`: connecting from inside a container's network namespace.

mod check;
mod netns;

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use bollard::{Docker, models::ContainerInspectResponse, query_parameters::ListContainersOptionsBuilder};
use hemostat_protocol::probe::{LABEL_PROBE, Probe};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use check::{Checker, Owner, Probed};

use crate::{
    alert::{Alerts, Inspected},
    detect::{Finding, FindingKind},
    docker,
    inflight::{InFlight, now_nanos},
    liveness::Progress,
    scope::Scope,
};

/// How often the containers with a probe label are listed: a new one is
/// probed within this plus its interval.
const RESCAN: Duration = Duration::from_secs(5);

/// Probes every running container in scope that carries `hemostat.probe`.
pub struct Prober {
    ctx: Arc<Ctx>,
}

struct Ctx {
    docker: Docker,
    alerts: Alerts,
    inflight: InFlight,
    scope: Scope,
    checker: Checker,
    progress: Arc<Progress>,
}

impl Prober {
    /// `proc`: the host's /proc as the collector sees it (`HEMOSTAT_PROC_ROOT`);
    /// what the probes do is counted in `progress` (`/metrics`).
    pub fn new(
        docker: Docker,
        alerts: Alerts,
        inflight: InFlight,
        scope: Scope,
        proc: std::path::PathBuf,
        progress: Arc<Progress>,
    ) -> Result<Prober, rustls::Error> {
        let checker = Checker::new(proc)?;
        Ok(Prober { ctx: Arc::new(Ctx { docker, alerts, inflight, scope, checker, progress }) })
    }

    pub async fn run(self, cancel: CancellationToken) {
        // Container id -> its probe's task (finished when it has nothing to
        // probe: kept, so the next listing does not start it again).
        let mut probing: HashMap<String, CancellationToken> = HashMap::new();
        let mut rescan = tokio::time::interval(RESCAN);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let filters = HashMap::from([("label", vec![LABEL_PROBE]), ("status", vec!["running"])]);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = rescan.tick() => {}
            }
            let options = ListContainersOptionsBuilder::new().filters(&filters).build();
            let listed = match self.ctx.docker.list_containers(Some(options)).await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::debug!(error = %e, "listing the probed containers failed; retrying");
                    continue;
                }
            };
            let ids: Vec<String> = listed.into_iter().filter_map(|c| c.id).collect();
            probing.retain(|id, task| {
                let keep = ids.contains(id);
                if !keep {
                    task.cancel();
                }
                keep
            });
            for id in ids {
                if probing.contains_key(&id) {
                    continue;
                }
                let task = cancel.child_token();
                probing.insert(id.clone(), task.clone());
                tokio::spawn(follow(self.ctx.clone(), id, task));
            }
        }
        for task in probing.values() {
            task.cancel();
        }
    }
}

/// The container's main process, whose namespace is the container's.
/// Said once per container that cannot be probed.
const UNAVAILABLE: &str = "probe unavailable: the collector cannot enter the container's network namespace (it needs CAP_SYS_ADMIN and CAP_SYS_PTRACE, and the host's /proc: HEMOSTAT_PROC_ROOT or --pid host); the container is not probed";

fn pid_of(inspect: &ContainerInspectResponse) -> Option<i64> {
    inspect.state.as_ref().and_then(|s| s.pid).filter(|p| *p > 0)
}

/// A HEALTHCHECK of the image's or of `docker run --health-cmd`, not disabled.
fn has_own_healthcheck(inspect: &ContainerInspectResponse) -> bool {
    let test = inspect.config.as_ref().and_then(|c| c.healthcheck.as_ref()).and_then(|h| h.test.as_ref());
    test.and_then(|t| t.first()).is_some_and(|first| first != "NONE")
}

fn name_of(inspect: &ContainerInspectResponse, id: &str) -> String {
    inspect.name.as_deref().unwrap_or(id).trim_start_matches('/').to_owned()
}

/// Probes one container until it is removed (or no longer listed as
/// running), or the collector stops.
async fn follow(ctx: Arc<Ctx>, id: String, cancel: CancellationToken) {
    let Ok(mut inspect) = docker::inspect(&ctx.docker, &id).await else { return };
    let name = name_of(&inspect, &id);
    let labels = docker::labels(&inspect);
    if ctx.scope.excludes(&labels).is_some() {
        return;
    }
    let probe = match Probe::from_labels(&labels) {
        None => return,
        Some(Ok(probe)) => probe,
        Some(Err(why)) => {
            ctx.progress.probes.bad_labels.fetch_add(1, Ordering::Relaxed);
            return tracing::warn!(container = %name, %why, "bad probe label: the container is not probed");
        }
    };
    if has_own_healthcheck(&inspect) {
        return tracing::info!(container = %name, %probe, "has a HEALTHCHECK of its own: Docker's is followed, its hemostat.probe is ignored");
    }
    let mut pid = pid_of(&inspect);
    tracing::info!(container = %name, %probe, interval_ms = probe.interval.as_millis() as u64, retries = probe.retries, "probing");
    let mut spell = Spell::default();
    let mut said_unavailable = false;
    // The pid last found to be the container's own process.
    let mut owned: Option<i64> = None;
    // The first probe after one interval, as Docker's first health check.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + probe.interval, probe.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Stopped (or restarting) when last seen: probed again once it runs.
        let Some(running) = pid else {
            match docker::inspect(&ctx.docker, &id).await {
                Ok(now) => pid = pid_of(&now).filter(|_| docker::is_running(&now)),
                Err(_) => return tracing::debug!(container = %name, "gone: probing ends"),
            }
            continue;
        };
        // A pid is probed once it is known to be the container's process
        // in the /proc the collector reads (a collector in a container of
        // its own without `--pid host` sees other processes, or none, under
        // that number).
        let probed = if owned == Some(running) {
            ctx.checker.check(running, &probe).await
        } else {
            match ctx.checker.owner(running, &id) {
                Owner::Container => {
                    owned = Some(running);
                    ctx.checker.check(running, &probe).await
                }
                Owner::Nobody(why) => Probed::Gone(why),
                Owner::Other(why) => Probed::Unavailable(why),
            }
        };
        ctx.progress.probes.run.fetch_add(1, Ordering::Relaxed);
        let (why, gone) = match probed {
            Probed::Healthy(what) => {
                if spell.failures >= probe.retries {
                    tracing::info!(container = %name, %probe, %what, "probe passes again: healthy");
                }
                spell = Spell::default();
                continue;
            }
            Probed::Unavailable(why) => {
                unavailable(&ctx, &mut said_unavailable, &name, &probe, &why);
                continue;
            }
            // Gone from /proc: stopped or restarted, or never in the /proc
            // this collector reads (no `--pid host`), which is not a
            // failure of the container's.
            Probed::Gone(why) => (why, true),
            Probed::Failing(why) => {
                ctx.progress.probes.failed.fetch_add(1, Ordering::Relaxed);
                (why, false)
            }
        };
        // A restart (the collector's or anyone's) gives a new process, and
        // a stop pauses the probing: either way this spell is over.
        match docker::inspect(&ctx.docker, &id).await {
            Ok(now) => {
                let now_pid = pid_of(&now).filter(|_| docker::is_running(&now));
                inspect = now;
                if now_pid != pid {
                    tracing::debug!(container = %name, "stopped or restarted: its next process is probed afresh");
                    pid = now_pid;
                    spell = Spell::default();
                    continue;
                }
            }
            Err(_) => return tracing::debug!(container = %name, "gone: probing ends"),
        }
        if gone {
            // Docker still runs it as this pid, which this /proc lacks.
            unavailable(&ctx, &mut said_unavailable, &name, &probe, &why);
            continue;
        }
        spell.failures += 1;
        tracing::debug!(container = %name, %probe, failures = spell.failures, %why, "probe failed");
        if spell.failures < probe.retries {
            continue;
        }
        let (since_nano, since) = *spell.since.get_or_insert((now_nanos(), Instant::now()));
        if spell.failures == probe.retries {
            tracing::info!(container = %name, %probe, failures = spell.failures, %why, "probe failing: unhealthy");
        }
        if spell.alerted {
            continue;
        }
        // The collector's own restart or stop is not a failure to report.
        if ctx.inflight.covers(&id, since_nano) || ctx.inflight.covers(&name, since_nano) {
            tracing::debug!(container = %name, "probe failing while the collector acts on it: not reported");
            spell = Spell::default();
            continue;
        }
        let grace = docker::policy(&inspect).policy.unhealthy_grace().unwrap_or_default();
        if since.elapsed() < grace {
            continue;
        }
        spell.alerted = true;
        ctx.progress.probes.alerts.fetch_add(1, Ordering::Relaxed);
        alert(&ctx, &inspect, &name, &probe, spell.failures, &why, since_nano);
    }
}

/// A container that cannot be probed: counted each time, said once.
fn unavailable(ctx: &Ctx, said: &mut bool, name: &str, probe: &Probe, why: &str) {
    ctx.progress.probes.unavailable.fetch_add(1, Ordering::Relaxed);
    if !std::mem::replace(said, true) {
        tracing::warn!(container = %name, %probe, %why, "{UNAVAILABLE}");
    }
}

/// A run of failures.
#[derive(Default)]
struct Spell {
    failures: u32,
    /// When the failures reached the probe's retries (the alert's time).
    since: Option<(i64, Instant)>,
    /// Alerted for this spell already.
    alerted: bool,
}

/// The alert Docker's `health_status: unhealthy` raises, saying it was
/// HemoStat's probe and how it failed.
fn alert(ctx: &Ctx, inspect: &ContainerInspectResponse, name: &str, probe: &Probe, failures: u32, why: &str, at: i64) {
    let finding = Finding {
        kind: FindingKind::Unhealthy,
        container: name.to_owned(),
        container_id: inspect.id.clone().unwrap_or_default(),
        image: inspect.config.as_ref().and_then(|c| c.image.clone()),
        exit_code: None,
        time_nano: at,
    };
    let mut alert = ctx.alerts.finding(&finding);
    alert.issues.push(format!("HemoStat probe {probe} failed {failures} times in a row: {why}"));
    let extra = &mut alert.metrics.extra;
    extra.insert("probe".into(), json!(probe.url));
    extra.insert("probe_failures".into(), json!(failures));
    extra.insert("probe_last_failure".into(), json!(why));
    tracing::info!(container = %name, %probe, failures, %why, "unhealthy by its probe: alerting");
    ctx.alerts.publish_with_evidence(alert, Inspected::Yes(Box::new(inspect.clone())), None);
}
