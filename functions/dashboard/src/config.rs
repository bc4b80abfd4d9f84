//! The dashboard's settings, from environment variables.

use hemostat_protocol::{ProtocolError, config::env_or};

#[derive(Debug, Clone)]
pub struct Config {
    /// `DASHBOARD_REFRESH_SECONDS` (3): how often the page polls the JSON
    /// API, 2 to 5 s (the seed's Streamlit page refreshed every 5 s; under
    /// 2 s every open tab would cost an invocation a second per endpoint).
    pub refresh_seconds: u64,
    /// `DASHBOARD_ISSUE_WINDOW_SECONDS` (3600): a health alert older than
    /// this is history, not an active issue.
    pub issue_window_seconds: u64,
    /// `DASHBOARD_STREAM_SCAN` (500): newest entries read from each durable
    /// stream to find active issues, so one request's work is bounded
    /// whatever the stream's length.
    pub stream_scan: usize,
    /// `DASHBOARD_MAX_CONTAINERS` (1000): containers listed at most (sorted
    /// by host and name; the answer says when it was cut).
    pub max_containers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { refresh_seconds: 3, issue_window_seconds: 3600, stream_scan: 500, max_containers: 1000 }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ProtocolError> {
        let config = Config {
            refresh_seconds: env_or("DASHBOARD_REFRESH_SECONDS", 3)?,
            issue_window_seconds: env_or("DASHBOARD_ISSUE_WINDOW_SECONDS", 3600)?,
            stream_scan: env_or("DASHBOARD_STREAM_SCAN", 500)?,
            max_containers: env_or("DASHBOARD_MAX_CONTAINERS", 1000)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Values that parse but cannot work are refused at start-up, naming the variable.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |name: &str, value: String, reason: &str| ProtocolError::Config {
            name: name.into(),
            value,
            reason: reason.into(),
        };
        if !(2..=5).contains(&self.refresh_seconds) {
            return Err(bad("DASHBOARD_REFRESH_SECONDS", self.refresh_seconds.to_string(), "must be 2 to 5"));
        }
        if self.stream_scan == 0 {
            return Err(bad("DASHBOARD_STREAM_SCAN", "0".into(), "must be at least 1"));
        }
        if self.max_containers == 0 {
            return Err(bad("DASHBOARD_MAX_CONTAINERS", "0".into(), "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_outside_two_to_five_seconds_is_refused() {
        assert!(Config::default().validate().is_ok());
        let err = Config { refresh_seconds: 1, ..Config::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("DASHBOARD_REFRESH_SECONDS"), "{err}");
        assert!(Config { refresh_seconds: 6, ..Config::default() }.validate().is_err());
        assert!(Config { stream_scan: 0, ..Config::default() }.validate().is_err());
    }
}
