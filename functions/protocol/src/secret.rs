//! Values that must never reach a log: keys, tokens, webhook URLs, Redis
//! URLs with a password.
//!
//! Settings end up in logs through `{:?}`: a binary logs its configuration
//! at start-up (`tracing::info!(?config, ...)`), an error or a test failure
//! prints the struct that holds it. Rather than every configuration writing
//! its `Debug` by hand to skip a field (and the next field added being
//! forgotten), a secret setting is held in a [`Secret`], whose `Debug` never
//! shows the value, so the structs holding one derive `Debug` safely. It has
//! no `Display` and no `Serialize` either, so `{}`, `%value` or a JSON body
//! cannot show it by accident: the raw value is only reached by calling
//! [`Secret::expose`], at the one place that needs it (a request header, a
//! signature).
//!
//! A Redis URL is different: it is mostly not secret (host and port belong
//! in logs) but may carry a password. [`RedisUrl`] keeps the URL usable as a
//! `&str` and shows it with its credentials replaced (see
//! [`redact`](crate::connection::redact)).

use std::{convert::Infallible, fmt, ops::Deref, str::FromStr};

use subtle::ConstantTimeEq;

use crate::connection::redact;

/// A secret setting's value. `Debug` prints `Secret(<redacted>)`; there is
/// no `Display` and no `Serialize`: the value is only reached through
/// [`Secret::expose`].
///
/// Parses from any string (`FromStr`, `From<String>`), so clap reads one with
/// `value_parser = clap::value_parser!(Secret)`; the value is kept byte for
/// byte (a signing key must match its peer's exactly).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (a request, a
    /// signature). Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is the empty string ("not configured" to most
    /// readers).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a caller's `given` value is this secret (a bearer token, a
    /// password), in time that does not depend on where the two differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(given).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// A Redis URL (or a comma-separated list of them, a cluster's seed nodes)
/// that may carry a password. It dereferences to the URL itself, for
/// connecting; its `Debug` is the URL with credentials replaced
/// ([`redact`]), so a configuration holding one can derive `Debug`. No
/// `Display`: a log line writes `redact(&url)`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn new(url: impl Into<String>) -> Self {
        RedisUrl(url.into())
    }

    /// The URL with credentials, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Deref for RedisUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({:?})", redact(&self.0))
    }
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        RedisUrl(url)
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> Self {
        RedisUrl(url.to_owned())
    }
}

impl FromStr for RedisUrl {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(RedisUrl(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)] // Read only by `Debug`.
    struct Settings {
        name: &'static str,
        key: Secret,
        token: Option<Secret>,
        redis: RedisUrl,
    }

    #[test]
    fn debug_of_a_struct_never_contains_the_value() {
        let s = Settings {
            name: "shown",
            key: Secret::new("hunter2"),
            token: Some("tok-123".parse().unwrap()),
            redis: RedisUrl::from("redis://:s3cret@cache:6379".to_owned()),
        };
        for shown in [format!("{s:?}"), format!("{s:#?}")] {
            assert!(!shown.contains("hunter2") && !shown.contains("tok-123") && !shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("shown") && shown.contains("Secret(<redacted>)"), "{shown}");
            assert!(shown.contains("redis://***@cache:6379"), "{shown}");
        }
    }

    #[test]
    fn the_value_is_kept_byte_for_byte() {
        let k = Secret::from(" k ".to_owned());
        assert_eq!(k.expose(), " k ");
        assert_eq!(k, Secret::new(" k "));
        assert!(!k.is_empty() && Secret::new("").is_empty());
        assert!(k.matches(b" k ") && !k.matches(b"k") && !k.matches(b" k  ") && !k.matches(b""));
        let url = RedisUrl::new("redis://:pw@a:1,redis://b:2");
        assert_eq!(&*url, "redis://:pw@a:1,redis://b:2");
        assert_eq!(url.expose(), &*url);
    }
}
