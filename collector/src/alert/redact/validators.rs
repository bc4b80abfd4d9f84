//! The last look a rule may take at a match its pattern alone cannot
//! judge: a small fixed set, named by the rules file (`validator = ...`).

use regex::{Captures, Match};
use serde::Deserialize;

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
                // {"name": "DB_PASSWORD", "value": "x"}: "value" is a key.
                let a_key = line[secret.end()..].trim_start_matches(['"', '\'', '\\']).trim_start().starts_with(':')
                    && line[..secret.start()].ends_with(['"', '\'']);
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

/// Words that follow a key in a sentence, not as its value: "Using
/// --password via the CLI is insecure", "token: is missing".
const PROSE: &[&str] = &[
    "a",
    "an",
    "the",
    "is",
    "are",
    "was",
    "were",
    "be",
    "not",
    "via",
    "from",
    "with",
    "in",
    "on",
    "for",
    "to",
    "and",
    "or",
    "of",
    "instead",
    "must",
    "should",
    "will",
    "can",
    "cannot",
    "required",
    "missing",
    "flag",
    "option",
    "argument",
    "parameter",
    "deprecated",
];

/// What comes before `_KEY` when the key is no secret: a database or queue
/// key, a cache key, a public key, a key's fingerprint.
const NOT_SECRET_KEYS: &[&str] = &[
    "primary",
    "foreign",
    "sort",
    "partition",
    "clustering",
    "routing",
    "shard",
    "hash",
    "row",
    "idempotency",
    "object",
    "s3",
    "unique",
    "group",
    "index",
    "lookup",
    "dedup",
    "dedupe",
    "cache",
    "public",
    "pub",
    "host",
    "gpg",
    "pgp",
    "kms",
    "message",
    "event",
    "composite",
    "natural",
    "join",
    // `Sec-WebSocket-Key`: a nonce of the WebSocket handshake (RFC 6455).
    "socket",
    "websocket",
];

/// A key's words, lowercase: `DB_PASSWORD` -> db, password; `primaryKey`
/// -> primary, key; `-Dssl.keyStorePassword` -> d, ssl, key, store, password.
fn words(key: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_lowercase());
    }
    words.extend((!current.is_empty()).then_some(current));
    words
}

/// A value that stands for a secret without being one: a word that means
/// none (`null`, YAML's `~`), the value of a switch (`0`, `1`, `yes`), a
/// mark that hides one (`****`, `xxxxxxxx`, `<redacted>`), a template's or
/// a format's slot (`${DB_PASSWORD}`, `{{ .Values.token }}`,
/// `%(password)s`, `<your-token-here>`, `{password}`), an SQL statement's
/// parameter (`password_hash = $1`, `api_key = ?`, `:token`), a YAML tag
/// that says the value is none or encrypted (`!!null`, Ansible's `!vault
/// |`), or a remark in parentheses (`(printed to /var/lib/mysql/root.pw)`).
pub(super) fn placeholder(value: &str) -> bool {
    let first = value.split_whitespace().next().unwrap_or("");
    let lower = value.to_ascii_lowercase();
    let word = lower.trim_matches(|c| matches!(c, '"' | '\'' | '<' | '>' | '[' | ']' | '(' | ')'));
    // `<your-token-here>`, `{password}`, `{DB_PASSWORD}`, `{}`: a name in
    // brackets (not `{p@ss;w0rd}`, ODBC's quoting of a password).
    let slot = |open: char, close: char| {
        value.strip_prefix(open).and_then(|v| v.strip_suffix(close)).is_some_and(|name| {
            let lower = name.bytes().all(|b| !b.is_ascii_uppercase());
            let upper = name.bytes().all(|b| !b.is_ascii_lowercase());
            (lower || upper)
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' '))
                && (open == '{' || name.bytes().any(|b| b.is_ascii_alphabetic()))
        })
    };
    let masked = value.len() >= 3 && value.chars().all(|c| matches!(c, 'x' | 'X' | '*' | '#' | '•' | '.'));
    let parameter = value == "?"
        || value.strip_prefix('$').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || matches!(value, "%s" | "%d" | "%r")
        || value.strip_prefix([':', '@']).is_some_and(|n| {
            n.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    // A tokenizer's special tokens (`</s>`, `<pad>`), `<` a name `>`.
    let tag = value
        .strip_prefix("</")
        .and_then(|v| v.strip_suffix('>'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'|'));
    // `REPLACE_ME`, `YOUR_API_KEY_HERE`: words that ask for one (not
    // `changeme`, a default password that works).
    let ask = {
        let up = value.to_ascii_uppercase();
        value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && (["REPLACE", "YOUR_", "YOUR-", "INSERT_", "ENTER_"].iter().any(|p| up.starts_with(p))
                || up.ends_with("_HERE")
                || up.ends_with("-HERE"))
    };
    let remark = first.strip_prefix('(').is_some_and(|w| {
        let w = w.trim_end_matches(')');
        !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    });
    masked
        || tag
        || ask
        || parameter
        || remark
        || slot('<', '>')
        || slot('{', '}')
        || matches!(first, "!vault" | "!!null" | "~" | "stdin")
        // Where the secret is, not the secret: openssl's `-pass file:/run/x`,
        // `env:VAR`, `fd:3`; a 1Password secret reference `op://vault/item/field`.
        || ["file:", "env:", "fd:", "op://"].iter().any(|p| value.starts_with(p))
        // Encrypted to be stored in the open: SOPS' `ENC[AES256_GCM,...`,
        // a Vault audit log's `hmac-sha256:...`; a reference to where the
        // value is: `os.environ['X']`, `process.env.X`, Ruby's `ENV['X']`,
        // Spring's `@Value("${x}")`, Grafana's `$__file{...}`, a
        // Kubernetes `secretKeyRef`.
        || ["ENC[", "hmac-sha256:", "os.environ", "os.getenv(", "process.env.", "ENV[", "ENV.fetch(", "@Value(", "$__", "secretKeyRef"]
            .iter()
            .any(|p| value.starts_with(p))
        || sealed_secret(value)
        || matches!(
        word,
        "" | "null"
            | "nil"
            | "none"
            | "undefined"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "empty"
            | "unset"
            | "sensitive"
            | "sensitive value"
            | "known"
            | "known after apply"
            | "redacted"
            | "hidden"
            | "filtered"
            | "masked"
            | "omitted"
            | "0"
            | "1"
    ) || ["${", "{{", "$(", "<%", "#{", "%("].iter().any(|p| value.starts_with(p))
        || env_reference(value)
}

/// A Bitnami SealedSecret's ciphertext (`AgB...`, hundreds of base64
/// characters): encrypted to a cluster's key, to be stored in the open.
fn sealed_secret(value: &str) -> bool {
    value.len() >= 300
        && value.starts_with("Ag")
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// `$DB_PASSWORD`, `%DB_PASSWORD%`: a reference to a variable (uppercase,
/// as environment variables are named; `$ecret1` may be a password).
fn env_reference(value: &str) -> bool {
    let name = match (value.strip_prefix('$'), value.strip_prefix('%').and_then(|v| v.strip_suffix('%'))) {
        (Some(name), _) | (None, Some(name)) => name,
        _ => return false,
    };
    name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A file path: absolute, relative (`./`, `../`), home (`~/`) or Windows
/// (`C:\`), of path characters, with two or more parts or a file
/// extension, none of them random (`/K7MDENG/bPxRfiCY` is a password).
fn looks_like_path(value: &str) -> bool {
    let rest = ["~/", "./", "../", "/"].iter().find_map(|p| value.strip_prefix(p)).or_else(|| {
        let b = value.as_bytes();
        (b.len() > 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\').then(|| &value[3..])
    });
    let Some(rest) = rest else { return false };
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'/' | b'\\')) {
        return false;
    }
    let parts: Vec<&str> = rest.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let extension = parts.last().and_then(|p| p.rsplit_once('.')).is_some_and(|(stem, ext)| {
        !stem.is_empty() && (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    (parts.len() >= 2 || extension) && !parts.iter().any(|p| random(p))
}

/// A random string rather than a name: long, and either letters, digits
/// and both cases at once, or case changing more than a name's does
/// (`PostgreSQL` once, `bPxRfiCY` three times).
fn random(s: &str) -> bool {
    let b = s.as_bytes();
    let (upper, lower, digit) =
        (b.iter().any(u8::is_ascii_uppercase), b.iter().any(u8::is_ascii_lowercase), b.iter().any(u8::is_ascii_digit));
    let humps = b.windows(2).filter(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase()).count();
    b.len() >= 8 && ((upper && lower && digit) || humps >= 2)
}

/// `*password*`: a word between stars, as wget shows a hidden password.
fn starred(s: &str) -> bool {
    s.len() > 2 && s.starts_with('*') && s.ends_with('*')
}

/// `8080/users/a` of `http://api:8080/users/a@b.c`: a port and a path.
fn port_and_path(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && s.as_bytes().get(digits) == Some(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_separators_and_humps() {
        assert_eq!(words("DB_PASSWORD"), ["db", "password"]);
        assert_eq!(words("primaryKey"), ["primary", "key"]);
        assert_eq!(words("-Dssl.keyStorePassword"), ["dssl", "key", "store", "password"]);
        assert_eq!(words("x-api-key"), ["x", "api", "key"]);
    }

    #[test]
    fn values_that_hold_no_secret() {
        for (key, value) in [
            ("PWD", "/home/app"),
            ("OLDPWD", "/"),
            ("pwd", "~/src"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/sa.json"),
            ("SSL_KEY", "/etc/ssl/private/server.key"),
            ("DB_PASSWORD", "${DB_PASSWORD}"),
            ("DB_PASSWORD", "$DB_PASSWORD"),
            ("DB_PASSWORD", "%DB_PASSWORD%"),
            ("MYSQL_RANDOM_ROOT_PASSWORD", "yes"),
            ("ssl.truststore.password", "null"),
            ("password", "(sensitive"),
            ("password", "<redacted>"),
            ("ROUTING_KEY", "orders.created"),
            ("primaryKey", "id"),
            ("GPG_KEY", "A035C8C19219BA821ECEA86B64E628F8D684696D"),
            ("KMS_KEY", "arn:aws:kms:eu-west-1:123456789012:key/abc"),
            ("SSH_KEY", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci"),
            ("password", "xxxxxxxx"),
            ("password", "********"),
            ("token", "<your-token-here>"),
            ("token", "<TOKEN>"),
            ("token", "{token}"),
            ("password", "%(DB_PASSWORD)s"),
            ("password_hash", "$1"),
            ("api_key_hash", "?"),
            ("token", ":token"),
            ("password", "@password"),
            ("password", "!vault |"),
            ("auth_token", "!!null"),
            ("password", "~"),
            ("password", "(not set)"),
            ("ENABLE_API_KEY_AUTH", "1"),
            ("password", "file:/run/secrets/db"),
            ("password", "env:DB_PASSWORD"),
            ("DB_PASSWORD", "op://prod/db/password"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ] {
            assert!(!assigned_value(key, value), "{key}={value} is no secret");
        }
        for (key, value) in [
            ("PWD", "s3cr3t"),
            ("DB_PWD", "/Xk9aB3"),
            ("PWD", "hunter2 x"),
            ("DB_PASSWORD", "/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            ("DB_PASSWORD", "$ecret1"),
            ("MASTER_KEY", "0123456789abcdef"),
            ("apiKey", "abc"),
            ("password", "hunter2"),
            ("password", "{p@ss;w0rd}"),
            ("password", "<Tq4-mmRv8>"),
            ("password", "(Tq4-mmRv8)"),
            ("token", "x1"),
            ("password", "$ecret"),
            ("password", "Xxxxxxxx1"),
        ] {
            assert!(assigned_value(key, value), "{key}={value} is a secret");
        }
    }

    #[test]
    fn windows_paths_and_escaped_line_breaks() {
        assert!(windows_path(r"open C:\app\certs\"));
        assert!(windows_path(r"\\files\certs\"));
        assert!(!windows_path(r"POST /hook HTTP/1.1\r\nHost: ci\r\"));
        assert!(!windows_path("a/"));
    }

    #[test]
    fn cookies_that_are_set_or_cleared() {
        assert!(sets_a_cookie("sid=Tq4mmRv8; Path=/"));
        assert!(sets_a_cookie("theme=dark"));
        assert!(sets_a_cookie("Tq4mmRv8Zx2Kp9"));
        assert!(!sets_a_cookie("session=; Max-Age=0; Path=/"));
        assert!(!sets_a_cookie("consent"));
    }

    #[test]
    fn ports_and_paths_are_not_url_passwords() {
        assert!(port_and_path("8080/users/a"));
        assert!(!port_and_path("123456"));
        assert!(!port_and_path("pa/ss"));
    }
}
