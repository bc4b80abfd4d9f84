//! What the benchmark binaries share: wall-clock and stream-id times,
//! percentiles, and the crash alert they publish.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{SecondsFormat, Utc};
use hemostat_protocol::{
    Envelope, EventKind,
    envelope::agent,
    event::{Anomaly, AnomalyKind, HealthAlert, Metrics, Severity},
};

/// The `health_alert` a collector publishes when `container` (on `host`,
/// running `image`) exits with code 1, detected now.
pub fn crash_alert(host: &str, container: &str, container_id: Option<&str>, image: &str) -> Envelope {
    let now = Utc::now();
    let alert = HealthAlert {
        container: container.to_owned(),
        issues: vec!["Exited with code 1".into()],
        metrics: Metrics {
            name: container.to_owned(),
            status: Some("exited".into()),
            memory_pct: 0.0,
            cpu_pct: 0.0,
            timestamp: Some(now.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
            ..Default::default()
        },
        host: host.to_owned(),
        container_id: container_id.map(str::to_owned),
        image: Some(image.to_owned()),
        anomalies: vec![Anomaly {
            kind: AnomalyKind::NonZeroExit,
            severity: Severity::High,
            threshold: None,
            actual: Some(1.0),
        }],
        exit_code: Some(1),
        detected_at: Some(now.to_rfc3339_opts(SecondsFormat::Nanos, true)),
        evidence: None,
        policy: None,
        held: None,
        silenced_by: Vec::new(),
    };
    Envelope::new(agent::MONITOR, EventKind::HealthAlert, &alert).expect("serialisable")
}

/// Now, in epoch milliseconds (fractional).
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// When Redis took a stream entry: the milliseconds of its id (`ms-seq`).
pub fn id_ms(id: &str) -> f64 {
    id.split('-').next().and_then(|ms| ms.parse::<f64>().ok()).unwrap_or(0.0)
}

/// Stream ids compare as (milliseconds, sequence).
pub fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Nearest-rank percentile `p` (0 to 1) of sorted values; `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_and_ids() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!((percentile(&v, 0.5), percentile(&v, 0.99), percentile(&v, 0.0)), (Some(5), Some(10), Some(1)));
        assert_eq!(percentile::<u8>(&[], 0.5), None);
        assert_eq!(id_key("17-3"), (17, 3));
        assert!(id_key("17-3") < id_key("17-10"));
        assert_eq!(id_ms("1700000000000-0"), 1_700_000_000_000.0);
    }

    #[test]
    fn crash_alert_is_a_collector_crash() {
        let env = crash_alert("h1", "svc-1", Some("abc"), "bench/app:1");
        let alert: HealthAlert = env.data_of(EventKind::HealthAlert).unwrap();
        assert_eq!((alert.host.as_str(), alert.container.as_str(), alert.exit_code), ("h1", "svc-1", Some(1)));
        assert_eq!(alert.anomalies[0].kind, AnomalyKind::NonZeroExit);
        assert_eq!((alert.container_id.as_deref(), alert.image.as_deref()), (Some("abc"), Some("bench/app:1")));
        assert!(alert.detected_at.is_some() && alert.metrics.timestamp.is_some());
    }
}
