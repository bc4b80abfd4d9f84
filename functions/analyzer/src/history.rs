//! Each container's recent alerts, in Redis, for the pattern rules.
//!
//! `hemostat:history:{host/name}` is a list of compact summaries, newest
//! first, capped at `ANALYZER_HISTORY_SIZE` and expiring
//! `ANALYZER_HISTORY_TTL` after the last alert. Storing an alert and reading
//! the list happen in one `MULTI`, so concurrent invocations for one
//! container each see every alert stored before theirs, their own included,
//! and none is lost between a read and a write.

use std::time::Duration;

use hemostat_protocol::connection::Connection;
use hemostat_protocol::{
    ContainerRef,
    event::{AnomalyKind, HealthAlert},
    keys,
};
use serde::{Deserialize, Serialize};

use crate::{
    diagnosis::diagnose,
    error::AnalyzerError,
    fingerprint,
    measured::{is_exit, sustained_seconds, uptime},
};

/// What the rules need to remember of one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSummary {
    /// When the collector published the alert, Unix microseconds (the
    /// seed timestamp's precision, so two alerts never share one). Also the
    /// alert's identity: a redelivered alert has the same envelope
    /// timestamp, so the rules count it once.
    pub at: i64,
    pub kinds: Vec<AnomalyKind>,
    pub cpu: f64,
    pub mem: f64,
    /// The collector's `sustained_seconds`, when it measured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustained: Option<f64>,
    /// An exit's code. Absent from entries older analyzers wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// An exit's failure line, normalised ([`crate::fingerprint`]): two
    /// exits with the same code and fingerprint are the same failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// How long the run that ended in this exit had lasted, in seconds
    /// (see [`uptime`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<f64>,
}

impl AlertSummary {
    /// `at_us`: the envelope's timestamp, see [`envelope_micros`].
    pub fn of(alert: &HealthAlert, at_us: i64) -> Self {
        let kinds: Vec<AnomalyKind> = alert.anomalies.iter().map(|a| a.kind).collect();
        let exit = alert.exit_code.is_some() && kinds.iter().any(|k| is_exit(*k));
        AlertSummary {
            at: at_us,
            kinds,
            cpu: alert.metrics.cpu_pct,
            mem: alert.metrics.memory_pct,
            sustained: sustained_seconds(alert),
            exit_code: alert.exit_code.filter(|_| exit),
            fingerprint: exit.then(|| fingerprint::of(alert, diagnose(alert).as_ref())).flatten(),
            uptime: uptime(alert).filter(|_| exit),
        }
    }

    /// An exit (non-zero or OOM-killed).
    pub fn is_exit(&self) -> bool {
        self.kinds.iter().any(|k| is_exit(*k))
    }

    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// The seed timestamp (`2025-11-03T10:30:45.123456`, UTC) as Unix µs; an
/// RFC 3339 timestamp is accepted too. `None` when it is neither.
pub fn envelope_micros(timestamp: &str) -> Option<i64> {
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_micros());
    }
    chrono::DateTime::parse_from_rfc3339(timestamp).ok().map(|t| t.timestamp_micros())
}

/// A container's recent alerts as one invocation sees them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// The time of the alert being analysed (Unix µs): the rules' "now", so
    /// they stay a pure function of their input.
    pub now: i64,
    /// Newest first, the alert being analysed included.
    pub alerts: Vec<AlertSummary>,
}

impl History {
    /// Alerts in `[now - window, now]`, each once (redeliveries share
    /// their `at`), newest first. Alerts stored by concurrent invocations
    /// for later alerts are not this alert's past and are left out.
    pub fn within(&self, window: Duration) -> Vec<&AlertSummary> {
        let from = self.now - window.as_micros() as i64;
        let mut seen = Vec::new();
        let mut out: Vec<&AlertSummary> = Vec::new();
        for a in &self.alerts {
            if a.at >= from && a.at <= self.now && !seen.contains(&a.at) {
                seen.push(a.at);
                out.push(a);
            }
        }
        out.sort_by_key(|a| std::cmp::Reverse(a.at));
        out
    }
}

/// Stores `summary` and returns the container's history, in one round trip.
pub async fn record(
    conn: &mut Connection,
    container: &ContainerRef,
    summary: &AlertSummary,
    size: usize,
    ttl: Duration,
) -> Result<History, AnalyzerError> {
    let key = keys::history(container);
    let json = serde_json::to_string(summary).map_err(hemostat_protocol::ProtocolError::from)?;
    let (entries,): (Vec<String>,) = redis::pipe()
        .atomic()
        .cmd("LPUSH")
        .arg(&key)
        .arg(&json)
        .ignore()
        .cmd("LTRIM")
        .arg(&key)
        .arg(0)
        .arg(size.saturating_sub(1))
        .ignore()
        .cmd("EXPIRE")
        .arg(&key)
        .arg(ttl.as_secs().max(1))
        .ignore()
        .cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    // An entry this version cannot read (written by a newer analyzer) is
    // skipped rather than failing the alert.
    let alerts = entries.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
    Ok(History { now: summary.at, alerts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_an_older_analyzer_wrote_still_reads() {
        let old: AlertSummary =
            serde_json::from_str(r#"{"at":5,"kinds":["non_zero_exit"],"cpu":1.5,"mem":2.0}"#).expect("reads");
        assert_eq!((old.at, old.is_exit(), old.exit_code, old.fingerprint, old.uptime), (5, true, None, None, None));
    }
}
