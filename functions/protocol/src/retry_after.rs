//! `Retry-After` (RFC 9110, section 10.2.3): how long an HTTP server asks a
//! client to wait, for every HTTP client that honours it (the alert's sinks,
//! the analyzer's LLM providers). Read from the header's text, so no HTTP
//! library is needed here.
//!
//! The value is someone else's writing: anything but a plain number of
//! seconds or an HTTP date is ignored (never a panic), and a wait longer than
//! [`LONGEST`] is capped.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest wait a server is believed to ask for; more is read as this.
/// Callers bound their own waits far below it (a notification's deadline,
/// the analyzer's hold), so a longer one would mean nothing more.
pub const LONGEST: Duration = Duration::from_secs(24 * 60 * 60);

/// The wait a `Retry-After` value asks for: delta-seconds (`120`; a decimal
/// such as `0.5` is taken too, as some servers send one) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`: the time left until then, zero when it
/// is past). Capped at [`LONGEST`]. `None` for anything else: empty, a sign,
/// an exponent, `NaN`, `inf`, words.
pub fn parse(value: &str) -> Option<Duration> {
    parse_at(value, Utc::now())
}

/// [`parse`], with the current time given (an HTTP date is relative to it).
pub fn parse_at(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if value.starts_with(|c: char| c.is_ascii_digit()) {
        delta_seconds(value)?
    } else {
        let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
        // A date in the past means "now".
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(LONGEST))
}

/// Digits, optionally followed by `.` and more digits; nothing else, so
/// what `f64` parsing would also take (`1e20`, `inf`, `+5`, `-1`) is refused.
fn delta_seconds(value: &str) -> Option<Duration> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let plain = match value.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(value),
    };
    if !plain {
        return None;
    }
    // Finite and not negative by now; a huge number (even one past f64's
    // range, read as infinity) is capped, not an overflow.
    let seconds: f64 = value.parse().ok()?;
    Some(if seconds >= LONGEST.as_secs_f64() { LONGEST } else { Duration::from_secs_f64(seconds) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn seconds_whole_or_decimal() {
        assert_eq!(parse("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse("1.25"), Some(Duration::from_millis(1250)));
    }

    #[test]
    fn an_http_date_is_the_time_left_until_it() {
        assert_eq!(parse_at("Wed, 21 Oct 2015 07:28:00 GMT", now()), Some(Duration::from_secs(60)));
        assert_eq!(parse_at("Wed, 21 Oct 2015 07:26:00 GMT", now()), Some(Duration::ZERO), "past: now");
        assert_eq!(parse_at("Thu, 22 Oct 2015 07:28:00 GMT", now()), Some(LONGEST), "capped");
        assert!(parse("Wed, 21 Oct 2015 07:28:00 GMT").is_some_and(|d| d.is_zero()));
    }

    #[test]
    fn absurd_values_are_capped_and_never_panic() {
        assert_eq!(parse("86401"), Some(LONGEST));
        assert_eq!(parse("100000000000000000000"), Some(LONGEST));
        assert_eq!(parse(&"9".repeat(400)), Some(LONGEST), "past f64's range");
    }

    #[test]
    fn anything_else_is_ignored() {
        for bad in
            ["1e20", "-1", "-0", "+5", "NaN", "nan", "inf", "infinity", "", "  ", "soon", "2s", "1.", ".5", "1.2.3"]
        {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse("Wed, 32 Oct 2015 07:28:00 GMT"), None);
    }
}
