//! Replacements a collector did not finish: it was killed (or the host
//! rebooted) between renaming the old container aside and removing it, so
//! a container waits under its aside name (`<name>-hemostat-replaced-<its
//! own short id>`, see `replace`), and its replacement, if one was made,
//! may be running, stopped or never started. Nobody else would ever give
//! the old one its name back: a compose project or a script looking for
//! `<name>` finds either nothing or a half-made container.
//!
//! At start-up, before any command is read, each such container is put
//! right by what the engine shows:
//! - no container under `<name>`: the replacement was never made; the old
//!   one gets its name back (as it was: running or not);
//! - `<name>` runs: the replacement got past its start; it stays, and the
//!   old one is removed (its anonymous volumes are the new one's now);
//! - `<name>` exists but does not run (never started, or exited): it is
//!   removed, the old one gets its name back, and is started again if it
//!   was stopped after the replacement was created (by the replacement:
//!   it ran before).
//!
//! A container is only taken for a leftover when its name ends in its own
//! id, which no other container's name can.

use std::time::Duration;

use bollard::{
    Docker,
    models::ContainerInspectResponse,
    query_parameters::{ListContainersOptions, RemoveContainerOptions, RenameContainerOptions},
};
use hemostat_protocol::Action;

use super::replace::{ASIDE_MARK, aside_name};
use crate::{docker, error::CollectorError, inflight::InFlight, scope::Scope};

/// What was done with one leftover, for the log (and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutRight {
    /// No replacement existed: the old container has its name back.
    Restored { name: String },
    /// The replacement ran: it stays, the old container was removed.
    Finished { name: String },
    /// The replacement did not run: removed, the old container restored
    /// (and started again when the replacement had stopped it).
    RolledBack { name: String, started: bool },
}

/// Puts right every replacement left unfinished on this engine, of the
/// containers in this collector's scope (another collector of the same
/// engine, watching others, may be in the middle of one of its own).
pub async fn put_right(docker: &Docker, inflight: &InFlight, scope: &Scope, stop_timeout: Duration) -> Vec<PutRight> {
    let listed = docker.list_containers(Some(ListContainersOptions { all: true, ..Default::default() })).await;
    let list = match listed {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %docker::error_text(&e.into()), "could not look for unfinished recreates");
            return Vec::new();
        }
    };
    let mut done = Vec::new();
    for c in list {
        let (Some(id), Some(names)) = (c.id.as_deref(), c.names.as_ref()) else { continue };
        let Some(aside) = names.iter().map(|n| n.trim_start_matches('/')).find(|n| n.contains(ASIDE_MARK)) else {
            continue;
        };
        let Some(name) = original(aside, id) else { continue };
        if let Some(why) = c.labels.as_ref().and_then(|labels| scope.excludes(labels)) {
            tracing::debug!(container = %name, why, "an unfinished recreate out of scope: left alone");
            continue;
        }
        match put_right_one(docker, inflight, id, &name, stop_timeout).await {
            Ok(p) => {
                tracing::warn!(container = %name, old = docker::short(id), outcome = ?p, "an unfinished recreate was put right");
                done.push(p);
            }
            Err(e) => {
                tracing::error!(container = %name, aside, error = %docker::error_text(&e), "could not put an unfinished recreate right");
            }
        }
    }
    done
}

/// The name a container waiting aside had, when `aside` is the name
/// `replace` gives the container `id`.
fn original(aside: &str, id: &str) -> Option<String> {
    let (name, _) = aside.rsplit_once(ASIDE_MARK)?;
    (!name.is_empty() && aside_name(name, id) == aside).then(|| name.to_owned())
}

async fn put_right_one(
    d: &Docker,
    inflight: &InFlight,
    old_id: &str,
    name: &str,
    stop_timeout: Duration,
) -> Result<PutRight, CollectorError> {
    // What follows is HemoStat's own: no crash, no parent restarted by
    // someone else, when the watcher replays these events.
    let _window = inflight.begin([old_id.to_owned(), name.to_owned()]);
    let old = docker::inspect(d, old_id).await?;
    let new = match docker::inspect(d, name).await {
        Ok(new) => Some(new),
        Err(e) if docker::is_not_found(&e) => None,
        Err(e) => return Err(e),
    };
    let Some(new) = new else {
        rename(d, old_id, name).await?;
        return Ok(PutRight::Restored { name: name.to_owned() });
    };
    if docker::is_running(&new) {
        d.remove_container(old_id, Some(RemoveContainerOptions { v: false, force: true, link: false })).await?;
        return Ok(PutRight::Finished { name: name.to_owned() });
    }
    let new_id = new.id.clone().unwrap_or_default();
    d.remove_container(&new_id, Some(RemoveContainerOptions { v: false, force: true, link: false })).await?;
    rename(d, old_id, name).await?;
    let started = stopped_by_replacement(&old, &new)
        && match docker::apply(d, old_id, Action::Start, stop_timeout).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(container = %name, error = %e, "an unfinished recreate's old container could not be started again");
                false
            }
        };
    Ok(PutRight::RolledBack { name: name.to_owned(), started })
}

/// Whether the old container stopped after its replacement was created:
/// `replace` stops it only then, so it ran before.
fn stopped_by_replacement(old: &ContainerInspectResponse, new: &ContainerInspectResponse) -> bool {
    !docker::is_running(old)
        && matches!((docker::finished_at(old), docker::created(new)), (Some(stopped), Some(made)) if stopped >= made)
}

async fn rename(d: &Docker, id: &str, name: &str) -> Result<(), CollectorError> {
    Ok(d.rename_container(id, RenameContainerOptions { name: name.to_owned() }).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_name_that_ends_in_its_own_id_is_a_leftover() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(original("web-hemostat-replaced-0123456789ab", id).as_deref(), Some("web"));
        assert_eq!(
            original("a-hemostat-replaced-b-hemostat-replaced-0123456789ab", id).as_deref(),
            Some("a-hemostat-replaced-b")
        );
        assert_eq!(original("web-hemostat-replaced-ffffffffffff", id), None, "another container's id");
        assert_eq!(original("-hemostat-replaced-0123456789ab", id), None);
        assert_eq!(original("web", id), None);
    }
}
