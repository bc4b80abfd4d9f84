//! The metric families HemoStat exports, and how one series is written.
//!
//! Stored families (counters, histograms) live in one Redis hash whose
//! fields are the series in Prometheus syntax (`name{label="value"}`), so a
//! scrape is one HGETALL and `redis-cli HGETALL` is readable. Gauges are
//! computed at scrape time from live Redis state and never stored.

use std::fmt::Write as _;

/// A label set: label names are static, values come from events.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// CloudWatch's unit for a metric (a subset of `StandardUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Count,
    Seconds,
    None,
}

#[derive(Debug, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Upper bounds of a histogram's buckets, ascending (`+Inf` implied).
    pub buckets: &'static [f64],
    /// The CloudWatch metric name and unit, for families sent there.
    pub cloudwatch: Option<(&'static str, Unit)>,
}

const fn counter(name: &'static str, help: &'static str, cloudwatch: Option<(&'static str, Unit)>) -> Family {
    Family { name, kind: Kind::Counter, help, buckets: &[], cloudwatch }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family { name, kind: Kind::Gauge, help, buckets: &[], cloudwatch: None }
}

// --- stored: counted per event ---------------------------------------------

pub static EVENTS: Family =
    counter("hemostat_events_total", "HemoStat events counted, by type.", Some(("Events", Unit::Count)));
pub static ALERTS: Family = counter(
    "hemostat_alerts_total",
    "Health alerts, by the type and severity of their most severe anomaly (unknown for seed-protocol alerts without anomalies).",
    Some(("Alerts", Unit::Count)),
);
pub static ANALYSES: Family = counter(
    "hemostat_analyses_total",
    "Analysed alerts, by verdict (remediate or false_alarm) and analysis method.",
    Some(("Analyses", Unit::Count)),
);
pub static REMEDIATION_REQUESTS: Family = counter(
    "hemostat_remediation_requests_total",
    "remediation_needed events, by requested action.",
    Some(("RemediationRequests", Unit::Count)),
);
pub static REMEDIATIONS: Family = counter(
    "hemostat_remediations_total",
    "Finished remediations (remediation_complete), by action and status.",
    Some(("Remediations", Unit::Count)),
);
pub static VERIFICATIONS: Family = counter(
    "hemostat_remediation_verifications_total",
    "Remediations whose effect was checked afterwards, by action and result (verified or not_verified).",
    Some(("RemediationVerifications", Unit::Count)),
);
pub static SYSTEM_ALERTS: Family = counter(
    "hemostat_system_alerts_total",
    "HemoStat's alerts about itself (collector_missing, collector_recovered, ...), by kind and severity.",
    Some(("SystemAlerts", Unit::Count)),
);
pub static CONFIDENCE: Family = Family {
    name: "hemostat_analysis_confidence",
    kind: Kind::Histogram,
    help: "Confidence of analysis verdicts, by verdict.",
    buckets: &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0],
    cloudwatch: Some(("AnalysisConfidence", Unit::None)),
};
pub static DETECTION_TO_FIX: Family = Family {
    name: "hemostat_detection_to_fix_seconds",
    kind: Kind::Histogram,
    help: "Time from the collector seeing a problem to a verified successful fix, by action.",
    buckets: &[1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0],
    cloudwatch: Some(("DetectionToFix", Unit::Seconds)),
};
pub static REMEDIATION_DURATION: Family = Family {
    name: "hemostat_remediation_duration_seconds",
    kind: Kind::Histogram,
    help: "How long a remediation action took on the host (result.duration_ms), by action.",
    buckets: &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
    cloudwatch: Some(("RemediationDuration", Unit::Seconds)),
};
pub static DUPLICATES: Family = counter(
    "hemostat_exporter_duplicate_records_total",
    "Records delivered again after they were counted, and not counted again.",
    None,
);
pub static CLOUDWATCH_FAILURES: Family = counter(
    "hemostat_exporter_cloudwatch_failures_total",
    "CloudWatch (EMF) writes that failed (their data points are lost; Prometheus counts are not affected).",
    None,
);

// --- computed at scrape time -------------------------------------------------

pub static FALSE_ALARM_RATIO: Family = gauge(
    "hemostat_false_alarm_ratio",
    "False alarms / analysed alerts, over every event counted so far (use rates of hemostat_analyses_total for a window).",
);
pub static COLLECTOR_UP: Family = gauge(
    "hemostat_collector_up",
    "1 while a collector's heartbeat is fresh, 0 once it has been missing for three heartbeat intervals.",
);
pub static COLLECTOR_LAST_SEEN: Family = gauge(
    "hemostat_collector_last_seen_seconds",
    "Unix time of a collector's last heartbeat (time() - this = seconds since).",
);
pub static COLLECTOR_INTERVAL: Family =
    gauge("hemostat_collector_heartbeat_interval_seconds", "A live collector's heartbeat interval.");
pub static CONTAINERS: Family = gauge("hemostat_containers", "Containers the collectors see (hemostat:containers).");
pub static CONTAINER_CPU: Family =
    gauge("hemostat_container_cpu_percent", "A container's CPU use from its collector's stats (100 = one core).");
pub static CONTAINER_MEMORY: Family = gauge(
    "hemostat_container_memory_percent",
    "A container's memory use, percent of its limit, from its collector's stats.",
);
pub static CONTAINER_STATUS: Family = gauge(
    "hemostat_container_status",
    "1 for a container's current Docker status (running, exited, ...), from its collector's stats.",
);
pub static STREAM_LENGTH: Family =
    gauge("hemostat_stream_length", "Entries in a durable event stream (capped), and in the dead-letter stream.");
pub static CONTAINERS_TRUNCATED: Family =
    gauge("hemostat_exporter_containers_truncated", "Containers left out of this scrape by EXPORTER_MAX_CONTAINERS.");

/// Every family, in exposition order.
pub static ALL: &[&Family] = &[
    &EVENTS,
    &ALERTS,
    &ANALYSES,
    &REMEDIATION_REQUESTS,
    &REMEDIATIONS,
    &VERIFICATIONS,
    &SYSTEM_ALERTS,
    &CONFIDENCE,
    &DETECTION_TO_FIX,
    &REMEDIATION_DURATION,
    &FALSE_ALARM_RATIO,
    &COLLECTOR_UP,
    &COLLECTOR_LAST_SEEN,
    &COLLECTOR_INTERVAL,
    &CONTAINERS,
    &CONTAINER_CPU,
    &CONTAINER_MEMORY,
    &CONTAINER_STATUS,
    &STREAM_LENGTH,
    &DUPLICATES,
    &CLOUDWATCH_FAILURES,
    &CONTAINERS_TRUNCATED,
];

impl Family {
    /// The names of the series this family exposes (a histogram's
    /// `_bucket`, `_sum`, `_count`), e.g. to check a dashboard's queries.
    pub fn sample_names(&self) -> Vec<String> {
        match self.kind {
            Kind::Histogram => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{}{s}", self.name)).collect(),
            _ => vec![self.name.to_owned()],
        }
    }
}

/// The family a sample name belongs to, and the histogram suffix if any.
pub fn family_of(sample_name: &str) -> Option<(&'static Family, Suffix)> {
    for family in ALL {
        if family.name == sample_name && family.kind != Kind::Histogram {
            return Some((family, Suffix::None));
        }
        if family.kind != Kind::Histogram {
            continue;
        }
        if let Some(rest) = sample_name.strip_prefix(family.name) {
            let suffix = match rest {
                "_bucket" => Suffix::Bucket,
                "_sum" => Suffix::Sum,
                "_count" => Suffix::Count,
                _ => continue,
            };
            return Some((family, suffix));
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suffix {
    None,
    Bucket,
    Sum,
    Count,
}

/// One change to the metrics hash.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// HINCRBY (counters, bucket counts, histogram counts).
    Int(String, i64),
    /// HINCRBYFLOAT (histogram sums).
    Float(String, f64),
}

/// Something an event says, as metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// One more of `family` with these labels.
    Count { family: &'static Family, labels: Labels },
    /// One observation of `value` in histogram `family`.
    Observe { family: &'static Family, labels: Labels, value: f64 },
}

impl Fact {
    pub fn family(&self) -> &'static Family {
        match self {
            Fact::Count { family, .. } | Fact::Observe { family, .. } => family,
        }
    }

    pub fn labels(&self) -> &Labels {
        match self {
            Fact::Count { labels, .. } | Fact::Observe { labels, .. } => labels,
        }
    }

    /// The hash updates recording this fact. An observation touches every
    /// bucket (adding 0 to those below the value) so that each series has
    /// all its buckets from its first observation on.
    pub fn updates(&self) -> Vec<Update> {
        match self {
            Fact::Count { family, labels } => vec![Update::Int(series(family.name, labels), 1)],
            Fact::Observe { family, labels, value } => {
                let mut out = Vec::with_capacity(family.buckets.len() + 3);
                for le in family.buckets {
                    let field = bucket_series(family.name, labels, &format_float(*le));
                    out.push(Update::Int(field, i64::from(*value <= *le)));
                }
                out.push(Update::Int(bucket_series(family.name, labels, "+Inf"), 1));
                out.push(Update::Int(series(&format!("{}_count", family.name), labels), 1));
                out.push(Update::Float(series(&format!("{}_sum", family.name), labels), *value));
                out
            }
        }
    }
}

/// `name{k="v",...}`, or `name` without labels.
pub fn series(name: &str, labels: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(name.len() + 16 * labels.len());
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
        }
        out.push('}');
    }
    out
}

fn bucket_series(name: &str, labels: &[(&str, String)], le: &str) -> String {
    let mut with_le: Vec<(&str, String)> = labels.to_vec();
    with_le.push(("le", le.to_owned()));
    series(&format!("{name}_bucket"), &with_le)
}

pub use hemostat_protocol::exposition::{escape_label_value, format_float};

/// Parses a stored series back: `name{k="v",...}` into the name and the
/// unescaped labels. `None` for anything else (a field this version did not
/// write is skipped, not fatal).
pub fn parse_series(field: &str) -> Option<(&str, Vec<(String, String)>)> {
    let Some(open) = field.find('{') else {
        return valid_name(field).then(|| (field, Vec::new()));
    };
    let name = &field[..open];
    if !valid_name(name) {
        return None;
    }
    let mut labels = Vec::new();
    let mut chars = field[open + 1..].chars().peekable();
    loop {
        if chars.peek() == Some(&'}') {
            chars.next();
            break;
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if !valid_name(&key) || chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key, value));
        match chars.next()? {
            ',' => {}
            '}' => break,
            _ => return None,
        }
    }
    chars.next().is_none().then_some((name, labels))
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label value from an event: free text bounded in length and stripped
/// of control characters, so a custom publisher cannot blow up a series.
pub fn label_value(v: &str) -> String {
    const MAX: usize = 64;
    let cleaned: String = v.trim().chars().filter(|c| !c.is_control()).take(MAX).collect();
    if cleaned.is_empty() { "unspecified".into() } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid() {
        let mut names: Vec<String> = ALL.iter().flat_map(|f| f.sample_names()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(names.iter().all(|n| valid_name(n) && n.starts_with("hemostat_")));
        for f in ALL {
            if f.kind == Kind::Counter {
                assert!(f.name.ends_with("_total"), "{}", f.name);
            }
            assert!(f.buckets.windows(2).all(|w| w[0] < w[1]), "{}", f.name);
        }
    }

    #[test]
    fn series_round_trip_with_escapes() {
        let labels: Labels = vec![("type", "oom_killed".into()), ("odd", "a\"b\\c\nd,le=\"x\"}".into())];
        let s = series("hemostat_alerts_total", &labels);
        assert_eq!(s, r#"hemostat_alerts_total{type="oom_killed",odd="a\"b\\c\nd,le=\"x\"}"}"#);
        let (name, parsed) = parse_series(&s).unwrap();
        assert_eq!(name, "hemostat_alerts_total");
        let expect: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(parsed, expect);
        assert_eq!(parse_series("hemostat_x"), Some(("hemostat_x", vec![])));
        for bad in ["", "1abc", "x{", "x{a=1}", "x{a=\"1\"", "x{a=\"1\"}y", "x{=\"1\"}"] {
            assert_eq!(parse_series(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_observation_touches_every_bucket() {
        let fact = Fact::Observe { family: &CONFIDENCE, labels: vec![("verdict", "remediate".into())], value: 0.85 };
        let updates = fact.updates();
        assert_eq!(updates.len(), CONFIDENCE.buckets.len() + 3);
        assert!(
            updates.contains(&Update::Int(
                r#"hemostat_analysis_confidence_bucket{verdict="remediate",le="0.8"}"#.into(),
                0
            ))
        );
        assert!(
            updates.contains(&Update::Int(
                r#"hemostat_analysis_confidence_bucket{verdict="remediate",le="0.9"}"#.into(),
                1
            ))
        );
        assert!(
            updates.contains(&Update::Int(
                r#"hemostat_analysis_confidence_bucket{verdict="remediate",le="+Inf"}"#.into(),
                1
            ))
        );
        assert!(updates.contains(&Update::Int(r#"hemostat_analysis_confidence_count{verdict="remediate"}"#.into(), 1)));
        assert!(
            updates.contains(&Update::Float(r#"hemostat_analysis_confidence_sum{verdict="remediate"}"#.into(), 0.85))
        );
    }

    #[test]
    fn families_are_found_from_sample_names() {
        assert_eq!(family_of("hemostat_alerts_total"), Some((&ALERTS, Suffix::None)));
        assert_eq!(family_of("hemostat_detection_to_fix_seconds_bucket"), Some((&DETECTION_TO_FIX, Suffix::Bucket)));
        assert_eq!(family_of("hemostat_detection_to_fix_seconds"), None);
        assert_eq!(family_of("nope"), None);
    }

    #[test]
    fn floats_and_label_values() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(label_value("  "), "unspecified");
        assert_eq!(label_value(&"x".repeat(500)).len(), 64);
        assert_eq!(label_value("a\u{7}b"), "ab");
    }
}
