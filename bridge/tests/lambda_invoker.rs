//! The SDK invoker against a local endpoint: requests are SigV4-signed with
//! the dummy local credentials (as AWS would require), use the Invoke API's
//! path and `RequestResponse`, and function errors are told apart from
//! results. Both invokers against the emulator (in-process): with its token
//! they get through, without it or with another they are refused. (The
//! bridge's default invoker also runs against the real emulator in every
//! `bridge_*` test of the e2e crate.)

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue},
    response::IntoResponse,
    routing::post,
};
use hemostat_bridge::{HttpInvoker, Invocation, Invoker, LambdaInvoker};
use hemostat_local::{Config, Emulator, Token};
use hemostat_protocol::secret::Secret;

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

    let invoker =
        LambdaInvoker::new(Some(&format!("http://{addr}")), std::time::Duration::from_secs(5), None).await.unwrap();
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
        LambdaInvoker::new(Some(&format!("http://127.0.0.1:{port}")), std::time::Duration::from_secs(2), None)
            .await
            .unwrap();
    let err = invoker.invoke("f", Bytes::from_static(b"{}")).await.unwrap_err();
    assert!(err.to_string().contains("invoking f"), "{err}");
}

/// The emulator with `bridge-test-function` (a no-op without Redis) as
/// `echo`, requiring `token`; its Invoke API endpoint.
async fn emulator(token: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_bridge-test-function"));
    let dir = std::env::temp_dir().join(format!("hemostat-bridge-invoker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let template = dir.join("template.yaml");
    std::fs::write(
        &template,
        "Resources:\n  Echo:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        \
         Binary: bridge-test-function\n    Properties:\n      FunctionName: echo\n",
    )
    .unwrap();
    let mut config = Config::new(&template, bin.parent().unwrap());
    config.listen = ([127, 0, 0, 1], 0).into();
    config.host_env = [("PATH".to_owned(), std::env::var("PATH").unwrap_or_default())].into();
    config.token = Token::new(token);
    let emulator = Emulator::start(config).await.expect("the emulator starts");
    let endpoint = format!("http://{}", emulator.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(emulator.serve(async move {
        let _ = stopped.await;
    }));
    (endpoint, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_invokers_authenticate_with_the_emulators_token() {
    let (endpoint, _stop) = emulator("bridge-test-token").await;
    let timeout = std::time::Duration::from_secs(10);
    let batch = Bytes::from_static(br#"{"Records":[]}"#);
    let right = Secret::new("bridge-test-token");
    let wrong = Secret::new("another-token");

    let sdk = LambdaInvoker::new(Some(&endpoint), timeout, Some(&right)).await.unwrap();
    let ok = sdk.invoke("echo", batch.clone()).await.unwrap();
    assert!(matches!(ok, Invocation::Ok(_)), "{ok:?}");
    let http = HttpInvoker::new(&endpoint, timeout, Some(&right)).unwrap();
    let ok = http.invoke("echo", batch.clone()).await.unwrap();
    assert!(matches!(ok, Invocation::Ok(_)), "{ok:?}");

    for token in [None, Some(&wrong)] {
        let sdk = LambdaInvoker::new(Some(&endpoint), timeout, token).await.unwrap();
        let err = sdk.invoke("echo", batch.clone()).await.unwrap_err().to_string();
        assert!(err.contains("MissingAuthenticationToken") || err.contains("UnrecognizedClient"), "{err}");
        let http = HttpInvoker::new(&endpoint, timeout, token).unwrap();
        let err = http.invoke("echo", batch.clone()).await.unwrap_err().to_string();
        assert!(err.contains("401") || err.contains("403"), "{err}");
        assert!(!err.contains("bridge-test-token"), "the token is never shown: {err}");
    }
}
