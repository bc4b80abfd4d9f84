//! A `lambda_http` function for the emulator's Function URL tests.
//!
//! Answers every request with JSON describing what `lambda_http` made of the
//! event: method, path, raw query, query parameters, headers, body (text, or
//! base64 when binary) and parts of the request context. Some paths differ:
//! `/binary` echoes the request body back as a binary response,
//! `/cookie` sets two cookies and an `x-echo` header, `/fail` returns an error.
//! `?status=N` sets the status code of any response.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use lambda_http::{Body, Error, Request, RequestExt, Response, request::RequestContext, service_fn};
use serde_json::{Map, Value, json};

async fn handler(request: Request) -> Result<Response<Body>, Error> {
    let query = request.query_string_parameters();
    let status: u16 = query.first("status").and_then(|s| s.parse().ok()).unwrap_or(200);
    let path = request.raw_http_path().to_owned();

    let mut builder = Response::builder().status(status);
    match path.as_str() {
        "/fail" => return Err("asked to fail".into()),
        "/binary" => {
            let bytes = request.body().to_vec();
            return Ok(builder.header("content-type", "application/octet-stream").body(Body::Binary(bytes))?);
        }
        "/cookie" => {
            builder = builder
                .header("set-cookie", "session=abc; Path=/; HttpOnly")
                .header("set-cookie", "theme=dark")
                .header("x-echo", "yes");
        }
        _ => {}
    }

    let mut headers = Map::new();
    for name in request.headers().keys() {
        let values: Vec<String> = request
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let mut params = Map::new();
    for (key, value) in query.iter() {
        if let Some(all) = params.entry(key.to_owned()).or_insert_with(|| Value::Array(Vec::new())).as_array_mut() {
            all.push(Value::String(value.to_owned()));
        }
    }
    let body = match request.body() {
        Body::Empty => json!({ "kind": "empty" }),
        Body::Text(text) => json!({ "kind": "text", "text": text }),
        Body::Binary(bytes) => json!({ "kind": "binary", "base64": BASE64.encode(bytes) }),
        _ => json!({ "kind": "other" }),
    };
    let context = match request.request_context() {
        RequestContext::ApiGatewayV2(ctx) => json!({
            "accountId": ctx.account_id,
            "apiId": ctx.apiid,
            "domainName": ctx.domain_name,
            "domainPrefix": ctx.domain_prefix,
            "requestId": ctx.request_id,
            "routeKey": ctx.route_key,
            "stage": ctx.stage,
            "time": ctx.time,
            "timeEpoch": ctx.time_epoch,
            "sourceIp": ctx.http.source_ip,
            "protocol": ctx.http.protocol,
            "userAgent": ctx.http.user_agent,
        }),
        _ => Value::Null,
    };
    let lambda_request_id = request.lambda_context_ref().map(|c| c.request_id.clone());
    let echo = json!({
        "method": request.method().as_str(),
        "path": path,
        "uri": request.uri().to_string(),
        "rawQuery": request.uri().query(),
        "query": params,
        "headers": headers,
        "body": body,
        "context": context,
        "lambdaRequestId": lambda_request_id,
    });
    Ok(builder.header("content-type", "application/json").body(Body::Text(echo.to_string()))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(handler)).await
}
