//! A Lambda function for the bridge's fault tests and benchmark.
//!
//! Takes the bridge's `{"Records": [...]}` batch. Each record's envelope
//! `data` may say what to do with it, in `mode`:
//! - absent or `"ok"`: handled;
//! - `"fail_item"`: reported in `batchItemFailures` (retried by the bridge);
//! - `"reject"`: reported in `rejectedItems` (dead-lettered at once);
//! - `"error"`: the whole invocation returns an error;
//! - `"panic"`: the handler panics;
//! - `"sleep"`: sleeps `data.sleep_ms` first (past the timeout: timed out).
//!
//! When `BRIDGE_TEST_REDIS_URL` is set, every handled record is counted in
//! the hash `BRIDGE_TEST_KEY` (default `bridge-test:seen`), field `data.id`
//! (or the stream id), so a test can check none was lost and count
//! duplicates. Without it the function does nothing: a no-op for benchmarks.

use std::time::Duration;

use hemostat_protocol::connection::Connection;
use hemostat_protocol::{
    batch::{self, BatchEvent, BatchResponse, RejectedItem},
    connection,
};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

struct Recorder {
    conn: Connection,
    key: String,
}

async fn handler(recorder: Option<&Recorder>, event: LambdaEvent<BatchEvent>) -> Result<BatchResponse, Diagnostic> {
    let event = event.payload;
    let mut response = BatchResponse::default();
    let mut handled = Vec::new();
    for record in &event.records {
        let data = batch::envelope(record).map(|e| e.data).unwrap_or(Value::Null);
        let mode = data.get("mode").and_then(Value::as_str).unwrap_or("ok");
        match mode {
            "fail_item" => response.fail(batch::message_id(record)),
            "reject" => response.rejected_items.push(RejectedItem {
                item_identifier: batch::message_id(record).to_owned(),
                reason: "asked to reject".into(),
            }),
            "error" => {
                return Err(Diagnostic { error_type: "TestFailure".into(), error_message: "asked to fail".into() });
            }
            "panic" => panic!("bridge-test-function was asked to panic"),
            "sleep" => {
                let ms = data.get("sleep_ms").and_then(Value::as_u64).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                handled.push(id_of(&data, batch::message_id(record)));
            }
            _ => handled.push(id_of(&data, batch::message_id(record))),
        }
    }
    if let (Some(recorder), false) = (recorder, handled.is_empty()) {
        let mut pipe = redis::pipe();
        for id in &handled {
            pipe.cmd("HINCRBY").arg(&recorder.key).arg(id).arg(1).ignore();
        }
        // A lost count would look like a lost event: fail so the bridge retries.
        pipe.query_async::<()>(&mut recorder.conn.clone())
            .await
            .map_err(|e| Diagnostic { error_type: "RecordFailed".into(), error_message: e.to_string() })?;
    }
    Ok(response)
}

fn id_of(data: &Value, message_id: &str) -> String {
    data.get("id").and_then(Value::as_str).unwrap_or(message_id).to_owned()
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let recorder = match std::env::var("BRIDGE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(Recorder {
            conn: connection::connect(&url).await?,
            key: std::env::var("BRIDGE_TEST_KEY").unwrap_or_else(|_| "bridge-test:seen".into()),
        }),
        _ => None,
    };
    let recorder = &recorder;
    lambda_runtime::run(service_fn(move |event| handler(recorder.as_ref(), event))).await
}
