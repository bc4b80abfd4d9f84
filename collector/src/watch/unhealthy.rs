//! Waiting out a container's `hemostat.unhealthy_grace`: alerted only if it
//! is still unhealthy once the grace has passed since Docker last flagged
//! it; a health check that recovers by itself within the grace raises
//! nothing. The alert keeps the time Docker flagged it.
//!
//! One wait per container, however often it flips: a flag while a wait is
//! on moves that wait's end (the grace counts from the latest flag), so a
//! container that flaps never piles up sleeping tasks, even with a grace
//! of a year, and its last unhealthy spell is still waited out in full.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bollard::{Docker, models::HealthStatusEnum};

use crate::{
    alert::{Alerts, Inspected},
    detect::Finding,
    docker,
    inflight::now_nanos,
};

/// The containers waiting out their grace: id -> the latest flag's finding.
#[derive(Clone, Default)]
pub(super) struct Waits {
    pending: Arc<Mutex<HashMap<String, Finding>>>,
}

impl Waits {
    /// Waits out `grace` for `finding` (on a task of its own), or moves the
    /// end of the wait already on for its container.
    pub(super) fn start(&self, docker: Docker, alerts: Alerts, finding: Finding, grace: Duration) {
        let id = finding.container_id.clone();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(waiting) = pending.get_mut(&id) {
                tracing::debug!(container = %finding.container, "flagged again within its unhealthy grace: the wait starts over");
                *waiting = finding;
                return;
            }
            pending.insert(id, finding.clone());
        }
        tracing::info!(container = %finding.container, grace_seconds = grace.as_secs_f64(), "unhealthy: waiting out its grace");
        let waits = self.clone();
        tokio::spawn(async move {
            let finding = waits.wait(finding, grace).await;
            check(&docker, &alerts, finding).await;
        });
    }

    /// Sleeps until `grace` has passed since the latest flag of
    /// `finding`'s container, then ends the wait and returns that flag's
    /// finding.
    async fn wait(&self, mut finding: Finding, grace: Duration) -> Finding {
        loop {
            let since = Duration::from_nanos(now_nanos().saturating_sub(finding.time_nano).max(0) as u64);
            tokio::time::sleep(grace.saturating_sub(since)).await;
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get(&finding.container_id) {
                Some(latest) if latest.time_nano > finding.time_nano => finding = latest.clone(),
                _ => {
                    pending.remove(&finding.container_id);
                    return finding;
                }
            }
        }
    }

    /// Containers waiting now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.pending.lock().unwrap().len()
    }
}

/// Alerts if the container is still running and unhealthy.
async fn check(docker: &Docker, alerts: &Alerts, finding: Finding) {
    let inspect = match docker::inspect(docker, &finding.container_id).await {
        Ok(inspect) => inspect,
        Err(e) => return tracing::info!(container = %finding.container, error = %e, "gone within its unhealthy grace"),
    };
    let health = inspect.state.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.status);
    if docker::is_running(&inspect) && health == Some(HealthStatusEnum::UNHEALTHY) {
        alerts.publish_with_evidence(alerts.finding(&finding), Inspected::Yes(Box::new(inspect)), None);
    } else {
        tracing::info!(container = %finding.container, health = ?health, "recovered within its unhealthy grace: no alert");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::FindingKind;

    fn flag(id: &str, time_nano: i64) -> Finding {
        Finding {
            kind: FindingKind::Unhealthy,
            container: format!("c-{id}"),
            container_id: id.to_owned(),
            image: None,
            exit_code: None,
            time_nano,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_container_has_one_wait_that_ends_a_grace_after_its_last_flag() {
        let waits = Waits::default();
        let grace = Duration::from_secs(3600);
        let t0 = now_nanos();
        waits.pending.lock().unwrap().insert("a".into(), flag("a", t0));
        let task = {
            let waits = waits.clone();
            tokio::spawn(async move { waits.wait(flag("a", t0), grace).await })
        };
        // Flagged again (in the wall clock's terms) half an hour later.
        tokio::time::sleep(Duration::from_secs(1800)).await;
        let again = t0 + 1_800_000_000_000;
        waits.pending.lock().unwrap().insert("a".into(), flag("a", again));
        assert_eq!(waits.waiting(), 1, "one wait per container");
        // The first grace ends: the wait goes on for the later flag.
        tokio::time::sleep(Duration::from_secs(1801)).await;
        assert!(!task.is_finished(), "ended a grace after the first flag, not the last");
        let done = tokio::time::timeout(Duration::from_secs(3600 * 2), task).await.expect("ends").unwrap();
        assert_eq!(done.time_nano, again, "the alert keeps the latest flag's time");
        assert_eq!(waits.waiting(), 0);
    }
}
