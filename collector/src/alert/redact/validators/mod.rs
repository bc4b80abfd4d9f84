//! The last look a rule may take at a match its pattern alone cannot
//! judge: a small fixed set, named by the rules file (`validator = ...`).

mod encoded;
mod placeholders;
mod words;

use regex::{Captures, Match};
use serde::Deserialize;

use placeholders::{env_reference, looks_like_path, placeholder, port_and_path, starred};
use words::{NOT_SECRET_KEYS, PROSE, words};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Validator {
    /// Looks like a credential rather than a word.
    Token,
    /// An `Authorization` value with a scheme, or one that looks like a token.
    Authorization,
    /// An assigned value that is a secret (see [`assigned_value`]).
    Value,
    /// A URL's password, not its port and path.
    UrlPassword,
    /// A generated secret: letters and digits.
    Generated,
    /// Base64 key material: mixed case and digits.
    KeyBody,
    /// A password a program generated and printed alone: capitals, small
    /// letters, digits and a symbol; or 32 hexadecimal digits.
    Strong,
    /// A `Cookie` or `Set-Cookie` value that sets a cookie (not one that
    /// clears it: `session=; Max-Age=0`).
    Cookie,
    /// Base64 of a JSON object that holds a secret-named member.
    EncodedSecret,
}

impl Validator {
    /// Whether `secret`, matched in `line` with `caps`, is one.
    pub(super) fn accepts(self, caps: &Captures<'_>, secret: Match<'_>, line: &str) -> bool {
        let text = secret.as_str();
        match self {
            Validator::Token => looks_like_token(text),
            // "authorization: denied" is prose; "Authorization: Basic x" is
            // not; "Bearer <token>" and "Bearer ${TOKEN}" show where one goes.
            // The first word decides (`Bearer $GITHUB_TOKEN" https://...`,
            // Caddy's `"Authorization":["REDACTED"]`).
            Validator::Authorization => {
                let first = text
                    .trim_start_matches(['[', '"', '\''])
                    .split(['"', '\'', ' ', ',', ']', ')', ';'])
                    .next()
                    .unwrap_or("");
                !placeholder(text.trim_end_matches(['"', '\'', ')', ',', ';', ' ']))
                    && !placeholder(first)
                    && (caps.name("scheme").is_some() || looks_like_token(text))
            }
            Validator::Value => {
                let key = caps.name("key");
                // `/etc/certs/tls.key: PEM_read_bio_PrivateKey() failed`:
                // a file named like a key, in a path (or an ARN's
                // `...:123456789012:secret:db-x`).
                let (before, sep) = key.map_or(("", ""), |k| (&line[..k.start()], &line[k.end()..secret.start()]));
                // `${AWS_SECRET_ACCESS_KEY:?must be set}`: a variable's
                // name in a reference, not a key.
                let in_path = before.ends_with('/')
                    || before.ends_with("${")
                    || windows_path(before)
                    || (sep.starts_with(':')
                        && before.strip_suffix(':').is_some_and(|b| b.ends_with(|c: char| c.is_ascii_alphanumeric())));
                // {"name": "DB_PASSWORD", "value": "x"}: "value" is a key, a
                // string that opens an object's member (after `{`, `,`, or
                // nothing); not `failed for api_key \"x\": invalid`.
                let opening =
                    line[..secret.start()].strip_suffix(['"', '\'']).map(|b| b.trim_end_matches('\\').trim_end());
                let a_key = line[secret.end()..].trim_start_matches(['"', '\'', '\\']).trim_start().starts_with(':')
                    && opening.is_some_and(|b| b.is_empty() || b.ends_with(['{', ',', '[', '(']));
                !in_path
                    && !a_key
                    && !starts_a_sentence(text, &line[secret.end()..])
                    && assigned_value(key.map_or("", |m| m.as_str()), text)
            }
            // `redis://:REDACTED@redis`, wget's `user:*password*@host`.
            Validator::UrlPassword => !port_and_path(text) && !placeholder(text) && !starred(text),
            Validator::Generated => {
                text.len() >= 8
                    && text.bytes().any(|b| b.is_ascii_digit())
                    && text.bytes().any(|b| b.is_ascii_alphabetic())
                    && !ssh_public_key_type(text)
                    // An age recipient (`age1...`) is a public key.
                    && !(text.starts_with("age1") && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
            }
            Validator::KeyBody => {
                text.bytes().any(|b| b.is_ascii_uppercase())
                    && text.bytes().any(|b| b.is_ascii_lowercase())
                    && text.bytes().any(|b| b.is_ascii_digit())
            }
            Validator::Strong => {
                (text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
                    || !assignment(text)
                        && mixed(text)
                        && text.bytes().any(|b| b.is_ascii_uppercase())
                        && text.bytes().any(|b| b.is_ascii_lowercase())
                        && text.bytes().any(|b| b.is_ascii_digit())
                        && text.bytes().any(|b| !b.is_ascii_alphanumeric())
            }
            Validator::Cookie => sets_a_cookie(text),
            Validator::EncodedSecret => encoded::holds_a_secret(text),
        }
    }
}

/// `C:\app\secrets\tls.key: ...`, `\\host\share\db.key`: the text before a
/// key, ending in a backslash, is a Windows path; not `...\r\nX-Api-Key:`,
/// an escaped line break in a dumped request (whose key the rules then see
/// starting at the `n`).
fn windows_path(before: &str) -> bool {
    let word = before.rsplit([' ', '\t', '"', '\'', '=', '(']).next().unwrap_or("");
    word.ends_with('\\')
        && (word.starts_with("\\\\") || word.as_bytes().get(1..3) == Some(b":\\") || word.starts_with(".\\"))
}

/// A cookie header's value sets at least one cookie: a `name=value` pair
/// with a value that is not a cookie attribute (`Path=/`, `Max-Age=0`);
/// or, without any pair, a value that looks like a token.
fn sets_a_cookie(value: &str) -> bool {
    const ATTRIBUTES: &[&str] = &[
        "path",
        "domain",
        "expires",
        "max-age",
        "samesite",
        "secure",
        "httponly",
        "priority",
        "partitioned",
        "version",
    ];
    let pairs: Vec<(&str, &str)> =
        value.split(';').filter_map(|p| p.split_once('=')).map(|(n, v)| (n.trim(), v.trim())).collect();
    if pairs.is_empty() {
        return looks_like_token(value);
    }
    pairs
        .iter()
        .any(|(name, v)| !v.is_empty() && !placeholder(v) && !ATTRIBUTES.contains(&name.to_ascii_lowercase().as_str()))
}

/// An SSH public key's type, the word before its base64 blob: a key meant
/// to be shown (`SSH_KEY=ssh-ed25519 AAAA...`, "added authorized key:
/// ssh-ed25519 AAAA...").
fn ssh_public_key_type(word: &str) -> bool {
    matches!(
        word,
        "ssh-rsa"
            | "ssh-dss"
            | "ssh-ed25519"
            | "ssh-ed448"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
            | "sk-ssh-ed25519@openssh.com"
            | "sk-ecdsa-sha2-nistp256@openssh.com"
    ) || word.ends_with("-cert-v01@openssh.com")
}

/// Characters of its four kinds (capitals, small letters, digits, symbols)
/// change from one to the next at least every other character, as in a
/// generated password (`eV_RLT1Vc-=HFw`), not in a name (`Version-2024.05_RC1`).
fn mixed(s: &str) -> bool {
    let kind = |b: &u8| match b {
        b'A'..=b'Z' => 0,
        b'a'..=b'z' => 1,
        b'0'..=b'9' => 2,
        _ => 3,
    };
    let kinds: Vec<u8> = s.as_bytes().iter().map(kind).collect();
    let changes = kinds.windows(2).filter(|w| w[0] != w[1]).count();
    changes * 2 >= kinds.len().saturating_sub(1)
}

/// `HOSTNAME=3f4e8a9b2c1d`: a name (letters, digits, `_`, `.`) assigned a
/// value, which the assignment rules judge by the name.
fn assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, value)| {
        !value.is_empty()
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    })
}

/// A bare word of letters (small but the first) followed by a word of
/// small letters is the start of a sentence, not a value: `passwd: password
/// updated successfully`, `passwd: Authentication token manipulation
/// error`, `token: expired for user 3`. (`password: hunter2` and `token=abc def`
/// are values; so is a value that runs to the end of its line.)
fn starts_a_sentence(value: &str, after: &str) -> bool {
    value.bytes().skip(1).all(|b| b.is_ascii_lowercase())
        && value.starts_with(|c: char| c.is_ascii_alphabetic())
        && after.strip_prefix(' ').is_some_and(|rest| {
            let next = rest.split(' ').next().unwrap_or("").trim_end_matches(['.', ',', ';', '!']);
            !next.is_empty() && next.bytes().all(|b| b.is_ascii_lowercase())
        })
}

/// Looks like a credential rather than a word: long enough, and with a
/// digit, a symbol, or inner capitals. "Bearer authentication" is a phrase;
/// "Bearer abc123..." is a token.
pub(super) fn looks_like_token(s: &str) -> bool {
    let inner_upper = s.chars().skip(1).any(|c| c.is_ascii_uppercase()) && s.chars().any(|c| c.is_ascii_lowercase());
    s.len() >= 24 || (s.len() >= 8 && (s.chars().any(|c| !c.is_ascii_alphabetic()) || inner_upper))
}

/// The value of a secret-named key, unless it holds none: a placeholder
/// (`null`, `${DB_PASSWORD}`, Terraform's `(sensitive value)`), a file path
/// (`GOOGLE_APPLICATION_CREDENTIALS=/secrets/sa.json`), the shell's working
/// directory (`PWD=/app`, `OLDPWD=/`), an SSH public key, or the value of a
/// `*_KEY` whose name
/// says what kind of key it is (`ROUTING_KEY`, `primaryKey`, `GPG_KEY`).
pub(super) fn assigned_value(key: &str, value: &str) -> bool {
    // The first word, for a value that runs to the end of its line
    // (`PGPASSWORD=$PGPASS psql -h db`).
    let first = value.split_whitespace().next().unwrap_or("").trim_matches(|c| c == '"' || c == '\'');
    if placeholder(value) || env_reference(first) || looks_like_path(value) || PROSE.contains(&first) {
        return false;
    }
    // A sentence about the secret: `passwd: password updated successfully`,
    // `token: token expired`.
    if value.contains(' ') && matches!(first, "password" | "passwd" | "passphrase" | "token" | "secret" | "key") {
        return false;
    }
    // A sentence: three words or more, one of them a word that joins a
    // sentence (`token: expired for user 12`; a passphrase such as
    // `correct horse battery staple` has none).
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.len() >= 3
        && parts.iter().all(|w| w.trim_end_matches(['.', ',', ';', '!']).bytes().all(|b| b.is_ascii_alphanumeric()))
        && parts.iter().any(|w| PROSE.contains(&w.to_ascii_lowercase().as_str()))
    {
        return false;
    }
    // The passwd program's messages: `passwd: Authentication token
    // manipulation error`.
    if key == "passwd" && value.contains(' ') {
        return false;
    }
    // An SSH public key (`SSH_KEY=ssh-ed25519 AAAA...`) is meant to be shown.
    if ssh_public_key_type(first) {
        return false;
    }
    let words = words(key);
    // `NEXT_PUBLIC_*` is built into the pages a browser loads, and a
    // publishable key (Stripe's, Supabase's) is meant to be: neither is a
    // secret.
    if words.iter().any(|w| w == "publishable")
        || words.first().is_some_and(|w| w == "next") && words.get(1).is_some_and(|w| w == "public")
    {
        return false;
    }
    let last = words.last().map(String::as_str).unwrap_or("");
    if matches!(last, "pwd" | "oldpwd") && words.len() == 1 && (value.starts_with('/') || value.starts_with('~')) {
        return false;
    }
    if last == "key" && words.len() >= 2 {
        // An ARN names a key (KMS), it is not one.
        return !NOT_SECRET_KEYS.contains(&words[words.len() - 2].as_str()) && !value.starts_with("arn:");
    }
    true
}

#[cfg(test)]
mod tests;
