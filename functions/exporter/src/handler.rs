//! The Lambda handler: one entry point for the three invocation shapes.

use hemostat_protocol::{
    Publisher,
    batch::{self, BatchEvent, BatchResponse, RecordOutcome},
    invocation::{Invocation, ScheduledEvent, classify},
    keys as protocol_keys,
};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde::Serialize;
use serde_json::Value;

use crate::{
    cloudwatch::{self, Datum, MetricSink},
    collectors::{self, CollectorStatus},
    config::Config,
    deadman::{self, DeadMan},
    error::ExporterError,
    events, exposition,
    http::{self, Route},
    metrics::{self, Fact, Unit},
    store::{RecordCounts, RedisStore},
};

pub struct Exporter<P, S> {
    config: Config,
    store: RedisStore,
    publisher: P,
    sink: S,
    deadman: Option<DeadMan>,
}

/// What a scheduled run did (the invocation's answer, and a log line).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScheduleSummary {
    pub collectors: usize,
    pub collectors_up: usize,
    pub collectors_missing: usize,
    pub cloudwatch_calls: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudwatch_error: Option<String>,
    /// The dead-man's switch: `pinged`, `not pinged: <why unhealthy>`, or
    /// `ping failed: <why>`; absent when no URL is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadman: Option<String>,
}

impl<P: Publisher, S: MetricSink> Exporter<P, S> {
    /// Fails only when the dead-man's switch's HTTP client cannot be built.
    pub fn new(config: Config, store: RedisStore, publisher: P, sink: S) -> Result<Self, ExporterError> {
        let deadman = DeadMan::of(&config)?;
        Ok(Exporter { config, store, publisher, sink, deadman })
    }

    /// Dispatches on the payload's shape. Only a payload of no known shape,
    /// or a scheduled run that cannot reach Redis, fails the invocation:
    /// batches report per record, HTTP answers with a status.
    pub async fn handle(&self, payload: Value) -> Result<Value, ExporterError> {
        let invocation = classify(payload)?;
        tracing::debug!(kind = invocation.kind(), "invocation");
        match invocation {
            Invocation::Batch(batch) => {
                Ok(serde_json::to_value(self.batch(batch).await).map_err(hemostat_protocol::ProtocolError::from)?)
            }
            Invocation::Http(request) => Ok(self.http(&request).await),
            Invocation::Schedule(event) => {
                let summary = self.schedule(&event).await?;
                Ok(serde_json::to_value(summary).map_err(hemostat_protocol::ProtocolError::from)?)
            }
        }
    }

    /// Counts a batch: malformed records are rejected (dead-lettered),
    /// redelivered ones skipped, and if Redis fails every well-formed record
    /// is handed back for redelivery (nothing was counted: one script).
    pub async fn batch(&self, event: BatchEvent) -> BatchResponse {
        let mut response = BatchResponse::default();
        let mut records = Vec::with_capacity(event.records.len());
        let mut record_facts = Vec::with_capacity(event.records.len());
        for record in event.records {
            let facts = batch::envelope(&record).and_then(|env| events::facts(&env));
            match facts {
                Ok(facts) => {
                    let source = match batch::source(&record) {
                        "" => record.event_source.clone().unwrap_or_default(),
                        arn => arn.to_owned(),
                    };
                    records.push(RecordCounts {
                        source,
                        message_id: batch::message_id(&record).to_owned(),
                        updates: facts.iter().flat_map(Fact::updates).collect(),
                    });
                    record_facts.push(facts);
                }
                Err(e) => batch::report(&mut response, &record, RecordOutcome::Rejected(e.to_string())),
            }
        }
        let counted = match self.store.count(&records).await {
            Ok(flags) => flags,
            Err(e) => {
                tracing::warn!(error = %e, records = records.len(), "counting failed; asking for redelivery");
                for r in &records {
                    response.fail(&r.message_id);
                }
                return response;
            }
        };
        let duplicates = counted.iter().filter(|c| !**c).count();
        if duplicates > 0 {
            tracing::info!(duplicates, "redelivered records were already counted; skipped");
        }
        let new_facts: Vec<&Fact> =
            record_facts.iter().zip(&counted).filter(|(_, c)| **c).flat_map(|(f, _)| f.iter()).collect();
        if !new_facts.is_empty() {
            self.send(cloudwatch::from_facts(new_facts)).await;
        }
        response
    }

    /// The function URL.
    pub async fn http(&self, request: &ApiGatewayV2httpRequest) -> Value {
        match http::route(request, self.config.bearer_token.as_ref()) {
            Route::Metrics { head } => match self.scrape().await {
                Ok(text) => http::response(200, exposition::CONTENT_TYPE, if head { "" } else { &text }),
                Err(e) => {
                    tracing::warn!(error = %e, "scrape failed");
                    http::text(503, &format!("metrics unavailable: {e}\n"))
                }
            },
            Route::Index => http::text(200, "HemoStat exporter: Prometheus metrics at /metrics\n"),
            Route::NotFound => http::text(404, "not found: metrics are at /metrics\n"),
            Route::MethodNotAllowed => http::text(405, "method not allowed\n"),
            Route::Unauthorized => http::text(401, "unauthorized\n"),
        }
    }

    /// The Prometheus text: stored counters, gauges read now, and the
    /// collector check (which may publish a transition).
    pub async fn scrape(&self) -> Result<String, ExporterError> {
        let collectors = collectors::check(&self.store, &self.publisher, now_ms()).await?;
        let snapshot = self.store.snapshot(self.config.container_metrics, self.config.max_containers).await?;
        Ok(exposition::render(&snapshot, &collectors, self.config.container_metrics))
    }

    /// The schedule: the collector check, then the gauges to CloudWatch.
    pub async fn schedule(&self, event: &ScheduledEvent) -> Result<ScheduleSummary, ExporterError> {
        let statuses = collectors::check(&self.store, &self.publisher, now_ms()).await?;
        let up = statuses.iter().filter(|s| s.up).count();
        let mut summary = ScheduleSummary {
            collectors: statuses.len(),
            collectors_up: up,
            collectors_missing: statuses.len() - up,
            ..ScheduleSummary::default()
        };
        if self.sink.enabled() {
            let snapshot = self.store.snapshot(false, 0).await?;
            let data = gauges(&statuses, &snapshot);
            match self.sink.put(data).await {
                Ok(calls) => summary.cloudwatch_calls = calls,
                Err(e) => {
                    self.cloudwatch_failed(&e).await;
                    summary.cloudwatch_error = Some(e.to_string());
                }
            }
        }
        if let Some(deadman) = &self.deadman {
            let bridges = self.store.bridges().await?;
            summary.deadman = Some(match deadman::unhealthy(&statuses, &bridges) {
                Some(why) => {
                    tracing::warn!(%why, "HemoStat unhealthy: the dead-man's switch is not pinged");
                    format!("not pinged: {why}")
                }
                None => match deadman.ping(serde_json::to_string(&summary).unwrap_or_default()).await {
                    Ok(()) => "pinged".into(),
                    Err(e) => {
                        tracing::warn!(error = %e, "the dead-man's switch ping failed");
                        format!("ping failed: {e}")
                    }
                },
            });
        }
        tracing::info!(rule = ?event.resources.first(), fired_at = %event.time, ?summary, "scheduled run");
        Ok(summary)
    }

    async fn send(&self, data: Vec<Datum>) {
        if data.is_empty() {
            return;
        }
        if let Err(e) = self.sink.put(data).await {
            self.cloudwatch_failed(&e).await;
        }
    }

    async fn cloudwatch_failed(&self, e: &ExporterError) {
        tracing::warn!(error = %e, "writing the CloudWatch documents failed; these data points are lost");
        if let Err(e) = self.store.incr(&metrics::CLOUDWATCH_FAILURES, 1).await {
            tracing::warn!(error = %e, "could not count the CloudWatch failure");
        }
    }
}

/// The schedule's CloudWatch gauges.
pub fn gauges(statuses: &[CollectorStatus], snapshot: &crate::store::Snapshot) -> Vec<Datum> {
    let mut out: Vec<Datum> = statuses
        .iter()
        .map(|s| {
            Datum::gauge("CollectorUp", vec![("Host".into(), s.host.clone())], Unit::None, if s.up { 1.0 } else { 0.0 })
        })
        .collect();
    let missing = statuses.iter().filter(|s| !s.up).count();
    out.push(Datum::gauge("CollectorsMissing", vec![], Unit::Count, missing as f64));
    out.push(Datum::gauge("ContainersMonitored", vec![], Unit::Count, snapshot.containers_total as f64));
    if let Some(ratio) = exposition::false_alarm_ratio(&snapshot.stored) {
        out.push(Datum::gauge("FalseAlarmRatio", vec![], Unit::None, ratio));
    }
    if let Some((_, n)) = snapshot.streams.iter().find(|(s, _)| s == protocol_keys::DEAD_LETTER_STREAM) {
        out.push(Datum::gauge("DeadLetters", vec![], Unit::Count, *n as f64));
    }
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}
