//! Who may call the emulator: the Invoke API needs the token (bearer or
//! SigV4), nothing a browser sends is accepted by the Invoke and Runtime
//! APIs, the Runtime API needs its per-start secret, and function URLs
//! honour `AuthType` and refuse names that only resolve here.

mod common;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use common::{BEARER, TOKEN, TestEmulator, config, temp_dir};

const TEMPLATE: &str = r#"
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: noop-function
    Properties:
      FunctionName: echo
      Timeout: 3
  OpenFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: noop-function
    Properties:
      FunctionName: open
      FunctionUrlConfig:
        AuthType: NONE
  IamFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: noop-function
    Properties:
      FunctionName: iam
      FunctionUrlConfig:
        AuthType: AWS_IAM
"#;

const INVOKE: &str = "/2015-03-31/functions/echo/invocations";

async fn start() -> TestEmulator {
    TestEmulator::with_config(config(TEMPLATE, 2)).await
}

/// The headers an AWS SDK sends for `POST path` with `body`, signed with
/// `secret` as the secret access key at `at`.
fn signed(host: &str, path: &str, body: &str, secret: &str, at: SystemTime) -> Vec<(String, String)> {
    let base = [("host", host), ("content-type", "application/json"), ("x-amz-invocation-type", "RequestResponse")];
    let request = SignableRequest::new("POST", path, base.iter().copied(), SignableBody::Bytes(body.as_bytes()))
        .expect("signable");
    let identity = Credentials::new("AKIDEXAMPLE", secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("lambda")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let (instructions, _) = sign(request, &params).expect("signed").into_parts();
    let mut headers: Vec<(String, String)> =
        base.iter().filter(|(k, _)| *k != "host").map(|(k, v)| (k.to_string(), v.to_string())).collect();
    headers.extend(instructions.headers().map(|(k, v)| (k.to_owned(), v.to_owned())));
    headers
}

fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoke_api_needs_the_token() {
    let emulator = start().await;
    let reply = emulator.request("POST", INVOKE, &[], r#"{"n":1}"#).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("x-amzn-ErrorType"), Some("MissingAuthenticationTokenException"));
    assert!(reply.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer")));
    assert!(reply.json()["message"].as_str().unwrap().contains("HEMOSTAT_LAMBDA_TOKEN"));

    for wrong in ["Bearer nope", "Bearer local-test-toke", "Basic bG9jYWw6dGVzdA==", "local-test-token"] {
        let reply = emulator.request("POST", INVOKE, &[("Authorization", wrong)], "{}").await;
        assert_eq!(reply.status, 403, "{wrong}");
        assert_eq!(reply.header("x-amzn-ErrorType"), Some("UnrecognizedClientException"), "{wrong}");
        assert!(!String::from_utf8_lossy(&reply.body).contains(TOKEN), "the answer never shows the token");
        // The lines `scripts/security-figures.sh` counts.
        println!("attack refused: control plane: invoke with a wrong token");
    }
    // An unknown function tells nothing to a caller without the token.
    let reply = emulator.request("POST", "/2015-03-31/functions/nope/invocations", &[], "{}").await;
    assert_eq!(reply.status, 401);

    let reply = emulator.request("POST", INVOKE, &[BEARER], r#"{"n":1}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"n": 1}));
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigv4_signature_made_with_the_token_is_the_token() {
    let emulator = start().await;
    let host = emulator.addr.to_string();
    let now = SystemTime::now();
    // The path as SDKs send an ARN: percent-encoded (signed encoded twice).
    let arn_path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho/invocations";
    let body = r#"{"signed":true}"#;
    let headers = signed(&host, arn_path, body, TOKEN, now);
    let reply = emulator.request("POST", arn_path, &refs(&headers), body).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json(), serde_json::json!({"signed": true}));

    let reply = emulator.request("POST", arn_path, &refs(&headers), r#"{"signed":false}"#).await;
    assert_eq!(reply.status, 403, "another body under the same signature");
    let other = signed(&host, arn_path, body, "not-the-token", now);
    let reply = emulator.request("POST", arn_path, &refs(&other), body).await;
    assert_eq!(reply.status, 403, "signed with another secret");
    assert!(reply.json()["message"].as_str().unwrap().contains("signature does not match"));
    let stale = signed(&host, arn_path, body, TOKEN, now - Duration::from_secs(600));
    let reply = emulator.request("POST", arn_path, &refs(&stale), body).await;
    assert_eq!(reply.status, 403, "a signature from 10 minutes ago");
    for what in ["another body", "another secret", "a stale time"] {
        println!("attack refused: control plane: SigV4 signature with {what}");
    }
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_and_foreign_host_names_are_refused_even_with_the_token() {
    let emulator = start().await;
    let marker = temp_dir().join("invoked");
    let payload = serde_json::json!({ "write_file": marker }).to_string();
    let port = emulator.addr.port();
    let evil_host = format!("evil.example:{port}");
    let localhost = format!("localhost:{port}");
    let refused: [&[(&str, &str)]; 5] = [
        &[BEARER, ("Origin", "http://evil.example")],
        // What a page's fetch(url, {method: "POST", mode: "no-cors", body}) sends.
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("Sec-Fetch-Mode", "no-cors"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        &[BEARER, ("Sec-Fetch-Site", "cross-site")],
        &[BEARER, ("Sec-Fetch-Site", "same-site")],
        // DNS rebinding: a name that resolves to 127.0.0.1.
        &[BEARER, ("Host", &evil_host)],
    ];
    for headers in refused {
        let reply = emulator.request("POST", INVOKE, headers, payload.clone()).await;
        assert_eq!(reply.status, 403, "{headers:?}");
        assert_eq!(reply.header("x-amzn-ErrorType"), Some("AccessDeniedException"), "{headers:?}");
        println!("attack refused: control plane: a browser's or a rebound name's request");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "a refused request never reaches the function");

    // The same with the loopback name and the token is a caller.
    let reply = emulator.request("POST", INVOKE, &[BEARER, ("Host", &localhost)], payload).await;
    assert_eq!(reply.status, 200);
    assert!(marker.exists());
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_api_needs_its_secret_and_no_browser() {
    let emulator = start().await;
    let prefix = emulator.runtime_prefix().await;
    let next = "echo/0/2018-06-01/runtime/invocation/next";

    // Without the secret (the path before it was one) or with another.
    for path in [format!("/runtime/{next}"), format!("/runtime/{}/{next}", "0".repeat(64))] {
        let reply = emulator.request("GET", &path, &[], "").await;
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(reply.json()["errorType"], "Forbidden");
    }
    let reply = emulator.request("GET", &format!("{prefix}/{next}"), &[("Origin", "http://evil.example")], "").await;
    assert_eq!(reply.status, 403, "a browser with the secret");
    for what in ["without its secret", "with another secret", "from a browser"] {
        println!("attack refused: control plane: runtime API {what}");
    }
    assert_eq!(emulator.invoke("echo", r#"{"after":1}"#).await.status, 200, "the function's own client still works");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_urls_honour_their_auth_type_and_refuse_foreign_names() {
    let emulator = start().await;
    let reply = emulator.request("GET", "/urls/open/x", &[], "").await;
    assert_eq!(reply.status, 200, "AuthType NONE is open");
    assert!(reply.json()["requestContext"].get("authorizer").is_none());

    let reply = emulator.request("GET", "/urls/iam/x", &[], "").await;
    assert_eq!(reply.status, 401, "AuthType AWS_IAM without credentials");
    assert!(reply.json()["Message"].as_str().unwrap().contains("missing credentials"));
    assert!(reply.header("www-authenticate").is_some());
    let reply = emulator.request("GET", "/urls/iam/x", &[("Authorization", "Bearer nope")], "").await;
    assert_eq!(reply.status, 403);
    let reply = emulator.request("GET", "/urls/iam/x", &[BEARER], "").await;
    assert_eq!(reply.status, 200);
    let event = reply.json();
    assert!(event["requestContext"]["authorizer"]["iam"].is_object(), "{event}");
    assert!(event["headers"].get("authorization").is_none(), "the token stays with the emulator");

    // Signed as an AWS client signs a function URL request.
    let host = emulator.addr.to_string();
    let headers = signed(&host, "/urls/iam/x", "{}", TOKEN, SystemTime::now());
    let reply = emulator.request("POST", "/urls/iam/x", &refs(&headers), "{}").await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));

    // Browsers are welcome on a URL, but DNS rebinding is not.
    let evil = format!("evil.example:{}", emulator.addr.port());
    for path in ["/urls/open/x", "/urls/iam/x"] {
        let reply = emulator.request("GET", path, &[BEARER, ("Host", &evil)], "").await;
        assert_eq!(reply.status, 403, "{path}");
    }
    let reply = emulator.request("GET", "/urls/open/x", &[("Origin", "http://127.0.0.1:8080")], "").await;
    assert_eq!(reply.status, 200, "an Origin header is fine on a function URL");
    emulator.stop().await;
}
