//! Recovering the dependents of a parent someone else restarted (an
//! operator, another tool, its restart policy): on the parent's `start`,
//! those that went down with it are started, those left running in its old
//! namespace are restarted into the new one, and each is reported in a
//! `remediation_complete` of its own.
//!
//! A parent recreated by someone else (a new container under the old
//! name: `docker compose up` after a change, an image updater, `docker rm
//! -f` and `run`) strands its namespace dependents for good: they name the
//! old container's id, which Docker can no longer find. On the new
//! parent's `start`, the containers that name a removed container are
//! found, and tied to the parent when that container had the parent's name
//! ([`Gone`], from the `destroy` events), when the parent says it replaced
//! it (compose's `com.docker.compose.replace` label), or when they are
//! compose services of the parent's project that depend on its service;
//! each is recreated in the new parent's namespace ([`rejoin`]), its own
//! dependents after it, each reported like a recovery.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::{Duration, Instant},
};

use bollard::{Docker, query_parameters::ListContainersOptions};
use hemostat_protocol::{
    Action, Envelope, EventKind,
    envelope::agent,
    event::{DependentResult, IncidentContext, RemediationComplete, RemediationResult},
    policy::{COMPOSE_DEPENDS_ON_LABEL, COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL},
};
use tokio_util::sync::CancellationToken;

use super::{
    dependent::{DIE_WINDOW, Dependent, POLL, SETTLE, recoverable, stranded},
    find::find,
    gone::Gone,
    rejoin::rejoin,
};
use crate::{
    act::{actions::replace::Replacement, outcome::Outcome, verify},
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
    /// The names of removed containers, by id.
    pub gone: Gone,
}

/// Compose's label on a container that replaced another: the old one's id.
const COMPOSE_REPLACE_LABEL: &str = "com.docker.compose.replace";

/// What every label compose sets starts with.
const COMPOSE_LABEL_PREFIX: &str = "com.docker.compose.";

/// After a parent compose recreated starts, how long its dependents are
/// left to compose: a `compose up` that recreates them too does so right
/// after the parent, and racing it would leave two containers fighting
/// over one name. Those still naming the old parent after this are
/// compose's leftovers, and recreated.
const COMPOSE_SETTLE: Duration = Duration::from_secs(10);

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
        tokio::spawn(async move {
            this.rejoin_recreated(&id, &name).await;
            this.recover(&id, &name).await
        });
    }

    /// The watcher saw container `id`, named `name`, removed.
    pub fn container_removed(&self, id: &str, name: &str) {
        self.gone.note(id, name);
    }

    /// The ids of removed containers that running parent `parent` (its
    /// inspect) replaced, as named by the containers that still join them.
    async fn replaced(
        &self,
        parent_id: &str,
        parent_name: &str,
        parent_labels: &HashMap<String, String>,
    ) -> Result<BTreeSet<String>, crate::error::CollectorError> {
        let list = self.docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await?;
        let exists = |reference: &str| {
            list.iter().any(|c| {
                c.id.as_deref()
                    .is_some_and(|id| id == reference || (reference.len() >= 12 && id.starts_with(reference)))
                    || c.names.iter().flatten().any(|n| n.trim_start_matches('/') == reference)
            })
        };
        let replace_label = parent_labels.get(COMPOSE_REPLACE_LABEL).map(String::as_str);
        let mut replaced = BTreeSet::new();
        for c in &list {
            let mode = c.host_config.as_ref().and_then(|h| h.network_mode.as_deref()).unwrap_or_default();
            let Some(old) = mode.strip_prefix("container:").map(str::trim).filter(|o| !o.is_empty()) else {
                continue;
            };
            if old == parent_id || replaced.contains(old) || exists(old) {
                continue;
            }
            let labels = c.labels.clone().unwrap_or_default();
            if tied(old, self.gone.name_of(old).as_deref(), parent_name, replace_label, &labels, parent_labels) {
                replaced.insert(old.to_owned());
            }
        }
        Ok(replaced)
    }

    /// Recreates, in the new parent's namespace, the dependents stranded
    /// by a recreate of the parent (see the module doc), level by level.
    async fn rejoin_recreated(&self, parent_id: &str, parent_name: &str) {
        let parent = match docker::inspect(&self.docker, parent_id).await {
            Ok(p) if docker::is_running(&p) => p,
            _ => return,
        };
        let labels = self.compose_said(&parent).await;
        let by_compose = labels.contains_key(COMPOSE_REPLACE_LABEL);
        // A list of every container only where a recreate can have been:
        // a container of this name was removed, or compose made this one
        // (a storm of fresh containers is not a list each).
        if !(by_compose || labels.contains_key(COMPOSE_PROJECT_LABEL) || self.gone.had_name(parent_name)) {
            return;
        }
        if by_compose {
            tokio::time::sleep(COMPOSE_SETTLE).await;
        }
        let replaced = match self.replaced(parent_id, parent_name, &labels).await {
            Ok(r) => r,
            Err(e) => {
                return tracing::warn!(parent = parent_name, error = %docker::error_text(&e), "could not list containers");
            }
        };
        let cancel = CancellationToken::new();
        let replacement = Replacement {
            docker: &self.docker,
            inflight: &self.inflight,
            stop_timeout: self.stop_timeout,
            verify_window: self.verify_window,
            cancel: &cancel,
        };
        for old in replaced {
            let found = match find(&self.docker, &old, parent_name, &self.scope).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(parent = parent_name, error = %docker::error_text(&e), "could not list dependents");
                    continue;
                }
            };
            tracing::info!(
                parent = parent_name,
                old = docker::short(&old),
                new = docker::short(parent_id),
                dependents = found.len(),
                "parent recreated: its dependents join the new one"
            );
            let started = Instant::now();
            let reason =
                format!("dependent of {parent_name}, which was recreated: recreated in its new network namespace");
            let images: HashMap<&str, Option<String>> =
                found.iter().map(|d| (d.name.as_str(), docker::image(&d.inspect))).collect();
            // Every collector on the engine sees the parent start: one
            // outside this one's selector is its own collector's to report
            // (a report here would say "left alone" of a container that
            // one recreates).
            let foreign: HashSet<&str> = found
                .iter()
                .filter(|d| !self.scope.selects(&docker::labels(&d.inspect)))
                .map(|d| d.name.as_str())
                .collect();
            for r in rejoin(&replacement, parent_name, parent_id, &found).await {
                if foreign.contains(r.container.as_str()) {
                    continue;
                }
                let image = images.get(r.container.as_str()).cloned().flatten();
                self.report(reason.clone(), started, dependent_result(r), image);
            }
        }
    }

    /// The parent's labels, less the compose labels its image carries: a
    /// label an image was built with is its author's word, not compose's
    /// (any image may say it is project `media`, service `vpn`), and must
    /// not pull another container's dependents into its namespace.
    async fn compose_said(&self, parent: &bollard::models::ContainerInspectResponse) -> HashMap<String, String> {
        let mut labels = docker::labels(parent);
        if !labels.keys().any(|k| k.starts_with(COMPOSE_LABEL_PREFIX)) {
            return labels;
        }
        let Some(image) = parent.image.as_deref() else { return labels };
        let baked = match self.docker.inspect_image(image).await {
            Ok(i) => i.config.and_then(|c| c.labels).unwrap_or_default(),
            Err(e) => {
                // Unknown: the compose labels cannot be told from the image's.
                tracing::warn!(image, error = %docker::error_text(&e.into()), "could not inspect the parent's image; its compose labels are not trusted");
                labels.retain(|k, _| !k.starts_with(COMPOSE_LABEL_PREFIX));
                return labels;
            }
        };
        labels.retain(|k, v| !(k.starts_with(COMPOSE_LABEL_PREFIX) && baked.get(k) == Some(v)));
        labels
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
        let result = RemediationResult {
            status: outcome.status,
            action: act,
            container: d.name.clone(),
            error: outcome.error,
            reason: Some(reason.clone()),
            details: outcome.details,
            duration_ms: None,
            verified: outcome.verified,
            dependents: Vec::new(),
        };
        self.report(reason, started, result, docker::image(&d.inspect));
    }

    /// A dependent's own `remediation_complete`, not answering a command.
    fn report(&self, reason: String, started: Instant, result: RemediationResult, image: Option<String>) {
        let container = result.container.clone();
        let action = result.action;
        let data = RemediationComplete {
            container: container.clone(),
            action,
            result: RemediationResult {
                error: result.error.map(|e| self.redactor.redact(&e).0),
                details: result.details.map(|d| self.redactor.redact(&d).0),
                reason: Some(reason.clone()),
                duration_ms: Some(started.elapsed().as_millis() as u64),
                ..result
            },
            host: self.host.clone(),
            command_id: None,
            dry_run: false,
            confidence: None,
            reason: Some(reason),
            context: IncidentContext { image, ..Default::default() },
        };
        match Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &data) {
            Ok(env) => self.outbox.send(env),
            Err(e) => tracing::warn!(container = %container, error = %e, "could not build remediation_complete"),
        }
    }
}

/// A dependent's result as a report of its own.
fn dependent_result(r: DependentResult) -> RemediationResult {
    RemediationResult {
        status: r.status,
        action: r.action,
        container: r.container,
        error: r.error,
        reason: None,
        details: r.details,
        duration_ms: None,
        verified: r.verified,
        dependents: Vec::new(),
    }
}

/// Whether the removed container `old` (named `old_name`, when the engine's
/// `destroy` event was seen) was the one `parent_name` replaced, so that a
/// dependent (its `labels`) joining `old` joins the parent now. A name on
/// record decides: the parent's own name, or compose's temporary name for
/// it (`<12 hex digits>_<name>`: compose renames the old container aside
/// before it creates the new one); any other name refutes whatever labels
/// claim. Without one, compose's word: the parent's replace label naming
/// `old`, or the dependent following the parent's service, either within
/// one compose project.
fn tied(
    old: &str,
    old_name: Option<&str>,
    parent_name: &str,
    replace_label: Option<&str>,
    labels: &HashMap<String, String>,
    parent_labels: &HashMap<String, String>,
) -> bool {
    if let Some(name) = old_name {
        let aside = name
            .split_once('_')
            .filter(|(prefix, _)| prefix.len() == 12 && prefix.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|(_, rest)| rest);
        return name == parent_name || aside == Some(parent_name);
    }
    let same_project =
        parent_labels.get(COMPOSE_PROJECT_LABEL).is_some_and(|p| labels.get(COMPOSE_PROJECT_LABEL) == Some(p));
    (same_project && replace_label.is_some_and(|r| r.len() >= 12 && old.starts_with(r)))
        || compose_follows(labels, parent_labels)
}

/// Whether a compose container (its labels) depends on the parent's
/// service in the same project: compose records `network_mode:
/// service:<parent>` as such a dependency.
fn compose_follows(labels: &HashMap<String, String>, parent: &HashMap<String, String>) -> bool {
    let (Some(project), Some(service)) = (parent.get(COMPOSE_PROJECT_LABEL), parent.get(COMPOSE_SERVICE_LABEL)) else {
        return false;
    };
    labels.get(COMPOSE_PROJECT_LABEL) == Some(project)
        && labels
            .get(COMPOSE_DEPENDS_ON_LABEL)
            .is_some_and(|d| d.split(',').any(|entry| entry.trim().split(':').next() == Some(service.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compose_service_of_the_same_project_follows_the_service_it_depends_on() {
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let vpn = labels(&[(COMPOSE_PROJECT_LABEL, "media"), (COMPOSE_SERVICE_LABEL, "vpn")]);
        let app = labels(&[(COMPOSE_PROJECT_LABEL, "media"), (COMPOSE_DEPENDS_ON_LABEL, "vpn:service_started:false")]);
        assert!(compose_follows(&app, &vpn));
        let other = labels(&[(COMPOSE_PROJECT_LABEL, "blog"), (COMPOSE_DEPENDS_ON_LABEL, "vpn:service_started:false")]);
        assert!(!compose_follows(&other, &vpn), "another project");
        let unrelated =
            labels(&[(COMPOSE_PROJECT_LABEL, "media"), (COMPOSE_DEPENDS_ON_LABEL, "vpnx:service_started:false")]);
        assert!(!compose_follows(&unrelated, &vpn));
        assert!(!compose_follows(&app, &labels(&[])), "a parent outside compose");
    }

    #[test]
    fn a_name_on_record_decides_and_labels_tie_only_within_one_project() {
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let old = "0123456789ab".to_owned() + &"c".repeat(52);
        let none = labels(&[]);
        // Removed under the parent's name, or compose's name for it aside.
        assert!(tied(&old, Some("vpn"), "vpn", None, &none, &none));
        assert!(tied(&old, Some("0123456789ab_vpn"), "vpn", None, &none, &none));
        assert!(!tied(&old, Some("0123456789ab_vpnx"), "vpn", None, &none, &none));
        // Another name on record refutes what any label claims.
        let media = labels(&[(COMPOSE_PROJECT_LABEL, "media"), (COMPOSE_SERVICE_LABEL, "vpn")]);
        let app = labels(&[(COMPOSE_PROJECT_LABEL, "media"), (COMPOSE_DEPENDS_ON_LABEL, "vpn:service_started:false")]);
        assert!(!tied(&old, Some("bank-vpn"), "evil", Some(&old[..12]), &app, &media));
        // No name on record: the replace label within one project, or compose's dependency.
        assert!(tied(&old, None, "vpn", Some(&old[..12]), &app, &media));
        let stranger = labels(&[(COMPOSE_PROJECT_LABEL, "blog")]);
        assert!(!tied(&old, None, "vpn", Some(&old[..12]), &stranger, &media), "another project");
        assert!(!tied(&old, None, "vpn", Some(&old[..12]), &none, &labels(&[])), "no project at all");
        assert!(!tied(&old, None, "vpn", Some("0123"), &app, &labels(&[(COMPOSE_PROJECT_LABEL, "media")])), "short");
        assert!(tied(&old, None, "vpn", None, &app, &media), "follows its service");
    }
}
