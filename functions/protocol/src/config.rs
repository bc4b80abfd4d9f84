//! Typed environment variables. A bad value is a startup error that names
//! the variable, never a silent fallback to the default.

use std::{fmt::Display, str::FromStr};

use crate::error::ProtocolError;

/// `name` parsed as `T`, or `default` when unset or empty.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ProtocolError>
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|e: T::Err| ProtocolError::Config {
            name: name.into(),
            value: v.clone(),
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// Booleans as operators write them: true/false, 1/0, yes/no, on/off.
pub fn env_bool(name: &str, default: bool) -> Result<bool, ProtocolError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => parse_bool(&v).ok_or_else(|| ProtocolError::Config {
            name: name.into(),
            value: v.clone(),
            reason: "expected true or false".into(),
        }),
        _ => Ok(default),
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A secret or optional string: unset and empty both mean "not configured".
/// The value is never part of an error message.
pub fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The Redis URL every component uses.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_and_bad_values() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool(" off "), Some(false));
        assert_eq!(parse_bool("maybe"), None);
        // SAFETY (edition 2024 marks set_var unsafe): this test owns the
        // variable name and no other test reads it.
        unsafe { std::env::set_var("HEMOSTAT_TEST_CONFIG_NUM", "abc") };
        let err = env_or::<u64>("HEMOSTAT_TEST_CONFIG_NUM", 5).unwrap_err().to_string();
        assert!(err.contains("HEMOSTAT_TEST_CONFIG_NUM"), "{err}");
        assert_eq!(env_or::<u64>("HEMOSTAT_TEST_CONFIG_UNSET", 5).unwrap(), 5);
    }
}
