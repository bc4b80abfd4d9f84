//! The closed loop: after bringing a container up, watch it long enough to
//! say whether the fix held.
//!
//! Docker answering 204 to a restart is not proof: a container that
//! crashes again a second later was "restarted" too. A fix is verified
//! when the container has stayed in the same run (same StartedAt, no exit,
//! no restart by a Docker restart policy) for the whole window and, if it
//! has a health check, is healthy. Polling inspect, rather than following
//! events, sees the state Docker settled on and cannot miss a change that
//! happened before the watch began.

use std::time::{Duration, Instant};

use bollard::{
    Docker,
    models::{ContainerInspectResponse, HealthStatusEnum},
};
use hemostat_protocol::event::RemediationStatus;
use tokio_util::sync::CancellationToken;

use super::outcome::Outcome;
use crate::docker;

const POLL: Duration = Duration::from_millis(200);
/// After the window, how long a health check still `starting` may take to
/// pass (Docker's default interval is 30 s, so the first result can take
/// that long).
const HEALTH_GRACE: Duration = Duration::from_secs(60);

/// How a watch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// Stayed up (and healthy) for the window.
    Held {
        since: String,
        seconds: f64,
        healthy: Option<bool>,
    },
    /// Exited, or was restarted by its restart policy, during the window.
    Exited {
        code: i64,
    },
    Restarted,
    Unhealthy,
    /// Still `starting` when the health grace ran out.
    NotHealthy {
        status: String,
    },
    /// Could not even be inspected (e.g. removed meanwhile).
    Lost(String),
    /// Shutdown came first; nothing is known.
    Interrupted {
        since: String,
    },
}

impl Verification {
    pub fn into_outcome(self) -> Outcome {
        let ok = |details: String, verified| Outcome { verified, ..Outcome::with(RemediationStatus::Success, details) };
        let bad = |error: String| Outcome { verified: Some(false), ..Outcome::failed(error) };
        match self {
            Verification::Held { since, seconds, healthy } => ok(
                format!(
                    "running since {since}; verified: stayed up {seconds:.1} s, {}",
                    match healthy {
                        Some(true) => "healthy",
                        _ => "no health check",
                    }
                ),
                Some(true),
            ),
            Verification::Exited { code } => bad(format!("exited again with code {code}")),
            Verification::Restarted => bad("exited again and was restarted by its restart policy".into()),
            Verification::Unhealthy => bad("unhealthy".into()),
            Verification::NotHealthy { status } => {
                bad(format!("not healthy {} s after starting (health: {status})", HEALTH_GRACE.as_secs()))
            }
            Verification::Lost(e) => bad(format!("could not verify: {e}")),
            Verification::Interrupted { since } => {
                ok(format!("running since {since}; verification interrupted by shutdown"), None)
            }
        }
    }
}

/// Watches `id` for `window` (0: one look).
pub async fn watch(docker: &Docker, id: &str, window: Duration, cancel: &CancellationToken) -> Verification {
    let begun = Instant::now();
    let first = match docker::inspect(docker, id).await {
        Ok(i) => i,
        Err(e) => return Verification::Lost(docker::error_text(&e)),
    };
    let run = Run::of(&first);
    let mut current = first;
    loop {
        if let Some(failed) = run.broken_by(&current) {
            return failed;
        }
        let health = health(&current);
        if health == Some(HealthStatusEnum::UNHEALTHY) {
            return Verification::Unhealthy;
        }
        let elapsed = begun.elapsed();
        if elapsed >= window {
            match health {
                None | Some(HealthStatusEnum::HEALTHY) => {
                    return Verification::Held {
                        since: run.started_at.clone(),
                        seconds: elapsed.as_secs_f64(),
                        healthy: health.map(|_| true),
                    };
                }
                Some(other) if elapsed >= window + HEALTH_GRACE => {
                    return Verification::NotHealthy { status: other.to_string() };
                }
                Some(_) => {}
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return Verification::Interrupted { since: run.started_at },
            _ = tokio::time::sleep(POLL.min(window.saturating_sub(elapsed)).max(Duration::from_millis(20))) => {}
        }
        current = match docker::inspect(docker, id).await {
            Ok(i) => i,
            Err(e) => return Verification::Lost(docker::error_text(&e)),
        };
    }
}

/// The run the action produced, to tell it from a later one.
struct Run {
    started_at: String,
    restart_count: i64,
}

impl Run {
    fn of(inspect: &ContainerInspectResponse) -> Run {
        Run {
            started_at: inspect.state.as_ref().and_then(|s| s.started_at.clone()).unwrap_or_default(),
            restart_count: inspect.restart_count.unwrap_or_default(),
        }
    }

    fn broken_by(&self, now: &ContainerInspectResponse) -> Option<Verification> {
        let state = now.state.as_ref();
        if !docker::is_running(now) {
            let code = state.and_then(|s| s.exit_code).unwrap_or_default();
            return Some(Verification::Exited { code });
        }
        let started = state.and_then(|s| s.started_at.as_deref()).unwrap_or_default();
        if started != self.started_at || now.restart_count.unwrap_or_default() != self.restart_count {
            return Some(Verification::Restarted);
        }
        None
    }
}

/// None when the container has no health check.
fn health(inspect: &ContainerInspectResponse) -> Option<HealthStatusEnum> {
    inspect
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .filter(|s| !matches!(s, HealthStatusEnum::EMPTY | HealthStatusEnum::NONE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifications_map_to_outcomes() {
        let held = Verification::Held { since: "t".into(), seconds: 2.0, healthy: Some(true) }.into_outcome();
        assert_eq!((held.status, held.verified), (RemediationStatus::Success, Some(true)));
        assert!(held.details.unwrap().starts_with("running since t; verified: stayed up 2.0 s, healthy"));
        let exited = Verification::Exited { code: 3 }.into_outcome();
        assert_eq!((exited.status, exited.verified), (RemediationStatus::Failed, Some(false)));
        assert_eq!(exited.error.as_deref(), Some("exited again with code 3"));
        assert_eq!(Verification::Unhealthy.into_outcome().error.as_deref(), Some("unhealthy"));
        assert_eq!(Verification::Interrupted { since: "t".into() }.into_outcome().verified, None);
    }
}
