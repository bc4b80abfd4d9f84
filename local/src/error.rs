//! The crate's single error type, and how each error looks on the wire.

use std::{io, net::SocketAddr, path::PathBuf};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::access::Refusal;

/// Everything that can go wrong in the emulator, from startup to a single HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read template {path}: {source}")]
    TemplateRead { path: PathBuf, source: io::Error },

    #[error("cannot parse template {path}: {source}")]
    TemplateParse { path: PathBuf, source: serde_yaml_ng::Error },

    #[error("invalid template: {0}")]
    Template(String),

    #[error("invalid parameter override {0:?}: expected KEY=VALUE")]
    ParameterOverride(String),

    #[error("--env-vars {}: {reason}", path.display())]
    EnvVars { path: std::path::PathBuf, reason: String },

    #[error("invalid --url-port {0:?}: expected FUNCTION=PORT")]
    UrlPortFlag(String),

    #[error("invalid --schedule-interval {0:?}: expected FUNCTION=DURATION, e.g. exporter=2s or *=500ms")]
    ScheduleIntervalFlag(String),

    #[error("--schedule-interval {function}=..: no such function; the template defines: {available}")]
    ScheduleIntervalUnknown { function: String, available: String },

    #[error("unknown function(s) {unknown}; the template defines: {available}")]
    UnknownFunctions { unknown: String, available: String },

    #[error(
        "function {function}: binary not found at {path}; build it first (`cargo build` or `cargo build --bins`), or point --bin-dir at the directory holding it"
    )]
    MissingBinary { function: String, path: PathBuf },

    #[error("cannot determine the binary directory: {0}")]
    BinDir(io::Error),

    #[error("--url-port {function}=..: no such function, or it has no FunctionUrlConfig in the template")]
    UrlPortWithoutUrl { function: String },

    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },

    #[error("function {function}: cannot start {path}: {source}")]
    Spawn { function: String, path: PathBuf, source: io::Error },

    #[error("server failed: {0}")]
    Serve(io::Error),

    // --- Invoke API ---
    #[error("Function not found: {arn}")]
    FunctionNotFound { arn: String },

    #[error("Request must be smaller than {limit} bytes for the InvokeFunction operation")]
    PayloadTooLarge { limit: usize },

    #[error("Unsupported invocation type: {0}")]
    InvalidInvocationType(String),

    #[error("Could not parse request body into json: {0}")]
    InvalidRequestContent(String),

    #[error("Could not read request body: {0}")]
    BodyRead(String),

    #[error("The emulator is shutting down")]
    ShuttingDown,

    // --- Function URLs ---
    #[error(
        "No function URL for {function:?}: the function does not exist or has no FunctionUrlConfig in the template"
    )]
    NoFunctionUrl { function: String },

    #[error("Request must be smaller than {limit} bytes")]
    UrlRequestTooLarge { limit: usize },

    #[error("Internal Server Error")]
    UrlFunctionFailed,

    #[error("Internal Server Error: {0}")]
    UrlInvalidResponse(String),

    // --- Runtime API ---
    #[error("Invalid request ID {0}")]
    UnknownRequestId(String),

    #[error("Unknown function instance {function}/{instance}")]
    UnknownInstance { function: String, instance: String },

    #[error("Response payload exceeded maximum allowed payload size ({limit} bytes)")]
    ResponseTooLarge { limit: usize },

    // --- Access (see `access`): the same refusals, in each API's dialect ---
    #[error("Invoke API refused: {0}")]
    InvokeRefused(Refusal),

    #[error("Runtime API refused: {0}")]
    RuntimeRefused(Refusal),

    #[error("Forbidden: {0}")]
    UrlRefused(Refusal),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::FunctionNotFound { .. } | Error::UnknownInstance { .. } | Error::NoFunctionUrl { .. } => {
                StatusCode::NOT_FOUND
            }
            Error::UrlRequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // What a Function URL answers when the function fails or answers nonsense.
            Error::UrlFunctionFailed | Error::UrlInvalidResponse(_) => StatusCode::BAD_GATEWAY,
            Error::PayloadTooLarge { .. } | Error::ResponseTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::InvalidInvocationType(_)
            | Error::InvalidRequestContent(_)
            | Error::BodyRead(_)
            | Error::UnknownRequestId(_) => StatusCode::BAD_REQUEST,
            Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::InvokeRefused(r) | Error::RuntimeRefused(r) | Error::UrlRefused(r) => {
                if r.is_unauthenticated() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                }
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Invoke API's `x-amzn-ErrorType`, or the Runtime API's `errorType`.
    fn error_type(&self) -> &'static str {
        match self {
            Error::FunctionNotFound { .. } => "ResourceNotFoundException",
            Error::PayloadTooLarge { .. } => "RequestEntityTooLargeException",
            Error::InvalidInvocationType(_) => "InvalidParameterValueException",
            Error::InvalidRequestContent(_) | Error::BodyRead(_) => "InvalidRequestContentException",
            Error::ShuttingDown => "ServiceException",
            Error::UnknownRequestId(_) => "InvalidRequestID",
            Error::UnknownInstance { .. } => "InvalidInstance",
            Error::ResponseTooLarge { .. } => "RequestEntityTooLarge",
            // Lambda's names for the same refusals.
            Error::InvokeRefused(Refusal::NoCredentials) => "MissingAuthenticationTokenException",
            Error::InvokeRefused(Refusal::BadCredentials(_)) => "UnrecognizedClientException",
            Error::InvokeRefused(_) => "AccessDeniedException",
            Error::RuntimeRefused(_) => "Forbidden",
            _ => "ServiceException",
        }
    }

    fn is_function_url(&self) -> bool {
        matches!(
            self,
            Error::NoFunctionUrl { .. }
                | Error::UrlRequestTooLarge { .. }
                | Error::UrlFunctionFailed
                | Error::UrlInvalidResponse(_)
                | Error::UrlRefused(_)
        )
    }

    fn is_runtime_api(&self) -> bool {
        matches!(
            self,
            Error::UnknownRequestId(_)
                | Error::UnknownInstance { .. }
                | Error::ResponseTooLarge { .. }
                | Error::RuntimeRefused(_)
        )
    }

    /// A 401 says which credentials would do.
    fn challenge(&self, response: &mut Response) {
        if self.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"hemostat-local\""));
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let error_type = self.error_type();
        let message = self.to_string();
        // The two APIs disagree on error shape: the Runtime API speaks the
        // function-error dialect, the Invoke API the AWS JSON-REST one.
        if self.is_runtime_api() {
            let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
            return (status, Json(body)).into_response();
        }
        if self.is_function_url() {
            // Function URLs answer errors in API Gateway's `{"Message": ..}` shape.
            let body = serde_json::json!({ "Message": message });
            let mut response = (status, Json(body)).into_response();
            self.challenge(&mut response);
            return response;
        }
        let kind = if status.is_server_error() { "Service" } else { "User" };
        // `Type`/`message` is what AWS sends; `errorType`/`errorMessage` repeat it in
        // the shape `cargo lambda invoke` parses from local emulators, so it can
        // print the reason instead of failing to decode the body.
        let body = serde_json::json!({
            "Type": kind,
            "message": message,
            "errorType": error_type,
            "errorMessage": message,
        });
        let mut response = (status, Json(body)).into_response();
        self.challenge(&mut response);
        let headers = response.headers_mut();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(error_type));
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            headers.insert("x-amzn-RequestId", id);
        }
        response
    }
}
