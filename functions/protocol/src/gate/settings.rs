//! The gate's limits for every container, from the responder's environment:
//! the responder reads them to decide, `hemostat` reads the same variables
//! to preview its decision.

use crate::{
    ProtocolError,
    config::{Env, Setting, empty_env},
};

// The gate's scripts count whole seconds, hence `whole_seconds` below.
pub const COOLDOWN: Setting =
    Setting::new("RESPONDER_COOLDOWN_SECONDS", "3600", "minimum time between two actions on one container").seconds();
pub const MAX_RETRIES_PER_HOUR: Setting =
    Setting::new("RESPONDER_MAX_RETRIES_PER_HOUR", "3", "actions per container and hour (circuit breaker)");
pub const BREAKER: Setting = Setting::new(
    "RESPONDER_BREAKER_SECONDS",
    "3600",
    "once a container's fixes keep not holding (the hourly cap reached), its circuit breaker stays open this long, or until hemostat reset",
)
.seconds();

/// The fleet's limits, each read by the [`Setting`] named in its comment; a
/// container's own labels may replace the first two
/// ([`GateSettings::inputs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// [`COOLDOWN`], whole seconds: minimum time between two actions on one
    /// container.
    pub cooldown_seconds: u64,
    /// [`MAX_RETRIES_PER_HOUR`]: actions per container and hour; the next
    /// one opens its circuit breaker.
    pub max_per_hour: u64,
    /// [`BREAKER`], whole seconds: how long an opened breaker stays open.
    pub breaker_seconds: u64,
}

impl Default for GateSettings {
    /// Every setting at its default: what an empty environment gives.
    fn default() -> Self {
        GateSettings::from_source(&empty_env).expect("the gate's defaults are valid")
    }
}

impl GateSettings {
    pub fn from_source(env: Env<'_>) -> Result<Self, ProtocolError> {
        Ok(GateSettings {
            cooldown_seconds: COOLDOWN.whole_seconds(env)?,
            max_per_hour: MAX_RETRIES_PER_HOUR.parse(env)?,
            breaker_seconds: BREAKER.whole_seconds(env)?,
        })
    }
}

/// The fleet brake: at most `hosts` hosts per image remediated within
/// `window_seconds`; `hosts == 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetBrake {
    pub hosts: u64,
    pub window_seconds: u64,
}

impl FleetBrake {
    pub const OFF: FleetBrake = FleetBrake { hosts: 0, window_seconds: 0 };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults_and_durations_with_units() {
        assert_eq!(
            GateSettings::default(),
            GateSettings { cooldown_seconds: 3600, max_per_hour: 3, breaker_seconds: 3600 }
        );
        let s = GateSettings::from_source(&env_of(&[("RESPONDER_COOLDOWN_SECONDS", "30m")])).unwrap();
        assert_eq!(s.cooldown_seconds, 1800);
        let err = GateSettings::from_source(&env_of(&[("RESPONDER_COOLDOWN_SECONDS", "1500ms")])).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("RESPONDER_COOLDOWN_SECONDS") && err.contains("whole number"), "{err}");
    }
}
