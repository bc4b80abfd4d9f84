//! Recovering the dependents of a parent someone else restarted (an
//! operator, another tool, its restart policy): on the parent's `start`,
//! those that went down with it are started, those left running in its old
//! namespace are restarted into the new one, and each is reported in a
//! `remediation_complete` of its own.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use bollard::Docker;
use hemostat_protocol::{
    Action, Envelope, EventKind,
    envelope::agent,
    event::{IncidentContext, RemediationComplete, RemediationResult},
};
use tokio_util::sync::CancellationToken;

use super::{
    dependent::{DIE_WINDOW, Dependent, POLL, SETTLE, recoverable, stranded},
    find::find,
};
use crate::{
    act::{outcome::Outcome, verify},
    alert::redact::Redactor,
    docker,
    inflight::InFlight,
    outbox::Outbox,
    scope::Scope,
};

/// Recovers the dependents of a parent restarted by someone else.
#[derive(Clone)]
pub struct Recovery {
    pub docker: Docker,
    pub scope: Scope,
    pub inflight: InFlight,
    pub outbox: Outbox,
    pub host: String,
    pub verify_window: Duration,
    /// `--stop-timeout`, for a stranded dependent that says nothing of its own.
    pub stop_timeout: Duration,
    /// For Docker's error text, as every report's.
    pub redactor: Redactor,
}

impl Recovery {
    /// The watcher saw container `id` start at `time_nano`. Not when the
    /// collector is acting on it: the executor handles those dependents.
    /// Off the watcher's task.
    pub fn parent_started(&self, id: &str, name: &str, time_nano: i64) {
        if self.inflight.covers(id, time_nano) || self.inflight.covers(name, time_nano) {
            return;
        }
        let this = self.clone();
        let (id, name) = (id.to_owned(), name.to_owned());
        tokio::spawn(async move { this.recover(&id, &name).await });
    }

    async fn recover(&self, parent_id: &str, parent_name: &str) {
        let begun = Instant::now();
        let mut handled: HashSet<String> = HashSet::new();
        let mut noted: HashSet<String> = HashSet::new();
        loop {
            let parent = match docker::inspect(&self.docker, parent_id).await {
                Ok(p) if docker::is_running(&p) => p,
                _ => return,
            };
            // A first start: nothing can have run in its namespace before.
            let Some(down) = docker::finished_at(&parent) else { return };
            let parent_started = docker::started_at(&parent);
            let found = match find(&self.docker, parent_id, parent_name, &self.scope).await {
                Ok(found) => found,
                Err(e) => {
                    return tracing::warn!(parent = parent_name, error = %docker::error_text(&e), "could not list dependents");
                }
            };
            if found.is_empty() {
                return;
            }
            // A dependent that lost its network may still be dying of it:
            // it is given a moment to, and is then started like the others.
            let settled = begun.elapsed() >= SETTLE;
            // Names of the stranded ones still to be restarted into the new
            // namespace, and of those that join them: one started now would
            // join the old namespace, so it waits for the one it joins.
            let mut waiting: HashSet<&str> = HashSet::new();
            for d in &found {
                if handled.contains(&d.id) {
                    continue;
                }
                if waiting.contains(d.joins.as_str()) {
                    waiting.insert(&d.name);
                    continue;
                }
                let act = if recoverable(d, down) {
                    Action::Start
                } else if parent_started.is_some_and(|p| stranded(d, p)) {
                    if !settled {
                        waiting.insert(&d.name);
                        continue;
                    }
                    Action::Restart
                } else {
                    continue;
                };
                if let Some(why) = d.excluded.as_deref() {
                    if noted.insert(d.id.clone()) {
                        tracing::info!(container = %d.name, parent = parent_name, why, "dependent of a restarted parent: left alone");
                    }
                    continue;
                }
                handled.insert(d.id.clone());
                self.bring_back(parent_name, d, act).await;
            }
            if begun.elapsed() >= DIE_WINDOW {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts an exited dependent, or restarts a stranded one, verifies
    /// it, and reports it in a `remediation_complete` of its own.
    async fn bring_back(&self, parent: &str, d: &Dependent, act: Action) {
        let started = Instant::now();
        let reason = match act {
            Action::Restart => {
                format!("dependent of {parent} restarted into its new network namespace (it ran on in the old one)")
            }
            _ => format!("dependent of {parent} recovered after its restart"),
        };
        tracing::info!(container = %d.name, parent, joins = %d.joins, action = %act, "dependent of a parent someone else restarted");
        // Its start is HemoStat's own: the watcher must not take it for a
        // parent someone else restarted (it may have dependents of its own,
        // which this recovery handles next), nor its restart for a crash.
        let timeout = docker::stop_timeout(&d.inspect, self.stop_timeout);
        let window = self.inflight.begin([d.id.clone(), d.name.clone()]);
        let started_it = docker::apply(&self.docker, &d.id, act, timeout).await;
        drop(window);
        let outcome = match started_it {
            Ok(()) => {
                verify::watch(&self.docker, &d.id, self.verify_window, &CancellationToken::new()).await.into_outcome()
            }
            Err(e) => Outcome::failed(e),
        };
        tracing::info!(container = %d.name, parent, status = ?outcome.status, verified = ?outcome.verified, error = ?outcome.error, "dependent recovery done");
        let data = RemediationComplete {
            container: d.name.clone(),
            action: act,
            result: RemediationResult {
                status: outcome.status,
                action: act,
                container: d.name.clone(),
                error: outcome.error.map(|e| self.redactor.redact(&e).0),
                reason: Some(reason.clone()),
                details: outcome.details,
                duration_ms: Some(started.elapsed().as_millis() as u64),
                verified: outcome.verified,
                dependents: Vec::new(),
            },
            host: self.host.clone(),
            command_id: None,
            dry_run: false,
            confidence: None,
            reason: Some(reason),
            context: IncidentContext { image: docker::image(&d.inspect), ..Default::default() },
        };
        match Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &data) {
            Ok(env) => self.outbox.send(env),
            Err(e) => tracing::warn!(container = %d.name, error = %e, "could not build remediation_complete"),
        }
    }
}
