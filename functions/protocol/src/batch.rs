//! What the bridge hands a function, and what the function answers.
//!
//! An SQS event (`Records`, `messageId`, `eventSourceARN`, `body`, the
//! receive count in `attributes`; `aws_lambda_events`' types) with a
//! partial-batch answer (`batchItemFailures`), so one bad record does not
//! make its neighbours be delivered again, and so the same handler works
//! behind an SQS queue in the cloud if an operator prefers one.

use serde::{Deserialize, Serialize};

use crate::{envelope::Envelope, error::ProtocolError};

pub const EVENT_SOURCE: &str = "hemostat:redis-stream";

/// A batch: SQS's event (`Records`), the type Lambda's own SQS event source
/// delivers, so a record the bridge builds and one a real queue delivers are
/// read by the same code.
pub use aws_lambda_events::event::sqs::{SqsEvent as BatchEvent, SqsMessage as BatchRecord};

/// SQS's attribute for how many times a record has been delivered (1 on
/// first delivery), a decimal string.
pub const RECEIVE_COUNT: &str = "ApproximateReceiveCount";

/// A record as the bridge builds it: the stream entry id (e.g.
/// `1700000000000-0`) as the message id, the stream as the source ARN, the
/// envelope JSON verbatim as the body.
pub fn record(
    message_id: impl Into<String>,
    stream: impl Into<String>,
    body: impl Into<String>,
    delivery: u64,
) -> BatchRecord {
    let mut record = BatchRecord::default();
    record.message_id = Some(message_id.into());
    record.event_source_arn = Some(stream.into());
    record.event_source = Some(EVENT_SOURCE.into());
    record.body = Some(body.into());
    record.attributes.insert(RECEIVE_COUNT.into(), delivery.to_string());
    record
}

/// A batch of `records`.
pub fn event(records: Vec<BatchRecord>) -> BatchEvent {
    let mut event = BatchEvent::default();
    event.records = records;
    event
}

/// The record's id, what a partial-batch answer names it by ("" if absent).
pub fn message_id(record: &BatchRecord) -> &str {
    record.message_id.as_deref().unwrap_or_default()
}

/// The record's body ("" if absent: it then fails to parse as an envelope).
pub fn body(record: &BatchRecord) -> &str {
    record.body.as_deref().unwrap_or_default()
}

/// Where the record came from: the stream, or the queue's ARN.
pub fn source(record: &BatchRecord) -> &str {
    record.event_source_arn.as_deref().unwrap_or_default()
}

/// How many times the record has been delivered; 0 when it does not say.
pub fn receive_count(record: &BatchRecord) -> u64 {
    record.attributes.get(RECEIVE_COUNT).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The envelope the record carries.
pub fn envelope(record: &BatchRecord) -> Result<Envelope, ProtocolError> {
    Envelope::parse(body(record).as_bytes())
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
        let outcome = match envelope(&record) {
            Ok(env) => handle(env).await,
            Err(e) => RecordOutcome::Rejected(e.to_string()),
        };
        report(&mut response, &record, outcome);
    }
    response
}

/// Puts one record's outcome into the partial-batch answer, and logs it.
pub fn report(response: &mut BatchResponse, record: &BatchRecord, outcome: RecordOutcome) {
    match outcome {
        RecordOutcome::Done => {}
        RecordOutcome::Rejected(reason) => {
            tracing::warn!(message_id = %message_id(record), source = %source(record), %reason, "record rejected");
            response.rejected_items.push(RejectedItem { item_identifier: message_id(record).to_owned(), reason });
        }
        RecordOutcome::Retry(reason) => {
            tracing::warn!(message_id = %message_id(record), %reason, "record failed, asking for redelivery");
            response.fail(message_id(record));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: &str, body: &str) -> BatchRecord {
        record(id, "hemostat:stream:health_alert", body, 1)
    }

    #[tokio::test]
    async fn one_bad_record_does_not_fail_its_neighbours() {
        let good = r#"{"timestamp":"t","agent":"a","type":"false_alarm","data":{"container":"c","reason":"r"}}"#;
        let event = event(vec![at("1-0", good), at("2-0", "garbage"), at("3-0", good), at("4-0", good)]);
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

    /// A batch as Lambda's SQS event source delivers it (the shape of AWS's
    /// documented example, "Example Amazon SQS message event (standard
    /// queue)"), carrying one envelope and one record that is not one.
    #[tokio::test]
    async fn a_real_sqs_batch_is_read() {
        let envelope = r#"{"timestamp":"t","agent":"a","type":"false_alarm","data":{"container":"c","reason":"r"}}"#;
        let message = |id: &str, body: &str| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": "MessageReceiptHandle",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "2",
                    "SentTimestamp": "1523232000000",
                    "SenderId": "123456789012",
                    "ApproximateFirstReceiveTimestamp": "1523232000001"
                },
                "messageAttributes": {},
                "md5OfBody": "7b270e59b47ff90a553787216d55d91d",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:MyQueue",
                "awsRegion": "us-east-1"
            })
        };
        let wire = serde_json::json!({"Records": [message("059f36b4-87a3-44ab-83d2-661975830a7d", envelope),
                                                   message("2e1424d4-f796-459a-8184-9c92662be6da", "not an envelope")]});
        let batch: BatchEvent = serde_json::from_value(wire).expect("an SQS event decodes");
        assert_eq!(receive_count(&batch.records[0]), 2);
        assert_eq!(source(&batch.records[0]), "arn:aws:sqs:us-east-1:123456789012:MyQueue");
        let mut kinds = Vec::new();
        let response = process(batch, |env| {
            kinds.push(env.kind);
            async { RecordOutcome::Done }
        })
        .await;
        assert_eq!(kinds.len(), 1, "the envelope was handled");
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(response.rejected_items.len(), 1);
        assert_eq!(response.rejected_items[0].item_identifier, "2e1424d4-f796-459a-8184-9c92662be6da");
    }

    /// What the bridge sends is spelt as SQS spells it.
    #[test]
    fn the_bridge_s_record_is_spelt_as_sqs() {
        let wire = serde_json::to_value(event(vec![at("1-0", "{}")])).unwrap();
        let first = &wire["Records"][0];
        assert_eq!(first["messageId"], "1-0");
        assert_eq!(first["eventSourceARN"], "hemostat:stream:health_alert");
        assert_eq!(first["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(first["body"], "{}");
    }
}
