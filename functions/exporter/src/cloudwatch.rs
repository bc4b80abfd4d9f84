//! CloudWatch: the same facts as Prometheus, as Embedded Metric Format.
//!
//! Each batch's facts (counts summed per metric and dimensions,
//! observations as arrays of values, so CloudWatch can compute
//! percentiles) and the schedule's gauges (collectors up/missing, false
//! alarm ratio, containers; every minute) are written to standard output
//! as EMF documents, one JSON object per line. Inside Lambda, CloudWatch
//! Logs extracts the metrics from the function's log: no API call, no SDK,
//! no `cloudwatch:PutMetricData` permission, and no route from the
//! function's VPC to CloudWatch's endpoint (a function that reaches Redis
//! in a private subnet would otherwise need a NAT gateway or an interface
//! endpoint just for metrics).
//!
//! Per-container gauges are not sent: each container would be a custom
//! metric, billed monthly. Only records counted now are sent, so a
//! redelivery is not sent twice; a failed write is logged and counted
//! (`hemostat_exporter_cloudwatch_failures_total`) but does not fail the
//! records, since Prometheus' counts in Redis are already right.
//!
//! Limits (the EMF specification): at most 100 metrics per document, 30
//! dimensions per dimension set, 100 values per metric's array; one
//! document holds one value per dimension, so data with other dimension
//! values go in other documents.

use std::{future::Future, io::Write, sync::Mutex};

use serde_json::{Map, Value, json};

use crate::{
    error::ExporterError,
    metrics::{Fact, Unit},
};

/// Metrics per EMF document.
pub const MAX_METRICS_PER_DOCUMENT: usize = 100;
/// Values in one metric's array.
pub const MAX_VALUES_PER_METRIC: usize = 100;
/// Distinct values kept per datum before it is split (each may occur
/// several times, and is written that many times).
pub const MAX_VALUES_PER_DATUM: usize = 150;

/// One CloudWatch metric datum, before it is written as EMF.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub name: &'static str,
    pub dimensions: Vec<(String, String)>,
    pub unit: Unit,
    /// Distinct values, with how often each occurred.
    pub values: Vec<(f64, f64)>,
}

impl Datum {
    pub fn gauge(name: &'static str, dimensions: Vec<(String, String)>, unit: Unit, value: f64) -> Datum {
        Datum { name, dimensions, unit, values: vec![(value, 1.0)] }
    }
}

/// `verdict` -> `Verdict`: CloudWatch's dimension naming.
fn dimension_name(label: &str) -> String {
    label
        .split('_')
        .map(|part| {
            let mut c = part.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The data of a batch's facts: counts summed per (metric, dimensions),
/// observations grouped into `Values`/`Counts`, at most 150 per datum.
pub fn from_facts<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> Vec<Datum> {
    let mut out: Vec<Datum> = Vec::new();
    for fact in facts {
        let Some((name, unit)) = fact.family().cloudwatch else { continue };
        let dimensions: Vec<(String, String)> =
            fact.labels().iter().map(|(k, v)| (dimension_name(k), v.clone())).collect();
        let existing = out.iter_mut().find(|d| d.name == name && d.dimensions == dimensions);
        match fact {
            Fact::Count { .. } => match existing {
                Some(d) => d.values[0].0 += 1.0,
                None => out.push(Datum { name, dimensions, unit, values: vec![(1.0, 1.0)] }),
            },
            Fact::Observe { value, .. } => match existing {
                Some(d) => match d.values.iter_mut().find(|(v, _)| v == value) {
                    Some((_, n)) => *n += 1.0,
                    None => d.values.push((*value, 1.0)),
                },
                None => out.push(Datum { name, dimensions, unit, values: vec![(*value, 1.0)] }),
            },
        }
    }
    out.into_iter()
        .flat_map(|d| {
            d.values
                .chunks(MAX_VALUES_PER_DATUM)
                .map(|chunk| Datum {
                    name: d.name,
                    dimensions: d.dimensions.clone(),
                    unit: d.unit,
                    values: chunk.to_vec(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Unit {
    /// CloudWatch's name for the unit.
    fn cloudwatch(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::None => "None",
        }
    }
}

/// One document being filled: its dimensions and metrics so far.
struct Document<'a> {
    dimensions: &'a [(String, String)],
    metrics: Vec<(&'static str, Unit, Vec<f64>)>,
}

/// The EMF documents of `datums` in `namespace`, stamped `timestamp_ms`.
/// An observation seen n times is written n times (EMF has values, not
/// counts); values that are not finite numbers are left out (JSON cannot
/// carry them and CloudWatch would drop the document).
pub fn documents(namespace: &str, datums: &[Datum], timestamp_ms: i64) -> Vec<Value> {
    let mut open: Vec<Document<'_>> = Vec::new();
    let mut done: Vec<Document<'_>> = Vec::new();
    for datum in datums {
        let mut values: Vec<f64> = Vec::new();
        for (value, n) in datum.values.iter().filter(|(v, n)| v.is_finite() && n.is_finite()) {
            values.extend(std::iter::repeat_n(*value, n.max(0.0).round() as usize));
        }
        for chunk in values.chunks(MAX_VALUES_PER_METRIC) {
            let slot = open.iter().position(|d| {
                d.dimensions == datum.dimensions.as_slice()
                    && d.metrics.len() < MAX_METRICS_PER_DOCUMENT
                    && !d.metrics.iter().any(|(name, ..)| *name == datum.name)
            });
            let slot = match slot {
                Some(i) => i,
                None => {
                    // One open document per dimension set: a full one (or
                    // one that has this metric already) is done.
                    if let Some(i) = open.iter().position(|d| d.dimensions == datum.dimensions.as_slice()) {
                        done.push(open.remove(i));
                    }
                    open.push(Document { dimensions: &datum.dimensions, metrics: Vec::new() });
                    open.len() - 1
                }
            };
            open[slot].metrics.push((datum.name, datum.unit, chunk.to_vec()));
        }
    }
    done.extend(open);
    done.into_iter().map(|d| document(namespace, d, timestamp_ms)).collect()
}

fn document(namespace: &str, d: Document<'_>, timestamp_ms: i64) -> Value {
    let mut root = Map::new();
    let names: Vec<&str> = d.dimensions.iter().map(|(k, _)| k.as_str()).collect();
    let metrics: Vec<Value> =
        d.metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.cloudwatch()})).collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [names], "Metrics": metrics}],
        }),
    );
    for (k, v) in d.dimensions {
        root.insert(k.clone(), Value::String(v.clone()));
    }
    for (name, _, values) in d.metrics {
        let value = match values.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        root.insert(name.to_owned(), value);
    }
    Value::Object(root)
}

/// Where CloudWatch data goes; the handler is generic over it.
pub trait MetricSink: Send + Sync {
    /// Sends `datums` (in as many documents as the limits need); returns
    /// how many were sent.
    fn put(&self, datums: Vec<Datum>) -> impl Future<Output = Result<usize, ExporterError>> + Send;

    /// Whether anything is sent at all (the schedule skips reading the
    /// gauges otherwise).
    fn enabled(&self) -> bool {
        true
    }
}

/// Either a real sink or none, chosen at start-up.
pub enum Sink<S> {
    Off,
    On(S),
}

impl<S: MetricSink> MetricSink for Sink<S> {
    async fn put(&self, datums: Vec<Datum>) -> Result<usize, ExporterError> {
        match self {
            Sink::Off => Ok(0),
            Sink::On(s) => s.put(datums).await,
        }
    }

    fn enabled(&self) -> bool {
        matches!(self, Sink::On(s) if s.enabled())
    }
}

/// Writes EMF documents for one namespace, one line each, to standard
/// output (where Lambda's log, and so CloudWatch, reads them) or to any
/// writer.
pub struct EmfSink<W> {
    namespace: String,
    out: Mutex<W>,
}

impl EmfSink<std::io::Stdout> {
    pub fn stdout(namespace: String) -> Self {
        EmfSink::new(namespace, std::io::stdout())
    }
}

impl<W: Write + Send> EmfSink<W> {
    pub fn new(namespace: String, out: W) -> Self {
        EmfSink { namespace, out: Mutex::new(out) }
    }

    /// The writer (a test reads what was written).
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<W: Write + Send> MetricSink for EmfSink<W> {
    async fn put(&self, datums: Vec<Datum>) -> Result<usize, ExporterError> {
        let docs = documents(&self.namespace, &datums, chrono::Utc::now().timestamp_millis());
        // Each document is one line, written whole under the lock, so the
        // function's own log lines never interleave inside one.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        for doc in &docs {
            let mut line = doc.to_string();
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(|e| ExporterError::CloudWatch(e.to_string()))?;
        }
        out.flush().map_err(|e| ExporterError::CloudWatch(e.to_string()))?;
        Ok(docs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics;

    #[test]
    fn counts_sum_and_observations_group() {
        let alert = |sev: &str| Fact::Count {
            family: &metrics::ALERTS,
            labels: vec![("type", "exited".into()), ("severity", sev.into())],
        };
        let fix = |v: f64| Fact::Observe {
            family: &metrics::DETECTION_TO_FIX,
            labels: vec![("action", "restart".into())],
            value: v,
        };
        let facts = [alert("high"), alert("high"), alert("low"), fix(3.0), fix(3.0), fix(4.5)];
        let data = from_facts(&facts);
        assert_eq!(data.len(), 3);
        assert_eq!(data[0].name, "Alerts");
        assert_eq!(
            data[0].dimensions,
            [("Type".to_string(), "exited".to_string()), ("Severity".into(), "high".into())]
        );
        assert_eq!(data[0].values, [(2.0, 1.0)]);
        assert_eq!(data[1].values, [(1.0, 1.0)]);
        assert_eq!((data[2].name, data[2].unit), ("DetectionToFix", Unit::Seconds));
        assert_eq!(data[2].values, [(3.0, 2.0), (4.5, 1.0)]);
        // Stored-only families (the exporter's own) are not sent.
        assert!(from_facts(&[Fact::Count { family: &metrics::DUPLICATES, labels: vec![] }]).is_empty());
    }

    #[test]
    fn many_values_split_at_150_per_datum() {
        let facts: Vec<Fact> = (0..400)
            .map(|i| Fact::Observe {
                family: &metrics::CONFIDENCE,
                labels: vec![("verdict", "remediate".into())],
                value: i as f64 / 400.0,
            })
            .collect();
        let data = from_facts(&facts);
        assert_eq!(data.iter().map(|d| d.values.len()).collect::<Vec<_>>(), [150, 150, 100]);
    }

    /// What the EMF specification asks of a document, checked on every
    /// one: the metadata's shape, every dimension and metric a member of
    /// the root, values numbers or arrays of at most 100 numbers, at most
    /// 100 metrics and 30 dimensions.
    fn check(doc: &Value) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_i64(), "{doc}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
        for d in directives {
            assert!(d["Namespace"].as_str().is_some_and(|n| !n.is_empty()));
            for set in d["Dimensions"].as_array().unwrap() {
                let set = set.as_array().unwrap();
                assert!(set.len() <= 30);
                for name in set {
                    assert!(doc[name.as_str().unwrap()].is_string(), "dimension {name} not a string member: {doc}");
                }
            }
            let metrics = d["Metrics"].as_array().unwrap();
            assert!(!metrics.is_empty() && metrics.len() <= MAX_METRICS_PER_DOCUMENT);
            for m in metrics {
                let value = &doc[m["Name"].as_str().unwrap()];
                match value {
                    Value::Number(_) => {}
                    Value::Array(values) => {
                        assert!(values.len() <= MAX_VALUES_PER_METRIC && values.iter().all(Value::is_number))
                    }
                    other => panic!("metric {m} is {other}"),
                }
                assert!(["Count", "Seconds", "None"].contains(&m["Unit"].as_str().unwrap()));
            }
        }
    }

    #[test]
    fn documents_follow_the_specification() {
        let data = vec![
            Datum::gauge("CollectorUp", vec![("Host".into(), "h1".into())], Unit::None, 1.0),
            Datum::gauge("CollectorUp", vec![("Host".into(), "h2".into())], Unit::None, 0.0),
            Datum::gauge("Containers", vec![("Host".into(), "h1".into())], Unit::None, 12.0),
            Datum {
                name: "DetectionToFix",
                dimensions: vec![("Action".into(), "restart".into())],
                unit: Unit::Seconds,
                values: vec![(3.0, 2.0), (4.5, 1.0), (f64::NAN, 1.0)],
            },
        ];
        let docs = documents("HemoStat", &data, 1_700_000_000_000);
        docs.iter().for_each(check);
        // Host h1's two gauges share a document; h2's and the action's have their own.
        assert_eq!(docs.len(), 3, "{docs:#?}");
        assert_eq!(
            (docs[0]["Host"].as_str(), &docs[0]["CollectorUp"], &docs[0]["Containers"]),
            (Some("h1"), &json!(1.0), &json!(12.0))
        );
        assert_eq!(docs[2]["DetectionToFix"], json!([3.0, 3.0, 4.5]), "counts repeat values; NaN is left out");
        assert_eq!(docs[2]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Seconds");
    }

    #[test]
    fn many_values_and_metrics_split_within_the_limits() {
        let many = Datum {
            name: "AnalysisConfidence",
            dimensions: vec![("Verdict".into(), "remediate".into())],
            unit: Unit::None,
            values: (0..150).map(|v| (v as f64, 2.0)).collect(),
        };
        let docs = documents("HemoStat", &[many], 0);
        docs.iter().for_each(check);
        let written: usize = docs.iter().map(|d| d["AnalysisConfidence"].as_array().unwrap().len()).sum();
        assert_eq!((docs.len(), written), (3, 300));
        let hosts: Vec<Datum> = (0..250)
            .map(|i| Datum::gauge("CollectorUp", vec![("Host".into(), format!("h{i}"))], Unit::None, 1.0))
            .collect();
        let docs = documents("HemoStat", &hosts, 0);
        docs.iter().for_each(check);
        assert_eq!(docs.len(), 250, "one document per host: a document holds one value per dimension");
        let metrics: Vec<Datum> = (0..230)
            .map(|i| Datum::gauge(Box::leak(format!("M{i}").into_boxed_str()), vec![], Unit::Count, i as f64))
            .collect();
        let docs = documents("HemoStat", &metrics, 0);
        docs.iter().for_each(check);
        assert_eq!(docs.len(), 3, "100 metrics per document");
    }

    #[tokio::test]
    async fn the_sink_writes_one_line_per_document() {
        let sink = EmfSink::new("HemoStat".into(), Vec::new());
        let data = vec![
            Datum::gauge("CollectorUp", vec![("Host".into(), "h1".into())], Unit::None, 1.0),
            Datum::gauge("CollectorUp", vec![("Host".into(), "h2".into())], Unit::None, 1.0),
        ];
        assert_eq!(sink.put(data).await.unwrap(), 2);
        let text = String::from_utf8(sink.into_inner()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        lines.iter().for_each(check);
    }

    #[test]
    fn dimension_names() {
        assert_eq!(dimension_name("verdict"), "Verdict");
        assert_eq!(dimension_name("analysis_method"), "AnalysisMethod");
    }
}
