//! Lambda Function URLs: plain HTTP in, API Gateway v2 (payload format 2.0)
//! events to the function, its response back out as HTTP.
//!
//! A function with `FunctionUrlConfig` in the template is served at
//! `http://LISTEN/urls/{function}/{path...}` (also `/lambda-url/{function}/...`,
//! the prefix `cargo lambda watch` uses, so the same URLs work against both), and,
//! when `--url-port function=PORT` is given, at the root of its own port: pages
//! with absolute links (a dashboard) need the root.
//!
//! The event and the response rules follow AWS's "Invoking Lambda function URLs"
//! documentation: headers lowercased with repeated values comma-joined, the
//! `Cookie` header moved to `cookies`, non-text bodies base64-encoded, and a
//! response that is not a `{"statusCode": ..}` object returned as JSON with 200.
//!
//! Browsers are welcome here, but only at this listener's own names (a
//! `Host` that merely resolves here is DNS rebinding), and a URL whose
//! `AuthType` is `AWS_IAM` needs the emulator's token as AWS needs IAM
//! credentials: a SigV4 signature with the token as the secret key, or
//! `Authorization: Bearer <token>` (see `access`). `NONE` is open.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header},
    response::Response,
    routing::any,
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde_json::{Map, Value, json};
use tracing::warn;

use crate::{
    access::{self, Hosts},
    error::{Error, Result},
    function::Function,
    invocation::{Invocation, MAX_PAYLOAD_BYTES, Outcome},
    state::Shared,
};

/// Path prefixes under the main listener; the first is the documented one.
pub const PREFIXES: [&str; 2] = ["/urls/", "/lambda-url/"];

pub fn router() -> Router<Arc<Shared>> {
    let mut router = Router::new();
    for prefix in PREFIXES {
        router = router.route(&format!("{prefix}{{*rest}}"), any(by_prefix));
    }
    router
}

/// The router of a function's own port: every path belongs to the function;
/// `hosts` are the port's own names.
pub fn port_router(shared: Arc<Shared>, function: String, hosts: Hosts) -> Router {
    let function = Arc::new(function);
    let hosts = Arc::new(hosts);
    Router::new().fallback(any(move |request: Request| {
        let shared = shared.clone();
        let function = function.clone();
        let hosts = hosts.clone();
        async move {
            let raw_path = request.uri().path().to_owned();
            serve(&shared, &hosts, &function, raw_path, request).await
        }
    }))
}

async fn by_prefix(State(shared): State<Arc<Shared>>, request: Request) -> Result<Response> {
    let (name, raw_path) = split_prefixed(request.uri().path());
    serve(&shared, &shared.access().hosts, &name, raw_path, request).await
}

/// `/urls/{function}/{path...}`: the function's name and the path it sees
/// (`/` for none).
pub(crate) fn split_prefixed(path: &str) -> (String, String) {
    let rest = PREFIXES.iter().find_map(|p| path.strip_prefix(p)).unwrap_or_default();
    match rest.find('/') {
        Some(at) => (rest[..at].to_owned(), rest[at..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

/// Invokes `function_name` with the event for `request` and turns its answer
/// into HTTP, for a request that reached a listener whose names are `hosts`.
pub async fn serve(
    shared: &Shared,
    hosts: &Hosts,
    function_name: &str,
    raw_path: String,
    request: Request,
) -> Result<Response> {
    if let Err(refusal) = access::check_host(hosts, request.headers()) {
        return Err(Error::UrlRefused(access::logged("function URL", request.method(), request.uri().path(), refusal)));
    }
    let function = shared
        .function(function_name)
        .filter(|f| f.spec.url.is_some())
        .ok_or_else(|| Error::NoFunctionUrl { function: function_name.to_owned() })?;
    let auth_type = function.spec.url.as_ref().map_or_else(|| "NONE".to_owned(), |u| u.auth_type.clone());
    let source_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let (mut parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES)
        .await
        .map_err(|_| Error::UrlRequestTooLarge { limit: MAX_PAYLOAD_BYTES })?;
    if let Err(refusal) = authorize(shared.access(), &auth_type, &mut parts, &body) {
        return Err(Error::UrlRefused(access::logged("function URL", &parts.method, parts.uri.path(), refusal)));
    }
    let http_request = HttpRequest {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        raw_path,
        source_ip,
        body,
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let context = EventContext {
        account_id: shared.account_id().to_owned(),
        region: shared.region().to_owned(),
        url_id: url_id(function.name()),
        auth_type,
        request_id: request_id.clone(),
        time: chrono::Utc::now(),
    };
    let event = event(&http_request, &context);
    invoke(&function, &request_id, event).await
}

async fn invoke(function: &Arc<Function>, request_id: &str, event: Value) -> Result<Response> {
    let (invocation, outcome) = Invocation::with_id(request_id, Bytes::from(event.to_string()));
    function.submit(invocation);
    let outcome = outcome.await.map_err(|_| Error::ShuttingDown)?;
    let mut response = match outcome {
        Outcome::Success(payload) => http_response(&payload).map_err(|reason| {
            warn!(function = %function.name(), request_id, %reason, "function URL response is not valid");
            Error::UrlInvalidResponse(reason)
        })?,
        Outcome::Failure { body, .. } => {
            warn!(function = %function.name(), request_id, error = %String::from_utf8_lossy(&body), "function URL invocation failed");
            return Err(Error::UrlFunctionFailed);
        }
    };
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
    Ok(response)
}

/// The parts of an HTTP request that go into the event.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    /// As received; only its query is used (the path may carry our `/urls/{fn}` prefix).
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// The path the function sees, always starting with `/`.
    pub raw_path: String,
    pub source_ip: String,
    pub body: Bytes,
}

/// What the event says about the URL and the invocation, beyond the request itself.
#[derive(Debug, Clone)]
pub struct EventContext {
    /// The account in `requestContext.accountId`.
    pub account_id: String,
    /// The region in the URL's domain name.
    pub region: String,
    /// The URL id: `apiId`, `domainPrefix`, and the first label of `domainName`.
    pub url_id: String,
    /// `NONE` or `AWS_IAM`, from the template.
    pub auth_type: String,
    /// Also the invocation's request id, as with real Function URLs.
    pub request_id: String,
    /// When the request arrived.
    pub time: chrono::DateTime<chrono::Utc>,
}

/// An `AWS_IAM` URL's caller must present the token; a bearer token (the
/// emulator's secret itself) is then removed: the function has no business
/// seeing it (a signature, as in AWS, it may). `NONE` is open.
pub(crate) fn authorize(
    access: &access::Access,
    auth_type: &str,
    parts: &mut http::request::Parts,
    body: &[u8],
) -> std::result::Result<(), access::Refusal> {
    if auth_type == "AWS_IAM" {
        access.check_credentials(&parts.method, &parts.uri, &parts.headers, body)?;
        let bearer = parts.headers.get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
        if bearer {
            parts.headers.remove(header::AUTHORIZATION);
        }
    }
    Ok(())
}

/// A stable 32-character URL id per function name (AWS's are random, but ours
/// should not change between runs so bookmarked URLs and logs stay comparable).
pub fn url_id(function: &str) -> String {
    // Two FNV-1a 64-bit hashes with different offsets: no dependency, stable forever.
    let fnv = |offset: u64| {
        function.bytes().fold(offset, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3))
    };
    // Lowercase hex, so also within AWS's alphabet for url ids (a-z, 0-9).
    format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4))
}

/// The payload format 2.0 event for a request, exactly as a Function URL builds it.
pub fn event(request: &HttpRequest, context: &EventContext) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in request.headers.keys() {
        let values = request.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if name == header::COOKIE {
            // Function URLs move cookies out of the headers, one array item per cookie.
            for value in values {
                cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
            }
            continue;
        }
        // HeaderName is already lowercase, as AWS delivers header names.
        let joined: Vec<String> = values.collect();
        headers.insert(name.as_str().to_owned(), Value::String(joined.join(",")));
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(existing) => format!("{existing}, {}", request.source_ip),
        None => request.source_ip.clone(),
    };
    headers.insert("x-forwarded-for".into(), Value::String(forwarded_for));
    headers.entry("x-forwarded-proto").or_insert_with(|| Value::String("http".into()));
    let trace = crate::invocation::trace_id();
    let root = trace.split(';').next().unwrap_or_default().to_owned();
    headers.insert("x-amzn-trace-id".into(), Value::String(root));

    let raw_query = request.uri.query().unwrap_or_default();
    let mut query = Map::new();
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(key.as_ref()) {
            // Repeated parameters are comma-joined, like headers.
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                query.insert(key.into_owned(), Value::String(value.into_owned()));
            }
        }
    }

    let user_agent = headers.get("user-agent").cloned().unwrap_or(Value::String(String::new()));
    let domain_name = format!("{}.lambda-url.{}.on.aws", context.url_id, context.region);
    // With AuthType NONE the caller is nobody in particular, and AWS says so.
    let mut request_context = json!({
        "accountId": if context.auth_type == "AWS_IAM" { context.account_id.as_str() } else { "anonymous" },
        "apiId": context.url_id,
        "domainName": domain_name,
        "domainPrefix": context.url_id,
        "http": {
            "method": request.method.as_str(),
            "path": request.raw_path,
            "protocol": protocol(request.version),
            "sourceIp": request.source_ip,
            "userAgent": user_agent,
        },
        "requestId": context.request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": context.time.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": context.time.timestamp_millis(),
    });
    if context.auth_type == "AWS_IAM" {
        // What an IAM-authorised URL carries; locally nobody signed anything,
        // so the caller is the account's root.
        request_context["authorizer"] = json!({
            "iam": {
                "accessKey": "AKIAIOSFODNN7EXAMPLE",
                "accountId": context.account_id,
                "callerId": context.account_id,
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": format!("arn:aws:iam::{}:root", context.account_id),
                "userId": context.account_id,
            }
        });
    }

    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": request_context,
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !request.body.is_empty() {
        let content_type = request.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        match std::str::from_utf8(&request.body) {
            Ok(text) if content_type.is_some_and(is_text) => {
                event["body"] = Value::String(text.to_owned());
            }
            _ => {
                event["body"] = Value::String(BASE64.encode(&request.body));
                event["isBase64Encoded"] = Value::Bool(true);
            }
        }
    }
    event
}

/// Content types whose bodies a Function URL passes as text; everything else
/// (including a missing content type) arrives base64-encoded.
fn is_text(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || [
            "application/json",
            "application/javascript",
            "application/xml",
            "application/yaml",
            "application/x-www-form-urlencoded",
            "application/graphql",
        ]
        .contains(&essence.as_str())
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || essence.ends_with("+yaml")
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Turns the function's response payload into HTTP, or says why it cannot
/// (the caller then answers 502, as AWS does).
pub fn http_response(payload: &[u8]) -> Result<Response, String> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| format!("the function returned invalid JSON: {e}"))?;
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        // Lambda's rule: valid JSON without a statusCode is the body of a 200.
        let mut response = Response::new(Body::from(Bytes::copy_from_slice(payload)));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(response);
    };

    let status = object
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| format!("statusCode {} is not an HTTP status", object["statusCode"]))?;

    let mut headers = HeaderMap::new();
    if let Some(map) = object.get("headers").and_then(Value::as_object) {
        for (name, value) in map {
            append(&mut headers, name, value)?;
        }
    }
    // Not part of payload format 2.0 (AWS ignores it); honoured only for names
    // `headers` lacks, so a response carrying both (as v1-minded code does) is not doubled.
    if let Some(map) = object.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in map {
            if headers.contains_key(name.to_ascii_lowercase().as_str()) {
                continue;
            }
            for value in values.as_array().into_iter().flatten() {
                append(&mut headers, name, value)?;
            }
        }
    }
    if let Some(cookies) = object.get("cookies").and_then(Value::as_array) {
        for cookie in cookies {
            append(&mut headers, "set-cookie", cookie)?;
        }
    }

    let text = match object.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // Lenient like AWS: a non-string body is sent as its JSON text.
        Some(other) => other.to_string(),
    };
    let base64 = object.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    let body = if base64 {
        BASE64
            .decode(text.as_bytes())
            .map_err(|e| format!("isBase64Encoded is true but the body is not base64: {e}"))?
    } else {
        text.into_bytes()
    };

    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn append(headers: &mut HeaderMap, name: &str, value: &Value) -> Result<(), String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => return Ok(()),
        other => other.to_string(),
    };
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a valid header name"))?;
    let value = HeaderValue::from_str(&text).map_err(|_| format!("the value of header {name} is not valid"))?;
    headers.append(name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: Response) -> Vec<u8> {
        let body = response.into_body();
        let bytes = futures::executor::block_on(axum::body::to_bytes(body, usize::MAX)).expect("body");
        bytes.to_vec()
    }

    #[test]
    fn plain_json_is_a_200_json_body() {
        for payload in [r#"{"a":1}"#, r#"[1,2]"#, r#""text""#, "42", "null"] {
            let response = http_response(payload.as_bytes()).expect("valid");
            assert_eq!(response.status(), 200, "{payload}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(body_of(response), payload.as_bytes());
        }
    }

    #[test]
    fn shaped_response_sets_status_headers_cookies_and_body() {
        let payload = json!({
            "statusCode": 418,
            "headers": {"Content-Type": "text/plain", "X-Count": 3},
            "multiValueHeaders": {"content-type": ["ignored/dup"], "x-multi": ["a", "b"]},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": "short and stout",
        });
        let response = http_response(payload.to_string().as_bytes()).expect("valid");
        assert_eq!(response.status(), 418);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers.get_all("content-type").iter().count(), 1);
        assert_eq!(headers["x-count"], "3");
        let multi: Vec<_> = headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"]);
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
        assert_eq!(body_of(response), b"short and stout");
    }

    #[test]
    fn base64_bodies_are_decoded_and_bad_ones_rejected() {
        let payload = json!({"statusCode": 200, "body": BASE64.encode([0u8, 159, 255]), "isBase64Encoded": true});
        let response = http_response(payload.to_string().as_bytes()).expect("valid");
        assert_eq!(body_of(response), [0u8, 159, 255]);

        let bad = json!({"statusCode": 200, "body": "not base64!", "isBase64Encoded": true});
        assert!(http_response(bad.to_string().as_bytes()).is_err());
        let bad_status = json!({"statusCode": 1000});
        assert!(http_response(bad_status.to_string().as_bytes()).is_err());
        let bad_status = json!({"statusCode": "200"});
        assert!(http_response(bad_status.to_string().as_bytes()).is_err());
        assert!(http_response(b"not json").is_err());
    }

    #[test]
    fn url_ids_are_stable_distinct_and_aws_shaped() {
        let a = url_id("hemostat-dashboard");
        assert_eq!(a, url_id("hemostat-dashboard"));
        assert_ne!(a, url_id("hemostat-metrics"));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn text_content_types() {
        assert!(is_text("application/json; charset=utf-8"));
        assert!(is_text("text/html"));
        assert!(is_text("application/vnd.api+json"));
        assert!(!is_text("application/octet-stream"));
        assert!(!is_text("image/png"));
    }
}
