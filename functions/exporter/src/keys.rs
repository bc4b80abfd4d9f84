//! The exporter's own Redis keys.
//!
//! The counting script touches the metrics hash and one dedupe key per
//! record at once, so they share one hash tag, [`TAG`], and the script runs
//! unchanged on Redis Cluster. One slot takes every count: the write rate is
//! the event rate, far below what one slot serves.

/// The hash tag shared by the keys the counting script touches.
pub const TAG: &str = "{hemostat-exporter}";

/// Every stored series (counters, histogram buckets, sums and counts):
/// field = the series in Prometheus syntax, value = its number.
pub fn metrics() -> String {
    format!("hemostat:exporter:{TAG}:metrics")
}

/// Marks a record as counted; expires after the dedupe TTL.
pub fn seen(source: &str, message_id: &str) -> String {
    format!("hemostat:exporter:{TAG}:seen:{source}:{message_id}")
}

/// Present while `host`'s collector is reported missing: set with NX when
/// it goes silent (only the instance that sets it publishes the alert),
/// deleted when it beats again (only the instance whose DEL removed it
/// publishes the recovery).
pub fn collector_missing(host: &str) -> String {
    format!("hemostat:exporter:collector_missing:{host}")
}
