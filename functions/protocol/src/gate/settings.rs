//! The gate's limits for every container, from the responder's environment:
//! the responder reads them to decide, `hemostat` reads the same variables
//! to preview its decision.

use crate::{
    ProtocolError,
    config::{Env, Setting, empty_env},
    gate::Ladder,
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
// Off by default: a recreate discards what the container wrote outside its
// volumes and a stop takes its service down, which an owner opts into.
pub const ESCALATION: Setting = Setting::new(
    "RESPONDER_ESCALATION",
    "off",
    "escalation ladder for every container without hemostat.escalation: steps among restart, recreate, stop (stop and page), e.g. restart,recreate,stop; off: restarts until the circuit breaker opens",
);
pub const ESCALATION_QUIET: Setting = Setting::new(
    "RESPONDER_ESCALATION_QUIET_SECONDS",
    "3600",
    "a container's escalation ladder starts again at its first step once the container has been quiet this long after its cooldown since the last step",
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
    /// [`ESCALATION`]: the ladder of a container without its own
    /// (`hemostat.escalation`).
    pub escalation: Ladder,
    /// [`ESCALATION_QUIET`], whole seconds: how long after its cooldown a
    /// container must stay quiet for its ladder to start again.
    pub escalation_quiet_seconds: u64,
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
            escalation: fleet_ladder(env)?,
            escalation_quiet_seconds: ESCALATION_QUIET.whole_seconds(env)?,
        })
    }
}

/// [`ESCALATION`]: the fleet's ladder (off when unset), for the gate and
/// for the analyzer, which leaves a container climbing it to the ladder.
pub fn fleet_ladder(env: Env<'_>) -> Result<Ladder, ProtocolError> {
    ESCALATION
        .text(env)
        .map_or(Ok(Ladder::OFF), |text| Ladder::parse(&text).map_err(|reason| ESCALATION.invalid(&text, reason)))
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
            GateSettings {
                cooldown_seconds: 3600,
                max_per_hour: 3,
                breaker_seconds: 3600,
                escalation: Ladder::OFF,
                escalation_quiet_seconds: 3600,
            }
        );
        let s = GateSettings::from_source(&env_of(&[("RESPONDER_ESCALATION", "restart, recreate,stop")])).unwrap();
        assert_eq!(s.escalation.to_string(), "restart,recreate,stop");
        let err = GateSettings::from_source(&env_of(&[("RESPONDER_ESCALATION", "restart,reboot")])).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("RESPONDER_ESCALATION") && err.contains("not a step"), "{err}");
        let s = GateSettings::from_source(&env_of(&[("RESPONDER_COOLDOWN_SECONDS", "30m")])).unwrap();
        assert_eq!(s.cooldown_seconds, 1800);
        let err = GateSettings::from_source(&env_of(&[("RESPONDER_COOLDOWN_SECONDS", "1500ms")])).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("RESPONDER_COOLDOWN_SECONDS") && err.contains("whole number"), "{err}");
    }
}
