//! Healing while the control plane is away. A crash whose alert the
//! analyzer has not taken within `HEMOSTAT_EDGE_HEAL_AFTER` (Redis down or
//! refusing it, the bridge or the functions down) is restarted by the
//! collector on its own, as a kubelet keeps restarting pods while its API
//! server is unreachable. Only what the gate would most likely allow:
//!
//! - only restarts, of crashes and OOM kills, for containers whose labels
//!   allow them, that nobody holds and no silence covers (noted as such by
//!   `alert::Awaiting` when the alert left; silences of every kind checked
//!   again here against the last list read);
//! - under the collector's own limits (a cooldown and an hourly cap per
//!   container, in `edge.json` in the state folder, so a restarted
//!   collector keeps counting), and the container's own labels' (the
//!   executor's [`Limits`](super::limits::Limits));
//! - verified like any restart, and reported as a `remediation_complete`
//!   whose `analysis_method` is `edge`, through the outbox: it reaches the
//!   control plane when it is back.
//!
//! A crash the analyzer took is the control plane's, whatever it decides
//! (a refusal included). When an alert it never took arrives late, the
//! restart it may order is moot (the container runs again since after the
//! crash: see `actions::lifecycle`), so a crash is never restarted twice.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use bollard::Docker;
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use hemostat_protocol::{
    Action, Command, ContainerRef, Envelope, EventKind, ProtocolError,
    connection::Connection,
    envelope::agent,
    event::{DECIDED_AT_THE_EDGE, IncidentContext, RemediationComplete, RemediationResult, RemediationStatus},
    maintenance,
    policy::{COMPOSE_PROJECT_LABEL, Policy},
    routes,
    silence::Subject,
    stream::Group,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{executor::Executor, lanes::Slot};
use crate::{
    alert::{Awaiting, Crash, Delivery, LabelSilences},
    docker,
    outbox::Outbox,
    state::StateDir,
};

/// The ledger's file in the state folder.
const LEDGER_FILE: &str = "edge.json";
/// How often the waiting crashes are looked at.
const TICK: Duration = Duration::from_secs(1);
/// Crashes healed at once at most (a storm during an outage).
const CONCURRENCY: usize = 4;
/// How long the analyzer's group is asked whether it took an alert.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
const HOUR_MS: i64 = 3_600_000;

/// The collector's own limits on edge restarts.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a crash waits for the control plane (never zero here).
    pub after: Duration,
    pub cooldown: Duration,
    pub max_per_hour: u16,
}

/// Restarts it carried out, per container id (milliseconds since the
/// epoch, the last hour's).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    restarts: HashMap<String, Vec<i64>>,
}

impl Ledger {
    fn load(state: &StateDir) -> Ledger {
        match state.read(LEDGER_FILE) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, file = LEDGER_FILE, "edge restarts' ledger unreadable: starting a new one");
                Ledger::default()
            }),
            Ok(None) => Ledger::default(),
            Err(e) => {
                tracing::warn!(error = %e, file = LEDGER_FILE, "edge restarts' ledger unreadable: starting a new one");
                Ledger::default()
            }
        }
    }

    /// Why another restart of `id` at `now_ms` breaks the limits, if it does.
    fn refusal(&mut self, id: &str, settings: &Settings, now_ms: i64) -> Option<String> {
        self.restarts.retain(|_, times| {
            times.retain(|t| now_ms - t < HOUR_MS);
            !times.is_empty()
        });
        let times = self.restarts.get(id)?;
        if times.len() >= usize::from(settings.max_per_hour) {
            return Some(format!(
                "edge limit: {} restarts by the collector in the last hour (HEMOSTAT_EDGE_MAX_PER_HOUR={})",
                times.len(),
                settings.max_per_hour
            ));
        }
        let last = times.iter().max().copied()?;
        let since = Duration::from_millis((now_ms - last).max(0) as u64);
        (since < settings.cooldown).then(|| {
            format!(
                "edge cooldown: restarted by the collector {:.0} s ago (HEMOSTAT_EDGE_COOLDOWN={} s)",
                since.as_secs_f64(),
                settings.cooldown.as_secs()
            )
        })
    }

    fn record(&mut self, id: &str, now_ms: i64, state: &StateDir) {
        self.restarts.entry(id.to_owned()).or_default().push(now_ms);
        let saved =
            serde_json::to_vec(self).map_err(std::io::Error::other).and_then(|b| state.write_atomic(LEDGER_FILE, &b));
        if let Err(e) = saved {
            tracing::warn!(error = %e, file = LEDGER_FILE, "edge restart not saved: a restarted collector will not count it");
        }
    }
}

/// The edge healer: one task for every waiting crash.
pub struct Edge {
    pub host: String,
    pub settings: Settings,
    pub awaiting: Awaiting,
    pub conn: Connection,
    pub docker: Docker,
    pub executor: Executor,
    pub outbox: Outbox,
    pub silences: LabelSilences,
    pub state: StateDir,
}

impl Edge {
    pub async fn run(self, cancel: CancellationToken) {
        let ledger = Mutex::new(Ledger::load(&self.state));
        let route = routes::deciding();
        let group = Group::new(route.stream(), route.group(), "edge-check");
        tracing::info!(
            after_s = self.settings.after.as_secs_f64(),
            "edge healing on: crashes the control plane does not take in time are restarted here"
        );
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
            let due = self.awaiting.due(now, self.settings.after);
            futures::stream::iter(due)
                .for_each_concurrent(CONCURRENCY, |crash| async {
                    match self.away(&group, &crash).await {
                        Some(why) => self.heal(crash, &why, &ledger, &cancel).await,
                        None => tracing::debug!(container = %crash.container, "the analyzer took its crash: the control plane decides"),
                    }
                })
                .await;
        }
    }

    /// Why the control plane is away for `crash`; None: it took the alert.
    async fn away(&self, group: &Group, crash: &Crash) -> Option<String> {
        let after = self.settings.after.as_secs();
        match &crash.delivery {
            Delivery::Queued(_) => Some(format!("its alert had not reached Redis {after} s after the crash")),
            Delivery::Lost(why) => Some(format!("its alert never reached Redis ({why})")),
            Delivery::Delivered(id) => {
                let asked = tokio::time::timeout(ASK_TIMEOUT, group.consumed(&mut self.conn.clone(), id)).await;
                match asked {
                    Ok(Ok(true)) => None,
                    Ok(Ok(false)) => Some(format!("the analyzer had not taken its alert {after} s after the crash")),
                    Ok(Err(ProtocolError::Redis(e)))
                        if e.is_io_error()
                            || e.is_timeout()
                            || e.is_connection_dropped()
                            || e.is_connection_refusal() =>
                    {
                        Some(format!("Redis could not be asked whether the analyzer took its alert ({e})"))
                    }
                    // Redis answered, with an error (an ACL that forbids
                    // the question): the control plane may well have the
                    // crash in hand, and a restart here could override its
                    // refusal. Left to it.
                    Ok(Err(e)) => {
                        tracing::warn!(container = %crash.container, error = %e, "cannot tell whether the analyzer took this crash's alert: left to the control plane");
                        None
                    }
                    Err(_) => Some("Redis did not answer whether the analyzer took its alert".into()),
                }
            }
        }
    }

    async fn heal(&self, crash: Crash, away: &str, ledger: &Mutex<Ledger>, cancel: &CancellationToken) {
        let name = crash.container.as_str();
        let inspect = match docker::inspect(&self.docker, &crash.container_id).await {
            Ok(inspect) => inspect,
            Err(e) => {
                tracing::info!(container = %name, error = %e, "crash not healed at the edge: the container is gone");
                return;
            }
        };
        if docker::is_running(&inspect) {
            tracing::info!(container = %name, "crash not healed at the edge: it runs again already");
            return;
        }
        let reason = format!("decided at the edge: {away}");
        let labels = docker::labels(&inspect);
        let subject = Subject {
            host: self.host.clone(),
            name: name.to_owned(),
            image: crash.image.clone(),
            project: labels.get(COMPOSE_PROJECT_LABEL).cloned(),
            labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>(),
            ..Subject::of(&ContainerRef::new(&self.host, name))
        };
        let now_ms = Utc::now().timestamp_millis();
        let policy = docker::policy(&inspect).policy;
        // Its own maintenance window (`hemostat.maintenance`), as the gate's.
        let own_window = policy
            .maintenance
            .as_deref()
            .and_then(|s| maintenance::label_silence(&ContainerRef::new(&self.host, name), s, now_ms))
            .map(|s| s.refusal());
        let refused = match self.silences.refusal(&subject).await.or(own_window) {
            Some(silenced) => Some(silenced),
            None => {
                ledger.lock().unwrap_or_else(|e| e.into_inner()).refusal(&crash.container_id, &self.settings, now_ms)
            }
        };
        let cmd = Command {
            id: format!("edge-{}", uuid::Uuid::new_v4()),
            host: self.host.clone(),
            container: name.to_owned(),
            container_id: Some(crash.container_id.clone()),
            action: Action::Restart,
            reason: reason.clone(),
            confidence: 1.0,
            issued_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            expires_at: None,
            dry_run: false,
            args: Vec::new(),
            context: IncidentContext {
                detected_at: Some(crash.detected_at.clone()),
                analysis_method: Some(DECIDED_AT_THE_EDGE.into()),
                image: crash.image.clone(),
                policy: Some(policy).filter(|p| *p != Policy::default()),
                ..IncidentContext::default()
            },
        };
        let result = match refused {
            Some(why) => {
                tracing::warn!(container = %name, %why, "crash not healed at the edge: refused");
                RemediationResult {
                    status: RemediationStatus::Rejected,
                    action: Action::Restart,
                    container: name.to_owned(),
                    error: Some(why),
                    reason: Some(reason),
                    details: None,
                    duration_ms: None,
                    verified: None,
                    dependents: Vec::new(),
                }
            }
            None => {
                tracing::warn!(container = %name, away, "the control plane is away: restarting the crashed container here");
                // Not the command stream's slots: one task, at most
                // CONCURRENCY restarts at once.
                let result = self.executor.execute(&cmd, Slot::default(), cancel).await;
                if matches!(result.status, RemediationStatus::Success | RemediationStatus::Failed) {
                    let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
                    ledger.record(&crash.container_id, now_ms, &self.state);
                }
                tracing::info!(container = %name, status = ?result.status, verified = ?result.verified, "edge restart done");
                result
            }
        };
        let report = RemediationComplete {
            container: name.to_owned(),
            action: Action::Restart,
            result,
            host: self.host.clone(),
            command_id: Some(cmd.id.clone()),
            dry_run: false,
            confidence: None,
            reason: Some(cmd.reason.clone()),
            context: cmd.context.clone(),
        };
        match Envelope::new(agent::MONITOR, EventKind::RemediationComplete, &report) {
            Ok(env) => self.outbox.send(env),
            Err(e) => tracing::error!(error = %e, "could not build the edge restart's report"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_holds_its_cooldown_and_hourly_cap() {
        let settings = Settings { after: Duration::from_secs(30), cooldown: Duration::from_secs(60), max_per_hour: 2 };
        let mut ledger = Ledger::default();
        let t0 = 1_000_000_000_i64;
        assert_eq!(ledger.refusal("c", &settings, t0), None);
        ledger.restarts.entry("c".into()).or_default().push(t0);
        let soon = ledger.refusal("c", &settings, t0 + 10_000).unwrap();
        assert!(soon.starts_with("edge cooldown: restarted by the collector 10 s ago"), "{soon}");
        assert_eq!(ledger.refusal("c", &settings, t0 + 61_000), None);
        ledger.restarts.entry("c".into()).or_default().push(t0 + 61_000);
        let capped = ledger.refusal("c", &settings, t0 + 200_000).unwrap();
        assert!(capped.starts_with("edge limit: 2 restarts by the collector in the last hour"), "{capped}");
        // Another container, and the same one an hour later.
        assert_eq!(ledger.refusal("d", &settings, t0 + 200_000), None);
        assert_eq!(ledger.refusal("c", &settings, t0 + HOUR_MS + 61_001), None);
        assert!(ledger.restarts.is_empty(), "an hour-old restart is forgotten");
    }
}
