//! What a collector measured of one container: the seed's `metrics`
//! object, written to `hemostat:stats:<host/name>` (the stats record every
//! reader shows: the dashboard, the exporter, `hemostat`) and carried by
//! every `health_alert`.
//!
//! The seed's fields (`name`, `status`, `memory_pct`, `cpu_pct`,
//! `timestamp`) come first; the rest are HemoStat's, optional so that a
//! seed-protocol publisher's record still reads. Everything here is read
//! from Redis, which others may write: a field of the wrong type reads as
//! absent, never as an error for the whole record.

use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The container's name (the seed always writes it; a record without
    /// one still reads).
    #[serde(default, deserialize_with = "lenient_text")]
    pub name: String,
    /// Docker's status (`running`, `exited`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub status: Option<String>,
    /// Percent of the limit (the container's, or the host's memory).
    #[serde(default, deserialize_with = "finite")]
    pub memory_pct: f64,
    /// Percent of one core, as `docker stats`.
    #[serde(default, deserialize_with = "finite")]
    pub cpu_pct: f64,
    /// When it was measured (seed format, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// The collector's host.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub host: Option<String>,
    /// Docker's full container id.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub image: Option<String>,
    /// `healthy`, `unhealthy` or `starting`; absent without a health check.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub health: Option<String>,
    /// Memory in use, page cache excluded, in bytes (as `docker stats`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub memory_usage: Option<u64>,
    /// The limit `memory_pct` is of, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub memory_limit: Option<u64>,
    /// Network and block I/O totals since the container started, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub net_rx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub net_tx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub blk_read_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub blk_write_bytes: Option<u64>,
    /// Processes in the container.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub pids: Option<u64>,
    /// The figures behind an alert's anomaly (see the associated
    /// constants), and whatever else a publisher added.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl Metrics {
    /// `extra`: seconds a CPU or memory value has stayed above its
    /// threshold, when the alert is a threshold breach.
    pub const SUSTAINED_SECONDS: &'static str = "sustained_seconds";
    /// `extra`: the sustain window the collector required before it called
    /// the breach (its own setting, or the container's `hemostat.sustain`).
    /// What "sustained" means is the operator's choice, so the analyzer
    /// reads it from here rather than assuming its own.
    pub const SUSTAIN_SECONDS: &'static str = "sustain_seconds";
    /// `extra`, on an exit's alert: how long the run that ended had lasted,
    /// in seconds (Docker's `StartedAt` to the `die` event). A failure
    /// seconds after start (a configuration, a missing file, a port taken)
    /// is not one after days of service (a leak, a transient), and the
    /// analyzer weighs them apart.
    pub const UPTIME_SECONDS: &'static str = "uptime_seconds";

    /// A finite number in `extra`.
    pub fn extra_f64(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(Value::as_f64).filter(|v| v.is_finite())
    }

    /// A stats record as stored, or None for one that is not a JSON object.
    pub fn parse(json: &str) -> Option<Metrics> {
        serde_json::from_str(json).ok()
    }
}

/// The value, or None when it is missing or of another type.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| serde_json::from_value(v).ok()))
}

/// A string, else empty.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient::<D, String>(d)?.unwrap_or_default())
}

/// A finite number, else 0 (the seed's default for a figure not measured).
fn finite<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(lenient::<D, f64>(d)?.filter(|x| x.is_finite()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_stats_record_reads_back_whole() {
        let m = Metrics {
            name: "web".into(),
            status: Some("running".into()),
            memory_pct: 40.25,
            cpu_pct: 12.5,
            timestamp: Some("2025-11-03T10:30:45.123456".into()),
            host: Some("h1".into()),
            id: Some("c0ffee".into()),
            image: Some("nginx:1".into()),
            health: Some("healthy".into()),
            memory_usage: Some(1024),
            memory_limit: Some(4096),
            net_rx_bytes: Some(1),
            net_tx_bytes: Some(2),
            blk_read_bytes: Some(3),
            blk_write_bytes: Some(4),
            pids: Some(3),
            extra: Default::default(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(Metrics::parse(&json), Some(m));
        // The seed's own shape, and nothing else, reads too.
        let seed = json!({"name": "web", "status": "running", "memory_pct": 1.0, "cpu_pct": 2.0, "timestamp": "t"});
        let m = Metrics::parse(&seed.to_string()).unwrap();
        assert_eq!((m.cpu_pct, m.pids, m.extra.len()), (2.0, None, 0));
    }

    #[test]
    fn a_field_of_the_wrong_type_reads_as_absent() {
        let hostile = json!({"name": "web", "cpu_pct": "high", "memory_pct": null, "pids": -3,
            "memory_limit": "lots", "health": 7, "image": ["a"], "sustained_seconds": 12.0});
        let m = Metrics::parse(&hostile.to_string()).unwrap();
        assert_eq!((m.cpu_pct, m.memory_pct, m.pids, m.memory_limit), (0.0, 0.0, None, None));
        assert_eq!((m.health.as_deref(), m.image.as_deref()), (None, None));
        assert_eq!(m.extra_f64(Metrics::SUSTAINED_SECONDS), Some(12.0));
        assert_eq!(Metrics::parse("[1, 2]"), None);
        let nameless = Metrics::parse(r#"{"status": "running", "name": 3}"#).unwrap();
        assert_eq!((nameless.name.as_str(), nameless.status.as_deref()), ("", Some("running")));
    }
}
