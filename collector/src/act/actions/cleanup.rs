//! `cleanup`: reclaiming disk from exited containers and dangling images.
//!
//! Only exited containers this collector manages are removed (the scope
//! check is the same as for every other action, so HemoStat's own
//! containers and other collectors' containers are never touched), never
//! with force (a container that started again meanwhile makes Docker refuse
//! rather than being killed) and never with their volumes: volumes hold
//! data, and losing data is worse than any disk pressure.

use std::collections::HashMap;

use bollard::{
    Docker,
    query_parameters::{ListContainersOptions, ListImagesOptions, PruneImagesOptions, RemoveContainerOptions},
};

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
pub(in crate::act) async fn run(cx: &Context, cmd: &Command) -> Outcome {
    let found = match survey(&cx.docker, &cx.scope).await {
        Ok(f) => f,
        Err(e) => return Outcome::failed(docker::error_text(&e)),
    };
    if cmd.dry_run {
        return Outcome::dry_run(format!("would remove {}", found.describe()));
    }
    tracing::info!(command_id = %cmd.id, containers = found.containers.len(), "cleaning up");
    let report = remove(&cx.docker, found).await;
    match report.errors.is_empty() {
        true => Outcome::with(RemediationStatus::Success, report.describe()),
        false => Outcome::failed(report.errors.join("; ")).details(report.describe()),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Found {
    pub containers: Vec<Item>,
    pub images: Vec<Item>,
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

/// What a cleanup would remove now.
async fn survey(docker: &Docker, scope: &Scope) -> Result<Found, CollectorError> {
    let exited = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            // SizeRw: what removing the container gives back.
            size: true,
            filters: Some(HashMap::from([("status".to_owned(), vec!["exited".to_owned()])])),
            ..Default::default()
        }))
        .await?;
    let containers = exited
        .into_iter()
        .filter(|c| scope.excludes(&c.labels.clone().unwrap_or_default()).is_none())
        .filter_map(|c| {
            let id = c.id?;
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| docker::short(&id).to_owned());
            Some(Item { id, name, bytes: c.size_rw.and_then(|b| u64::try_from(b).ok()) })
        })
        .collect();
    let dangling =
        docker.list_images(Some(ListImagesOptions { filters: Some(dangling_filter()), ..Default::default() })).await?;
    let images = dangling
        .into_iter()
        .map(|i| Item { name: docker::short(&i.id).to_owned(), bytes: u64::try_from(i.size).ok(), id: i.id })
        .collect();
    Ok(Found { containers, images })
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
        let found = Found { containers: vec![item("b", 10), item("a", 2048)], images: vec![] };
        assert_eq!(found.describe(), "2 exited containers [a, b] and 0 dangling images (2.0 KiB); volumes are kept");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
