//! CloudWatch: the same facts as Prometheus, as `PutMetricData` calls.
//!
//! When: every batch sends the facts of the records it counted (counts
//! summed per metric and dimensions, observations as `Values`/`Counts` so
//! CloudWatch can compute percentiles); the schedule (every minute) sends
//! the gauges (collectors up/missing, false alarm ratio, containers).
//! Per-container gauges are not sent: each container would be a custom
//! metric, billed monthly. Only records counted now are sent, so a
//! redelivery is not sent twice; a failed call is logged and counted
//! (`hemostat_exporter_cloudwatch_failures_total`) but does not fail the
//! records, since Prometheus' counts in Redis are already right and a
//! retry could not be told apart from a duplicate.
//!
//! Limits (API reference, PutMetricData): at most 1000 metric data per
//! call, 1 MB per request, 150 values per datum, 30 dimensions.

use std::{future::Future, time::Duration};

use aws_config::timeout::TimeoutConfig;
use aws_sdk_cloudwatch::{
    Client,
    primitives::DateTime,
    types::{Dimension, MetricDatum, StandardUnit},
};
use hemostat_protocol::{ProtocolError, aws};

use crate::{
    error::ExporterError,
    metrics::{Fact, Unit},
};

pub const MAX_DATUMS_PER_CALL: usize = 1000;
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// Below the API's 1 MB, with room for the estimate being rough.
const MAX_REQUEST_BYTES: usize = 800_000;

/// One CloudWatch datum before it becomes an SDK type.
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

    /// A rough size of the datum in a Query-protocol request.
    fn estimated_bytes(&self) -> usize {
        let dims: usize = self.dimensions.iter().map(|(k, v)| 90 + k.len() + v.len()).sum();
        150 + self.name.len() + dims + 100 * self.values.len()
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

/// Splits data into PutMetricData calls within the API's limits.
pub fn requests(datums: Vec<Datum>) -> Vec<Vec<Datum>> {
    let mut out: Vec<Vec<Datum>> = Vec::new();
    let mut current: Vec<Datum> = Vec::new();
    let mut bytes = 0;
    for d in datums {
        let size = d.estimated_bytes();
        if !current.is_empty() && (current.len() == MAX_DATUMS_PER_CALL || bytes + size > MAX_REQUEST_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(d);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Where CloudWatch data goes; the handler is generic over it.
pub trait MetricSink: Send + Sync {
    /// Sends `datums` (in as many calls as the limits need); returns the
    /// number of calls made.
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

/// The SDK client for one namespace.
#[derive(Clone)]
pub struct CloudWatchSink {
    client: Client,
    namespace: String,
}

impl CloudWatchSink {
    /// `endpoint`: `None` for CloudWatch's regional endpoint (or
    /// `AWS_ENDPOINT_URL_CLOUDWATCH`, read by the SDK); `Some(url)` to
    /// override it. Against a loopback endpoint (moto), a missing region or
    /// missing credentials get obvious local stand-ins.
    pub async fn new(namespace: String, endpoint: Option<&str>, timeout: Duration) -> Result<Self, ExporterError> {
        let loader = aws::loader().timeout_config(
            TimeoutConfig::builder().operation_timeout(timeout).connect_timeout(Duration::from_secs(3)).build(),
        );
        let shared = aws::load(loader, endpoint).await.map_err(|e| match e {
            ProtocolError::AwsEndpoint(_) => {
                ExporterError::Config { name: "EXPORTER_CLOUDWATCH_ENDPOINT", reason: "not an http(s) URL".into() }
            }
            _ => ExporterError::Config { name: "AWS_REGION", reason: "no AWS region for CloudWatch".into() },
        })?;
        Ok(CloudWatchSink { client: Client::new(&shared), namespace })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn sdk_datum(d: &Datum, now: DateTime) -> MetricDatum {
    let unit = match d.unit {
        Unit::Count => StandardUnit::Count,
        Unit::Seconds => StandardUnit::Seconds,
        Unit::None => StandardUnit::None,
    };
    let dimensions = d.dimensions.iter().map(|(k, v)| Dimension::builder().name(k).value(v).build()).collect();
    let builder = MetricDatum::builder().metric_name(d.name).set_dimensions(Some(dimensions)).unit(unit).timestamp(now);
    match d.values.as_slice() {
        [(value, n)] if *n == 1.0 => builder.value(*value).build(),
        values => builder
            .set_values(Some(values.iter().map(|(v, _)| *v).collect()))
            .set_counts(Some(values.iter().map(|(_, n)| *n).collect()))
            .build(),
    }
}

impl MetricSink for CloudWatchSink {
    async fn put(&self, datums: Vec<Datum>) -> Result<usize, ExporterError> {
        let now = DateTime::from(std::time::SystemTime::now());
        let mut calls = 0;
        for request in requests(datums) {
            let data: Vec<MetricDatum> = request.iter().map(|d| sdk_datum(d, now)).collect();
            self.client.put_metric_data().namespace(&self.namespace).set_metric_data(Some(data)).send().await.map_err(
                |e| ExporterError::CloudWatch(aws_sdk_cloudwatch::error::DisplayErrorContext(&e).to_string()),
            )?;
            calls += 1;
        }
        Ok(calls)
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

    #[test]
    fn requests_stay_within_the_limits() {
        let small: Vec<Datum> = (0..2500)
            .map(|i| Datum::gauge("CollectorUp", vec![("Host".into(), format!("h{i}"))], Unit::None, 1.0))
            .collect();
        let calls = requests(small);
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [1000, 1000, 500]);
        let big: Vec<Datum> = (0..200)
            .map(|i| Datum {
                name: "AnalysisConfidence",
                dimensions: vec![("Verdict".into(), format!("v{i}"))],
                unit: Unit::None,
                values: (0..150).map(|v| (v as f64, 1.0)).collect(),
            })
            .collect();
        let calls = requests(big);
        assert!(calls.len() > 1);
        for call in &calls {
            assert!(call.iter().map(Datum::estimated_bytes).sum::<usize>() <= MAX_REQUEST_BYTES);
        }
        assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 200);
    }

    #[test]
    fn dimension_names() {
        assert_eq!(dimension_name("verdict"), "Verdict");
        assert_eq!(dimension_name("analysis_method"), "AnalysisMethod");
    }
}
