//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`), as the
//! AWS SDK's `lambda.invoke()` calls it: with the emulator's token, as a bearer
//! token or a SigV4 signature (see `access`).

use std::borrow::Cow;

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header},
    response::Response,
};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::{
    access,
    error::{Error, Result},
    invocation::{CallerContext, Invocation, MAX_PAYLOAD_BYTES, Outcome},
    state::Shared,
};

/// How much of an oversized request is read before giving up on it.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;

// Lowercase and parsed once: a `&str` name is parsed (and case-folded) on every use.
const INVOCATION_TYPE: HeaderName = HeaderName::from_static("x-amz-invocation-type");
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("x-amz-client-context");
const RUNTIME_CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
const RUNTIME_COGNITO_IDENTITY: HeaderName = HeaderName::from_static("lambda-runtime-cognito-identity");
const FUNCTION_ERROR: HeaderName = HeaderName::from_static("x-amz-function-error");
const EXECUTED_VERSION: HeaderName = HeaderName::from_static("x-amz-executed-version");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

const PREFIX: &str = "/2015-03-31/functions/";
const SUFFIX: &str = "/invocations";

/// `POST /2015-03-31/functions/{name}/invocations` (any method: others get a 405).
pub fn is_invoke_path(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

impl InvocationType {
    fn from_headers(headers: &HeaderMap) -> Result<InvocationType> {
        let Some(value) = headers.get(INVOCATION_TYPE) else {
            return Ok(InvocationType::RequestResponse);
        };
        match value.to_str().unwrap_or_default() {
            "RequestResponse" => Ok(InvocationType::RequestResponse),
            "Event" => Ok(InvocationType::Event),
            "DryRun" => Ok(InvocationType::DryRun),
            other => Err(Error::InvalidInvocationType(other.to_owned())),
        }
    }
}

/// Accepts a plain name, `name:qualifier`, a partial ARN (`123:function:name`) or a full ARN.
pub fn function_name(identifier: &str) -> &str {
    let rest = match identifier.find(":function:") {
        Some(at) => &identifier[at + ":function:".len()..],
        None => identifier,
    };
    // Only $LATEST exists locally, so any qualifier is ignored.
    rest.split(':').next().unwrap_or(rest)
}

/// Serves an Invoke API request; the caller has checked [`is_invoke_path`].
pub async fn handle(shared: &Shared, request: Request<Incoming>) -> Result<Response> {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    }
    // A signature covers the body, so it is read before the caller is known
    // (bounded like any payload); nothing else is looked at before.
    let payload = read_payload(body).await?;
    let Prepared { identifier, payload, kind, caller } = prepare(shared.access(), &parts, payload)?;
    let name = function_name(&identifier);
    let function = shared.function(name).ok_or_else(|| Error::FunctionNotFound { arn: shared.arn(name) })?;

    if kind == InvocationType::DryRun {
        return Ok(reply(StatusCode::NO_CONTENT, &crate::invocation::request_id(), Body::empty()));
    }
    let (invocation, outcome) = Invocation::with_caller(payload, caller);
    let request_id = invocation.request_id.clone();

    if kind == InvocationType::Event {
        function.submit_event(invocation, outcome, None);
        return Ok(reply(StatusCode::ACCEPTED, &request_id, Body::empty()));
    }

    function.submit(invocation);
    let outcome = outcome.await.map_err(|_| Error::ShuttingDown)?;
    let mut response = match outcome {
        Outcome::Success(body) => reply(StatusCode::OK, &request_id, Body::from(body)),
        Outcome::Failure { body, .. } => {
            let mut r = reply(StatusCode::OK, &request_id, Body::from(body));
            // AWS reports every runtime-reported error as Unhandled.
            r.headers_mut().insert(FUNCTION_ERROR, HeaderValue::from_static("Unhandled"));
            r
        }
    };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// An Invoke API request once its caller and contents are checked.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The path's function name, ARN or partial ARN, percent-decoded.
    pub(crate) identifier: String,
    /// Valid JSON (`{}` for none).
    pub(crate) payload: Bytes,
    pub(crate) kind: InvocationType,
    pub(crate) caller: CallerContext,
}

/// The caller's credentials first, then the payload, the path and the
/// headers: everything short of finding and running the function.
pub(crate) fn prepare(access: &access::Access, parts: &http::request::Parts, payload: Bytes) -> Result<Prepared> {
    if let Err(refusal) = access.check_credentials(&parts.method, &parts.uri, &parts.headers, &payload) {
        return Err(Error::InvokeRefused(access::logged("invoke", &parts.method, parts.uri.path(), refusal)));
    }
    let payload = json_payload(payload)?;
    let segment = parts.uri.path().strip_prefix(PREFIX).and_then(|rest| rest.strip_suffix(SUFFIX)).unwrap_or_default();
    // SDKs percent-encode the colons of an ARN.
    let identifier = percent_decode(segment).into_owned();
    let kind = InvocationType::from_headers(&parts.headers)?;
    let caller = caller_context(&parts.headers)?;
    Ok(Prepared { identifier, payload, kind, caller })
}

/// `%XX` escapes decoded; anything malformed is left as it is.
fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The caller context: AWS's `X-Amz-Client-Context` (base64 JSON), or, as
/// `cargo lambda invoke` sends them to local emulators, the runtime's own
/// `Lambda-Runtime-Client-Context` / `Lambda-Runtime-Cognito-Identity` (plain JSON).
fn caller_context(headers: &HeaderMap) -> Result<CallerContext> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let invalid =
        |what: &str| Error::InvalidRequestContent(format!("{what} must be a valid Base64-encoded JSON object."));
    let client_context = match headers.get(CLIENT_CONTEXT) {
        Some(value) => {
            let decoded = STANDARD.decode(value.as_bytes()).map_err(|_| invalid("Client context"))?;
            let text = String::from_utf8(decoded).map_err(|_| invalid("Client context"))?;
            Some(json_header(&text).ok_or_else(|| invalid("Client context"))?)
        }
        None => plain_json(headers, RUNTIME_CLIENT_CONTEXT).map_err(|_| invalid("Client context"))?,
    };
    let cognito_identity = plain_json(headers, RUNTIME_COGNITO_IDENTITY).map_err(|_| invalid("Cognito identity"))?;
    Ok(CallerContext {
        client_context: client_context.filter(|c| !c.is_empty()),
        cognito_identity: cognito_identity.filter(|c| !c.is_empty()),
    })
}

fn plain_json(headers: &HeaderMap, name: HeaderName) -> Result<Option<String>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| ())?;
            json_header(text).map(Some).ok_or(())
        }
    }
}

/// `text` as a JSON header value for the runtime, if it is JSON that fits in one.
fn json_header(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    // It travels on as a header value, which cannot hold line breaks.
    let compact = text.replace(['\r', '\n'], "");
    HeaderValue::from_str(&compact).ok()?;
    Some(compact)
}

async fn read_payload(mut body: Incoming) -> Result<Bytes> {
    // Usually the whole payload is one frame, passed on as it is; larger ones
    // arrive in pieces and are joined.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::BodyRead(e.to_string()))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        total += chunk.len();
        if total <= MAX_PAYLOAD_BYTES {
            match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                earlier => {
                    if let Some(earlier) = earlier {
                        joined.extend_from_slice(&earlier);
                    }
                    joined.extend_from_slice(&chunk);
                }
            }
        } else if total > DRAIN_LIMIT_BYTES {
            break;
        }
        // Past the limit we keep draining (up to a point) so the client gets our
        // 413 instead of a connection reset in the middle of its upload.
    }
    if total > MAX_PAYLOAD_BYTES {
        return Err(Error::PayloadTooLarge { limit: MAX_PAYLOAD_BYTES });
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// The payload the function gets: valid JSON, `{}` for none.
fn json_payload(payload: Bytes) -> Result<Bytes> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        // The CLI and SDKs send no body for "no payload"; Lambda hands the function `{}`.
        return Ok(Bytes::from_static(b"{}"));
    }
    // JSON is UTF-8; skipping a value does not check its strings' bytes.
    let text = std::str::from_utf8(&payload)
        .map_err(|e| Error::InvalidRequestContent(format!("the payload is not UTF-8: {e}")))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| Error::InvalidRequestContent(e.to_string()))?;
    Ok(payload)
}

fn reply(status: StatusCode, request_id: &str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(EXECUTED_VERSION, HeaderValue::from_static("$LATEST"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::{function_name, is_invoke_path, json_payload, percent_decode};
    use axum::body::Bytes;

    #[test]
    fn payloads_are_json_in_utf8() {
        assert_eq!(json_payload(Bytes::from_static(b" \n")).unwrap(), Bytes::from_static(b"{}"));
        assert!(json_payload(Bytes::from_static(b"{\"a\":1}")).is_ok());
        assert!(json_payload(Bytes::from_static(b"{\"a\":")).is_err());
        // Found by hemostat-fuzz (emulator): invalid UTF-8 inside a string
        // passed, and the function got a payload that is not JSON.
        assert!(json_payload(Bytes::from_static(b"{\"k\xe2y\":\"value\"}")).is_err());
    }

    #[test]
    fn invoke_paths_and_encoded_arns() {
        assert!(is_invoke_path("/2015-03-31/functions/echo/invocations"));
        assert!(!is_invoke_path("/2015-03-31/functions//invocations"));
        assert!(!is_invoke_path("/2015-03-31/functions/a/b/invocations"));
        assert!(!is_invoke_path("/2015-03-31/functions/echo"));
        assert_eq!(
            percent_decode("arn%3Aaws%3Alambda%3Aus-east-1%3A0%3Afunction%3Aecho"),
            "arn:aws:lambda:us-east-1:0:function:echo"
        );
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
    }

    #[test]
    fn names_arns_and_qualifiers() {
        assert_eq!(function_name("echo"), "echo");
        assert_eq!(function_name("echo:$LATEST"), "echo");
        assert_eq!(function_name("arn:aws:lambda:us-east-1:000000000000:function:echo"), "echo");
        assert_eq!(function_name("arn:aws:lambda:us-east-1:000000000000:function:echo:prod"), "echo");
        assert_eq!(function_name("000000000000:function:echo"), "echo");
        assert_eq!(function_name("hemostat-analyzer"), "hemostat-analyzer");
    }
}
