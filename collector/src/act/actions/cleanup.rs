//! `cleanup`: reclaiming disk from exited containers and dangling images.
//!
//! Only what is provably garbage goes: dangling images, and exited
//! containers this collector manages (the scope check is the same as for
//! every other action, so HemoStat's own containers and other collectors'
//! are never touched) that have been down for the cleanup's minimum age
//! (`HEMOSTAT_CLEANUP_MIN_AGE`, a day by default, never less than a
//! command's maximum age, so no container with an incident under way or a
//! command still valid goes) and that Docker would not start again (no
//! restart policy). What is kept is reported with why. Never with force (a
//! container that started again meanwhile makes Docker refuse rather than
//! being killed) and never with volumes: volumes hold data, and losing data
//! is worse than any disk pressure.

use std::{collections::HashMap, time::Duration};

use bollard::{
    Docker,
    models::{ContainerInspectResponse, RestartPolicyNameEnum},
    query_parameters::{ListContainersOptions, ListImagesOptions, PruneImagesOptions, RemoveContainerOptions},
};
use chrono::{DateTime, Utc};

use hemostat_protocol::{Command, event::RemediationStatus};

use crate::{
    act::{outcome::Outcome, target::Context},
    docker,
    error::CollectorError,
    scope::Scope,
};

/// Names listed in a report; the rest are counted.
const LISTED: usize = 20;

/// `cleanup` as the executor runs it: host-wide within scope (the
/// command's container only says what prompted it, so it need not exist
/// any more), or in a dry run what would go.
pub(in crate::act) async fn run(cx: &Context, min_age: Duration, cmd: &Command) -> Outcome {
    let found = match survey(&cx.docker, &cx.scope, min_age).await {
        Ok(f) => f,
        Err(e) => return Outcome::failed(docker::error_text(&e)),
    };
    if cmd.dry_run {
        return Outcome::dry_run(format!("would remove {}{}", found.describe(), found.kept()));
    }
    tracing::info!(command_id = %cmd.id, containers = found.containers.len(), "cleaning up");
    let kept = found.kept();
    let report = remove(&cx.docker, found).await;
    let details = format!("{}{kept}", report.describe());
    match report.errors.is_empty() {
        true => Outcome::with(RemediationStatus::Success, details),
        false => Outcome::failed(report.errors.join("; ")).details(details),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Found {
    pub containers: Vec<Item>,
    pub images: Vec<Item>,
    /// Exited containers left in place, with why.
    pub kept: Vec<(Item, String)>,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    /// The container's name, or the image's short id.
    pub name: String,
    /// Bytes it holds, when Docker says.
    pub bytes: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub containers: Vec<Item>,
    pub images: Vec<Item>,
    /// Bytes freed, as Docker reports them.
    pub bytes: u64,
    pub errors: Vec<String>,
}

/// What a cleanup would remove now, and which exited containers it keeps.
async fn survey(docker: &Docker, scope: &Scope, min_age: Duration) -> Result<Found, CollectorError> {
    let exited = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            // SizeRw: what removing the container gives back.
            size: true,
            filters: Some(HashMap::from([("status".to_owned(), vec!["exited".to_owned()])])),
            ..Default::default()
        }))
        .await?;
    let now = chrono::Utc::now();
    let mut found = Found::default();
    for c in exited.into_iter().filter(|c| scope.excludes(&c.labels.clone().unwrap_or_default()).is_none()) {
        let Some(id) = c.id else { continue };
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| docker::short(&id).to_owned());
        let item = Item { bytes: c.size_rw.and_then(|b| u64::try_from(b).ok()), id, name };
        // Inspected now: when it went down and whether Docker may start it
        // again are not in the list.
        let inspect = match docker::inspect(docker, &item.id).await {
            Ok(i) => i,
            Err(e) if docker::is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        match keep(&inspect, now, min_age) {
            Some(why) => found.kept.push((item, why)),
            None => found.containers.push(item),
        }
    }
    let dangling =
        docker.list_images(Some(ListImagesOptions { filters: Some(dangling_filter()), ..Default::default() })).await?;
    found.images = dangling
        .into_iter()
        .map(|i| Item { name: docker::short(&i.id).to_owned(), bytes: u64::try_from(i.size).ok(), id: i.id })
        .collect();
    Ok(found)
}

/// Why an exited container must stay, if it must: Docker may start it
/// again, or it went down less than `min_age` ago (or when, is unknown).
fn keep(inspect: &ContainerInspectResponse, now: DateTime<Utc>, min_age: Duration) -> Option<String> {
    let policy = inspect.host_config.as_ref().and_then(|h| h.restart_policy.as_ref()).and_then(|p| p.name);
    if let Some(p) = policy.filter(|p| !matches!(p, RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY)) {
        return Some(format!("restart policy {p}: Docker may start it again"));
    }
    let Some(down) = docker::finished_at(inspect) else {
        return Some("when it exited is unknown".into());
    };
    let ago = (now - down).to_std().unwrap_or_default();
    (ago < min_age).then(|| format!("exited {} ago, cleanup waits {}", span(ago), span(min_age)))
}

fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 => format!("{:.1} h", s as f64 / 3600.0),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn dangling_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([("dangling".to_owned(), vec!["true".to_owned()])])
}

/// Removes what [`survey`] found, then prunes dangling images (which also
/// catches those left dangling by the removals). Failures are collected,
/// not fatal: one stuck container should not keep the rest on disk.
async fn remove(docker: &Docker, found: Found) -> Report {
    let mut report = Report::default();
    for c in found.containers {
        let options = RemoveContainerOptions { v: false, force: false, link: false };
        match docker.remove_container(&c.id, Some(options)).await {
            Ok(()) => {
                report.bytes += c.bytes.unwrap_or(0);
                report.containers.push(c);
            }
            Err(e) => report.errors.push(format!("{}: {}", c.name, docker::error_text(&e.into()))),
        }
    }
    let options = PruneImagesOptions { filters: Some(dangling_filter()) };
    match docker.prune_images(Some(options)).await {
        Ok(pruned) => {
            report.bytes += pruned.space_reclaimed.and_then(|b| u64::try_from(b).ok()).unwrap_or(0);
            report.images = pruned
                .images_deleted
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| d.deleted)
                .map(|id| Item { name: docker::short(&id).to_owned(), id, bytes: None })
                .collect();
        }
        Err(e) => report.errors.push(format!("image prune: {}", docker::error_text(&e.into()))),
    }
    report
}

impl Found {
    /// `; kept N exited containers: a (why), ...`, or nothing.
    pub fn kept(&self) -> String {
        if self.kept.is_empty() {
            return String::new();
        }
        let listed: Vec<String> = self.kept.iter().take(LISTED).map(|(i, why)| format!("{} ({why})", i.name)).collect();
        let more = self.kept.len().saturating_sub(LISTED);
        let extra = if more > 0 { format!(" and {more} more") } else { String::new() };
        format!("; kept {} exited container(s): {}{extra}", self.kept.len(), listed.join(", "))
    }

    pub fn describe(&self) -> String {
        let bytes: u64 = self.containers.iter().chain(&self.images).filter_map(|i| i.bytes).sum();
        format!(
            "{} and {} ({}); volumes are kept",
            list(&self.containers, "exited container"),
            list(&self.images, "dangling image"),
            human(bytes)
        )
    }
}

impl Report {
    pub fn describe(&self) -> String {
        format!(
            "removed {} and {}; reclaimed {}; volumes kept",
            list(&self.containers, "exited container"),
            list(&self.images, "dangling image"),
            human(self.bytes)
        )
    }
}

fn list(items: &[Item], what: &str) -> String {
    let plural = if items.len() == 1 { "" } else { "s" };
    if items.is_empty() {
        return format!("0 {what}s");
    }
    let mut names: Vec<&str> = items.iter().take(LISTED).map(|i| i.name.as_str()).collect();
    let more = items.len().saturating_sub(LISTED);
    let extra = if more > 0 { format!(" and {more} more") } else { String::new() };
    names.sort_unstable();
    format!("{} {what}{plural} [{}{extra}]", items.len(), names.join(", "))
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_list_names_and_sizes() {
        let item = |n: &str, b| Item { id: n.into(), name: n.into(), bytes: Some(b) };
        let found = Found { containers: vec![item("b", 10), item("a", 2048)], ..Found::default() };
        assert_eq!(found.describe(), "2 exited containers [a, b] and 0 dangling images (2.0 KiB); volumes are kept");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }

    #[test]
    fn only_what_has_been_down_long_and_stays_down_goes() {
        use bollard::models::{ContainerState, HostConfig, RestartPolicy};
        let now: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().unwrap();
        let day = Duration::from_secs(24 * 3600);
        let exited = |finished: &str, policy: Option<RestartPolicyNameEnum>| ContainerInspectResponse {
            state: Some(ContainerState { finished_at: Some(finished.into()), ..Default::default() }),
            host_config: Some(HostConfig {
                restart_policy: policy.map(|name| RestartPolicy { name: Some(name), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(keep(&exited("2026-12-04T12:00:00Z", None), now, day), None);
        assert_eq!(keep(&exited("2026-12-04T12:00:00Z", Some(RestartPolicyNameEnum::NO)), now, day), None);
        let recent = keep(&exited("2026-12-06T11:55:00Z", None), now, day).unwrap();
        assert_eq!(recent, "exited 5 min ago, cleanup waits 24.0 h");
        let restarts = keep(&exited("2026-12-01T12:00:00Z", Some(RestartPolicyNameEnum::ON_FAILURE)), now, day);
        assert_eq!(restarts.as_deref(), Some("restart policy on-failure: Docker may start it again"));
        assert!(keep(&exited("0001-01-01T00:00:00Z", None), now, day).is_some(), "unknown end: kept");
    }
}
