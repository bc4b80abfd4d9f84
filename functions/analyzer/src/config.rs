//! The analyzer's settings, from the seed's environment variables.

use hemostat_protocol::{ProtocolError, config::env_or};

#[derive(Debug, Clone)]
pub struct Config {
    /// `ANALYZER_CONFIDENCE_THRESHOLD` (0.7): below it, a verdict to act
    /// becomes a false alarm.
    pub confidence_threshold: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config { confidence_threshold: 0.7 }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ProtocolError> {
        let confidence_threshold = env_or("ANALYZER_CONFIDENCE_THRESHOLD", 0.7)?;
        if !(0.0..=1.0).contains(&confidence_threshold) {
            return Err(ProtocolError::Config {
                name: "ANALYZER_CONFIDENCE_THRESHOLD".into(),
                value: confidence_threshold.to_string(),
                reason: "must be between 0 and 1".into(),
            });
        }
        Ok(Config { confidence_threshold })
    }
}
