//! Restarts asked again later: a restart the gate's cooldown refused, for a
//! cause a restart helps once the outside world changed (a dependency that
//! could not be reached: a database still starting, a service being
//! recreated), is kept here and asked again when the cooldown ends, once,
//! through the gate like any request. Without it the container would stay
//! down after its dependency came back, until a person started it.
//!
//! One per container (the newest refusal's), in the container's slot;
//! a sorted set of containers by due time finds the due ones. Taking one
//! removes it from that set first, so of several responders one runs it.

use redis::{AsyncCommands, aio::ConnectionLike};

use crate::{Action, ContainerRef, ProtocolError, diagnosis::Cause, event::RemediationNeeded, keys};

/// How long a deferred request is kept past its due time when no responder
/// runs (none deployed, Redis unreachable): after that its container's
/// state is too old to act on.
const KEEP_PAST_DUE_MS: i64 = 3_600_000;

/// How many due requests one sweep takes (the rest: the next sweep).
pub const TAKE_AT_ONCE: isize = 50;

/// Whether a restart the cooldown refused is worth asking again when it
/// ends: its diagnosis names a dependency the container could not reach,
/// which may well be back by then (a failure of the container's own does
/// not change by waiting).
pub fn worth_asking_again(request: &RemediationNeeded) -> bool {
    request.action == Action::Restart
        && request
            .context
            .diagnosis
            .as_ref()
            .is_some_and(|d| d.cause == Cause::DependencyUnreachable && d.restart_helps)
}

/// Keeps `request` for container `c` until `due_ms` (epoch ms), replacing
/// any earlier one of the container's.
pub async fn defer<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    c: &ContainerRef,
    request: &RemediationNeeded,
    due_ms: i64,
) -> Result<(), ProtocolError> {
    let ttl_ms = (due_ms - chrono::Utc::now().timestamp_millis()).max(0) + KEEP_PAST_DUE_MS;
    let () = redis::cmd("SET")
        .arg(keys::deferred(c))
        .arg(serde_json::to_string(request)?)
        .arg("PX")
        .arg(ttl_ms)
        .query_async(conn)
        .await?;
    let _: i64 = conn.zadd(keys::DEFERRED, c.key(), due_ms).await?;
    Ok(())
}

/// When container `c`'s deferred restart is due (epoch ms), if it has one.
pub async fn due_of<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    c: &ContainerRef,
) -> Result<Option<i64>, ProtocolError> {
    let score: Option<f64> = conn.zscore(keys::DEFERRED, c.key()).await?;
    Ok(score.map(|s| s as i64))
}

/// The deferred requests due at `now_ms`, each taken once (removed): by
/// whichever caller removed its container from the due set.
pub async fn take_due<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    now_ms: i64,
) -> Result<Vec<(ContainerRef, RemediationNeeded)>, ProtocolError> {
    let due: Vec<String> = conn.zrangebyscore_limit(keys::DEFERRED, "-inf", now_ms, 0, TAKE_AT_ONCE).await?;
    let mut taken = Vec::new();
    for member in due {
        let removed: i64 = conn.zrem(keys::DEFERRED, &member).await?;
        let Some(c) = ContainerRef::parse(&member) else { continue };
        if removed == 0 {
            continue;
        }
        let stored: Option<String> = redis::cmd("GETDEL").arg(keys::deferred(&c)).query_async(conn).await?;
        // Gone: kept past its time, or replaced and taken already.
        let Some(json) = stored else { continue };
        match serde_json::from_str::<RemediationNeeded>(&json) {
            Ok(request) => taken.push((c, request)),
            Err(e) => tracing::warn!(container = %c, error = %e, "a deferred request does not parse; dropped"),
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::Diagnosis;

    fn request(action: Action, cause: Cause, restart_helps: bool) -> RemediationNeeded {
        let mut r: RemediationNeeded = serde_json::from_value(serde_json::json!({
            "container": "api", "action": "restart", "reason": "r", "confidence": 0.9
        }))
        .unwrap();
        r.action = action;
        r.context.diagnosis = Some(Diagnosis {
            cause,
            summary: String::new(),
            evidence: Vec::new(),
            restart_helps,
            recommendation: None,
        });
        r
    }

    #[test]
    fn only_a_restart_for_an_unreachable_dependency_is_asked_again() {
        assert!(worth_asking_again(&request(Action::Restart, Cause::DependencyUnreachable, true)));
        // Rejected by the dependency (TLS, a password): waiting changes nothing.
        assert!(!worth_asking_again(&request(Action::Restart, Cause::DependencyUnreachable, false)));
        assert!(!worth_asking_again(&request(Action::Restart, Cause::PanicOrException, true)));
        assert!(!worth_asking_again(&request(Action::Stop, Cause::DependencyUnreachable, true)));
        let mut none = request(Action::Restart, Cause::DependencyUnreachable, true);
        none.context.diagnosis = None;
        assert!(!worth_asking_again(&none));
    }
}
