//! The Lambda Runtime API, one namespace per instance.
//!
//! Every instance gets `AWS_LAMBDA_RUNTIME_API=http://HOST:PORT/runtime/{secret}/{function}/{instance}`;
//! the official runtime client prefixes that base path to its `/2018-06-01/...` requests,
//! so one server can tell all instances apart without a port each. The secret
//! (random per start, see `access`) keeps everyone but the function processes out.

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header},
    response::Response,
};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::warn;

use crate::{
    access,
    error::{Error, Result},
    function::{Dispatch, Function, Next},
    invocation::{MAX_PAYLOAD_BYTES, Outcome},
    state::Shared,
};

/// Every Runtime API path starts with this, then `{secret}/{function}/{instance}/2018-06-01/runtime/`.
pub const PREFIX: &str = "/runtime/";
const VERSION: &str = "2018-06-01/runtime/";

const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
const DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
const FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
const TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
const COGNITO_IDENTITY: HeaderName = HeaderName::from_static("lambda-runtime-cognito-identity");

/// The Runtime API's routes.
#[derive(Debug)]
pub(crate) enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
}

impl<'a> Route<'a> {
    fn parse(method: &Method, tail: &'a str) -> Option<Route<'a>> {
        if tail == "invocation/next" {
            return (method == Method::GET).then_some(Route::Next);
        }
        if method != Method::POST {
            return None;
        }
        if tail == "init/error" {
            return Some(Route::InitError);
        }
        let invocation = tail.strip_prefix("invocation/")?;
        if let Some(id) = invocation.strip_suffix("/response") {
            return (!id.contains('/')).then_some(Route::Response(id));
        }
        let id = invocation.strip_suffix("/error")?;
        (!id.contains('/')).then_some(Route::Error(id))
    }
}

/// What a Runtime API path names: `{secret}/{function}/{instance}/2018-06-01/runtime/{route}`.
pub(crate) struct Target<'a> {
    pub(crate) function: &'a str,
    pub(crate) instance: &'a str,
    pub(crate) route: Route<'a>,
}

/// The secret first (a wrong one is refused before anything else is read),
/// then the route; `None`: no such route (404).
pub(crate) fn resolve<'a>(
    access: &access::Access,
    method: &Method,
    path: &'a str,
) -> std::result::Result<Option<Target<'a>>, access::Refusal> {
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let mut segments = rest.splitn(4, '/');
    access.check_runtime_secret(segments.next().unwrap_or_default())?;
    let (Some(function), Some(instance), Some(tail)) = (segments.next(), segments.next(), segments.next()) else {
        return Ok(None);
    };
    Ok(tail.strip_prefix(VERSION).and_then(|t| Route::parse(method, t)).map(|route| Target {
        function,
        instance,
        route,
    }))
}

/// Serves a request whose path starts with [`PREFIX`].
pub async fn handle(shared: &Shared, request: Request<Incoming>) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let target = match resolve(shared.access(), &parts.method, parts.uri.path()) {
        Ok(Some(target)) => target,
        Ok(None) => return Ok(not_found()),
        Err(refusal) => return Err(Error::RuntimeRefused(access::logged("runtime", &parts.method, PREFIX, refusal))),
    };
    let (f, id) = locate(shared, target.function, target.instance)?;
    let route = target.route;
    match route {
        Route::Next => next(f, id).await,
        Route::Response(request_id) => response(&f, id, request_id, body).await,
        Route::Error(request_id) => {
            let body = read_limited(body).await.unwrap_or_default();
            f.complete(id, request_id, function_error(&parts.headers, body))?;
            Ok(accepted())
        }
        Route::InitError => {
            let body = read_limited(body).await.unwrap_or_default();
            f.init_error(id, function_error(&parts.headers, body))?;
            Ok(accepted())
        }
    }
}

fn not_found() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

fn locate(shared: &Shared, function: &str, instance: &str) -> Result<(Arc<Function>, u64)> {
    let unknown = || Error::UnknownInstance { function: function.to_owned(), instance: instance.to_owned() };
    let f = shared.function(function).ok_or_else(unknown)?;
    let id = instance.parse().map_err(|_| unknown())?;
    Ok((f, id))
}

async fn next(f: Arc<Function>, id: u64) -> Result<Response> {
    let dispatch = match f.next(id)? {
        Next::Ready(dispatch) => dispatch,
        // The sender is dropped when the instance is killed or the emulator stops;
        // the process's death then closes this connection and drops this future.
        Next::Wait(rx) => match rx.await {
            Ok(dispatch) => dispatch,
            Err(_) => return Ok(std::future::pending().await),
        },
        Next::Retired => return Ok(std::future::pending().await),
    };
    Ok(event_response(&f, dispatch))
}

fn event_response(f: &Function, dispatch: Dispatch) -> Response {
    let invocation = dispatch.invocation;
    let mut response = Response::new(Body::from(invocation.payload.clone()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(DEADLINE_MS, HeaderValue::from(dispatch.deadline_ms));
    if let Some(arn) = &f.arn_header {
        headers.insert(FUNCTION_ARN, arn.clone());
    }
    let values = [
        (REQUEST_ID, invocation.request_id.as_str()),
        (TRACE_ID, invocation.trace_id.as_str()),
        (CLIENT_CONTEXT, invocation.caller.client_context.as_deref().unwrap_or_default()),
        (COGNITO_IDENTITY, invocation.caller.cognito_identity.as_deref().unwrap_or_default()),
    ];
    for (name, value) in values {
        if value.is_empty() {
            // Lambda omits headers it has no value for (the client context, usually).
            continue;
        }
        // All values are generated by us from ASCII or were checked on the way in.
        match HeaderValue::from_str(value) {
            Ok(v) => {
                headers.insert(name, v);
            }
            Err(_) => warn!(header = %name, "cannot encode header value"),
        }
    }
    response
}

async fn response(f: &Function, id: u64, request_id: &str, body: Incoming) -> Result<Response> {
    let payload = match read_limited(body).await {
        Ok(payload) => payload,
        Err(too_large) => {
            // Lambda fails the invocation rather than truncating the response.
            f.complete(
                id,
                request_id,
                Outcome::failure(
                    "Function.ResponseSizeTooLarge",
                    format!("Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."),
                ),
            )?;
            return Err(too_large);
        }
    };
    f.complete(id, request_id, Outcome::Success(payload))?;
    Ok(accepted())
}

/// Builds the outcome from a runtime's error report, tolerating runtimes that
/// send no body or something other than Lambda's error JSON.
pub(crate) fn function_error(headers: &HeaderMap, body: Bytes) -> Outcome {
    let header_type =
        headers.get("Lambda-Runtime-Function-Error-Type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let body_type = parsed.as_ref().and_then(|v| v.get("errorType")).and_then(|v| v.as_str()).map(str::to_owned);
    let error_type = body_type.or(header_type).unwrap_or_else(|| "Unhandled".to_owned());
    if parsed.as_ref().is_some_and(|v| v.is_object()) {
        Outcome::Failure { error_type, body }
    } else {
        let message = String::from_utf8_lossy(&body).into_owned();
        Outcome::failure(&error_type, message)
    }
}

async fn read_limited(body: Incoming) -> Result<Bytes> {
    // A single-frame body (the usual case) is passed on without copying.
    match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Error::ResponseTooLarge { limit: MAX_PAYLOAD_BYTES }),
    }
}

fn accepted() -> Response {
    let mut response = Response::new(Body::from(Bytes::from_static(br#"{"status":"OK"}"#)));
    *response.status_mut() = StatusCode::ACCEPTED;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
