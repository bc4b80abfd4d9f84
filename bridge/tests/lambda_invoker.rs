//! The SDK invoker against a local endpoint: requests are SigV4-signed with
//! the dummy local credentials (as AWS would require), use the Invoke API's
//! path and `RequestResponse`, and function errors are told apart from
//! results. (Against the real emulator it runs in every `bridge_*` test of
//! the e2e crate, where it is the bridge's default invoker.)

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue},
    response::IntoResponse,
    routing::post,
};
use hemostat_bridge::{Invocation, Invoker, LambdaInvoker};

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

async fn invoke(
    State(seen): State<Seen>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    seen.lock().unwrap().push((name.clone(), headers, body.clone()));
    let mut response = body.into_response();
    if name == "broken" {
        response.headers_mut().insert("X-Amz-Function-Error", HeaderValue::from_static("Unhandled"));
    }
    response
}

#[tokio::test]
async fn signs_requests_and_maps_function_errors() {
    let seen: Seen = Arc::default();
    let app = Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let invoker = LambdaInvoker::new(Some(&format!("http://{addr}")), std::time::Duration::from_secs(5)).await.unwrap();
    let ok = invoker.invoke("hemostat-analyzer", Bytes::from_static(br#"{"Records":[]}"#)).await.unwrap();
    assert!(matches!(&ok, Invocation::Ok(body) if body.as_ref() == br#"{"Records":[]}"#), "{ok:?}");
    let failed = invoker.invoke("broken", Bytes::from_static(br#"{"errorMessage":"boom"}"#)).await.unwrap();
    assert!(
        matches!(&failed, Invocation::FunctionError(e) if e.contains("Unhandled") && e.contains("boom")),
        "{failed:?}"
    );

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one request per invocation (no SDK retries of successes)");
    let (name, headers, _) = &seen[0];
    assert_eq!(name, "hemostat-analyzer");
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=hemostat-local/"), "SigV4-signed: {auth}");
    assert!(auth.contains("/us-east-1/lambda/aws4_request"), "{auth}");
    assert!(auth.contains("Signature="), "{auth}");
    assert!(headers.contains_key("x-amz-date"));
    assert_eq!(headers.get("x-amz-invocation-type").map(|v| v.as_bytes()), Some(&b"RequestResponse"[..]));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_an_error_not_a_result() {
    let port = hemostat_e2e::free_port();
    let invoker =
        LambdaInvoker::new(Some(&format!("http://127.0.0.1:{port}")), std::time::Duration::from_secs(2)).await.unwrap();
    let err = invoker.invoke("f", Bytes::from_static(b"{}")).await.unwrap_err();
    assert!(err.to_string().contains("invoking f"), "{err}");
}
