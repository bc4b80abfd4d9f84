//! What the bridge hands a function, and what the function answers.
//!
//! Shaped like an SQS event source (`Records`, `messageId`, `body`) with a
//! partial-batch answer (`batchItemFailures`), so one bad record does not
//! make its neighbours be delivered again, and so the same handler works
//! behind an SQS queue in the cloud if an operator prefers one.

use serde::{Deserialize, Serialize};

use crate::{envelope::Envelope, error::ProtocolError};

pub const EVENT_SOURCE: &str = "hemostat:redis-stream";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEvent {
    #[serde(rename = "Records")]
    pub records: Vec<BatchRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRecord {
    /// The stream entry id, e.g. `1700000000000-0`.
    pub message_id: String,
    /// The stream the record came from.
    pub event_source_arn: String,
    pub event_source: String,
    /// How many times this record has been delivered (1 on first delivery).
    #[serde(default)]
    pub approximate_receive_count: u64,
    /// The envelope JSON, verbatim.
    pub body: String,
}

impl BatchRecord {
    pub fn envelope(&self) -> Result<Envelope, ProtocolError> {
        Envelope::parse(self.body.as_bytes())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// Records to deliver again (Lambda's partial-batch response).
    pub batch_item_failures: Vec<ItemFailure>,
    /// HemoStat's extension: records that can never succeed (malformed).
    /// The bridge dead-letters them at once, with the reason, instead of
    /// retrying them; AWS event source mappings ignore the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_items: Vec<RejectedItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedItem {
    pub item_identifier: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub item_identifier: String,
}

impl BatchResponse {
    pub fn fail(&mut self, message_id: &str) {
        self.batch_item_failures.push(ItemFailure { item_identifier: message_id.to_owned() });
    }
}

/// Whether a record that failed should be retried (the bridge will deliver
/// it again, then dead-letter it) or is hopeless and only worth logging.
#[derive(Debug)]
pub enum RecordOutcome {
    Done,
    /// Malformed input: retrying cannot help; reported for dead-lettering.
    Rejected(String),
    /// A dependency failed: report it so the bridge retries the record.
    Retry(String),
}

/// Runs `handle` on every record and builds the partial-batch answer:
/// malformed records are reported as rejected (dead-lettered by the bridge),
/// transient failures as failures (delivered again).
pub async fn process<F, Fut>(event: BatchEvent, mut handle: F) -> BatchResponse
where
    F: FnMut(Envelope) -> Fut,
    Fut: std::future::Future<Output = RecordOutcome>,
{
    let mut response = BatchResponse::default();
    for record in event.records {
        let outcome = match record.envelope() {
            Ok(env) => handle(env).await,
            Err(e) => RecordOutcome::Rejected(e.to_string()),
        };
        match outcome {
            RecordOutcome::Done => {}
            RecordOutcome::Rejected(reason) => {
                tracing::warn!(message_id = %record.message_id, source = %record.event_source_arn, %reason, "record rejected");
                response.rejected_items.push(RejectedItem { item_identifier: record.message_id, reason });
            }
            RecordOutcome::Retry(reason) => {
                tracing::warn!(message_id = %record.message_id, %reason, "record failed, asking for redelivery");
                response.fail(&record.message_id);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, body: &str) -> BatchRecord {
        BatchRecord {
            message_id: id.into(),
            event_source_arn: "hemostat:stream:health_alert".into(),
            event_source: EVENT_SOURCE.into(),
            approximate_receive_count: 1,
            body: body.into(),
        }
    }

    #[tokio::test]
    async fn one_bad_record_does_not_fail_its_neighbours() {
        let good = r#"{"timestamp":"t","agent":"a","type":"false_alarm","data":{"container":"c","reason":"r"}}"#;
        let event = BatchEvent {
            records: vec![record("1-0", good), record("2-0", "garbage"), record("3-0", good), record("4-0", good)],
        };
        let mut seen = 0;
        let response = process(event, |_env| {
            seen += 1;
            let outcome = if seen == 3 { RecordOutcome::Retry("redis down".into()) } else { RecordOutcome::Done };
            async move { outcome }
        })
        .await;
        assert_eq!(response.batch_item_failures, vec![ItemFailure { item_identifier: "4-0".into() }]);
        assert_eq!(response.rejected_items.len(), 1);
        assert_eq!(response.rejected_items[0].item_identifier, "2-0");
        assert!(response.rejected_items[0].reason.contains("malformed"));
        let wire = serde_json::to_value(&response).unwrap();
        assert!(wire.get("batchItemFailures").is_some());
    }
}
