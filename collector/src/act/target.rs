//! What every action works with: the Docker client, the settings and the
//! scope ([`Context`]), and the container it aims at ([`Target`]), found
//! and checked against the scope the same way for every action.

use std::time::{Duration, Instant};

use bollard::{Docker, models::ContainerInspectResponse};
use hemostat_protocol::Command;

use super::{limits::Limits, outcome::Outcome};
use crate::{docker, inflight::InFlight, scope::Scope};

#[derive(Clone)]
pub struct Context {
    pub docker: Docker,
    /// `--stop-timeout`, when a container's labels and its own
    /// `StopTimeout` say nothing.
    pub stop_timeout: Duration,
    pub verify_window: Duration,
    pub inflight: InFlight,
    pub scope: Scope,
    /// Containers' own limits, enforced again here.
    pub limits: Limits,
}

/// A container an action is aimed at, after the scope check.
pub struct Target {
    pub id: String,
    pub name: String,
    pub inspect: ContainerInspectResponse,
}

impl Context {
    /// Inspects the command's container and refuses it when out of scope,
    /// when the command's name and id are of two containers, or when the
    /// container's own labels forbid the action (see [`Limits`]).
    pub async fn target(&self, cmd: &Command) -> Result<Target, Outcome> {
        // The id pins the exact container the responder saw; the name is
        // the fallback for seed-protocol commands that carry none.
        let wanted = cmd.container_id.as_deref().filter(|id| !id.is_empty()).unwrap_or(&cmd.container);
        let inspect = docker::inspect_patiently(&self.docker, wanted)
            .await
            .map_err(|e| Outcome::failed(docker::error_text(&e)))?;
        let refuse = |why: &str| {
            tracing::warn!(container = %cmd.container, action = %cmd.action, command_id = %cmd.id, why, "command refused");
            Outcome::rejected(why)
        };
        if let Some(why) = self.scope.excludes(&docker::labels(&inspect)) {
            return Err(refuse(why));
        }
        let name = docker::name(&inspect).unwrap_or_else(|| cmd.container.clone());
        if name != cmd.container.trim_start_matches('/') {
            return Err(refuse(&format!(
                "name and id disagree: the command names {} but container {} is {name}",
                cmd.container,
                docker::short(wanted)
            )));
        }
        let id = inspect.id.clone().unwrap_or_else(|| wanted.to_owned());
        if let Some(why) = self.limits.refusal(
            &id,
            &docker::policy(&inspect).policy,
            cmd.action,
            cmd.context.escalation_step,
            Instant::now(),
        ) {
            return Err(refuse(&why));
        }
        Ok(Target { id, name, inspect })
    }

    /// `target` was acted on: it counts against its own limits.
    pub fn acted(&self, target: &Target) {
        self.limits.record(&target.id, Instant::now());
    }

    /// The container's own stop timeout ([`docker::stop_timeout`]), else
    /// `--stop-timeout`; passed to Docker explicitly, so the log and a dry
    /// run say what it is. Labels that do not parse are ignored (the alert
    /// reported them).
    pub fn stop_timeout_for(&self, inspect: &ContainerInspectResponse) -> Duration {
        for problem in &docker::policy(inspect).problems {
            tracing::debug!(container = ?docker::name(inspect), problem, "ignoring a bad label");
        }
        docker::stop_timeout(inspect, self.stop_timeout)
    }
}
