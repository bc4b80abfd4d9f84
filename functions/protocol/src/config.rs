//! Typed environment variables. A bad value is a startup error that names
//! the variable, never a silent fallback to the default.

use std::{fmt::Display, str::FromStr, time::Duration};

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

/// The longest duration any setting takes: a week.
const MAX_DURATION_SECS: f64 = 7.0 * 86_400.0;

/// Durations as operators write them: `10` (seconds), `10s`, `500ms`, `2m`,
/// `1h`; fractions allowed (`1.5s`). The error says what was expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 10, 10s, 500ms, 2m, 1h)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return Err(format!("{s:?} is out of range (at most a week)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The Redis URL every component uses.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration(" 10s ").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "ten", "-1", "5 parsecs", "1e400", "8d", "200h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

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
