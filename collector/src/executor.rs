//! Carrying out one command on Docker and saying how it went.
//!
//! Every action follows the same shape: resolve the target, refuse what is
//! out of scope, in a dry run describe instead of acting, act, and for the
//! actions meant to bring a container up (restart, start, scale_up) watch
//! it afterwards ([`verify`]) so the report says whether the
//! fix held, not just that Docker answered 204.
//!
//! A restart, stop or start carries the containers sharing the target's
//! network namespace along with it, after it ([`dependents`]).

use std::time::{Duration, Instant};

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::ContainerInspectResponse,
    query_parameters::{RestartContainerOptions, StartContainerOptions, StopContainerOptions},
};
use hemostat_protocol::{
    Action, Command,
    event::{DependentResult, RemediationResult, RemediationStatus},
};
use tokio_util::sync::CancellationToken;

use crate::{
    cleanup, dependents, docker, error::CollectorError, exec, exec::Allowlist, inflight::InFlight, outcome::Outcome,
    scale, scope::Scope, verify,
};

#[derive(Clone)]
pub struct Executor {
    docker: Docker,
    stop_timeout: Duration,
    verify_window: Duration,
    allowlist: Allowlist,
    exec_timeout: Duration,
    inflight: InFlight,
    scope: Scope,
}

/// A container an action is aimed at, after the scope check.
struct Target {
    id: String,
    name: String,
    inspect: ContainerInspectResponse,
}

impl Executor {
    pub fn new(
        docker: Docker,
        config: &crate::Config,
        inflight: InFlight,
        scope: Scope,
    ) -> Result<Self, CollectorError> {
        Ok(Executor {
            docker,
            stop_timeout: config.stop_timeout,
            verify_window: config.verify_seconds,
            allowlist: Allowlist::parse(&config.exec_allowlist).map_err(CollectorError::Config)?,
            exec_timeout: config.exec_timeout,
            inflight,
            scope,
        })
    }

    /// `cancel` only cuts verification short (shutdown); an action already
    /// sent to Docker is always seen through and reported.
    pub async fn execute(&self, cmd: &Command, cancel: &CancellationToken) -> RemediationResult {
        let started = Instant::now();
        let (outcome, dependents) = match cmd.action {
            Action::Restart | Action::Stop | Action::Start => self.lifecycle(cmd, cancel).await,
            Action::ScaleUp => (self.scale_up(cmd, cancel).await, Vec::new()),
            Action::Cleanup => (self.cleanup(cmd).await, Vec::new()),
            Action::Exec => (self.exec(cmd).await, Vec::new()),
            Action::None => (Outcome::with(RemediationStatus::NotApplicable, "action none: nothing to do"), Vec::new()),
        };
        RemediationResult {
            status: outcome.status,
            action: cmd.action,
            container: cmd.container.clone(),
            error: outcome.error,
            reason: Some(cmd.reason.clone()).filter(|r| !r.is_empty()),
            details: outcome.details,
            duration_ms: Some(started.elapsed().as_millis() as u64),
            verified: outcome.verified,
            dependents,
        }
    }

    /// Inspects the command's container and refuses it when out of scope.
    async fn target(&self, cmd: &Command) -> Result<Target, Outcome> {
        // The id pins the exact container the responder saw; the name is
        // the fallback for seed-protocol commands that carry none.
        let wanted = cmd.container_id.as_deref().filter(|id| !id.is_empty()).unwrap_or(&cmd.container);
        let inspect =
            docker::inspect(&self.docker, wanted).await.map_err(|e| Outcome::failed(docker::error_text(&e)))?;
        if let Some(why) = self.scope.excludes(&docker::facts(&inspect).labels) {
            tracing::warn!(container = %cmd.container, action = %cmd.action, command_id = %cmd.id, why, "command refused: container out of scope");
            return Err(Outcome::rejected(why));
        }
        Ok(Target {
            id: inspect.id.clone().unwrap_or_else(|| wanted.to_owned()),
            name: docker::name(&inspect).unwrap_or_else(|| cmd.container.clone()),
            inspect,
        })
    }

    /// The target, then its dependents ([`dependents`]): found before the
    /// action, handled once it is done.
    async fn lifecycle(&self, cmd: &Command, cancel: &CancellationToken) -> (Outcome, Vec<DependentResult>) {
        let target = match self.target(cmd).await {
            Ok(t) => t,
            Err(refused) => return (refused, Vec::new()),
        };
        let was_running = docker::is_running(&target.inspect);
        // When the parent goes down: now, or when its last run ended. A
        // start of a running container changes nothing for its dependents.
        let parent_down = match was_running {
            true => Some(chrono::Utc::now()),
            false => dependents::finished_at(&target.inspect),
        };
        let found = match cmd.action {
            Action::Start if was_running => Vec::new(),
            _ => match dependents::find(&self.docker, &target.id, &target.name, &self.scope).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(container = %target.name, error = %docker::error_text(&e), "could not list dependents");
                    Vec::new()
                }
            },
        };
        let cascade = dependents::Cascade {
            docker: &self.docker,
            inflight: &self.inflight,
            stop_timeout: self.stop_timeout,
            verify_window: self.verify_window,
            cancel,
        };
        if cmd.dry_run {
            let deps = cascade.describe(&found, cmd.action, parent_down);
            return (with_summary(self.lifecycle_dry_run(cmd, &target), &deps), deps);
        }
        // Open before the parent's action: its dependents may die of it.
        let window = cascade.begin(&found);
        if let Err(failed) = self.lifecycle_action(cmd, &target).await {
            let deps = cascade.unhandled(&found, cmd.action, &format!("its parent's {} failed", cmd.action));
            return (failed, deps);
        }
        let id = target.id.as_str();
        let (outcome, deps) = match cmd.action {
            Action::Stop => {
                let outcome = match docker::inspect(&self.docker, id).await {
                    Ok(after) if !docker::is_running(&after) => {
                        Outcome::with(RemediationStatus::Success, format!("stopped (exit code {})", exit_code(&after)))
                    }
                    Ok(_) => Outcome::failed("container is still running after stop"),
                    Err(e) => Outcome::failed(format!("could not verify: {}", docker::error_text(&e))),
                };
                let deps = match outcome.status {
                    RemediationStatus::Success => {
                        cascade.run(&target.name, &found, cmd.action, parent_down, window).await
                    }
                    _ => cascade.unhandled(&found, cmd.action, "its parent did not stop"),
                };
                (outcome, deps)
            }
            _ => {
                // Once the parent runs again, its verification and its
                // dependents' handling go on together.
                let runs = docker::inspect(&self.docker, id).await.is_ok_and(|i| docker::is_running(&i));
                let deps = async {
                    match runs {
                        true => cascade.run(&target.name, &found, cmd.action, parent_down, window).await,
                        false => cascade.unhandled(&found, cmd.action, "its parent is not running"),
                    }
                };
                let verified =
                    async { verify::watch(&self.docker, id, self.verify_window, cancel).await.into_outcome() };
                tokio::join!(verified, deps)
            }
        };
        (with_summary(outcome, &deps), deps)
    }

    fn lifecycle_dry_run(&self, cmd: &Command, target: &Target) -> Outcome {
        let timeout = self.stop_timeout_for(&target.inspect);
        let state = state_text(&target.inspect);
        Outcome::dry_run(match cmd.action {
            Action::Start => format!("would start {} (now {state})", target.name),
            action => format!("would {action} {} (now {state}; stop timeout {} s)", target.name, timeout.as_secs_f64()),
        })
    }

    /// The target's own restart, stop or start; Err: Docker refused it.
    async fn lifecycle_action(&self, cmd: &Command, target: &Target) -> Result<(), Outcome> {
        let timeout = self.stop_timeout_for(&target.inspect);
        let t = Some(timeout.as_secs_f64().ceil() as i32);
        let id = target.id.as_str();
        let done = {
            // The window covers the action only: the die a restart causes
            // is ours, a crash during verification afterwards is real.
            let _in_flight = self.inflight.begin([target.id.clone(), target.name.clone()]);
            tracing::info!(container = %target.name, action = %cmd.action, command_id = %cmd.id, stop_timeout_s = ?t, "executing");
            match cmd.action {
                Action::Restart => {
                    self.docker.restart_container(id, Some(RestartContainerOptions { t, signal: None })).await
                }
                Action::Stop => self.docker.stop_container(id, Some(StopContainerOptions { t, signal: None })).await,
                _ => self.docker.start_container(id, None::<StartContainerOptions>).await,
            }
        };
        match done {
            Ok(()) => Ok(()),
            // 304: already in the requested state, which is the goal.
            Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(Outcome::failed(docker::error_text(&CollectorError::from(e)))),
        }
    }

    async fn scale_up(&self, cmd: &Command, cancel: &CancellationToken) -> Outcome {
        let target = match self.target(cmd).await {
            Ok(t) => t,
            Err(refused) => return refused,
        };
        let plan = match scale::plan(&self.docker, &target.inspect).await {
            Ok(p) => p,
            Err(e) => return Outcome::failed(docker::error_text(&e)),
        };
        if cmd.dry_run {
            return Outcome::dry_run(format!(
                "would create and start replica {} of {} (image {})",
                plan.name,
                target.name,
                plan.image()
            ));
        }
        tracing::info!(container = %target.name, replica = %plan.name, command_id = %cmd.id, "scaling up");
        let replica = match scale::create(&self.docker, plan).await {
            Ok(r) => r,
            Err(e) => return Outcome::failed(docker::error_text(&e)),
        };
        let created = format!("created replica {} ({}) of {}", replica.name, docker::short(&replica.id), target.name);
        let watched = verify::watch(&self.docker, &replica.id, self.verify_window, cancel).await;
        let outcome = watched.into_outcome();
        let details = format!("{created}; {}", outcome.details.as_deref().unwrap_or(""));
        outcome.details(details)
    }

    async fn cleanup(&self, cmd: &Command) -> Outcome {
        // Host-wide within scope: the command's container only says what
        // prompted it, so it need not exist any more.
        let found = match cleanup::survey(&self.docker, &self.scope).await {
            Ok(f) => f,
            Err(e) => return Outcome::failed(docker::error_text(&e)),
        };
        if cmd.dry_run {
            return Outcome::dry_run(format!("would remove {}", found.describe()));
        }
        tracing::info!(command_id = %cmd.id, containers = found.containers.len(), "cleaning up");
        let report = cleanup::run(&self.docker, found).await;
        match report.errors.is_empty() {
            true => Outcome::with(RemediationStatus::Success, report.describe()),
            false => Outcome::failed(report.errors.join("; ")).details(report.describe()),
        }
    }

    async fn exec(&self, cmd: &Command) -> Outcome {
        let target = match self.target(cmd).await {
            Ok(t) => t,
            Err(refused) => return refused,
        };
        let labels = docker::facts(&target.inspect).labels;
        let program = cmd.args.first().map(String::as_str).unwrap_or("");
        if let Err(why) = exec::permit(&self.allowlist, &labels, &cmd.args) {
            // Audited: a refused exec may be probing; the argv beyond the
            // program is not logged, it may hold secrets.
            tracing::warn!(container = %target.name, command_id = %cmd.id, program, args = cmd.args.len(), why = %why, "exec refused");
            return Outcome::rejected(why);
        }
        if cmd.dry_run {
            return Outcome::dry_run(format!(
                "would run {program} ({} args) in {}",
                cmd.args.len().saturating_sub(1),
                target.name
            ));
        }
        tracing::info!(container = %target.name, command_id = %cmd.id, program, "exec");
        match exec::run(&self.docker, &target.id, &cmd.args, self.exec_timeout).await {
            Ok(ran) if ran.exit_code == Some(0) => Outcome::with(RemediationStatus::Success, ran.describe()),
            Ok(ran) => Outcome::failed(match ran.exit_code {
                Some(code) => format!("exited with code {code}"),
                None => format!("still running after {} s", self.exec_timeout.as_secs_f64()),
            })
            .details(ran.describe()),
            Err(e) => Outcome::failed(docker::error_text(&e)),
        }
    }

    /// The container's labels (`hemostat.stop_timeout`, then autoheal's),
    /// else its own `StopTimeout` (compose's `stop_grace_period`: a database
    /// given a minute to flush gets its minute), else `--stop-timeout`.
    /// Passed to Docker explicitly, so the log and a dry run say what it is.
    fn stop_timeout_for(&self, inspect: &ContainerInspectResponse) -> Duration {
        let resolved = docker::policy(inspect);
        for problem in &resolved.problems {
            tracing::debug!(container = ?docker::name(inspect), problem, "ignoring a bad label");
        }
        resolved.policy.stop_timeout().unwrap_or(self.stop_timeout)
    }
}

/// The parent's details end with what became of its dependents.
fn with_summary(outcome: Outcome, deps: &[DependentResult]) -> Outcome {
    match dependents::summary(deps) {
        Some(summary) => {
            let details = match outcome.details.as_deref() {
                Some(d) if !d.is_empty() => format!("{d}; {summary}"),
                _ => summary,
            };
            outcome.details(details)
        }
        None => outcome,
    }
}

fn exit_code(inspect: &ContainerInspectResponse) -> i64 {
    inspect.state.as_ref().and_then(|s| s.exit_code).unwrap_or_default()
}

fn state_text(inspect: &ContainerInspectResponse) -> String {
    inspect.state.as_ref().and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())
}
