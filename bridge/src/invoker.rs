//! Invoking a function through the Lambda Invoke API: the trait the
//! consumer is generic over, and the plain-HTTP client. The SDK client
//! ([`crate::lambda_invoker`]) builds on this module, so the choice between
//! the two ([`crate::AnyInvoker`]) lives in the crate root, which sees both.

use std::{future::Future, time::Duration};

use bytes::Bytes;
use hemostat_protocol::secret::Secret;
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use crate::error::BridgeError;

/// How an invocation ended, as Lambda reports it.
#[derive(Debug)]
pub enum Invocation {
    /// The function returned; its response body.
    Ok(Bytes),
    /// The function failed (`X-Amz-Function-Error`); Lambda's error body.
    FunctionError(String),
}

pub trait Invoker: Clone + Send + Sync + 'static {
    fn invoke(&self, function: &str, payload: Bytes) -> impl Future<Output = Result<Invocation, BridgeError>> + Send;
}

/// Speaks the Invoke API over plain HTTP, unsigned: the local emulator, or a
/// Lambda-compatible endpoint that needs no request signing. Not for AWS.
#[derive(Clone)]
pub struct HttpInvoker {
    endpoint: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    timeout: Duration,
    /// `Bearer <the emulator's token>`, marked sensitive.
    authorization: Option<HeaderValue>,
}

impl HttpInvoker {
    /// `token`: the emulator's (`HEMOSTAT_LAMBDA_TOKEN`), sent as a bearer
    /// token with every request.
    pub fn new(endpoint: &str, timeout: Duration, token: Option<&Secret>) -> Result<Self, BridgeError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !endpoint.starts_with("http://") || endpoint.parse::<http::Uri>().is_err() {
            return Err(BridgeError::Endpoint(endpoint));
        }
        let authorization = match token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| BridgeError::Config("HEMOSTAT_LAMBDA_TOKEN is not a valid header value".into()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build_http();
        Ok(HttpInvoker { endpoint, client, timeout, authorization })
    }
}

impl Invoker for HttpInvoker {
    async fn invoke(&self, function: &str, payload: Bytes) -> Result<Invocation, BridgeError> {
        let fail = |reason: String| BridgeError::Invoke { function: function.to_owned(), reason };
        let mut request = http::Request::post(format!("{}/2015-03-31/functions/{function}/invocations", self.endpoint))
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .body(Full::new(payload))
            .map_err(|e| fail(e.to_string()))?;
        if let Some(value) = &self.authorization {
            request.headers_mut().insert(http::header::AUTHORIZATION, value.clone());
        }
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| fail(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let function_error =
            response.headers().get("x-amz-function-error").map(|v| v.to_str().unwrap_or("?").to_owned());
        let body = response.into_body().collect().await.map_err(|e| fail(e.to_string()))?.to_bytes();
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))));
        }
        Ok(match function_error {
            Some(kind) => Invocation::FunctionError(format!("{kind}: {}", String::from_utf8_lossy(&body))),
            None => Invocation::Ok(body),
        })
    }
}
