//! The dashboard: a function URL request (path, query, `Authorization`,
//! `If-None-Match`) over Redis contents the input chooses.

use std::sync::LazyLock;

use hemostat_dashboard::{Config, Dashboard, MemoryStore};
use hemostat_protocol::{ContainerRef, EventKind, keys};
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::{http_request, text};
use crate::engine::{Target, path};

const TOKEN: &str = "fuzz-token";

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"));

/// Raw HTTP; the body's lines fill Redis: `m host/name` a container, `s` a
/// silence, `c host` a collector, `e` an event, `a` a health alert stream
/// entry, `t`/`r`/`b`/`h` the last container's stats, remediation, breaker
/// and its host's heartbeat, `x` a series sample.
pub const DASHBOARD: Target = Target {
    name: "dashboard",
    about: "function URL requests to the dashboard (auth, paths, queries, ETags) over fuzzed Redis contents",
    dictionary: &[
        "GET ",
        "HEAD ",
        " HTTP/1.1\r\n",
        "\r\n",
        "Authorization: Bearer fuzz-token\r\n",
        "Authorization: Basic OmZ1enotdG9rZW4=\r\n",
        "Authorization: Basic ",
        "If-None-Match: ",
        "X-Fuzz-Iam: 1\r\n",
        "X-Fuzz-Stage: prod\r\n",
        "/api/containers",
        "/api/issues",
        "/api/silences",
        "/api/events?",
        "/api/series/",
        "/api/approvals",
        "/0123456789abcdef0123456789abcdef/approve",
        "POST ",
        "X-HemoStat-Request: 1\r\n",
        "Origin: https://abc.lambda-url.us-east-1.on.aws\r\n",
        "/slack/actions",
        "container=",
        "type=",
        "status=",
        "limit=",
        "&",
        "%2F",
        "%",
        "\nm ",
        "\ns ",
        "\ne ",
        "\na ",
        "\nt ",
        "\nx ",
        "{\"timestamp\":\"2026-12-01T12:00:00.000000\",\"agent\":\"a\",\"type\":\"health_alert\",\"data\":{}}",
    ],
    run: dashboard,
};

fn dashboard(input: &[u8]) -> u64 {
    let Some(request) = http_request(input) else { return path(&["unparsed"]) };
    let store = store(&text(request.body()));
    let config = Config { auth_token: Some(TOKEN.into()), ..Config::default() };
    let iam = request.headers().contains_key("x-fuzz-iam");
    let stage = request.headers().get("x-fuzz-stage").and_then(|v| v.to_str().ok()).unwrap_or("$default").to_owned();
    let Some(event) = lambda_event(&request, iam, &stage) else { return path(&["no event"]) };
    // Whether the request could pass: IAM, the token as bearer, or Basic (checked by the handler).
    let authorization = joined(&request, header::AUTHORIZATION.as_str()).filter(|a| !a.is_empty());
    let authorized = iam
        || authorization.as_deref().is_some_and(|a| {
            let lower = a.to_ascii_lowercase();
            lower.starts_with("basic ") || (lower.starts_with("bearer ") && a[7..].trim() == TOKEN)
        });
    let dashboard = Dashboard::new(config, store);
    let response = RUNTIME.block_on(dashboard.handle(event));
    let status = response.status();
    if !authorized {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "served without the token");
    }
    if status == StatusCode::OK
        && let lambda_http::Body::Text(body) = response.body()
        && response.headers().get(header::CONTENT_TYPE).is_some_and(|c| c.as_bytes().starts_with(b"application/json"))
    {
        assert!(!body.contains('<') && !body.contains('>'), "markup in JSON");
        serde_json::from_str::<Value>(body).expect("the API answers JSON");
    }
    let route = ["containers", "issues", "silences", "events", "series"]
        .into_iter()
        .find(|r| request.uri().path().starts_with(&format!("/api/{r}")))
        .unwrap_or("other");
    path(&[status.as_str(), route])
}

/// A header's values as a function URL passes them: comma-joined.
fn joined(request: &http::Request<bytes::Bytes>, name: &str) -> Option<String> {
    let values: Vec<&str> = request.headers().get_all(name).iter().map(|v| v.to_str().ok()).collect::<Option<_>>()?;
    Some(values.join(","))
}

/// The API Gateway v2 event a function URL makes of `request`.
fn lambda_event(request: &http::Request<bytes::Bytes>, iam: bool, stage: &str) -> Option<lambda_http::Request> {
    let mut headers = serde_json::Map::new();
    for name in request.headers().keys() {
        // AWS writes the Host of a function URL (lambda_http trusts it to be one).
        if name == header::HOST {
            continue;
        }
        headers.insert(name.as_str().to_owned(), Value::String(joined(request, name.as_str())?));
    }
    headers.insert("host".into(), Value::String("abc.lambda-url.us-east-1.on.aws".into()));
    let path = request.uri().path();
    let mut event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": request.uri().query().unwrap_or_default(),
        "headers": headers,
        "requestContext": {"accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc",
            "http": {"method": request.method().as_str(), "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "f"},
            "requestId": "r", "routeKey": "$default", "stage": stage, "time": "01/Dec/2026:12:00:00 +0000", "timeEpoch": 0},
        "isBase64Encoded": false
    });
    if iam {
        event["requestContext"]["authorizer"] = json!({"iam": {"accessKey": "AKIA", "accountId": "000000000000",
            "callerId": "000000000000", "userArn": "arn:aws:iam::000000000000:root", "userId": "000000000000"}});
    }
    lambda_http::request::from_str(&event.to_string()).ok()
}

fn store(body: &str) -> MemoryStore {
    let mut s = MemoryStore::default();
    let mut last = ContainerRef::new("h", "c");
    for line in body.lines() {
        let (tag, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.to_owned();
        match tag {
            "m" => {
                s.sets.entry(keys::CONTAINERS.to_owned()).or_default().push(value.clone());
                if let Some(c) = ContainerRef::parse(&value) {
                    last = c;
                }
            }
            "s" => s.zsets.entry(keys::SILENCES.to_owned()).or_default().push((value, 4.0e12)),
            "c" => s.zsets.entry(keys::COLLECTORS.to_owned()).or_default().push((value, 1.0e12)),
            "e" => {
                for kind in ["all"].into_iter().chain(EventKind::ALL.iter().map(|k| k.as_str())) {
                    s.lists.entry(keys::events(kind)).or_default().push(value.clone());
                }
            }
            "a" => {
                let stream = s.streams.entry(EventKind::HealthAlert.stream()).or_default();
                let id = format!("{}-0", 1_764_590_400_000u64 + stream.len() as u64);
                stream.push((id, Some(value)));
            }
            "t" => _ = s.strings.insert(keys::stats(&last), value),
            "r" => _ = s.strings.insert(keys::remediation(&last), value),
            "b" => _ = s.strings.insert(keys::breaker(&last), value),
            "h" => _ = s.strings.insert(keys::heartbeat(&last.host), value),
            "x" => s.lists.entry(keys::series(&last)).or_default().push(value),
            _ => {}
        }
    }
    s
}
