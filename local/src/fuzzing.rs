//! What `hemostat-fuzz` (fuzz/) calls: the main listener's checks and
//! parsing of a request, in the order the server applies them, short of
//! running a function (which needs a process). Every byte of a request is
//! the caller's, who may be any local process or web page.

use std::net::SocketAddr;

use axum::body::Bytes;
use http::Request;
use serde_json::Value;

use crate::{
    access::{self, Access, Hosts, Refusal, Token},
    error::Error,
    function_url::{self, EventContext, HttpRequest},
    invocation::Outcome,
    invoke_api,
    runtime_api::{self, Route},
    server::Api,
};

/// One listener's access settings.
pub struct Listener {
    access: Access,
}

/// What became of a request.
#[derive(Debug)]
pub enum Checked {
    /// A Runtime API route of `function`'s `instance`.
    Runtime { function: String, instance: String, route: String },
    /// A Runtime API path with the right secret but no route (404).
    RuntimeNotFound,
    /// An Invoke API request ready for `function` (percent-decoded name, ARN or partial ARN).
    Invoke { identifier: String, function: String, payload: Bytes, client_context: Option<String> },
    /// A function URL request, as the event the function would get.
    Url { function: String, event: Value },
    /// Not an API path: the router's 404.
    Other,
    /// Refused before anything was read.
    Refused(Refusal),
    /// Refused for its contents: the error the caller gets.
    Invalid(String),
}

impl Listener {
    /// A listener on `listen` whose Invoke API takes `token` and whose
    /// Runtime API paths start with `runtime_secret`.
    pub fn new(listen: SocketAddr, token: &str, runtime_secret: &str) -> Listener {
        Listener {
            access: Access {
                token: Token::new(token),
                runtime_secret: Token::new(runtime_secret),
                hosts: Hosts::of(listen),
            },
        }
    }

    /// The request through the server's checks; a function URL is taken as
    /// `AWS_IAM` when `iam_url`.
    pub fn check(&self, request: &Request<Bytes>, iam_url: bool) -> Checked {
        let path = request.uri().path();
        match Api::of(path) {
            Api::Runtime => {
                if let Err(refusal) = self.access.check_api_caller(request.headers()) {
                    return Checked::Refused(refusal);
                }
                match runtime_api::resolve(&self.access, request.method(), path) {
                    Err(refusal) => Checked::Refused(refusal),
                    Ok(None) => Checked::RuntimeNotFound,
                    Ok(Some(target)) => Checked::Runtime {
                        function: target.function.to_owned(),
                        instance: target.instance.to_owned(),
                        route: match target.route {
                            Route::Next => "next".to_owned(),
                            Route::Response(id) => format!("response {id}"),
                            Route::Error(id) => format!("error {id}"),
                            Route::InitError => "init error".to_owned(),
                        },
                    },
                }
            }
            Api::Invoke => {
                if let Err(refusal) = self.access.check_api_caller(request.headers()) {
                    return Checked::Refused(refusal);
                }
                let (parts, body) = request.clone().into_parts();
                match invoke_api::prepare(&self.access, &parts, body) {
                    Ok(prepared) => Checked::Invoke {
                        function: invoke_api::function_name(&prepared.identifier).to_owned(),
                        identifier: prepared.identifier,
                        payload: prepared.payload,
                        client_context: prepared.caller.client_context,
                    },
                    Err(Error::InvokeRefused(refusal)) => Checked::Refused(refusal),
                    Err(e) => Checked::Invalid(e.to_string()),
                }
            }
            Api::Other if function_url::PREFIXES.iter().any(|p| path.starts_with(p)) => {
                let (function, raw_path) = function_url::split_prefixed(path);
                if let Err(refusal) = access::check_host(&self.access.hosts, request.headers()) {
                    return Checked::Refused(refusal);
                }
                let (mut parts, body) = request.clone().into_parts();
                let auth_type = if iam_url { "AWS_IAM" } else { "NONE" };
                if let Err(refusal) = function_url::authorize(&self.access, auth_type, &mut parts, &body) {
                    return Checked::Refused(refusal);
                }
                let request = HttpRequest {
                    method: parts.method,
                    uri: parts.uri,
                    version: parts.version,
                    headers: parts.headers,
                    raw_path,
                    source_ip: "127.0.0.1".to_owned(),
                    body,
                };
                let context = EventContext {
                    account_id: "000000000000".to_owned(),
                    region: "us-east-1".to_owned(),
                    url_id: function_url::url_id(&function),
                    auth_type: auth_type.to_owned(),
                    request_id: "fuzz".to_owned(),
                    time: chrono::Utc::now(),
                };
                Checked::Url { event: function_url::event(&request, &context), function }
            }
            Api::Other => Checked::Other,
        }
    }
}

/// A function's answer to a function URL event, as the HTTP response's
/// status, or why it is not one (a 502).
pub fn url_response(payload: &[u8]) -> Result<u16, String> {
    function_url::http_response(payload).map(|r| r.status().as_u16())
}

/// A runtime's error report (`/invocation/{id}/error`) as the invocation's
/// error type.
pub fn runtime_error(request: &Request<Bytes>) -> String {
    match runtime_api::function_error(request.headers(), request.body().clone()) {
        Outcome::Failure { error_type, .. } => error_type,
        Outcome::Success(_) => String::new(),
    }
}
