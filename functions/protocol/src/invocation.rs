//! What a function binary is invoked with, told apart by its shape (one
//! binary may take several: the exporter takes all three, the responder
//! batches and its schedule):
//!
//! - a bridge batch: `{"Records": [...]}` (the SQS-like batch);
//! - an HTTP request through the function URL: API Gateway v2 (payload
//!   format 2.0), `{"version": "2.0", "rawPath": ..., "requestContext":
//!   {"http": {"method": ...}}, ...}`;
//! - the EventBridge schedule: `{"source": "aws.events", "detail-type":
//!   "Scheduled Event", ...}`.
//!
//! Decoding to a `serde_json::Value` first and looking at the keys gives a
//! clear error for anything else, where an untagged enum would only say
//! that no variant matched.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde::Deserialize;
use serde_json::Value;

use crate::{batch::BatchEvent, error::ProtocolError};

/// The fields of an EventBridge scheduled event a function uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScheduledEvent {
    #[serde(default)]
    pub id: String,
    /// When EventBridge fired (RFC 3339).
    #[serde(default)]
    pub time: String,
    /// The rule's ARN.
    #[serde(default)]
    pub resources: Vec<String>,
}

#[derive(Debug)]
pub enum Invocation {
    Batch(BatchEvent),
    Http(Box<ApiGatewayV2httpRequest>),
    Schedule(ScheduledEvent),
}

impl Invocation {
    pub fn kind(&self) -> &'static str {
        match self {
            Invocation::Batch(_) => "batch",
            Invocation::Http(_) => "http",
            Invocation::Schedule(_) => "schedule",
        }
    }
}

/// Which of the three shapes `payload` is, decoded.
pub fn classify(payload: Value) -> Result<Invocation, ProtocolError> {
    let Some(obj) = payload.as_object() else {
        return Err(ProtocolError::UnsupportedInvocation("the payload is not a JSON object".into()));
    };
    if obj.contains_key("Records") {
        return serde_json::from_value(payload)
            .map(Invocation::Batch)
            .map_err(|e| ProtocolError::UnsupportedInvocation(format!("a Records batch that does not decode: {e}")));
    }
    if obj.get("requestContext").and_then(|c| c.get("http")).is_some() {
        return serde_json::from_value(payload).map(|r| Invocation::Http(Box::new(r))).map_err(|e| {
            ProtocolError::UnsupportedInvocation(format!("an API Gateway v2 request that does not decode: {e}"))
        });
    }
    let source = obj.get("source").and_then(Value::as_str);
    let detail_type = obj.get("detail-type").and_then(Value::as_str);
    if source == Some("aws.events") && detail_type == Some("Scheduled Event") {
        return serde_json::from_value(payload)
            .map(Invocation::Schedule)
            .map_err(|e| ProtocolError::UnsupportedInvocation(format!("a scheduled event that does not decode: {e}")));
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(8).collect();
    keys.sort_unstable();
    Err(ProtocolError::UnsupportedInvocation(format!(
        "expected a Records batch, an API Gateway v2 request or an EventBridge Scheduled Event; got an object with keys {keys:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// EventBridge's documented scheduled event.
    pub const SCHEDULED: &str = r#"{
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2015-10-08T16:53:06Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"], "detail": {}
    }"#;

    /// A function URL request as AWS documents it (payload format 2.0).
    pub const HTTP: &str = r#"{
        "version": "2.0", "routeKey": "$default", "rawPath": "/metrics", "rawQueryString": "",
        "headers": {"accept": "text/plain", "host": "abc.lambda-url.us-east-1.on.aws", "user-agent": "Prometheus/2.42.0"},
        "requestContext": {"accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc", "http": {"method": "GET", "path": "/metrics", "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "Prometheus/2.42.0"}, "requestId": "id", "routeKey": "$default",
            "stage": "$default", "time": "08/Oct/2015:16:53:06 +0000", "timeEpoch": 1444323186000},
        "isBase64Encoded": false
    }"#;

    #[test]
    fn the_three_shapes() {
        let batch = json!({"Records": [{"messageId": "1-0", "eventSourceARN": "hemostat:stream:health_alert",
            "eventSource": "hemostat:redis-stream", "attributes": {"ApproximateReceiveCount": "1"}, "body": "{}"}]});
        match classify(batch).unwrap() {
            Invocation::Batch(b) => assert_eq!(b.records[0].message_id.as_deref(), Some("1-0")),
            other => panic!("{other:?}"),
        }
        match classify(serde_json::from_str(HTTP).unwrap()).unwrap() {
            Invocation::Http(r) => {
                assert_eq!(r.raw_path.as_deref(), Some("/metrics"));
                assert_eq!(r.request_context.http.method.as_str(), "GET");
                assert_eq!(r.headers.get("user-agent").unwrap(), "Prometheus/2.42.0");
            }
            other => panic!("{other:?}"),
        }
        match classify(serde_json::from_str(SCHEDULED).unwrap()).unwrap() {
            Invocation::Schedule(s) => assert_eq!(s.time, "2015-10-08T16:53:06Z"),
            other => panic!("{other:?}"),
        }
        // An empty batch is still a batch.
        assert_eq!(classify(json!({"Records": []})).unwrap().kind(), "batch");
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        for (payload, says) in [
            (json!([1, 2]), "not a JSON object"),
            (json!({"hello": "world"}), "\"hello\""),
            (
                json!({"source": "aws.events", "detail-type": "EC2 Instance State-change Notification"}),
                "Scheduled Event",
            ),
            (json!({"Records": "nope"}), "Records batch that does not decode"),
            (json!({"requestContext": {"http": {"method": 5}}}), "API Gateway v2"),
        ] {
            let err = classify(payload).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
