//! The last look a rule may take at a match its pattern alone cannot
//! judge: a small fixed set, named by the rules file (`validator = ...`).

use regex::Captures;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Validator {
    /// Looks like a credential rather than a word.
    Token,
    /// An `Authorization` value with a scheme, or one that looks like a token.
    Authorization,
}

impl Validator {
    pub(super) fn accepts(self, caps: &Captures<'_>, secret: &str) -> bool {
        match self {
            Validator::Token => looks_like_token(secret),
            // "authorization: denied" is prose; "Authorization: Basic x" is not.
            Validator::Authorization => caps.name("scheme").is_some() || looks_like_token(secret),
        }
    }
}

/// Looks like a credential rather than a word: long enough, and with a
/// digit, a symbol, or inner capitals. "Bearer authentication" is a phrase;
/// "Bearer abc123..." is a token.
pub(super) fn looks_like_token(s: &str) -> bool {
    let inner_upper = s.chars().skip(1).any(|c| c.is_ascii_uppercase()) && s.chars().any(|c| c.is_ascii_lowercase());
    s.len() >= 24 || (s.len() >= 8 && (s.chars().any(|c| !c.is_ascii_alphabetic()) || inner_upper))
}
