//! The Prometheus text exposition format (version 0.0.4): every family with
//! its HELP and TYPE, all its samples together, histograms' buckets in
//! ascending order ending with `+Inf`, then `_sum` and `_count`.

use std::{collections::BTreeMap, fmt::Write as _};

use crate::{
    collectors::CollectorStatus,
    metrics::{self, Family, Kind, Suffix, escape_label_value, family_of, format_float, parse_series},
    store::Snapshot,
};

pub use hemostat_protocol::exposition::CONTENT_TYPE;
use hemostat_protocol::exposition::escape_help;

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    suffix: Suffix,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    /// Orders a histogram's samples: by label set (without `le`), then
    /// buckets by bound, then sum, then count.
    fn sort_key(&self) -> (Vec<(String, String)>, Suffix, f64) {
        let mut labels = self.labels.clone();
        let mut le = 0.0;
        if let Some(at) = labels.iter().position(|(k, _)| k == "le") {
            let (_, v) = labels.remove(at);
            le = if v == "+Inf" { f64::INFINITY } else { v.parse().unwrap_or(f64::NAN) };
        }
        (labels, self.suffix, le)
    }
}

/// Renders the stored series of `snapshot`, the gauges computed from it and
/// the collectors' statuses.
pub fn render(snapshot: &Snapshot, collectors: &[CollectorStatus], container_metrics: bool) -> String {
    let mut by_family: BTreeMap<&'static str, Vec<Sample>> = BTreeMap::new();
    for (field, value) in &snapshot.stored {
        let Some((name, labels)) = parse_series(field) else {
            tracing::debug!(field, "unparseable stored series; skipped");
            continue;
        };
        let (Some((family, suffix)), Ok(value)) = (family_of(name), value.trim().parse::<f64>()) else {
            continue;
        };
        by_family.entry(family.name).or_default().push(Sample { suffix, labels, value });
    }

    let mut gauge = |family: &Family, labels: &[(&str, &str)], value: f64| {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        by_family.entry(family.name).or_default().push(Sample { suffix: Suffix::None, labels, value });
    };

    if let Some(ratio) = false_alarm_ratio(&snapshot.stored) {
        gauge(&metrics::FALSE_ALARM_RATIO, &[], ratio);
    }
    for c in collectors {
        let host = c.host.as_str();
        gauge(&metrics::COLLECTOR_UP, &[("host", host)], if c.up { 1.0 } else { 0.0 });
        gauge(&metrics::COLLECTOR_LAST_SEEN, &[("host", host)], c.last_seen_ms as f64 / 1000.0);
        if let Some(interval) = c.interval_seconds {
            gauge(&metrics::COLLECTOR_INTERVAL, &[("host", host)], interval);
        }
    }
    gauge(&metrics::CONTAINERS, &[], snapshot.containers_total as f64);
    if container_metrics {
        for s in &snapshot.containers {
            let labels = [("host", s.container.host.as_str()), ("container", s.container.name.as_str())];
            gauge(&metrics::CONTAINER_CPU, &labels, s.cpu_pct);
            gauge(&metrics::CONTAINER_MEMORY, &labels, s.memory_pct);
            if let Some(status) = &s.status {
                let status = metrics::label_value(status);
                gauge(&metrics::CONTAINER_STATUS, &[labels[0], labels[1], ("status", status.as_str())], 1.0);
            }
        }
        gauge(&metrics::CONTAINERS_TRUNCATED, &[], snapshot.truncated as f64);
    }
    for (stream, length) in &snapshot.streams {
        gauge(&metrics::STREAM_LENGTH, &[("stream", stream.as_str())], *length as f64);
    }

    let mut out = String::with_capacity(4096 + 120 * snapshot.stored.len());
    for family in metrics::ALL {
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
        let Some(samples) = by_family.get_mut(family.name) else { continue };
        if family.kind == Kind::Histogram {
            samples.sort_by(|a, b| a.sort_key().partial_cmp(&b.sort_key()).unwrap_or(std::cmp::Ordering::Equal));
        } else {
            samples.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        for s in samples.iter() {
            let suffix = match s.suffix {
                Suffix::None => "",
                Suffix::Bucket => "_bucket",
                Suffix::Sum => "_sum",
                Suffix::Count => "_count",
            };
            out.push_str(family.name);
            out.push_str(suffix);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_float(s.value));
        }
    }
    out
}

/// False alarms / analysed alerts, from the stored analyses counters.
pub fn false_alarm_ratio(stored: &[(String, String)]) -> Option<f64> {
    let (mut false_alarms, mut total) = (0.0, 0.0);
    for (field, value) in stored {
        let Some((name, labels)) = parse_series(field) else { continue };
        if name != metrics::ANALYSES.name {
            continue;
        }
        let n: f64 = value.parse().unwrap_or(0.0);
        total += n;
        if labels.iter().any(|(k, v)| k == "verdict" && v == "false_alarm") {
            false_alarms += n;
        }
    }
    (total > 0.0).then(|| false_alarms / total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        metrics::{Fact, Update},
        store::ContainerStats,
    };
    use hemostat_protocol::ContainerRef;

    /// Applies facts the way the Lua script does, into a snapshot.
    fn stored(facts: &[Fact]) -> Vec<(String, String)> {
        let mut map: BTreeMap<String, f64> = BTreeMap::new();
        for f in facts {
            for u in f.updates() {
                match u {
                    Update::Int(k, d) => *map.entry(k).or_default() += d as f64,
                    Update::Float(k, d) => *map.entry(k).or_default() += d,
                }
            }
        }
        map.into_iter().map(|(k, v)| (k, format_float(v))).collect()
    }

    #[test]
    fn renders_every_family_in_the_text_format() {
        let facts = vec![
            Fact::Count {
                family: &metrics::ALERTS,
                labels: vec![("type", "oom_killed".into()), ("severity", "critical".into())],
            },
            Fact::Count {
                family: &metrics::ANALYSES,
                labels: vec![("verdict", "remediate".into()), ("method", "rule_based".into())],
            },
            Fact::Count {
                family: &metrics::ANALYSES,
                labels: vec![("verdict", "false_alarm".into()), ("method", "rule_based".into())],
            },
            Fact::Count {
                family: &metrics::ANALYSES,
                labels: vec![("verdict", "remediate".into()), ("method", "llm".into())],
            },
            Fact::Count {
                family: &metrics::ANALYSES,
                labels: vec![("verdict", "remediate".into()), ("method", "llm".into())],
            },
            Fact::Observe {
                family: &metrics::DETECTION_TO_FIX,
                labels: vec![("action", "restart".into())],
                value: 12.5,
            },
            Fact::Observe {
                family: &metrics::DETECTION_TO_FIX,
                labels: vec![("action", "restart".into())],
                value: 0.5,
            },
        ];
        let snapshot = Snapshot {
            stored: stored(&facts),
            containers_total: 2,
            streams: vec![("hemostat:stream:health_alert".into(), 7)],
            containers: vec![ContainerStats {
                container: ContainerRef::new("h1", "web"),
                status: Some("running".into()),
                cpu_pct: 12.5,
                memory_pct: 40.0,
            }],
            truncated: 1,
        };
        let collectors = vec![
            CollectorStatus {
                host: "h1".into(),
                up: true,
                last_seen_ms: 1_700_000_000_500,
                interval_seconds: Some(10.0),
                reported_missing: false,
            },
            CollectorStatus {
                host: "h2".into(),
                up: false,
                last_seen_ms: 1_600_000_000_000,
                interval_seconds: None,
                reported_missing: true,
            },
        ];
        let text = render(&snapshot, &collectors, true);
        for line in [
            "# TYPE hemostat_alerts_total counter",
            r#"hemostat_alerts_total{type="oom_killed",severity="critical"} 1"#,
            r#"hemostat_analyses_total{verdict="remediate",method="llm"} 2"#,
            "hemostat_false_alarm_ratio 0.25",
            "# TYPE hemostat_detection_to_fix_seconds histogram",
            r#"hemostat_detection_to_fix_seconds_bucket{action="restart",le="1"} 1"#,
            r#"hemostat_detection_to_fix_seconds_bucket{action="restart",le="15"} 2"#,
            r#"hemostat_detection_to_fix_seconds_bucket{action="restart",le="+Inf"} 2"#,
            r#"hemostat_detection_to_fix_seconds_sum{action="restart"} 13"#,
            r#"hemostat_detection_to_fix_seconds_count{action="restart"} 2"#,
            r#"hemostat_collector_up{host="h1"} 1"#,
            r#"hemostat_collector_up{host="h2"} 0"#,
            r#"hemostat_collector_last_seen_seconds{host="h1"} 1700000000.5"#,
            r#"hemostat_collector_heartbeat_interval_seconds{host="h1"} 10"#,
            r#"hemostat_container_cpu_percent{host="h1",container="web"} 12.5"#,
            r#"hemostat_container_status{host="h1",container="web",status="running"} 1"#,
            "hemostat_containers 2",
            "hemostat_exporter_containers_truncated 1",
            r#"hemostat_stream_length{stream="hemostat:stream:health_alert"} 7"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Buckets in ascending order, +Inf last, then sum and count.
        let hist: Vec<&str> = text.lines().filter(|l| l.starts_with("hemostat_detection_to_fix_seconds")).collect();
        assert!(hist[0].contains("le=\"1\""), "{hist:?}");
        assert!(
            hist[hist.len() - 3].contains("+Inf")
                && hist[hist.len() - 2].contains("_sum")
                && hist[hist.len() - 1].contains("_count")
        );
        // Each family's lines are contiguous, after its TYPE.
        let mut seen = std::collections::HashSet::new();
        let mut current = "";
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let (family, _) = family_of(name).unwrap();
            if family.name != current {
                assert!(seen.insert(family.name), "{} split in two", family.name);
                current = family.name;
            }
        }
    }

    #[test]
    fn unknown_or_garbage_fields_are_skipped() {
        let snapshot = Snapshot {
            stored: vec![
                ("hemostat_from_the_future_total".into(), "3".into()),
                ("garbage{".into(), "1".into()),
                ("hemostat_events_total{type=\"health_alert\"}".into(), "not a number".into()),
            ],
            ..Snapshot::default()
        };
        let text = render(&snapshot, &[], false);
        assert!(!text.lines().any(|l| !l.starts_with('#') && !l.starts_with("hemostat_containers ")), "{text}");
        assert_eq!(false_alarm_ratio(&snapshot.stored), None);
    }
}
