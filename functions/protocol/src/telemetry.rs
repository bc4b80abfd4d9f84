//! `tracing` setup shared by every binary: JSON inside Lambda (CloudWatch
//! parses it), human-readable text elsewhere, `RUST_LOG` to filter.

use tracing_subscriber::{EnvFilter, fmt};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
}
