//! Checking a SigV4-signed request against a secret key: the emulator's token.
//!
//! AWS clients (the SDKs, the CLI, `cargo lambda invoke --remote`) sign
//! every request with a secret access key they never send. Given the token
//! as that key (any access key id), they authenticate to the emulator as
//! they would to Lambda, and the token never crosses the wire. The check
//! signs the request again with the SDK's own signer (`aws-sigv4`), over
//! exactly the headers the client says it signed, at the time it says it
//! signed, and compares the two signatures.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use axum::http::{HeaderMap, Method, Uri};
use subtle::ConstantTimeEq;

/// The `Authorization` scheme of a SigV4 signature.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far the signing time may be from ours, either way (AWS allows 5
/// minutes; one machine's clocks agree, so this only bounds replays).
const SKEW: Duration = Duration::from_secs(300);

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
struct Authorization<'a> {
    access_key: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse(value: &str) -> Option<Authorization<'_>> {
    let fields = value.strip_prefix(ALGORITHM)?.trim();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in fields.split(',').map(str::trim) {
        match field.split_once('=')? {
            ("Credential", v) => credential = Some(v),
            ("SignedHeaders", v) => signed = Some(v),
            ("Signature", v) => signature = Some(v),
            _ => {}
        }
    }
    // access key / yyyymmdd / region / service / aws4_request
    let mut scope = credential?.split('/');
    let (access_key, _date, region, service, terminator) =
        (scope.next()?, scope.next()?, scope.next()?, scope.next()?, scope.next()?);
    if terminator != "aws4_request" || scope.next().is_some() {
        return None;
    }
    Some(Authorization {
        access_key,
        region,
        service,
        signed_headers: signed?.split(';').filter(|h| !h.is_empty()).collect(),
        signature: signature?,
    })
}

/// Whether the request carries a valid signature made with `secret_key` at
/// most [`SKEW`] from `now`; the error says what is wrong.
pub fn verify(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    secret_key: &str,
    now: SystemTime,
) -> Result<(), &'static str> {
    let authorization = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let auth = parse(authorization).ok_or("malformed AWS4-HMAC-SHA256 Authorization header")?;
    if auth.service != "lambda" {
        return Err("the signature's credential scope is not for the lambda service");
    }
    let date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or("no X-Amz-Date header")?;
    let signed_at: SystemTime = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| "malformed X-Amz-Date header")?
        .and_utc()
        .into();
    let skew = now.duration_since(signed_at).unwrap_or_else(|e| e.duration());
    if skew > SKEW {
        return Err("the signature was made more than 5 minutes from now");
    }
    let session_token = headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());

    // SigV4 always signs Host; without it the signer would take the host
    // from the URI, which a server's request line does not have (and
    // panics: found by hemostat-fuzz).
    if !auth.signed_headers.iter().any(|h| h.eq_ignore_ascii_case("host")) {
        return Err("the signature does not cover the Host header");
    }
    // Exactly the headers the client signed; the signer adds X-Amz-Date and
    // X-Amz-Security-Token itself, from the time and the identity.
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let mut values = headers.get_all(*name).iter().peekable();
        if values.peek().is_none() {
            return Err("a header the signature covers is missing");
        }
        for value in values {
            signed.push((*name, value.to_str().map_err(|_| "a signed header is not text")?));
        }
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = SignableRequest::new(method.as_str(), path_and_query, signed.into_iter(), SignableBody::Bytes(body))
        .map_err(|_| "the request cannot be signed again")?;

    let identity =
        Credentials::new(auth.access_key, secret_key, session_token.map(str::to_owned), None, "hemostat-local").into();
    let mut settings = SigningSettings::default();
    // Whatever the client signed is in `signed`, and only that.
    settings.excluded_headers = None;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|_| "the request cannot be signed again")?
        .into();
    let expected = sign(request, &params).map_err(|_| "the request cannot be signed again")?;
    if bool::from(expected.signature().as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err("the signature does not match (not signed with the emulator's token as the secret key?)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Signs like the SDK does (its signer, its default settings).
    fn signed(secret: &str, at: SystemTime, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9001"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-amz-invocation-type", HeaderValue::from_static("RequestResponse"));
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).collect();
        let request = SignableRequest::new(
            "POST",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A0%3Afunction%3Aecho/invocations",
            pairs.into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let identity = Credentials::new("hemostat-local", secret, None, None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("lambda")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        for (name, value) in instructions.headers() {
            headers.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn check(headers: &HeaderMap, body: &[u8], secret: &str, now: SystemTime) -> Result<(), &'static str> {
        let uri: Uri =
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A0%3Afunction%3Aecho/invocations".parse().unwrap();
        verify(&Method::POST, &uri, headers, body, secret, now)
    }

    #[test]
    fn a_signature_made_with_the_token_is_accepted_and_nothing_else() {
        let now = SystemTime::now();
        let body = br#"{"a":1}"#;
        let headers = signed("t0ken", now, body);
        assert_eq!(check(&headers, body, "t0ken", now), Ok(()));
        assert!(check(&headers, body, "other", now).is_err(), "another secret");
        assert!(check(&headers, br#"{"a":2}"#, "t0ken", now).is_err(), "another body");
        let mut moved = headers.clone();
        moved.insert("x-amz-invocation-type", HeaderValue::from_static("Event"));
        assert!(check(&moved, body, "t0ken", now).is_err(), "a signed header changed");
        let mut unsigned_added = headers.clone();
        unsigned_added.insert("x-extra", HeaderValue::from_static("1"));
        assert_eq!(check(&unsigned_added, body, "t0ken", now), Ok(()), "headers outside the signature do not matter");
        let later = now + Duration::from_secs(301);
        assert!(check(&headers, body, "t0ken", later).unwrap_err().contains("5 minutes"));
        let mut missing = headers.clone();
        missing.remove("x-amz-invocation-type");
        assert!(check(&missing, body, "t0ken", now).is_err());
    }

    #[test]
    fn a_signature_without_host_is_refused_not_a_panic() {
        let now = SystemTime::now();
        let date = chrono::DateTime::<chrono::Utc>::from(now).format("%Y%m%dT%H%M%SZ").to_string();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9001"));
        headers.insert("x-amz-date", HeaderValue::from_str(&date).unwrap());
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/lambda/aws4_request, SignedHeaders=x-amz-date, Signature=00",
            ),
        );
        assert_eq!(check(&headers, b"{}", "t0ken", now), Err("the signature does not cover the Host header"));
    }

    #[test]
    fn malformed_authorizations_are_refused() {
        let now = SystemTime::now();
        for bad in [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=a/b/c/lambda, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", HeaderValue::from_static(bad));
            headers.insert("x-amz-date", HeaderValue::from_static("20250101T000000Z"));
            assert!(check(&headers, b"", "t0ken", now).is_err(), "{bad}");
        }
    }
}
