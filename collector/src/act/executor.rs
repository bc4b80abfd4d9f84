//! Carrying out one command on Docker and saying how it went.
//!
//! Every action follows the same shape: resolve the target, refuse what is
//! out of scope, in a dry run describe instead of acting, act, and for the
//! actions meant to bring a container up (restart, start, scale_up) watch
//! it afterwards (`verify`) so the report says whether the fix held, not
//! just that Docker answered 204. How each action does so is in its own
//! file under `actions/`; this is where a command finds its action, and
//! where every report's error text (Docker's own words, which can quote the
//! container's command line or a hook's output) is redacted.

use std::time::{Duration, Instant};

use bollard::Docker;
use hemostat_protocol::{
    Action, Command,
    event::{DependentResult, RemediationResult, RemediationStatus},
};
use tokio_util::sync::CancellationToken;

use super::{
    actions::{cleanup, exec, exec::Allowlist, lifecycle, recreate, scale_up},
    lanes::Slot,
    limits::Limits,
    outcome::Outcome,
    target::Context,
};
use crate::{alert::redact::Redactor, config::Config, error::CollectorError, inflight::InFlight, scope::Scope};

#[derive(Clone)]
pub struct Executor {
    cx: Context,
    /// `exec`'s: what the operator allows, and how long a command may run.
    allowlist: Allowlist,
    exec_timeout: Duration,
    /// `cleanup`'s: how long a container must have been down to go.
    cleanup_min_age: Duration,
    /// `scale_up`'s: the most containers a service may have.
    max_replicas: usize,
    /// The collector's one redactor: for `exec`'s output and every error.
    redactor: Redactor,
}

impl Executor {
    pub fn new(
        docker: Docker,
        config: &Config,
        inflight: InFlight,
        scope: Scope,
        redactor: Redactor,
    ) -> Result<Self, CollectorError> {
        Ok(Executor {
            cx: Context {
                docker,
                stop_timeout: config.stop_timeout,
                verify_window: config.verify_seconds,
                inflight,
                scope,
                limits: Limits::default(),
            },
            allowlist: Allowlist::parse(&config.exec_allowlist).map_err(CollectorError::Config)?,
            exec_timeout: config.exec_timeout,
            cleanup_min_age: config.cleanup_min_age.max(config.command_max_age),
            max_replicas: usize::from(config.scale_max_replicas),
            redactor,
        })
    }

    /// `cancel` only cuts verification short (shutdown); an action already
    /// sent to Docker is always seen through and reported. `slot` is
    /// handed back as soon as the Docker work is done (for a restart, stop
    /// or start without dependents: before verification), else at the end.
    pub async fn execute(&self, cmd: &Command, slot: Slot, cancel: &CancellationToken) -> RemediationResult {
        let started = Instant::now();
        let cx = &self.cx;
        let (outcome, dependents) = match cmd.action {
            Action::Restart | Action::Stop | Action::Start => lifecycle::run(cx, cmd, slot, cancel).await,
            Action::Recreate => recreate::run(cx, cmd, slot, cancel).await,
            Action::ScaleUp => (scale_up::run(cx, self.max_replicas, cmd, cancel).await, Vec::new()),
            Action::Cleanup => (cleanup::run(cx, self.cleanup_min_age, cmd).await, Vec::new()),
            Action::Exec => (exec::run(cx, &self.allowlist, self.exec_timeout, &self.redactor, cmd).await, Vec::new()),
            Action::None => (Outcome::with(RemediationStatus::NotApplicable, "action none: nothing to do"), Vec::new()),
        };
        // Every text of the report, once more here: `exec` redacts its
        // output itself (before cutting it to size), the other actions'
        // details and errors quote Docker and the container.
        let redact = |text: Option<String>| text.map(|t| self.redactor.redact(&t).0);
        let dependents = dependents.into_iter().map(|d| DependentResult { error: redact(d.error), ..d }).collect();
        RemediationResult {
            status: outcome.status,
            action: cmd.action,
            container: cmd.container.clone(),
            error: redact(outcome.error),
            reason: Some(cmd.reason.clone()).filter(|r| !r.is_empty()),
            details: redact(outcome.details),
            duration_ms: Some(started.elapsed().as_millis() as u64),
            verified: outcome.verified,
            dependents,
        }
    }
}
