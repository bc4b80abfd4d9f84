//! A dependent: what ties it to the container it follows, what became of
//! it, and the timing rules that tell a dependent that went down with its
//! parent from one that did not.

use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use chrono::{DateTime, Utc};
use hemostat_protocol::{
    Action,
    event::{DependentResult, RemediationStatus},
};

use crate::{docker, namespace::WITH_PARENT};

/// After a parent's `start`, how long its dependents' `die` may still come.
pub(super) const DIE_WINDOW: Duration = Duration::from_secs(5);
/// After a parent's `start`, how long a dependent still running in its old
/// namespace is left to die of it before it is restarted instead.
pub(super) const SETTLE: Duration = Duration::from_secs(2);
pub(super) const POLL: Duration = Duration::from_millis(500);
/// How long a `service_healthy` dependent waits for its dependency to be
/// healthy before it is restarted (compose waits too).
pub(super) const HEALTHY_WAIT: Duration = Duration::from_secs(60);

/// What ties a dependent to the container it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    /// `network_mode: container:<it>`: it lives in that one's namespace.
    Namespace,
    /// Compose's `depends_on` on that one's service with `restart: true`;
    /// `healthy`: with `condition: service_healthy`.
    Compose { healthy: bool },
}

/// A container that follows the parent: it shares its network namespace,
/// or compose restarts it after the parent.
pub struct Dependent {
    pub id: String,
    pub name: String,
    pub inspect: ContainerInspectResponse,
    /// Why the collector must leave it alone, if it must.
    pub excluded: Option<String>,
    /// The container it follows (whose namespace it joins, or whose
    /// service it depends on): the parent, or a dependent found before it.
    pub joins: String,
    pub tie: Tie,
    /// Whether it lives in the parent's network namespace: joined by
    /// namespace all the way up (C on B on A; not C on B where B only
    /// follows A's compose service).
    pub in_parents_namespace: bool,
    /// 1 for the parent's own dependents, 2 for theirs, and so on.
    pub depth: usize,
}

impl Dependent {
    /// Whether it lives in the namespace of the container it follows
    /// (rather than following its compose service).
    pub fn joins_namespace(&self) -> bool {
        self.tie == Tie::Namespace
    }

    pub fn running(&self) -> bool {
        docker::is_running(&self.inspect)
    }

    pub(super) fn exited(&self) -> bool {
        self.inspect.state.as_ref().and_then(|s| s.status) == Some(ContainerStateStatusEnum::EXITED)
    }

    pub fn result(&self, action: Action, status: RemediationStatus) -> DependentResult {
        DependentResult {
            container: self.name.clone(),
            container_id: Some(self.id.clone()),
            action,
            status,
            verified: None,
            error: None,
            details: None,
        }
    }

    /// Listed, not touched: out of scope, or its policy says so.
    pub fn skipped(&self, action: Action, why: &str) -> DependentResult {
        DependentResult { error: Some(format!("skipped: {why}")), ..self.result(action, RemediationStatus::Rejected) }
    }

    pub(super) fn not_applicable(&self, action: Action, why: String) -> DependentResult {
        DependentResult { details: Some(why), ..self.result(action, RemediationStatus::NotApplicable) }
    }
}

/// A running dependent left in its parent's old network namespace: it
/// joins by namespace and has run since before the parent's current start
/// (at `parent_started`). It has loopback only, and runs on.
pub fn stranded(dependent: &Dependent, parent_started: DateTime<Utc>) -> bool {
    dependent.in_parents_namespace
        && dependent.running()
        && docker::started_at(&dependent.inspect).is_some_and(|s| s < parent_started)
}

/// An exited dependent that went down with its parent, which went down at
/// `parent_down`: it exited no earlier than [`WITH_PARENT`] before.
pub fn recoverable(dependent: &Dependent, parent_down: DateTime<Utc>) -> bool {
    let window = chrono::Duration::from_std(WITH_PARENT).unwrap_or_default();
    dependent.exited() && docker::finished_at(&dependent.inspect).is_some_and(|f| f >= parent_down - window)
}

/// One summary for the parent's details, e.g. `dependents: 2 restarted, 1 skipped`.
pub fn summary(results: &[DependentResult]) -> Option<String> {
    if results.is_empty() {
        return None;
    }
    let count = |f: &dyn Fn(&DependentResult) -> bool| results.iter().filter(|r| f(r)).count();
    let parts = [
        (count(&|r| r.status == RemediationStatus::Success), "handled"),
        (count(&|r| r.status == RemediationStatus::Failed), "failed"),
        (count(&|r| r.status == RemediationStatus::Rejected), "skipped"),
        (count(&|r| r.status == RemediationStatus::DryRun), "would be handled"),
        (count(&|r| r.status == RemediationStatus::NotApplicable), "left as they are"),
    ];
    let text: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    Some(format!("dependents: {}", text.join(", ")))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::act::dependents) fn dependent(status: ContainerStateStatusEnum, finished: &str) -> Dependent {
        Dependent {
            id: "d".into(),
            name: "d".into(),
            inspect: ContainerInspectResponse {
                state: Some(bollard::models::ContainerState {
                    status: Some(status),
                    running: Some(status == ContainerStateStatusEnum::RUNNING),
                    finished_at: Some(finished.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            excluded: None,
            joins: "p".into(),
            depth: 1,
            tie: Tie::Namespace,
            in_parents_namespace: true,
        }
    }

    #[test]
    fn a_running_dependent_that_predates_its_parents_start_is_stranded() {
        let parent_started: DateTime<Utc> = "2026-12-03T10:00:10Z".parse().unwrap();
        let mut d = dependent(ContainerStateStatusEnum::RUNNING, "0001-01-01T00:00:00Z");
        let run_since = |d: &mut Dependent, t: &str| {
            d.inspect.state.as_mut().unwrap().started_at = Some(t.into());
        };
        run_since(&mut d, "2026-12-03T09:00:00Z");
        assert!(stranded(&d, parent_started), "ran on through the parent's restart");
        run_since(&mut d, "2026-12-03T10:00:11Z");
        assert!(!stranded(&d, parent_started), "started after the parent: in its new namespace");
        run_since(&mut d, "2026-12-03T09:00:00Z");
        d.in_parents_namespace = false;
        assert!(!stranded(&d, parent_started), "its network is not the parent's");
        let mut exited = dependent(ContainerStateStatusEnum::EXITED, "2026-12-03T10:00:09Z");
        run_since(&mut exited, "2026-12-03T09:00:00Z");
        assert!(!stranded(&exited, parent_started), "an exited one is started, not restarted");
    }

    #[test]
    fn summary_counts_by_outcome() {
        let r = |status| DependentResult {
            container: "x".into(),
            container_id: None,
            action: Action::Restart,
            status,
            verified: None,
            error: None,
            details: None,
        };
        assert_eq!(summary(&[]), None);
        let s =
            summary(&[r(RemediationStatus::Success), r(RemediationStatus::Success), r(RemediationStatus::Rejected)]);
        assert_eq!(s.as_deref(), Some("dependents: 2 handled, 1 skipped"));
    }
}
