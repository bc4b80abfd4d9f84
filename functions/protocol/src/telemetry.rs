//! `tracing` setup shared by every binary: JSON inside Lambda (CloudWatch
//! parses it; `AWS_LAMBDA_LOG_FORMAT=Text` asks for text), human-readable
//! text elsewhere, `RUST_LOG` to filter (in Lambda, `AWS_LAMBDA_LOG_LEVEL`
//! when `RUST_LOG` is unset). Colour only on a terminal, and never with
//! `NO_COLOR` set (no-color.org): log files and journald get plain text.

use tracing_subscriber::{EnvFilter, fmt};

/// The redis client logs each reconnect attempt of a cluster failover at
/// WARN, dozens of lines a second. HemoStat says what a failover costs it in
/// its own words (a publish held, a read retried), so the client's own lines
/// show only as errors unless `RUST_LOG` names `redis`.
const QUIET_REDIS: &str = "redis=error";

pub fn init() {
    let var = |name: &str| std::env::var(name).ok();
    let in_lambda = var("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let rust_log =
        var("RUST_LOG").or_else(|| in_lambda.then(|| var("AWS_LAMBDA_LOG_LEVEL")).flatten().map(lambda_level));
    let (filter, refused) = match EnvFilter::try_new(spec(rust_log.as_deref())) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new(spec(None)), Some(e)),
    };
    let json = json_format(in_lambda, var("AWS_LAMBDA_LOG_FORMAT").as_deref(), var("HEMOSTAT_LOG_FORMAT").as_deref());
    // try_init: a second call (tests) must not panic.
    if json {
        let _ = fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .without_time() // Lambda stamps every line itself.
            .with_target(false)
            .try_init();
    } else {
        use std::io::IsTerminal;
        let ansi = colour(std::io::stderr().is_terminal(), var("NO_COLOR").as_deref());
        let _ =
            fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).with_writer(std::io::stderr).try_init();
    }
    if let Some(e) = refused {
        tracing::warn!(rust_log = rust_log.as_deref().unwrap_or_default(), error = %e,
            "RUST_LOG is not a valid filter; logging at info");
    }
}

/// JSON in Lambda unless its log format says `Text`; elsewhere only when
/// `HEMOSTAT_LOG_FORMAT=json`.
fn json_format(in_lambda: bool, lambda_format: Option<&str>, hemostat_format: Option<&str>) -> bool {
    if in_lambda {
        !lambda_format.is_some_and(|f| f.eq_ignore_ascii_case("text"))
    } else {
        hemostat_format.is_some_and(|f| f.eq_ignore_ascii_case("json"))
    }
}

/// Lambda's log levels as a `tracing` filter (it has `FATAL`, tracing
/// does not).
fn lambda_level(level: String) -> String {
    match level.trim().to_ascii_lowercase().as_str() {
        "fatal" => "error".to_owned(),
        other => other.to_owned(),
    }
}

/// Colour codes only for a person at a terminal who did not opt out
/// (`NO_COLOR` set to anything but the empty string).
fn colour(terminal: bool, no_color: Option<&str>) -> bool {
    terminal && no_color.is_none_or(str::is_empty)
}

/// The filter `RUST_LOG` (default `info`) asks for, with the redis
/// client's chatter quieted unless it names `redis` itself.
fn spec(rust_log: Option<&str>) -> String {
    let asked = rust_log.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("info");
    let names_redis = asked.split(',').any(|d| d.trim().split(['=', ':', '[']).next() == Some("redis"));
    if names_redis { asked.to_owned() } else { format!("{asked},{QUIET_REDIS}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("")));
        assert!(!colour(true, Some("1")));
        assert!(!colour(false, None));
    }

    #[test]
    fn lambda_chooses_its_format_and_level() {
        assert!(json_format(true, None, None));
        assert!(json_format(true, Some("JSON"), None));
        assert!(!json_format(true, Some("Text"), Some("json")));
        assert!(!json_format(false, Some("JSON"), None));
        assert!(json_format(false, None, Some("json")));
        assert_eq!(lambda_level("FATAL".into()), "error");
        assert_eq!(lambda_level("DEBUG".into()), "debug");
        assert!(EnvFilter::try_new(spec(Some(&lambda_level("WARN".into())))).is_ok());
    }

    #[test]
    fn the_redis_client_is_quiet_unless_asked_for() {
        assert_eq!(spec(None), "info,redis=error");
        assert_eq!(spec(Some(" ")), "info,redis=error");
        assert_eq!(spec(Some("debug,hemostat_bridge=trace")), "debug,hemostat_bridge=trace,redis=error");
        assert_eq!(spec(Some("info,redis=warn")), "info,redis=warn");
        assert_eq!(spec(Some("info,redis::cluster_handling=debug")), "info,redis::cluster_handling=debug");
        assert_eq!(spec(Some("redis_tools=debug")), "redis_tools=debug,redis=error");
        assert!(EnvFilter::try_new(spec(Some("info"))).is_ok());
    }
}
