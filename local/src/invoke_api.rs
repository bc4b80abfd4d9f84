//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`), as the
//! AWS SDK's `lambda.invoke()` calls it.

use std::sync::Arc;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::StreamExt;
use tracing::{info, warn};

use crate::{
    emulator::Shared,
    error::{Error, Result},
    invocation::{CallerContext, Invocation, Outcome},
};

/// Lambda's synchronous request and response payload limit.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// How much of an oversized request is read before giving up on it.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;

pub fn router() -> Router<Arc<Shared>> {
    Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

impl InvocationType {
    fn from_headers(headers: &HeaderMap) -> Result<InvocationType> {
        let Some(value) = headers.get("X-Amz-Invocation-Type") else {
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

async fn invoke(
    State(shared): State<Arc<Shared>>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let name = function_name(&identifier);
    let function = shared
        .function(name)
        .ok_or_else(|| Error::FunctionNotFound {
            arn: shared.arn(name),
        })?;
    let kind = InvocationType::from_headers(&headers)?;
    let caller = caller_context(&headers)?;
    let payload = read_payload(body).await?;

    if kind == InvocationType::DryRun {
        return Ok(reply(
            StatusCode::NO_CONTENT,
            &uuid::Uuid::new_v4().to_string(),
            Body::empty(),
        ));
    }
    let (invocation, outcome) = Invocation::with_caller(payload, caller);
    let request_id = invocation.request_id.clone();
    function.submit(invocation);

    if kind == InvocationType::Event {
        let name = function.name().to_owned();
        let id = request_id.clone();
        // Nobody waits for an Event result; log failures so they are not silent.
        tokio::spawn(async move {
            match outcome.await {
                Ok(Outcome::Failure { body, .. }) => {
                    warn!(function = %name, request_id = %id, error = %String::from_utf8_lossy(&body), "async invocation failed")
                }
                Ok(Outcome::Success(_)) => {
                    info!(function = %name, request_id = %id, "async invocation succeeded")
                }
                Err(_) => {}
            }
        });
        return Ok(reply(StatusCode::ACCEPTED, &request_id, Body::empty()));
    }

    let outcome = outcome.await.map_err(|_| Error::ShuttingDown)?;
    let mut response = match outcome {
        Outcome::Success(body) => reply(StatusCode::OK, &request_id, Body::from(body)),
        Outcome::Failure { body, .. } => {
            let mut r = reply(StatusCode::OK, &request_id, Body::from(body));
            // AWS reports every runtime-reported error as Unhandled.
            r.headers_mut().insert(
                "X-Amz-Function-Error",
                HeaderValue::from_static("Unhandled"),
            );
            r
        }
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The caller context: AWS's `X-Amz-Client-Context` (base64 JSON), or, as
/// `cargo lambda invoke` sends them to local emulators, the runtime's own
/// `Lambda-Runtime-Client-Context` / `Lambda-Runtime-Cognito-Identity` (plain JSON).
fn caller_context(headers: &HeaderMap) -> Result<CallerContext> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let invalid = |what: &str| {
        Error::InvalidRequestContent(format!("{what} must be a valid Base64-encoded JSON object."))
    };
    let client_context = match headers.get("X-Amz-Client-Context") {
        Some(value) => {
            let decoded = STANDARD
                .decode(value.as_bytes())
                .map_err(|_| invalid("Client context"))?;
            let text = String::from_utf8(decoded).map_err(|_| invalid("Client context"))?;
            Some(json_header(&text).ok_or_else(|| invalid("Client context"))?)
        }
        None => plain_json(headers, "Lambda-Runtime-Client-Context")
            .map_err(|_| invalid("Client context"))?,
    };
    let cognito_identity = plain_json(headers, "Lambda-Runtime-Cognito-Identity")
        .map_err(|_| invalid("Cognito identity"))?;
    Ok(CallerContext {
        client_context: client_context.filter(|c| !c.is_empty()),
        cognito_identity: cognito_identity.filter(|c| !c.is_empty()),
    })
}

fn plain_json(headers: &HeaderMap, name: &str) -> Result<Option<String>, ()> {
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

async fn read_payload(body: Body) -> Result<Bytes> {
    let mut stream = body.into_data_stream();
    let mut payload = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BodyRead(e.to_string()))?;
        total += chunk.len();
        if total <= MAX_PAYLOAD_BYTES {
            payload.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT_BYTES {
            break;
        }
        // Past the limit we keep draining (up to a point) so the client gets our
        // 413 instead of a connection reset in the middle of its upload.
    }
    if total > MAX_PAYLOAD_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        // The CLI and SDKs send no body for "no payload"; Lambda hands the function `{}`.
        return Ok(Bytes::from_static(b"{}"));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&payload)
        .map_err(|e| Error::InvalidRequestContent(e.to_string()))?;
    Ok(Bytes::from(payload))
}

fn reply(status: StatusCode, request_id: &str, body: Body) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "X-Amz-Executed-Version",
        HeaderValue::from_static("$LATEST"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-RequestId", id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn names_arns_and_qualifiers() {
        assert_eq!(function_name("echo"), "echo");
        assert_eq!(function_name("echo:$LATEST"), "echo");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:echo"),
            "echo"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:echo:prod"),
            "echo"
        );
        assert_eq!(function_name("000000000000:function:echo"), "echo");
        assert_eq!(function_name("hemostat-analyzer"), "hemostat-analyzer");
    }
}
