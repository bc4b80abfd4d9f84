//! Collector liveness: which collectors are up, which went silent, and the
//! `system_alert` that says so, once per transition.
//!
//! A collector refreshes `hemostat:heartbeat:<host>` every interval with a
//! TTL of three intervals, and its score in `hemostat:collectors`. So the
//! heartbeat key being gone *is* "missing for three intervals", measured by
//! Redis's clock alone: comparing the collector's own timestamps with ours
//! would turn clock skew between hosts into false alarms.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hemostat_protocol::{
    Envelope, EventKind, Publisher,
    event::{Severity, SystemAlert},
};

use crate::{
    error::ExporterError,
    store::{CollectorReading, RedisStore},
};

/// The `agent` of the exporter's envelopes.
pub const AGENT: &str = "HemoStat-Exporter";
pub const MISSING: &str = "collector_missing";
pub const RECOVERED: &str = "collector_recovered";

#[derive(Debug, Clone, PartialEq)]
pub struct CollectorStatus {
    pub host: String,
    pub up: bool,
    pub last_seen_ms: u64,
    /// From the live heartbeat; unknown once it expired.
    pub interval_seconds: Option<f64>,
    /// Whether a `collector_missing` stands (not yet followed by a recovery).
    pub reported_missing: bool,
}

/// Up means the heartbeat key still exists.
pub fn evaluate(readings: Vec<CollectorReading>) -> Vec<CollectorStatus> {
    readings
        .into_iter()
        .map(|r| {
            let interval_seconds = r
                .heartbeat
                .as_deref()
                .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
                .and_then(|v| v.get("interval_seconds").and_then(|i| i.as_f64()));
            CollectorStatus {
                host: r.host,
                up: r.heartbeat.is_some(),
                last_seen_ms: r.last_seen_ms,
                interval_seconds,
                reported_missing: r.reported_missing,
            }
        })
        .collect()
}

/// What a transition publishes.
pub fn alert(status: &CollectorStatus, now_ms: u64) -> SystemAlert {
    let last_seen = DateTime::<Utc>::from_timestamp_millis(status.last_seen_ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let silent_for = now_ms.saturating_sub(status.last_seen_ms) / 1000;
    let at = last_seen.clone().unwrap_or_else(|| "never".into());
    if status.up {
        SystemAlert {
            kind: RECOVERED.into(),
            severity: Severity::Low,
            host: status.host.clone(),
            message: format!("collector on {} is back (heartbeat at {at})", status.host),
            last_seen,
            missing_for_seconds: None,
            container: None,
            approval: None,
        }
    } else {
        SystemAlert {
            kind: MISSING.into(),
            severity: Severity::High,
            host: status.host.clone(),
            message: format!(
                "collector on {} missed three heartbeats: last seen {at}, {silent_for} s ago; containers on that host are not watched",
                status.host
            ),
            last_seen,
            missing_for_seconds: Some(silent_for),
            container: None,
            approval: None,
        }
    }
}

/// Reads every collector, publishes the transitions since the last check
/// (any instance's), and returns the statuses. A transition is published
/// by the one caller whose SET NX / DEL changed the marker; if publishing
/// fails the marker is put back, so a later check tries again.
pub async fn check<P: Publisher>(
    store: &RedisStore,
    publisher: &P,
    now_ms: u64,
) -> Result<Vec<CollectorStatus>, ExporterError> {
    let mut statuses = evaluate(store.collectors().await?);
    // A Redis that was down longer than three heartbeats comes back with
    // every heartbeat expired, the living collectors' too, until each beats
    // again: within that grace of Redis's start, nobody is judged missing.
    // Three of the longest interval a live collector announces, or
    // announced at the last check that saw one (right after such a restart
    // none is alive); none ever seen: nobody is waited for.
    let live = statuses
        .iter()
        .filter_map(|s| s.interval_seconds)
        .fold(None, |m: Option<f64>, i| Some(m.map_or(i, |m| m.max(i))));
    let interval = match live {
        Some(i) => {
            if let Err(e) = store.remember_interval(i).await {
                tracing::debug!(error = %e, "could not remember the heartbeat interval");
            }
            Some(i)
        }
        None => store.remembered_interval().await.unwrap_or_default(),
    };
    let grace = Duration::from_secs_f64(interval.map_or(0.0, |i| (i * 3.0).clamp(0.0, 86_400.0)));
    for status in &mut statuses {
        if !status.up && !status.reported_missing && !grace.is_zero() {
            match store.redis_uptime(&status.host).await {
                Ok(up) if up < grace => {
                    tracing::info!(host = %status.host, redis_up_for = ?up, "no heartbeat, but Redis only just started; not judged yet");
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "Redis's uptime unknown; judging by the heartbeat alone"),
            }
        }
        let transition = match (status.up, status.reported_missing) {
            (false, false) => store.mark_missing(&status.host).await,
            (true, true) => store.clear_missing(&status.host).await,
            _ => continue,
        };
        match transition {
            Ok(true) => {}
            // Another instance got there first and publishes it.
            Ok(false) => {
                status.reported_missing = !status.up;
                continue;
            }
            Err(e) => {
                tracing::warn!(host = %status.host, error = %e, "collector transition not recorded; next check retries");
                continue;
            }
        }
        let data = alert(status, now_ms);
        let published = match Envelope::new(AGENT, EventKind::SystemAlert, &data) {
            Ok(env) => publisher.publish(&env).await.map_err(ExporterError::from),
            Err(e) => Err(e.into()),
        };
        match published {
            Ok(id) => {
                status.reported_missing = !status.up;
                tracing::info!(host = %status.host, kind = %data.kind, stream_id = %id, "{}", data.message);
            }
            Err(e) => {
                tracing::warn!(host = %status.host, kind = %data.kind, error = %e, "system_alert not published; next check retries");
                let undo = if status.up {
                    store.mark_missing(&status.host).await
                } else {
                    store.clear_missing(&status.host).await
                };
                if let Err(e) = undo {
                    tracing::warn!(host = %status.host, error = %e, "could not restore the collector marker");
                }
            }
        }
    }
    Ok(statuses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(host: &str, heartbeat: Option<&str>, reported_missing: bool) -> CollectorReading {
        CollectorReading {
            host: host.into(),
            last_seen_ms: 1_700_000_000_000,
            heartbeat: heartbeat.map(str::to_owned),
            reported_missing,
        }
    }

    #[test]
    fn up_is_the_heartbeat_key_alive() {
        let s = evaluate(vec![
            reading("a", Some(r#"{"interval_seconds": 10.0}"#), false),
            reading("b", None, true),
            reading("c", Some("not json"), false),
        ]);
        assert_eq!((s[0].up, s[0].interval_seconds), (true, Some(10.0)));
        assert_eq!((s[1].up, s[1].interval_seconds, s[1].reported_missing), (false, None, true));
        assert_eq!((s[2].up, s[2].interval_seconds), (true, None));
    }

    #[test]
    fn alerts_say_what_happened() {
        let mut s = evaluate(vec![reading("h1", None, false)]).remove(0);
        let missing = alert(&s, 1_700_000_042_000);
        assert_eq!(
            (missing.kind.as_str(), missing.severity, missing.missing_for_seconds),
            (MISSING, Severity::High, Some(42))
        );
        assert_eq!(missing.last_seen.as_deref(), Some("2023-11-14T22:13:20.000Z"));
        assert!(missing.message.contains("h1"), "{}", missing.message);
        s.up = true;
        let back = alert(&s, 1_700_000_042_000);
        assert_eq!((back.kind.as_str(), back.severity, back.missing_for_seconds), (RECOVERED, Severity::Low, None));
    }
}
