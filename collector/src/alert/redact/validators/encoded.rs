//! A secret encoded whole: base64 of a JSON object (a service account key,
//! a credentials payload) that names a secret among its members.

use std::sync::LazyLock;

use regex::Regex;

/// A member that holds a secret, as the decoded object spells it:
/// `"password": "x"`, `"private_key": "-----BEGIN ..."`, `"client_secret"`.
static SECRET_MEMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)"[a-z0-9_.-]*(?:password|passwd|secret|token|private_key|privatekey|api_?key|credentials?)"[ \t\r\n]*:[ \t\r\n]*"[^"]{4,}"#,
    )
    .expect("constant pattern compiles")
});

/// `text`, base64 (standard or URL-safe, padded or not), decodes to JSON
/// that has a secret-named member with a value.
pub(super) fn holds_a_secret(text: &str) -> bool {
    let decoded = decode(text);
    SECRET_MEMBER.is_match(&String::from_utf8_lossy(&decoded))
}

/// The bytes of base64 `text`, up to its first character that is not
/// base64 (padding included); a last incomplete group is dropped.
fn decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => break,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_decoded() {
        assert_eq!(decode("eyJhIjoxfQ=="), br#"{"a":1}"#);
        assert_eq!(decode("eyJhIjoxfQ"), br#"{"a":1}"#);
        assert_eq!(decode(""), b"");
    }
}
