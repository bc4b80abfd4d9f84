//! Function URLs end to end: plain HTTP through the emulator to a real
//! `lambda_http` function (`http-echo-function`) and to `noop-function`, which
//! echoes the raw API Gateway v2 event back so its exact shape can be checked.

mod common;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use common::{BEARER, TestEmulator, config};
use hemostat_local::{Emulator, Error, url_id};
use serde_json::Value;

const TEMPLATE: &str = r#"
Resources:
  WebFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: http-echo-function
    Properties:
      FunctionName: web
      Timeout: 3
      FunctionUrlConfig:
        AuthType: NONE
  RawFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: noop-function
    Properties:
      FunctionName: raw
      FunctionUrlConfig:
        AuthType: AWS_IAM
  PlainFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: noop-function
    Properties:
      FunctionName: plain
"#;

async fn start() -> TestEmulator {
    TestEmulator::with_config(config(TEMPLATE, 2)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_query_reaches_lambda_http() {
    let emulator = start().await;
    let reply = emulator
        .request(
            "GET",
            "/urls/web/items/42?tag=a&tag=b&q=hello%20world",
            &[
                ("X-Custom", "one"),
                ("x-custom", "two"),
                ("User-Agent", "hemostat-test/1"),
                ("Cookie", "session=abc; theme=dark"),
            ],
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let echo = reply.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/items/42");
    assert_eq!(echo["rawQuery"], "tag=a&tag=b&q=hello%20world");
    assert_eq!(echo["query"]["tag"], serde_json::json!(["a", "b"]));
    assert_eq!(echo["query"]["q"], serde_json::json!(["hello world"]));
    assert_eq!(echo["headers"]["x-custom"], "one,two");
    assert_eq!(echo["headers"]["cookie"], "session=abc; theme=dark");
    assert_eq!(echo["body"]["kind"], "empty");
    let ctx = &echo["context"];
    assert_eq!(ctx["routeKey"], "$default");
    assert_eq!(ctx["stage"], "$default");
    assert_eq!(ctx["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["protocol"], "HTTP/1.1");
    assert_eq!(ctx["userAgent"], "hemostat-test/1");
    assert_eq!(ctx["accountId"], "anonymous");
    assert_eq!(ctx["apiId"], url_id("web"));
    assert_eq!(ctx["domainPrefix"], url_id("web"));
    assert_eq!(ctx["domainName"], format!("{}.lambda-url.us-east-1.on.aws", url_id("web")));
    // One request id for the HTTP response, the event and the invocation.
    let id = reply.header("x-amzn-RequestId").expect("request id");
    assert_eq!(ctx["requestId"], id);
    assert_eq!(echo["lambdaRequestId"], id);

    // The root, with and without the trailing slash, and cargo lambda's prefix.
    for path in ["/urls/web", "/urls/web/", "/lambda-url/web/"] {
        let reply = emulator.request("GET", path, &[], "").await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.json()["path"], "/", "{path}");
    }
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_json_body_arrives_as_text() {
    let emulator = start().await;
    let body = r#"{"container":"web-1","cpu":93.5}"#;
    let reply = emulator.request("POST", "/urls/web/ingest", &[("Content-Type", "application/json")], body).await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/ingest");
    assert_eq!(echo["body"]["kind"], "text");
    assert_eq!(echo["body"]["text"], body);
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_body_round_trip() {
    let emulator = start().await;
    // Every byte value, including ones that are invalid UTF-8 on their own.
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let reply = emulator
        .request("PUT", "/urls/web/binary", &[("Content-Type", "application/octet-stream")], bytes.clone())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/octet-stream"));
    assert_eq!(reply.body.as_ref(), bytes.as_slice());
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_headers_and_cookies_come_back() {
    let emulator = start().await;
    let reply = emulator.request("GET", "/urls/web/cookie?status=201", &[], "").await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("x-echo"), Some("yes"));
    let cookies: Vec<&str> = reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(cookies, ["session=abc; Path=/; HttpOnly", "theme=dark"]);

    let reply = emulator.request("GET", "/urls/web/missing?status=404", &[], "").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["path"], "/missing");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_error_is_502() {
    let emulator = start().await;
    let reply = emulator.request("GET", "/urls/web/fail", &[], "").await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["Message"], "Internal Server Error");
    // The instance survives a handled error.
    let reply = emulator.request("GET", "/urls/web/ok", &[], "").await;
    assert_eq!(reply.status, 200);
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_without_a_url_are_404() {
    let emulator = start().await;
    for path in ["/urls/plain/", "/urls/nonexistent/x", "/urls/"] {
        let reply = emulator.request("GET", path, &[], "").await;
        assert_eq!(reply.status, 404, "{path}");
    }
    let reply = emulator.request("GET", "/urls/plain/", &[], "").await;
    assert!(
        reply.json()["Message"].as_str().is_some_and(|m| m.contains("FunctionUrlConfig")),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // The function itself is still there for the Invoke API.
    assert_eq!(emulator.invoke("plain", "{}").await.status, 200);
    emulator.stop().await;
}

/// `noop-function` returns its event unchanged, and an object without a
/// `statusCode` comes back as a JSON 200: so the body is the exact event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_is_payload_format_2() {
    let emulator = start().await;
    let before = chrono::Utc::now().timestamp_millis();
    let reply = emulator
        .request(
            "DELETE",
            "/urls/raw/a/b%20c?x=1&x=2&y=&z=%26",
            &[BEARER, ("X-Multi", "1"), ("X-Multi", "2"), ("Cookie", "a=1; b=2"), ("Content-Type", "image/png")],
            vec![0x89u8, b'P', b'N', b'G', 0xff],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let event = reply.json();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "$default");
    assert_eq!(event["rawPath"], "/a/b%20c");
    assert_eq!(event["rawQueryString"], "x=1&x=2&y=&z=%26");
    assert_eq!(event["queryStringParameters"], serde_json::json!({"x": "1,2", "y": "", "z": "&"}));
    assert_eq!(event["cookies"], serde_json::json!(["a=1", "b=2"]));
    let headers = event["headers"].as_object().expect("headers");
    assert_eq!(headers["x-multi"], "1,2");
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert!(headers["x-amzn-trace-id"].as_str().is_some_and(|t| t.starts_with("Root=1-")));
    assert!(!headers.contains_key("cookie"), "cookies move to `cookies`");
    assert!(!headers.contains_key("authorization"), "the emulator's token never reaches the function");
    assert!(headers.keys().all(|k| k == &k.to_lowercase()), "header names are lowercase: {headers:?}");
    assert_eq!(event["isBase64Encoded"], true);
    let body = BASE64.decode(event["body"].as_str().expect("body")).expect("base64");
    assert_eq!(body, [0x89u8, b'P', b'N', b'G', 0xff]);

    let ctx = &event["requestContext"];
    assert_eq!(ctx["accountId"], "000000000000", "AWS_IAM carries the account");
    assert_eq!(ctx["authorizer"]["iam"]["accountId"], "000000000000");
    assert_eq!(ctx["apiId"], url_id("raw"));
    assert_eq!(ctx["domainPrefix"], url_id("raw"));
    assert_eq!(ctx["domainName"], format!("{}.lambda-url.us-east-1.on.aws", url_id("raw")));
    assert_eq!(ctx["http"]["method"], "DELETE");
    assert_eq!(ctx["http"]["path"], "/a/b%20c");
    assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
    assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["requestId"].as_str(), reply.header("x-amzn-RequestId"));
    assert_eq!(ctx["routeKey"], "$default");
    assert_eq!(ctx["stage"], "$default");
    let epoch = ctx["timeEpoch"].as_i64().expect("timeEpoch");
    let after = chrono::Utc::now().timestamp_millis();
    assert!(before <= epoch && epoch <= after, "{before} <= {epoch} <= {after}");
    let time = ctx["time"].as_str().expect("time");
    let parsed =
        chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z").unwrap_or_else(|e| panic!("time {time:?}: {e}"));
    assert_eq!(parsed.timestamp(), epoch / 1000);

    // Text bodies stay text; no body means no `body` key.
    let reply =
        emulator.request("POST", "/urls/raw/", &[BEARER, ("Content-Type", "text/plain; charset=utf-8")], "héllo").await;
    let event = reply.json();
    assert_eq!(event["body"], "héllo");
    assert_eq!(event["isBase64Encoded"], false);
    assert!(event.get("queryStringParameters").is_none());
    assert!(event.get("cookies").is_none());
    let reply = emulator.request("GET", "/urls/raw/", &[BEARER], "").await;
    assert!(reply.json().get("body").is_none());
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_on_its_own_port_serves_the_root() {
    let mut config = config(TEMPLATE, 2);
    config.url_ports.insert("web".into(), 0);
    let emulator = Emulator::start(config).await.expect("starts");
    let addr = emulator.url_addr("web").expect("url port bound");
    assert_ne!(addr.port(), 0);
    assert_ne!(addr, emulator.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(emulator.serve(async move {
        let _ = stopped.await;
    }));

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{addr}/static/app.js?v=2").parse().expect("uri");
    let response = client.get(uri).await.expect("request");
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    let echo: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echo["path"], "/static/app.js");
    assert_eq!(echo["rawQuery"], "v=2");

    let _ = stop.send(());
    task.await.expect("serve task").expect("clean shutdown");

    // Asking for a port for a function without a URL is a startup error.
    let mut config = common::config(TEMPLATE, 1);
    config.url_ports.insert("plain".into(), 0);
    match Emulator::start(config).await {
        Err(Error::UrlPortWithoutUrl { function }) => assert_eq!(function, "plain"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a URL port for a function without FunctionUrlConfig must be refused"),
    }
}
