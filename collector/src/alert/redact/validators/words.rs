//! The words of a key, and the words that say a value is prose or a key
//! is no secret.

/// Words that follow a key in a sentence, not as its value: "Using
/// --password via the CLI is insecure", "token: is missing".
pub(super) const PROSE: &[&str] = &[
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
pub(super) const NOT_SECRET_KEYS: &[&str] = &[
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
pub(super) fn words(key: &str) -> Vec<String> {
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
