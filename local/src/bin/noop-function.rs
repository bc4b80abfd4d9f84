//! A do-nothing Lambda function for the emulator's tests and benchmarks.
//!
//! Echoes its JSON payload. Special keys change the behaviour:
//! `{"sleep_ms": N}` sleeps first, `{"fail": "msg"}` returns an error,
//! `{"panic": true}` panics, `{"exit": true}` exits the process with status 3,
//! `{"context": true}` returns the invocation context instead, and
//! `{"env": ["NAME", ..]}` returns those environment variables instead,
//! `{"pid": true}` returns the process id instead, and `{"write_file": "path"}`
//! writes the payload to that file (so asynchronous invocations can be observed).
//! With `NOOP_RECORD_FILE` set, every event is also appended to that file as
//! one JSON line (the scheduled-event tests read what was delivered).

use std::{io::Write, path::PathBuf, sync::OnceLock, time::Duration};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Read once at startup, so the benchmark's handler does no more than before.
static RECORD_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

fn record(payload: &Value) -> Result<(), Diagnostic> {
    let Some(Some(path)) = RECORD_FILE.get() else {
        return Ok(());
    };
    let failed = |e: std::io::Error| Diagnostic { error_type: "NoopRecordFailed".into(), error_message: e.to_string() };
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(failed)?;
    // One write per line, so concurrent instances' lines do not interleave.
    file.write_all(format!("{payload}\n").as_bytes()).map_err(failed)
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    record(&payload)?;
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(Diagnostic { error_type: "NoopFailure".into(), error_message: message.into() });
    }
    if payload.get("panic") == Some(&Value::Bool(true)) {
        panic!("noop-function was asked to panic");
    }
    if payload.get("exit") == Some(&Value::Bool(true)) {
        std::process::exit(3);
    }
    if let Some(path) = payload.get("write_file").and_then(Value::as_str) {
        std::fs::write(path, payload.to_string())
            .map_err(|e| Diagnostic { error_type: "NoopWriteFailed".into(), error_message: e.to_string() })?;
    }
    if payload.get("pid") == Some(&Value::Bool(true)) {
        return Ok(json!({ "pid": std::process::id() }));
    }
    if payload.get("context") == Some(&Value::Bool(true)) {
        return Ok(json!({
            "request_id": context.request_id,
            "deadline_ms": context.deadline,
            "invoked_function_arn": context.invoked_function_arn,
            "xray_trace_id": context.xray_trace_id,
            "function_name": context.env_config.function_name,
            "memory": context.env_config.memory,
            "version": context.env_config.version,
            "log_stream": context.env_config.log_stream,
            "log_group": context.env_config.log_group,
            "client_context": context.client_context,
            "identity": context.identity,
        }));
    }
    if let Some(names) = payload.get("env").and_then(Value::as_array) {
        let vars: serde_json::Map<String, Value> = names
            .iter()
            .filter_map(Value::as_str)
            .map(|name| (name.to_owned(), std::env::var(name).map_or(Value::Null, Value::String)))
            .collect();
        return Ok(Value::Object(vars));
    }
    Ok(payload)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    RECORD_FILE.get_or_init(|| std::env::var_os("NOOP_RECORD_FILE").map(PathBuf::from));
    lambda_runtime::run(service_fn(handler)).await
}
