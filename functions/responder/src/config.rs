//! The responder's settings, from the seed's environment variables.

use hemostat_protocol::{
    ProtocolError,
    config::{env_bool, env_or, env_secret},
};

#[derive(Clone)]
pub struct Config {
    /// `RESPONDER_COOLDOWN_SECONDS` (3600): minimum time between two actions
    /// on one container.
    pub cooldown_seconds: u64,
    /// `RESPONDER_MAX_RETRIES_PER_HOUR` (3): circuit breaker per container.
    pub max_actions_per_hour: u64,
    /// `RESPONDER_DRY_RUN` (false): commands are marked dry-run; the
    /// collector reports what it would have done without doing it.
    pub dry_run: bool,
    /// `HEMOSTAT_COMMAND_KEY`: HMAC key signing commands; collectors with the
    /// same key refuse anything unsigned or forged.
    pub command_key: Option<String>,
    /// `RESPONDER_FLEET_BRAKE_HOSTS` (3): at most this many hosts per image
    /// remediated within the window; the next one trips the brake
    /// ("suspected bad release"). 0 turns the brake off.
    pub fleet_brake_hosts: u64,
    /// `RESPONDER_FLEET_BRAKE_WINDOW_SECONDS` (600): the brake's window, and
    /// how long it holds once tripped.
    pub fleet_brake_window_seconds: u64,
}

impl std::fmt::Debug for Config {
    // Hand-written so the key can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("cooldown_seconds", &self.cooldown_seconds)
            .field("max_actions_per_hour", &self.max_actions_per_hour)
            .field("dry_run", &self.dry_run)
            .field("command_key", &self.command_key.as_ref().map(|_| "<set>"))
            .field("fleet_brake_hosts", &self.fleet_brake_hosts)
            .field("fleet_brake_window_seconds", &self.fleet_brake_window_seconds)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cooldown_seconds: 3600,
            max_actions_per_hour: 3,
            dry_run: false,
            command_key: None,
            fleet_brake_hosts: 3,
            fleet_brake_window_seconds: 600,
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ProtocolError> {
        Ok(Config {
            cooldown_seconds: env_or("RESPONDER_COOLDOWN_SECONDS", 3600)?,
            max_actions_per_hour: env_or("RESPONDER_MAX_RETRIES_PER_HOUR", 3)?,
            dry_run: env_bool("RESPONDER_DRY_RUN", false)?,
            command_key: env_secret("HEMOSTAT_COMMAND_KEY"),
            fleet_brake_hosts: env_or("RESPONDER_FLEET_BRAKE_HOSTS", 3)?,
            fleet_brake_window_seconds: env_or("RESPONDER_FLEET_BRAKE_WINDOW_SECONDS", 600)?,
        })
    }

    pub fn gate(&self) -> crate::gate::Gate {
        crate::gate::Gate::with_brake(
            self.cooldown_seconds,
            self.max_actions_per_hour,
            crate::gate::FleetBrake { hosts: self.fleet_brake_hosts, window_seconds: self.fleet_brake_window_seconds },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let c = Config { command_key: Some("hunter2".into()), ..Config::default() };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
