//! Who may call the emulator.
//!
//! The emulator listens on loopback, which every local user, every
//! container on the host network and every web page a local browser opens
//! can reach. The Invoke API would make any of them the responder's caller,
//! and the Runtime API would let them take or answer a function's events.
//! So:
//!
//! - **Browsers are refused** on the Invoke and Runtime APIs: a request with
//!   an `Origin` or a `Sec-Fetch-Site` header comes from a web page (a
//!   no-CORS `text/plain` POST needs no preflight, so CORS alone would not
//!   stop it), and one whose `Host` is not this listener's own address (a
//!   loopback name or the listen address, with its port) was sent to a
//!   name that merely resolves here: DNS rebinding. Function URLs serve
//!   browsers, so there only the `Host` rule applies.
//! - **The Invoke API needs the token** (`HEMOSTAT_LAMBDA_TOKEN`, a
//!   [`Token`]): `Authorization: Bearer <token>`, or a SigV4 signature made
//!   with the token as the secret access key (what the AWS SDK and CLI
//!   send; checked in `sigv4`). A function URL whose `AuthType` is
//!   `AWS_IAM` needs the same; `NONE` is open, as in AWS.
//! - **The Runtime API needs a per-start secret** in its path: the official
//!   runtime client sends no header of ours, but it prefixes every request
//!   with `AWS_LAMBDA_RUNTIME_API`, which only the function processes are
//!   given (`/runtime/<secret>/<function>/<instance>`).
//!
//! Tokens and secrets never reach a log or an answer.

use std::{fmt, net::SocketAddr};

use axum::http::{HeaderMap, Method, Uri, header};
use subtle::ConstantTimeEq;

use crate::sigv4;

/// A secret that callers must present: the emulator's token, or the Runtime
/// API's path secret. `Debug` never shows it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Token {
        Token(value.into())
    }

    /// 64 hex digits from the operating system's random source (two random
    /// UUIDs: 244 random bits).
    pub fn generate() -> Token {
        Token(format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()))
    }

    /// Whether `given` is this token, in time that does not depend on where
    /// they differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(given).into()
    }

    /// The value itself, for the one place that needs it (signing, or a
    /// child's environment). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a request was refused. Its `Display` is what the caller (and the
/// emulator's log) is told; it never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A web page's request (`Origin` or `Sec-Fetch-Site`).
    Browser,
    /// Addressed to a name that is not this listener's (DNS rebinding), or to none.
    Host,
    /// No `Authorization` header at all.
    NoCredentials,
    /// Credentials that are not the token's: the reason.
    BadCredentials(&'static str),
}

impl Refusal {
    /// 401 asks for credentials; everything else is 403.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Refusal::NoCredentials)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Browser => f.write_str("a web page's request (Origin or Sec-Fetch-Site header): browsers may not call this API"),
            Refusal::Host => f.write_str(
                "the Host header is not this emulator's address (127.0.0.1, localhost, [::1] or the listen address, with its port)",
            ),
            Refusal::NoCredentials => f.write_str(
                "missing credentials: send Authorization: Bearer <token>, or sign the request (SigV4) with the token as the secret access key; the token is the emulator's HEMOSTAT_LAMBDA_TOKEN",
            ),
            Refusal::BadCredentials(why) => write!(f, "invalid credentials: {why}"),
        }
    }
}

/// The `Host` values a listener answers: the loopback names and its own
/// address, each with its port.
#[derive(Debug, Clone)]
pub struct Hosts {
    allowed: Vec<String>,
}

impl Hosts {
    pub fn of(listener: SocketAddr) -> Hosts {
        let port = listener.port();
        let mut allowed = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
        // An address the emulator was told to listen on is its own name too
        // (a bridge on another host uses it); the wildcard is nobody's.
        if !listener.ip().is_unspecified() && !listener.ip().is_loopback() {
            allowed.push(listener.to_string());
        }
        if port == 80 {
            allowed.extend(["127.0.0.1".to_owned(), "localhost".to_owned(), "[::1]".to_owned()]);
        }
        Hosts { allowed }
    }

    fn allows(&self, host: &str) -> bool {
        self.allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
    }
}

/// What every request of the main listener is checked against.
#[derive(Debug, Clone)]
pub struct Access {
    /// Required on the Invoke API and `AWS_IAM` function URLs.
    pub token: Token,
    /// The Runtime API's path segment.
    pub runtime_secret: Token,
    /// The main listener's own names.
    pub hosts: Hosts,
}

impl Access {
    /// The Invoke and Runtime APIs: no browser, and addressed to us.
    pub fn check_api_caller(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site") {
            return Err(Refusal::Browser);
        }
        check_host(&self.hosts, headers)
    }

    /// The token, as a bearer token or a SigV4 signature over the request.
    pub fn check_credentials(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Refusal::NoCredentials);
        };
        let value = value.to_str().map_err(|_| Refusal::BadCredentials("the Authorization header is not text"))?;
        if let Some(given) = value.strip_prefix("Bearer ") {
            return if self.token.matches(given.trim().as_bytes()) {
                Ok(())
            } else {
                Err(Refusal::BadCredentials("the bearer token is not the emulator's token"))
            };
        }
        if value.starts_with(sigv4::ALGORITHM) {
            return sigv4::verify(method, uri, headers, body, self.token.expose(), std::time::SystemTime::now())
                .map_err(Refusal::BadCredentials);
        }
        Err(Refusal::BadCredentials("the Authorization header is neither Bearer nor AWS4-HMAC-SHA256"))
    }

    /// The Runtime API's path secret.
    pub fn check_runtime_secret(&self, given: &str) -> Result<(), Refusal> {
        if self.runtime_secret.matches(given.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::BadCredentials("not a Runtime API address this emulator gave out"))
        }
    }
}

/// Logs a refusal, which names no credential, and hands it back. `path`
/// must not carry a secret (the Runtime API's is redacted by its caller).
pub fn logged(api: &'static str, method: &Method, path: &str, refusal: Refusal) -> Refusal {
    tracing::warn!(api, %method, path = ?path, reason = %refusal, "request refused");
    refusal
}

/// The request is addressed to one of `hosts` (HTTP/1.1 always names one).
pub fn check_host(hosts: &Hosts, headers: &HeaderMap) -> Result<(), Refusal> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).ok_or(Refusal::Host)?;
    if hosts.allows(host.trim()) { Ok(()) } else { Err(Refusal::Host) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn access(listen: &str) -> Access {
        Access {
            token: Token::new("t0ken"),
            runtime_secret: Token::new("s3cret"),
            hosts: Hosts::of(listen.parse().unwrap()),
        }
    }

    #[test]
    fn loopback_names_and_the_listen_address_with_its_port() {
        let a = access("127.0.0.1:9001");
        for ok in ["127.0.0.1:9001", "localhost:9001", "LOCALHOST:9001", "[::1]:9001"] {
            assert_eq!(a.check_api_caller(&headers(&[("host", ok)])), Ok(()), "{ok}");
        }
        for bad in ["evil.example:9001", "127.0.0.1:9002", "127.0.0.1", "localhost", "0.0.0.0:9001", "127.0.0.2:9001"] {
            assert_eq!(a.check_api_caller(&headers(&[("host", bad)])), Err(Refusal::Host), "{bad}");
        }
        assert_eq!(a.check_api_caller(&HeaderMap::new()), Err(Refusal::Host), "no Host at all");
        let lan = access("10.1.2.3:9001");
        assert_eq!(lan.check_api_caller(&headers(&[("host", "10.1.2.3:9001")])), Ok(()));
        let any = access("0.0.0.0:9001");
        assert_eq!(any.check_api_caller(&headers(&[("host", "0.0.0.0:9001")])), Err(Refusal::Host));
        assert_eq!(access("127.0.0.1:80").check_api_caller(&headers(&[("host", "localhost")])), Ok(()));
    }

    #[test]
    fn browsers_are_refused_whatever_else_they_send() {
        let a = access("127.0.0.1:9001");
        for browser in [
            headers(&[("host", "127.0.0.1:9001"), ("origin", "http://evil.example")]),
            headers(&[("host", "127.0.0.1:9001"), ("origin", "null")]),
            headers(&[("host", "127.0.0.1:9001"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "127.0.0.1:9001"), ("sec-fetch-site", "same-origin")]),
        ] {
            assert_eq!(a.check_api_caller(&browser), Err(Refusal::Browser), "{browser:?}");
        }
    }

    #[test]
    fn bearer_tokens_are_compared_whole() {
        let a = access("127.0.0.1:9001");
        let check = |h: HeaderMap| a.check_credentials(&Method::POST, &Uri::from_static("/x"), &h, b"{}");
        assert_eq!(check(HeaderMap::new()), Err(Refusal::NoCredentials));
        assert_eq!(check(headers(&[("authorization", "Bearer t0ken")])), Ok(()));
        for bad in ["Bearer t0ke", "Bearer t0ken2", "Bearer ", "Basic dDBrZW4=", "t0ken"] {
            let refused = check(headers(&[("authorization", bad)]));
            assert!(matches!(refused, Err(Refusal::BadCredentials(_))), "{bad}: {refused:?}");
        }
        assert!(a.check_runtime_secret("s3cret").is_ok());
        assert!(a.check_runtime_secret("s3cre").is_err() && a.check_runtime_secret("").is_err());
    }

    #[test]
    fn secrets_are_never_shown() {
        let a = access("127.0.0.1:9001");
        let shown = format!("{a:?}");
        assert!(!shown.contains("t0ken") && !shown.contains("s3cret"), "{shown}");
        let generated = Token::generate();
        assert_eq!(generated.expose().len(), 64);
        assert_ne!(generated.expose(), Token::generate().expose());
        for refusal in [Refusal::Browser, Refusal::Host, Refusal::NoCredentials, Refusal::BadCredentials("x")] {
            assert!(!refusal.to_string().contains("t0ken"));
        }
    }
}
