//! The Lambda handler: a batch of `health_alert` records in, one decision
//! event out per alert.

use hemostat_protocol::{
    Envelope, EventKind, Publisher,
    batch::{self, BatchEvent, BatchResponse, RecordOutcome},
    envelope::agent,
    event::{FalseAlarm, HealthAlert, RemediationNeeded},
};

use crate::{Config, rules};

pub struct Analyzer<P> {
    config: Config,
    publisher: P,
}

impl<P: Publisher> Analyzer<P> {
    pub fn new(config: Config, publisher: P) -> Self {
        Analyzer { config, publisher }
    }

    pub async fn handle(&self, event: BatchEvent) -> BatchResponse {
        batch::process(event, |env| self.analyze(env)).await
    }

    async fn analyze(&self, env: Envelope) -> RecordOutcome {
        let alert: HealthAlert = match env.data_of(EventKind::HealthAlert) {
            Ok(a) => a,
            Err(e) => return RecordOutcome::Rejected(e.to_string()),
        };
        let (kind, decision) = self.decide(&alert);
        let out = match decision {
            Ok(needed) => Envelope::new(agent::ANALYZER, kind, &needed),
            Err(alarm) => Envelope::new(agent::ANALYZER, kind, &alarm),
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => return RecordOutcome::Rejected(e.to_string()),
        };
        match self.publisher.publish(&out).await {
            Ok(_) => {
                tracing::info!(container = %alert.container, host = %alert.host, decision = %kind, "analyzed");
                RecordOutcome::Done
            }
            Err(e) => RecordOutcome::Retry(e.to_string()),
        }
    }

    /// `Ok` to act, `Err` for a false alarm.
    fn decide(&self, alert: &HealthAlert) -> (EventKind, Result<RemediationNeeded, FalseAlarm>) {
        let verdict = rules::evaluate(alert);
        let method = Some("rule_based".to_owned());
        if verdict.action == hemostat_protocol::Action::None || verdict.confidence < self.config.confidence_threshold {
            let reason = if verdict.action == hemostat_protocol::Action::None {
                verdict.reason
            } else {
                format!(
                    "{} (confidence {:.2} below threshold {:.2})",
                    verdict.reason, verdict.confidence, self.config.confidence_threshold
                )
            };
            let alarm = FalseAlarm {
                container: alert.container.clone(),
                reason,
                host: alert.host.clone(),
                confidence: Some(verdict.confidence),
                analysis_method: method,
            };
            return (EventKind::FalseAlarm, Err(alarm));
        }
        let needed = RemediationNeeded {
            container: alert.container.clone(),
            action: verdict.action,
            reason: verdict.reason,
            confidence: verdict.confidence,
            metrics: Some(alert.metrics.clone()),
            host: alert.host.clone(),
            container_id: alert.container_id.clone(),
            analysis_method: method,
            detected_at: alert.detected_at.clone(),
            image: alert.image.clone(),
        };
        (EventKind::RemediationNeeded, Ok(needed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hemostat_protocol::{ProtocolError, batch::BatchRecord};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Envelope>>);

    impl Publisher for Recorder {
        async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
            self.0.lock().unwrap().push(env.clone());
            Ok("0-1".into())
        }
    }

    fn record(id: &str, body: String) -> BatchRecord {
        BatchRecord {
            message_id: id.into(),
            event_source_arn: EventKind::HealthAlert.stream(),
            event_source: batch::EVENT_SOURCE.into(),
            approximate_receive_count: 1,
            body,
        }
    }

    fn alert_json(anomaly: &str, exit: i64) -> String {
        format!(
            r#"{{"timestamp":"2026-01-01T00:00:00.000000","agent":"HemoStat-Monitor","type":"health_alert","data":{{"container":"web","host":"h1","issues":["x"],"metrics":{{"name":"web","status":"exited","memory_pct":0,"cpu_pct":0}},"anomalies":[{{"type":"{anomaly}","severity":"high","actual":{exit}}}],"exit_code":{exit}}}}}"#
        )
    }

    #[tokio::test]
    async fn crash_becomes_remediation_needed_and_spike_a_false_alarm() {
        let analyzer = Analyzer::new(Config::default(), Recorder::default());
        let event = BatchEvent {
            records: vec![
                record("1-0", alert_json("non_zero_exit", 1)),
                record("2-0", alert_json("high_cpu", 0)),
                record("3-0", "{broken".into()),
            ],
        };
        let response = analyzer.handle(event).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(response.rejected_items.len(), 1);
        let published = analyzer.publisher.0.lock().unwrap();
        assert_eq!(published.len(), 2);
        assert_eq!(published[0].kind, EventKind::RemediationNeeded);
        assert_eq!(published[0].agent, "HemoStat-Analyzer");
        let needed: RemediationNeeded = published[0].data_as().unwrap();
        assert_eq!((needed.action, needed.confidence, needed.host.as_str()), (hemostat_protocol::Action::Restart, 0.9, "h1"));
        assert_eq!(published[1].kind, EventKind::FalseAlarm);
    }

    #[tokio::test]
    async fn threshold_turns_low_confidence_into_false_alarm() {
        let analyzer = Analyzer::new(Config { confidence_threshold: 0.95 }, Recorder::default());
        analyzer.handle(BatchEvent { records: vec![record("1-0", alert_json("non_zero_exit", 1))] }).await;
        let published = analyzer.publisher.0.lock().unwrap();
        assert_eq!(published[0].kind, EventKind::FalseAlarm);
        let alarm: FalseAlarm = published[0].data_as().unwrap();
        assert!(alarm.reason.contains("below threshold"), "{}", alarm.reason);
    }
}
