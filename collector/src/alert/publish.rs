//! Publishing an alert: what the host adds before it leaves (the
//! container's policy, who else is at work on it, the silences that select
//! it, its evidence), then the outbox.
//!
//! Evidence (log lines, health output, Docker state) is gathered off the
//! caller's task, so the event stream and the stats loop never wait on a
//! logs read; the alert goes once it is gathered (bounded by the
//! gatherer's timeout), or without it if gathering failed. The container's
//! recent events and sample summary ([`super::recent`]) are taken at once,
//! on the caller's task: the event or reading behind the alert is in them.

use std::{collections::HashSet, time::Instant};

use tokio::task::JoinHandle;

use bollard::models::ContainerInspectResponse;
use chrono::{DateTime, Utc};
use hemostat_protocol::{
    ContainerRef, Envelope, EventKind,
    envelope::agent,
    event::{HealthAlert, Metrics, Severity, SystemAlert},
    evidence::DockerEvent,
    policy::{ActionPolicy, COMPOSE_REPLACE_LABEL, Policy, Resolved},
};

use super::{
    alerts::{Alerts, Inspected, Latency},
    awaiting::{Awaiting, Delivery},
    evidence::{Gatherer, Provided},
    grace::{self, Moment},
    recent::Noted,
};
use crate::{
    docker,
    inflight::now_nanos,
    namespace::{self, MAX_DEPTH},
    usage::round2,
};

/// How long the run that ended had lasted, in seconds, for an exit's alert
/// (`exit_code` set, `detected_at` the `die` event's time): from Docker's
/// `StartedAt` when it is that run's (not after the die: Docker's restart
/// policy may have started the next run before the inspect), else from the
/// last `start` event before the die. None when neither is known.
fn uptime_at_exit(alert: &HealthAlert, started: Option<DateTime<Utc>>, events: &[DockerEvent]) -> Option<f64> {
    alert.exit_code?;
    let time = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc));
    let died = time(alert.detected_at.as_deref()?)?;
    let start = started.filter(|s| *s <= died).or_else(|| {
        events
            .iter()
            .filter(|e| e.action == "start")
            .filter_map(|e| time(e.time.as_deref()?))
            .filter(|t| *t <= died)
            .max()
    })?;
    Some((died - start).num_milliseconds() as f64 / 1000.0)
}

/// Containers whose bad labels are remembered as reported, at most.
const REPORTED_MAX: usize = 10_000;

impl Alerts {
    /// Publishes `alert` with the container's evidence attached, gathered
    /// on a task of its own (see the module doc); `latency`, when the alert
    /// came from an event, is logged with it.
    ///
    /// The container's labels decide first ([`docker::policy`]): with
    /// `hemostat.action=none` nothing is published; any other policy that
    /// differs from the fleet's travels in [`HealthAlert::policy`], for the
    /// analyzer and the gate. A container that could not be inspected
    /// (gone already) is alerted on with the fleet's policy.
    ///
    /// Returns the gathering task, which ends once the alert is in the
    /// outbox (or was dropped by its policy): the watcher keeps its place
    /// in the event stream short of an alert not handed over yet.
    pub fn publish_with_evidence(
        &self,
        mut alert: HealthAlert,
        from: Inspected,
        latency: Option<Latency>,
    ) -> Option<JoinHandle<()>> {
        let Some(gatherer) = self.evidence.clone() else {
            self.send(alert, latency, None);
            return None;
        };
        let provided = match (&self.recent, alert.container_id.as_deref()) {
            (Some(recent), Some(id)) => recent.provided(id),
            _ => Provided::default(),
        };
        let this = self.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let inspect = match from {
                Inspected::Yes(inspect) => Ok(*inspect),
                Inspected::No(id) => gatherer.inspect(&id).await,
            };
            let run_started = inspect.as_ref().ok().and_then(docker::started_at);
            if let Some(uptime) = uptime_at_exit(&alert, run_started, &provided.events) {
                alert.metrics.extra.insert(Metrics::UPTIME_SECONDS.into(), serde_json::json!(round2(uptime)));
            }
            match inspect {
                Ok(inspect) => {
                    let policy = this.policy(&alert, &inspect);
                    if policy.action == ActionPolicy::None {
                        tracing::info!(container = %alert.container, issues = ?alert.issues, "hemostat.action=none: no alert");
                        return;
                    }
                    alert.policy = (!policy.is_default()).then(|| policy.clone());
                    let ancestors = this.ancestors(&gatherer, &inspect).await;
                    alert.held = this.held(&inspect, &ancestors);
                    alert.silenced_by = this.silenced_by(&alert.container, &inspect).await;
                    if let Some(facts) = &this.facts {
                        let c = ContainerRef::new(&alert.host, &alert.container);
                        facts.record(&c, &inspect, &policy, alert.held.as_deref(), &alert.silenced_by).await;
                    }
                    alert.evidence = Some(gatherer.gather_inspected(&inspect, provided).await);
                }
                Err(e) => tracing::debug!(container = %alert.container, error = %e, "no evidence for this alert"),
            }
            this.send(alert, latency, Some(started.elapsed().as_millis() as u64));
        });
        Some(task)
    }

    /// The label silences that select the container (see [`super::silences`]).
    async fn silenced_by(&self, name: &str, inspect: &ContainerInspectResponse) -> Vec<String> {
        let Some(silences) = &self.silences else { return Vec::new() };
        let ids = silences.selecting(&docker::labels(inspect)).await;
        if !ids.is_empty() {
            tracing::info!(container = %name, silences = ?ids, "a label silence holds: the gate will not act");
        }
        ids
    }

    /// The containers whose network namespace it joins, nearest first, each
    /// named as `docker ps` names it and with its recent events: Docker
    /// records `container:<id>` (or the name the user gave), and C started
    /// to join B, who joins A, shares A's namespace through B. At most
    /// [`MAX_DEPTH`] levels; a parent that cannot be inspected (removed
    /// already) ends the chain under the reference its child holds.
    async fn ancestors(&self, gatherer: &Gatherer, inspect: &ContainerInspectResponse) -> Vec<(String, Vec<Noted>)> {
        let noted = |id: &str| self.recent.as_ref().map(|r| r.noted(id)).unwrap_or_default();
        let mut seen: HashSet<String> = inspect.id.iter().cloned().collect();
        let mut chain = Vec::new();
        let mut reference = namespace::parent_reference(inspect);
        while chain.len() < MAX_DEPTH {
            let Some(r) = reference.take() else { break };
            let Ok(parent) = gatherer.inspect(&r).await else {
                chain.push((docker::short(&r).to_owned(), noted(&r)));
                break;
            };
            let id = parent.id.clone().unwrap_or_else(|| r.clone());
            if !seen.insert(id.clone()) {
                break;
            }
            chain.push((docker::name(&parent).unwrap_or_else(|| docker::short(&id).to_owned()), noted(&id)));
            reference = namespace::parent_reference(&parent);
        }
        chain
    }

    /// Why the gate must not act on the container now, if it must not.
    fn held(&self, inspect: &ContainerInspectResponse, ancestors: &[(String, Vec<Noted>)]) -> Option<String> {
        let id = inspect.id.as_deref()?;
        let name = docker::name(inspect).unwrap_or_default();
        let events = self.recent.as_ref().map(|r| r.noted(id)).unwrap_or_default();
        let ancestors: Vec<grace::Parent<'_>> =
            ancestors.iter().map(|(name, events)| grace::Parent { name, events }).collect();
        let replaces =
            inspect.config.as_ref().and_then(|c| c.labels.as_ref()).and_then(|l| l.get(COMPOSE_REPLACE_LABEL));
        let moment = Moment {
            replaces: replaces.map(String::as_str).filter(|r| !r.is_empty()),
            events: &events,
            paused: inspect.state.as_ref().and_then(|s| s.paused).unwrap_or(false),
            created_nano: docker::created(inspect).and_then(|t| t.timestamp_nanos_opt()),
            // A running container's FinishedAt is its previous run's.
            finished_nano: (!docker::is_running(inspect))
                .then(|| docker::finished_at(inspect))
                .flatten()
                .and_then(|t| t.timestamp_nanos_opt()),
            ancestors: &ancestors,
            now_nano: now_nanos(),
        };
        let own = |t| self.inflight.covers(id, t) || self.inflight.covers(&name, t);
        let held = grace::hold(&self.graces, &moment, own);
        if let Some(why) = &held {
            tracing::info!(container = %name, held = %why, "someone else is at work on it: the gate will not act");
        }
        held
    }

    /// The container's policy; labels that do not parse are reported once
    /// per container (a warning and a `system_alert`), and the fleet's
    /// settings stand in for them.
    fn policy(&self, alert: &HealthAlert, inspect: &ContainerInspectResponse) -> Policy {
        let Resolved { policy, problems } = docker::policy(inspect);
        if problems.is_empty() {
            return policy;
        }
        let id = inspect.id.clone().unwrap_or_else(|| alert.container.clone());
        {
            let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
            // Ids of removed containers never leave on their own (each
            // redeploy brings new ones): past the bound, start over; a
            // container reported twice costs one more warning.
            if reported.len() >= REPORTED_MAX {
                reported.clear();
            }
            if !reported.insert(id) {
                return policy;
            }
        }
        let message = format!(
            "container {} has labels HemoStat cannot read, the defaults apply instead: {}",
            alert.container,
            problems.join("; ")
        );
        tracing::warn!(container = %alert.container, problems = ?problems, "bad labels: the defaults apply");
        let report = SystemAlert {
            kind: SystemAlert::BAD_LABELS.into(),
            severity: Severity::Medium,
            host: self.host.clone(),
            message,
            last_seen: None,
            missing_for_seconds: None,
            container: Some(alert.container.clone()),
            approval: None,
        };
        match Envelope::new(agent::MONITOR, EventKind::SystemAlert, &report) {
            Ok(env) => self.outbox.send(env),
            Err(e) => tracing::error!(error = %e, "could not build the bad-labels alert"),
        }
        policy
    }

    fn send(&self, alert: HealthAlert, latency: Option<Latency>, evidence_ms: Option<u64>) {
        tracing::info!(
            container = %alert.container, issues = ?alert.issues,
            anomaly = ?alert.anomalies.first().map(|a| a.kind),
            event_to_receipt_ms = latency.map(|l| l.event_to_receipt_ms),
            queued_ms = latency.map(|l| l.queued_ms),
            inspect_ms = latency.map(|l| l.inspect_ms),
            evidence_ms,
            log_lines = alert.evidence.as_ref().map(|e| e.logs.lines.len()),
            events = alert.evidence.as_ref().map(|e| e.events.len()),
            samples = alert.evidence.as_ref().and_then(|e| e.samples.as_ref()).map(|s| s.count),
            "health alert"
        );
        let edge = self.awaiting.as_ref().and_then(|a| Some((a, Awaiting::candidate(&alert)?)));
        match Envelope::new(agent::MONITOR, EventKind::HealthAlert, &alert) {
            Ok(env) => match edge {
                Some((awaiting, crash)) => awaiting.note(crash(Delivery::Queued(self.outbox.send_tracked(env)))),
                None => self.outbox.send(env),
            },
            Err(e) => tracing::error!(error = %e, "could not build health alert"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    fn exit(died: &str) -> HealthAlert {
        HealthAlert {
            container: "web".into(),
            issues: vec![],
            metrics: Metrics::default(),
            host: "h1".into(),
            container_id: Some("c1".into()),
            image: None,
            anomalies: vec![],
            exit_code: Some(1),
            detected_at: Some(died.into()),
            evidence: None,
            policy: None,
            held: None,
            silenced_by: Vec::new(),
        }
    }

    fn start(t: &str) -> DockerEvent {
        DockerEvent { action: "start".into(), time: Some(t.into()), ..Default::default() }
    }

    #[test]
    fn uptime_runs_from_the_start_of_the_run_that_died() {
        let died = "2026-12-06T10:00:02.500000000Z";
        // The exited container's own StartedAt.
        let started = Some(at("2026-12-06T10:00:00Z"));
        assert_eq!(uptime_at_exit(&exit(died), started, &[]), Some(2.5));
        // Days of service.
        let long = Some(at("2026-12-03T10:00:02.500Z"));
        assert_eq!(uptime_at_exit(&exit(died), long, &[]), Some(3.0 * 86_400.0));
        // Docker's restart policy started the next run before the inspect:
        // that StartedAt is not the run that died; the start event before
        // the die is.
        let next = Some(at("2026-12-06T10:00:03Z"));
        let events = [start("2026-12-06T09:59:00Z"), start("2026-12-06T10:00:01.5Z"), start("2026-12-06T10:00:03Z")];
        assert_eq!(uptime_at_exit(&exit(died), next, &events), Some(1.0));
        assert_eq!(uptime_at_exit(&exit(died), None, &events), Some(1.0));
        // Nothing tells when the run began, or the alert is no exit.
        assert_eq!(uptime_at_exit(&exit(died), next, &[]), None);
        let unhealthy = HealthAlert { exit_code: None, ..exit(died) };
        assert_eq!(uptime_at_exit(&unhealthy, started, &[]), None);
        let undated = HealthAlert { detected_at: None, ..exit(died) };
        assert_eq!(uptime_at_exit(&undated, started, &[]), None);
    }
}
