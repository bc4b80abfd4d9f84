//! The one way HemoStat recreates a container: a fresh container from the
//! old one's own configuration (its `Config` and `HostConfig` as inspect
//! shows them, its networks, its anonymous volumes), under the same name,
//! in place of the old one. Used by the `recreate` action and for the
//! namespace dependents of a recreated parent, which differ only in the
//! `network_mode` they are given (`container:<the new parent's id>`).
//!
//! The old container is never lost: it is renamed aside first, and only
//! removed once the new one has started and held for the verification
//! window. If the create, the start or the verification fails, the new
//! one is removed and the old one gets its name back (and is started
//! again if it ran).

use std::time::Duration;

use bollard::{
    Docker,
    models::{ContainerInspectResponse, NetworkConnectRequest},
    query_parameters::{CreateContainerOptions, RemoveContainerOptions, RenameContainerOptions},
};
use hemostat_protocol::Action;
use tokio_util::sync::CancellationToken;

use super::blueprint::{Blueprint, Copy, blueprint};

use crate::{
    act::{outcome::Outcome, verify},
    docker,
    error::CollectorError,
    inflight::InFlight,
};

/// What a replacement needs besides the container.
pub(in crate::act) struct Replacement<'a> {
    pub docker: &'a Docker,
    pub inflight: &'a InFlight,
    /// For the old container's stop, when it says nothing of its own.
    pub stop_timeout: Duration,
    pub verify_window: Duration,
    pub cancel: &'a CancellationToken,
}

/// A replacement that held: the new container's id, and its verification.
pub(in crate::act) struct Replaced {
    pub id: String,
    pub outcome: Outcome,
}

/// What the name of a container waiting aside has before its short id.
pub(super) const ASIDE_MARK: &str = "-hemostat-replaced-";

/// The name the old container waits under while its replacement starts
/// (one ending in its own id: `leftovers` finds it by that if the
/// collector dies before the end).
pub(super) fn aside_name(name: &str, old_id: &str) -> String {
    format!("{name}{ASIDE_MARK}{}", docker::short(old_id))
}

impl Replacement<'_> {
    /// Replaces `old` with a fresh container of its configuration, joining
    /// `network_mode` if given. Err: the failure, with the old container
    /// back under its name.
    pub async fn replace(
        &self,
        old: &ContainerInspectResponse,
        network_mode: Option<&str>,
    ) -> Result<Replaced, Outcome> {
        let old_id = old.id.clone().unwrap_or_default();
        let name = docker::name(old).unwrap_or_default();
        if old_id.is_empty() || name.is_empty() {
            return Err(Outcome::failed("the container has no id or name to recreate it by"));
        }
        let aside = aside_name(&name, &old_id);
        let was_running = docker::is_running(old);
        let image = self.image(old).await;
        let Blueprint { body, more_networks } = blueprint(old, image, network_mode, Copy::Replacement);
        let mode = body.host_config.as_ref().and_then(|h| h.network_mode.clone()).unwrap_or_default();
        // Its stop, start and the new container's are HemoStat's own: no
        // crash to report, no parent restarted by someone else.
        let _window = self.inflight.begin([old_id.clone(), name.clone(), aside.clone()]);
        let d = self.docker;
        tracing::info!(container = %name, old = docker::short(&old_id), network_mode = %mode, "recreating from its own configuration");
        d.rename_container(&old_id, RenameContainerOptions { name: aside.clone() })
            .await
            .map_err(|e| Outcome::failed(format!("could not rename it aside: {}", text(e))))?;
        let created = d
            .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
            .await;
        let new_id = match created {
            Ok(c) => c.id,
            Err(e) => {
                return Err(self.put_back(&old_id, &name, None, false, format!("create failed: {}", text(e))).await);
            }
        };
        for (net, endpoint) in more_networks {
            let connect = NetworkConnectRequest { container: new_id.clone(), endpoint_config: Some(endpoint) };
            if let Err(e) = d.connect_network(&net, connect).await {
                let why = format!("could not attach it to network {net}: {}", text(e));
                return Err(self.put_back(&old_id, &name, Some(&new_id), false, why).await);
            }
        }
        if was_running {
            let timeout = docker::stop_timeout(old, self.stop_timeout);
            if let Err(e) = docker::apply(d, &old_id, Action::Stop, timeout).await {
                let why = format!("could not stop the old container: {e}");
                return Err(self.put_back(&old_id, &name, Some(&new_id), false, why).await);
            }
        }
        if let Err(e) = docker::apply(d, &new_id, Action::Start, self.stop_timeout).await {
            let why = format!("start failed: {e}");
            return Err(self.put_back(&old_id, &name, Some(&new_id), was_running, why).await);
        }
        let outcome = verify::watch(d, &new_id, self.verify_window, self.cancel).await.into_outcome();
        if outcome.verified == Some(false) {
            let why = format!("the new container did not hold: {}", outcome.error.unwrap_or_default());
            return Err(self.put_back(&old_id, &name, Some(&new_id), was_running, why).await);
        }
        // Its anonymous volumes now belong to the new container: kept.
        let removed = d.remove_container(&old_id, Some(RemoveContainerOptions { v: false, force: true, link: false }));
        let verified = outcome.details.clone().unwrap_or_default();
        let details = match removed.await {
            Ok(()) => format!("recreated as {}; {verified}", docker::short(&new_id)),
            Err(e) => {
                tracing::warn!(container = %name, old = %aside, error = %text(e), "could not remove the replaced container");
                format!("recreated as {}; the old one is left as {aside}; {verified}", docker::short(&new_id))
            }
        };
        tracing::info!(container = %name, new = docker::short(&new_id), "recreated");
        Ok(Replaced { id: new_id, outcome: outcome.details(details) })
    }

    /// The image the old container runs: by the name it was created with
    /// while that name still points at the same image (what `docker ps`
    /// shows), else by the image's id (a recreate is not an update).
    async fn image(&self, old: &ContainerInspectResponse) -> String {
        let id = old.image.clone().unwrap_or_default();
        let Some(named) = docker::image(old).filter(|n| !n.is_empty()) else { return id };
        match self.docker.inspect_image(&named).await {
            Ok(i) if i.id.as_deref() == Some(id.as_str()) || id.is_empty() => named,
            _ => id,
        }
    }

    /// Undoes a replacement that failed: the new container (if made) is
    /// removed, the old one gets its name back and, if it ran, is started
    /// again. The outcome says what failed and what was put back.
    async fn put_back(
        &self,
        old_id: &str,
        name: &str,
        new_id: Option<&str>,
        restart_old: bool,
        why: String,
    ) -> Outcome {
        tracing::warn!(container = %name, why = %why, "recreate failed: putting the old container back");
        let d = self.docker;
        let mut problems = Vec::new();
        if let Some(new_id) = new_id
            && let Err(e) =
                d.remove_container(new_id, Some(RemoveContainerOptions { v: false, force: true, link: false })).await
        {
            problems.push(format!("could not remove the new container: {}", text(e)));
        }
        if let Err(e) = d.rename_container(old_id, RenameContainerOptions { name: name.to_owned() }).await {
            problems.push(format!("could not give the old container its name back: {}", text(e)));
        }
        if restart_old && let Err(e) = docker::apply(d, old_id, Action::Start, self.stop_timeout).await {
            problems.push(format!("could not start the old container again: {e}"));
        }
        match problems.is_empty() {
            true => Outcome::failed(format!("{why}; the old container was put back")),
            false => Outcome::failed(format!("{why}; {}", problems.join("; "))),
        }
    }
}

fn text(e: bollard::errors::Error) -> String {
    docker::error_text(&CollectorError::from(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_container_waits_under_a_name_of_its_own() {
        let old = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(aside_name("app", old), "app-hemostat-replaced-0123456789ab");
    }
}
