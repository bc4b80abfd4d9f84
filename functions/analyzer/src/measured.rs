//! What the collector measured of an alert, as the rules and the
//! diagnosis read it: whether it is an exit, how long the run that ended
//! lasted, how long a breach was sustained. A leaf: it reads the alert
//! alone, never the history nor the diagnosis.

use hemostat_protocol::event::{AnomalyKind, HealthAlert, Metrics};

/// The collector's `metrics.sustained_seconds`, if present and a number.
pub fn sustained_seconds(alert: &HealthAlert) -> Option<f64> {
    alert.metrics.extra_f64(Metrics::SUSTAINED_SECONDS)
}

/// The anomalies that are an exit of the container's process.
pub fn is_exit(kind: AnomalyKind) -> bool {
    matches!(kind, AnomalyKind::NonZeroExit | AnomalyKind::OomKilled)
}

/// How long the run that ended had lasted, in seconds, when the collector
/// measured it (`metrics.uptime_seconds`, on an exit's alert).
pub fn uptime(alert: &HealthAlert) -> Option<f64> {
    alert.metrics.extra_f64(Metrics::UPTIME_SECONDS).filter(|s| *s >= 0.0)
}

/// What "sustained" means when the alert does not say: the collector's
/// default sustain window, and what the seed's monitor alerts are held to.
pub const SUSTAINED_SECONDS: f64 = 60.0;

/// How long a breach has lasted, when that makes it sustained: at least
/// the sustain window the collector applied (`metrics.sustain_seconds`, the
/// operator's setting or the container's label), or [`SUSTAINED_SECONDS`]
/// when the alert does not name one. A collector told that 10 s of high
/// CPU is a burn has already waited those 10 s; holding its alert to 60 s
/// again would call every such burn a spike.
pub fn sustained(alert: &HealthAlert) -> Option<f64> {
    let window = alert.metrics.extra_f64(Metrics::SUSTAIN_SECONDS).filter(|w| *w >= 0.0).unwrap_or(SUSTAINED_SECONDS);
    sustained_seconds(alert).filter(|s| *s >= window)
}
