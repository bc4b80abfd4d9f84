//! `tracing` setup shared by every binary: JSON inside Lambda (CloudWatch
//! parses it), human-readable text elsewhere, `RUST_LOG` to filter.

use tracing_subscriber::{EnvFilter, fmt};

/// The redis client logs each reconnect attempt of a cluster failover at
/// WARN, dozens of lines a second. HemoStat says what a failover costs it in
/// its own words (a publish held, a read retried), so the client's own lines
/// show only as errors unless `RUST_LOG` names `redis`.
const QUIET_REDIS: &str = "redis=error";

pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, refused) = match EnvFilter::try_new(spec(rust_log.as_deref())) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new(spec(None)), Some(e)),
    };
    let json = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        || std::env::var("HEMOSTAT_LOG_FORMAT").is_ok_and(|f| f == "json");
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
        let _ = fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).try_init();
    }
    if let Some(e) = refused {
        tracing::warn!(rust_log = rust_log.as_deref().unwrap_or_default(), error = %e,
            "RUST_LOG is not a valid filter; logging at info");
    }
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
