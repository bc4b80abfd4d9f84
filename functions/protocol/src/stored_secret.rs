//! Settings whose value names a secret in AWS Secrets Manager instead of
//! holding it: `REDIS_URL=aws-secretsmanager:hemostat/redis-urls#analyzer`.
//! A function reads each such secret once, at start-up (its init phase),
//! through the AWS Parameters and Secrets Lambda Extension, so the secret
//! is in no function configuration (where anyone allowed
//! `lambda:GetFunctionConfiguration` reads environment variables), no
//! template and no stack event, and a rotated secret reaches every new
//! instance without a deploy.
//!
//! The value is `aws-secretsmanager:<secret id>` (a name or an ARN: the
//! whole `SecretString`) or `aws-secretsmanager:<secret id>#<key>` (the
//! string at `<key>` in a `SecretString` holding a JSON object, as
//! `hemostat acl --urls` writes one URL per function). Secret ids never
//! hold `#` (Secrets Manager allows letters, digits and `/_+=.@-`).
//!
//! The extension, a layer on the function, listens on
//! `localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` (2773) and answers
//! `GET /secretsmanager/get?secretId=<id>` with Secrets Manager's own
//! `GetSecretValue` JSON, to a request carrying the function's session
//! token in `X-Aws-Parameters-Secrets-Token` (so nothing else on the
//! instance can ask it). Plain HTTP on loopback: the extension's own
//! interface. No AWS SDK in every function for one read.
//!
//! Errors name the variable and the secret id, never a value: what the
//! extension answers is not echoed either (an answer to a wrong key could
//! hold the secret).

use std::{collections::HashMap, time::Duration};

use serde::Deserialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{backoff::Backoff, error::ProtocolError};

/// What marks a value as a secret's id.
pub const PREFIX: &str = "aws-secretsmanager:";
/// The extension's port setting and its default.
pub const PORT_VARIABLE: &str = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";
const DEFAULT_PORT: u16 = 2773;
/// The header the extension checks against the function's session token.
const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";
/// The extension starts beside the function: it may need a moment.
const PATIENCE: Duration = Duration::from_secs(5);
/// A `GetSecretValue` answer is a few KB at most (a secret is ≤ 64 KB).
const MAX_ANSWER: u64 = 256 * 1024;

/// Where the extension listens and the token it asks for.
#[derive(Clone)]
pub struct Extension {
    pub port: u16,
    pub token: String,
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Extension {
    /// From the function's environment: the port setting, and Lambda's
    /// `AWS_SESSION_TOKEN`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ProtocolError> {
        let port = match env(PORT_VARIABLE) {
            Some(p) => p.parse().map_err(|_| ProtocolError::Config {
                name: PORT_VARIABLE.into(),
                value: p.clone(),
                reason: "expected a port number".into(),
            })?,
            None => DEFAULT_PORT,
        };
        let token = env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()).ok_or_else(|| ProtocolError::Config {
            name: "AWS_SESSION_TOKEN".into(),
            value: String::new(),
            reason: format!("unset: a setting names a secret ({PREFIX}...), which only a Lambda function can read"),
        })?;
        Ok(Extension { port, token })
    }
}

/// One setting's reference: the secret and, for a JSON secret, the key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    secret_id: String,
    key: Option<String>,
}

impl Reference {
    fn parse(name: &str, value: &str) -> Result<Option<Self>, ProtocolError> {
        let Some(rest) = value.strip_prefix(PREFIX) else { return Ok(None) };
        let (secret_id, key) = match rest.split_once('#') {
            Some((id, key)) => (id, Some(key)),
            None => (rest, None),
        };
        let id_ok =
            !secret_id.is_empty() && secret_id.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-:".contains(c));
        if !id_ok || key.is_some_and(str::is_empty) {
            return Err(ProtocolError::Config {
                name: name.into(),
                value: value.into(),
                reason: format!("expected {PREFIX}<secret name or ARN>[#<key in its JSON>]"),
            });
        }
        Ok(Some(Reference { secret_id: secret_id.into(), key: key.map(str::to_owned) }))
    }
}

/// The settings among `vars` that name a secret, each with the value read
/// through `extension`; each secret read once however many settings name
/// it. Empty (and no extension needed) when none does.
pub async fn resolve(
    vars: impl IntoIterator<Item = (String, String)>,
    extension: impl FnOnce() -> Result<Extension, ProtocolError>,
) -> Result<HashMap<String, String>, ProtocolError> {
    let mut wanted = Vec::new();
    for (name, value) in vars {
        if let Some(reference) = Reference::parse(&name, &value)? {
            wanted.push((name, reference));
        }
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let extension = extension()?;
    let mut read: HashMap<String, String> = HashMap::new();
    let mut out = HashMap::new();
    for (name, reference) in wanted {
        let fail = |reason: String| ProtocolError::Config {
            name: name.clone(),
            value: format!("{PREFIX}{}", reference.secret_id),
            reason,
        };
        if !read.contains_key(&reference.secret_id) {
            let text = fetch(&extension, &reference.secret_id).await.map_err(fail)?;
            read.insert(reference.secret_id.clone(), text);
        }
        let text = &read[&reference.secret_id];
        let value = match &reference.key {
            None => text.clone(),
            Some(key) => serde_json::from_str::<HashMap<String, serde_json::Value>>(text)
                .ok()
                .and_then(|mut object| object.remove(key))
                .and_then(|v| v.as_str().map(str::to_owned))
                .ok_or_else(|| fail(format!("the secret is not a JSON object with a string at {key:?}")))?,
        };
        tracing::info!(setting = %name, secret = %reference.secret_id, "setting read from Secrets Manager");
        out.insert(name, value);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct GetSecretValue {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// The secret's `SecretString`, retried with the shared backoff while the
/// extension is not up yet (connection refused) for [`PATIENCE`].
async fn fetch(extension: &Extension, secret_id: &str) -> Result<String, String> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(800));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match get(extension, secret_id).await {
            Err(Attempt::Unreachable(e)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "the secrets extension is not answering yet");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(Attempt::Unreachable(e)) => {
                return Err(format!(
                    "the Parameters and Secrets extension does not answer on localhost:{} ({e}); add its layer to the function",
                    extension.port
                ));
            }
            Err(Attempt::Refused(why)) => return Err(why),
            Ok(answer) => {
                let parsed: GetSecretValue = serde_json::from_slice(&answer)
                    .map_err(|_| "the extension's answer is not GetSecretValue's JSON".to_owned())?;
                return parsed
                    .secret_string
                    .ok_or_else(|| "the secret has no SecretString (a binary secret cannot be a setting)".to_owned());
            }
        }
    }
}

enum Attempt {
    Unreachable(std::io::Error),
    Refused(String),
}

/// One HTTP/1.1 GET to the extension; the body of a 200.
async fn get(extension: &Extension, secret_id: &str) -> Result<Vec<u8>, Attempt> {
    let mut stream = TcpStream::connect(("127.0.0.1", extension.port)).await.map_err(Attempt::Unreachable)?;
    let request = format!(
        "GET /secretsmanager/get?secretId={} HTTP/1.1\r\nHost: localhost\r\n{TOKEN_HEADER}: {}\r\nConnection: close\r\n\r\n",
        encode(secret_id),
        extension.token
    );
    let io = |e: std::io::Error| Attempt::Refused(format!("reading the extension's answer: {e}"));
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).await.map_err(io)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Attempt::Refused("the extension's answer has no HTTP header".into()))?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        // The body is not quoted: whatever it holds stays out of the logs.
        return Err(Attempt::Refused(format!("the extension answered HTTP {status}")));
    }
    let body = answer[split + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked { dechunk(&body).ok_or_else(|| Attempt::Refused("a malformed chunked answer".into())) } else { Ok(body) }
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// Percent-encoding of a query value: everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = |v: &str| Reference::parse("REDIS_URL", v);
        assert_eq!(r("redis://x").unwrap(), None);
        assert_eq!(
            r("aws-secretsmanager:hemostat/redis-urls#analyzer").unwrap(),
            Some(Reference { secret_id: "hemostat/redis-urls".into(), key: Some("analyzer".into()) })
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hemostat/redis-AbCdEf";
        assert_eq!(r(&format!("{PREFIX}{arn}")).unwrap().unwrap().secret_id, arn);
        for bad in ["aws-secretsmanager:", "aws-secretsmanager:a b", "aws-secretsmanager:x#", "aws-secretsmanager:x?y"]
        {
            assert!(r(bad).is_err(), "{bad}");
        }
        assert_eq!(encode("arn:aws:x/y+z"), "arn%3Aaws%3Ax%2Fy%2Bz");
        assert_eq!(dechunk(b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n").unwrap(), b"hello!");
        assert!(dechunk(b"9\r\nhi\r\n").is_none());
    }
}
