//! The local emulator: its listener's checks of every request (Invoke
//! API, Runtime API, function URLs), functions' answers, the template and
//! schedule expressions.

use std::{net::SocketAddr, sync::LazyLock};

use hemostat_local::{
    Expression, Refusal, Template, TemplateSettings,
    fuzzing::{Checked, Listener, runtime_error, url_response},
    parse_interval_flag,
};
use http::header;

use super::{http_request, text};
use crate::engine::{Target, kind, path};

const TOKEN: &str = "fuzz-token";
const SECRET: &str = "fuzz-secret";

static LISTENER: LazyLock<Listener> =
    LazyLock::new(|| Listener::new(SocketAddr::from(([127, 0, 0, 1], 9001)), TOKEN, SECRET));

/// A raw HTTP request to the emulator's main listener.
pub const EMULATOR: Target = Target {
    name: "emulator",
    about: "raw HTTP to the emulator: browser, Host, token and Runtime secret checks, then the route and payload",
    dictionary: &[
        "POST ",
        "GET ",
        " HTTP/1.1\r\n",
        "\r\n",
        "Host: 127.0.0.1:9001\r\n",
        "Host: localhost:9001\r\n",
        "Host: evil.example\r\n",
        "Origin: http://evil.example\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
        "Authorization: Bearer fuzz-token\r\n",
        "Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n",
        "X-Amz-Date: {AMZDATE}\r\n",
        "X-Amz-Invocation-Type: Event\r\n",
        "X-Amz-Client-Context: eyJhIjoxfQ==\r\n",
        "Lambda-Runtime-Client-Context: {}\r\n",
        "Lambda-Runtime-Function-Error-Type: E\r\n",
        "/2015-03-31/functions/",
        "/invocations",
        "/runtime/fuzz-secret/",
        "/2018-06-01/runtime/invocation/",
        "/next",
        "/response",
        "/error",
        "init/error",
        "/urls/",
        "/lambda-url/",
        "arn%3Aaws%3Alambda%3Aus-east-1%3A0%3Afunction%3A",
        "%",
        "?a=1&a=2",
        "Cookie: a=1; b=2\r\n",
    ],
    run: emulator,
};

fn emulator(input: &[u8]) -> u64 {
    let Some(request) = http_request(input) else { return path(&["unparsed"]) };
    let headers = request.headers();
    let browser = headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(|h| h.trim().to_ascii_lowercase());
    let host_ok = host.as_deref().is_some_and(|h| matches!(h, "127.0.0.1:9001" | "localhost:9001" | "[::1]:9001"));
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::trim_end);
    let iam_url = input.len().is_multiple_of(2);
    let checked = LISTENER.check(&request, iam_url);
    match &checked {
        Checked::Runtime { .. } | Checked::RuntimeNotFound => {
            assert!(!browser && host_ok, "a browser or a foreign Host reached the Runtime API");
            let rest = request.uri().path().strip_prefix(&format!("/runtime/{SECRET}"));
            assert!(rest.is_some_and(|r| r.is_empty() || r.starts_with('/')), "the Runtime API without its secret");
            let _ = runtime_error(&request);
        }
        Checked::Invoke { payload, function, identifier, .. } => {
            assert!(!browser && host_ok, "a browser or a foreign Host reached the Invoke API");
            assert!(
                bearer.and_then(|b| b.strip_prefix("Bearer ")).map(str::trim) == Some(TOKEN)
                    || bearer.is_some_and(|b| b.starts_with("AWS4-HMAC-SHA256")),
                "invoked without the token: {bearer:?}"
            );
            assert!(serde_json::from_slice::<serde_json::Value>(payload).is_ok(), "a payload that is not JSON");
            assert!(
                !function.contains(':') && identifier.contains(function.as_str()),
                "name {function:?} of {identifier:?}"
            );
        }
        Checked::Url { event, .. } => {
            assert!(host_ok, "a foreign Host reached a function URL");
            // An AWS_IAM URL takes the token and keeps it from the function
            // (a NONE URL passes whatever its caller chose to send, as AWS does).
            let auth = event["headers"].get("authorization").and_then(|v| v.as_str());
            assert!(!iam_url || auth.is_none_or(|a| !a.contains(TOKEN)), "the token reached a function: {auth:?}");
        }
        Checked::Refused(Refusal::Browser) => assert!(browser),
        Checked::Refused(_) | Checked::Invalid(_) | Checked::Other => {}
    }
    path(&[match &checked {
        Checked::Runtime { route, .. } => route.split(' ').next().unwrap_or_default(),
        Checked::RuntimeNotFound => "runtime 404",
        Checked::Invoke { client_context, .. } => {
            if client_context.is_some() {
                "invoke with context"
            } else {
                "invoke"
            }
        }
        Checked::Url { .. } => "url",
        Checked::Other => "other",
        Checked::Refused(r) => match r {
            Refusal::Browser => "browser",
            Refusal::Host => "host",
            Refusal::NoCredentials => "no credentials",
            Refusal::BadCredentials(why) => why,
        },
        Checked::Invalid(why) => kind(why),
    }])
}

/// A function's answer to a function URL event (API Gateway v2 response).
pub const FUNCTION_RESPONSE: Target = Target {
    name: "function-response",
    about: "a function URL's response payload to HTTP (status, headers, cookies, base64 body)",
    dictionary: &[
        "\"statusCode\"",
        "\"headers\"",
        "\"multiValueHeaders\"",
        "\"cookies\"",
        "\"body\"",
        "\"isBase64Encoded\"",
        "true",
        "null",
        "200",
        "99",
        "1000",
        "65536",
        "\"\\r\\n\"",
        "\"x y\"",
        "{",
        "}",
        "[",
        "]",
    ],
    run: function_response,
};

fn function_response(input: &[u8]) -> u64 {
    match url_response(input) {
        Ok(status) => {
            assert!((100..1000).contains(&status));
            path(&["ok", &(status / 100).to_string()])
        }
        Err(why) => path(&["bad", &kind(&why).split_whitespace().take(3).collect::<Vec<_>>().join(" ")]),
    }
}

/// SAM templates (YAML with intrinsics).
pub const TEMPLATE: Target = Target {
    name: "template",
    about: "SAM template.yaml: Parameters, Globals, intrinsics (!Ref, !Sub, !If, ...), functions, schedules",
    dictionary: &[
        "Resources:\n",
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n",
        "      Handler: bootstrap\n",
        "      CodeUri: ",
        "      Environment:\n        Variables:\n",
        "!Ref ",
        "!Sub ",
        "!If ",
        "!GetAtt ",
        "!Join ",
        "!Select ",
        "!Equals ",
        "Fn::Sub: ",
        "${AWS::Region}",
        "${",
        "}",
        "Conditions:\n",
        "Parameters:\n",
        "Globals:\n  Function:\n",
        "      Events:\n        Tick:\n          Type: Schedule\n          Properties:\n            Schedule: ",
        "rate(1 minute)",
        "cron(0 12 * * ? *)",
        "MemorySize: ",
        "Timeout: ",
        "ReservedConcurrentExecutions: ",
        "FunctionUrlConfig:\n",
        "AuthType: AWS_IAM",
        "&a ",
        "*a",
        "<<: ",
        "- ",
        ": ",
        "\n",
        "  ",
    ],
    run: template,
};

fn template(input: &[u8]) -> u64 {
    let yaml = text(input);
    match Template::parse(&yaml, &TemplateSettings::default()) {
        Ok(t) => path(&["ok", &t.functions.len().min(4).to_string()]),
        Err(e) => path(&["error", kind(&e.to_string())]),
    }
}

/// `rate(...)`, `cron(...)` and `--schedule-interval` flags.
pub const SCHEDULE: Target = Target {
    name: "schedule",
    about: "schedule expressions and --schedule-interval: parsed, next time strictly later",
    dictionary: &[
        "rate(", "cron(", ")", " minute", " minutes", " hour", " days", "*", "?", "/", ",", "-", "L", "W", "#", "MON",
        "JAN", "=", "2s", "0", "59", "1970", "2199",
    ],
    run: schedule,
};

fn schedule(input: &[u8]) -> u64 {
    let value = text(input);
    let flag = parse_interval_flag(&value);
    let expression = Expression::parse(&value);
    if let Ok(Expression::Rate(d)) = &expression {
        assert!(!d.is_zero(), "a zero rate");
    }
    let mut next = "none";
    if let Ok(Expression::Cron(e)) = &expression {
        let after = chrono::DateTime::from_timestamp(1_764_590_400, 0).expect("a fixed time");
        if let Some(at) = e.next_after(after) {
            assert!(at > after, "next {at} is not after {after}");
            next = "next";
        }
    }
    path(&[
        if flag.is_ok() { "flag" } else { "" },
        match &expression {
            Ok(_) => "expression",
            Err(e) => kind(e),
        },
        next,
    ])
}
