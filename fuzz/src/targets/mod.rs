//! The targets, by the crate whose parsers they reach.

use http::Request;

use crate::engine::Target;

mod collector;
mod dashboard;
mod local;
mod protocol;

/// Every target, in the order a run takes them.
pub const ALL: &[Target] = &[
    protocol::ENVELOPE,
    protocol::BATCH,
    protocol::COMMAND,
    protocol::LABELS,
    protocol::RETRY_AFTER,
    protocol::SETTINGS,
    collector::COMMAND_CHECKS,
    collector::REDACT,
    collector::LOGS,
    local::EMULATOR,
    local::FUNCTION_RESPONSE,
    local::TEMPLATE,
    local::SCHEDULE,
    dashboard::DASHBOARD,
];

pub fn find(name: &str) -> Option<&'static Target> {
    ALL.iter().find(|t| t.name == name)
}

/// Fields of a multi-part input, separated by NUL bytes.
fn fields(input: &[u8]) -> Vec<&[u8]> {
    input.split(|b| *b == 0).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A raw HTTP/1.1 request (what a client writes) as the `http` request a
/// server hands its handlers, read by the parser hyper uses; `None` where
/// hyper would have answered 400 itself. `{AMZDATE}` becomes the current
/// SigV4 time, so signed seeds stay within the allowed clock skew.
fn http_request(input: &[u8]) -> Option<Request<bytes::Bytes>> {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let input = replace(input, b"{AMZDATE}", now.as_bytes());
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = parsed.parse(&input).ok()? else {
        return None;
    };
    let mut builder = Request::builder().method(parsed.method?).uri(parsed.path?);
    for h in parsed.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    builder.body(bytes::Bytes::copy_from_slice(&input[length..])).ok()
}

fn replace(input: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine;

    /// Every seed (valid inputs, and the inputs of fixed findings) runs
    /// clean, and each target has some.
    #[test]
    fn every_seed_runs_clean() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        for target in ALL {
            let seeds = engine::seeds(&dir, target.name).unwrap_or_else(|e| panic!("{}: {e}", target.name));
            assert!(!seeds.is_empty(), "{}: no seeds", target.name);
            for (i, seed) in seeds.iter().enumerate() {
                if let Err(message) = engine::execute(target, seed) {
                    panic!("{} seed #{i}: {message}", target.name);
                }
            }
        }
    }

    #[test]
    fn raw_requests_parse_like_a_server_reads_them() {
        let r = http_request(b"POST /a?b=c HTTP/1.1\r\nHost: x\r\nX-Amz-Date: {AMZDATE}\r\n\r\n{}").unwrap();
        assert_eq!((r.method().as_str(), r.uri().path(), r.uri().query()), ("POST", "/a", Some("b=c")));
        assert_eq!(r.body().as_ref(), b"{}");
        assert_eq!(r.headers()["x-amz-date"].len(), 16);
        assert!(http_request(b"POST /a HTTP/1.1\r\nHost").is_none(), "incomplete");
    }
}
