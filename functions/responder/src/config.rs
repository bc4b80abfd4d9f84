//! The responder's settings, from the seed's environment variables.

use std::sync::Arc;

use hemostat_protocol::{
    ProtocolError,
    approval::{Rule, slack},
    command::SigningKey,
    config::{Env, Setting, Usage, empty_env, process_env},
    gate::{BREAKER, COOLDOWN, ESCALATION, ESCALATION_QUIET, FleetBrake, Gate, GateSettings, MAX_RETRIES_PER_HOUR},
    secret::Secret,
};

pub const DRY_RUN: Setting = Setting::new(
    "RESPONDER_DRY_RUN",
    "false",
    "commands are marked dry-run: the collector reports what it would do and does nothing",
);
pub const SIGNING_KEY: Setting = Setting::unset(
    "HEMOSTAT_COMMAND_SIGNING_KEY",
    "Ed25519 private key (base64 PKCS#8, `hemostat keys generate`) signing commands; collectors hold its public key",
)
.secret();
pub const FLEET_BRAKE_HOSTS: Setting = Setting::new(
    "RESPONDER_FLEET_BRAKE_HOSTS",
    "3",
    "at most this many hosts per image remediated within the window; the next trips the brake; 0 disables",
);
pub const FLEET_BRAKE_WINDOW: Setting = Setting::new(
    "RESPONDER_FLEET_BRAKE_WINDOW_SECONDS",
    "600",
    "the fleet brake's window, and how long it holds once tripped",
)
.seconds();
pub const REQUIRE_ATTESTED_REQUESTS: Setting = Setting::new(
    "RESPONDER_REQUIRE_ATTESTED_REQUESTS",
    "true",
    "act only on requests an analyzer attested (false: also requests a custom analyzer publishes by hand)",
);

pub const APPROVE: Setting = Setting::new(
    "RESPONDER_APPROVE",
    "none",
    "actions that wait for a person's yes on every container (`restart,stop`, `all`, `none`), besides those its hemostat.approve label names",
);
pub const APPROVAL_TIMEOUT: Setting = Setting::new(
    "RESPONDER_APPROVAL_TIMEOUT_SECONDS",
    "900",
    "how long an action waits for a yes; unanswered by then, it is only notified",
)
.seconds();

/// What `responder --help` prints.
pub const USAGE: Usage = Usage {
    name: "responder",
    about: "\
responder: HemoStat's responder function (AWS Lambda, or the local emulator).

Consumes remediation_needed batches from the bridge; its safety gate
(cooldown, circuit breaker, fleet brake) decides, and allowed actions become
signed commands in the container's host stream.",
    settings: &[
        COOLDOWN,
        MAX_RETRIES_PER_HOUR,
        BREAKER,
        ESCALATION,
        ESCALATION_QUIET,
        DRY_RUN,
        SIGNING_KEY,
        FLEET_BRAKE_HOSTS,
        FLEET_BRAKE_WINDOW,
        REQUIRE_ATTESTED_REQUESTS,
        APPROVE,
        APPROVAL_TIMEOUT,
        slack::SIGNING_SECRET,
    ],
};

/// The settings, each read by the [`Setting`] named in its comment (which
/// holds the variable and its default).
#[derive(Debug, Clone)]
pub struct Config {
    /// `COOLDOWN`, `MAX_RETRIES_PER_HOUR`, `BREAKER`, `ESCALATION`,
    /// `ESCALATION_QUIET`: the gate's limits and escalation ladder for every
    /// container (`hemostat` reads the same variables).
    pub gate: GateSettings,
    /// `DRY_RUN`: commands are marked dry-run; the collector reports what
    /// it would have done without doing it.
    pub dry_run: bool,
    /// `SIGNING_KEY`: the Ed25519 key commands are signed with; collectors
    /// verify with its public key and refuse anything unsigned or forged.
    /// Never logged (its `Debug` is its id).
    pub signing_key: Option<Arc<SigningKey>>,
    /// `FLEET_BRAKE_HOSTS`: at most this many hosts per image remediated
    /// within the window; the next one trips the brake ("suspected bad
    /// release"). 0 turns the brake off.
    pub fleet_brake_hosts: u64,
    /// `FLEET_BRAKE_WINDOW`, in whole seconds: the brake's window, and how
    /// long it holds once tripped.
    pub fleet_brake_window_seconds: u64,
    /// `REQUIRE_ATTESTED_REQUESTS`: a request no analyzer attested
    /// ([`hemostat_protocol::attestation`]) is refused: the bridge may put
    /// records on every stream, only an analyzer may vouch for a request.
    pub require_attested_requests: bool,
    /// `APPROVE`: the actions that wait for a person's yes on every
    /// container (a container's `hemostat.approve` adds to them).
    pub approve: Rule,
    /// `APPROVAL_TIMEOUT`: how long an action waits for its yes.
    pub approval_timeout: std::time::Duration,
    /// `slack::SIGNING_SECRET`: the Slack app's signing secret; an
    /// `approval_answer` carrying a Slack press counts only if its
    /// signature verifies with it. Never logged.
    pub slack_signing_secret: Option<Secret>,
}

impl Default for Config {
    /// Every setting at its default: what an empty environment gives.
    fn default() -> Self {
        Config::from_source(&empty_env).expect("the responder defaults are valid")
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ProtocolError> {
        Config::from_source(&process_env)
    }

    pub fn from_source(env: Env<'_>) -> Result<Self, ProtocolError> {
        Ok(Config {
            gate: GateSettings::from_source(env)?,
            dry_run: DRY_RUN.flag(env)?,
            signing_key: SIGNING_KEY
                .configured_secret(env)
                .map(|k| SigningKey::from_base64(k.expose()).map(Arc::new))
                .transpose()
                .map_err(|e| ProtocolError::BadKey(format!("{}: {e}", SIGNING_KEY.name)))?,
            fleet_brake_hosts: FLEET_BRAKE_HOSTS.parse(env)?,
            fleet_brake_window_seconds: FLEET_BRAKE_WINDOW.whole_seconds(env)?,
            require_attested_requests: REQUIRE_ATTESTED_REQUESTS.flag(env)?,
            approve: {
                let text = APPROVE.text(env).unwrap_or_default();
                Rule::parse(&text).map_err(|reason| APPROVE.invalid(&text, reason))?
            },
            approval_timeout: match APPROVAL_TIMEOUT.whole_seconds(env)? {
                0 => return Err(APPROVAL_TIMEOUT.invalid("0", "must be longer than 0s")),
                s => std::time::Duration::from_secs(s),
            },
            slack_signing_secret: slack::SIGNING_SECRET.configured_secret(env),
        })
    }

    pub fn gate(&self) -> Gate {
        Gate::new(self.gate)
            .with_brake(FleetBrake { hosts: self.fleet_brake_hosts, window_seconds: self.fleet_brake_window_seconds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn debug_never_shows_the_key_and_a_bad_key_is_named_not_quoted() {
        let (private, _) = SigningKey::generate().unwrap();
        let c = Config::from_source(&|name: &str| (name == "HEMOSTAT_COMMAND_SIGNING_KEY").then(|| private.clone()))
            .unwrap();
        assert!(!format!("{c:?}").contains(&private[..20]));
        let bad = Config::from_source(&env_of(&[("HEMOSTAT_COMMAND_SIGNING_KEY", "hunter2")])).unwrap_err().to_string();
        assert!(bad.contains("HEMOSTAT_COMMAND_SIGNING_KEY") && !bad.contains("hunter2"), "{bad}");
    }

    #[test]
    fn the_slack_signing_secret_is_kept_and_never_shown() {
        assert!(Config::default().slack_signing_secret.is_none());
        let c = Config::from_source(&env_of(&[("SLACK_SIGNING_SECRET", "8f74-5ecret")])).unwrap();
        assert_eq!(c.slack_signing_secret.as_ref().map(Secret::expose), Some("8f74-5ecret"));
        assert!(!format!("{c:?}").contains("5ecret"));
        assert!(!USAGE.help(&env_of(&[("SLACK_SIGNING_SECRET", "8f74-5ecret")])).contains("5ecret"));
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!((c.gate.cooldown_seconds, c.gate.max_per_hour, c.dry_run), (3600, 3, false));
        assert_eq!((c.fleet_brake_hosts, c.fleet_brake_window_seconds), (3, 600));
        assert!(c.signing_key.is_none());
        assert!(c.approve.is_empty());
        assert_eq!(c.approval_timeout.as_secs(), 900);
    }

    #[test]
    fn approvals_take_actions_or_all_and_a_positive_timeout() {
        let c = Config::from_source(&env_of(&[
            ("RESPONDER_APPROVE", "restart,stop"),
            ("RESPONDER_APPROVAL_TIMEOUT_SECONDS", "2m"),
        ]))
        .unwrap();
        assert_eq!((c.approve.to_string(), c.approval_timeout.as_secs()), ("restart,stop".to_owned(), 120));
        let err = Config::from_source(&env_of(&[("RESPONDER_APPROVE", "reboot")])).unwrap_err().to_string();
        assert!(err.contains("RESPONDER_APPROVE") && err.contains("reboot"), "{err}");
        let err = Config::from_source(&env_of(&[("RESPONDER_APPROVAL_TIMEOUT_SECONDS", "0")])).unwrap_err().to_string();
        assert!(err.contains("RESPONDER_APPROVAL_TIMEOUT_SECONDS"), "{err}");
    }

    #[test]
    fn durations_take_units_and_bare_seconds() {
        let c = Config::from_source(&env_of(&[
            ("RESPONDER_COOLDOWN_SECONDS", "30m"),
            ("RESPONDER_FLEET_BRAKE_WINDOW_SECONDS", "120"),
        ]))
        .unwrap();
        assert_eq!((c.gate.cooldown_seconds, c.fleet_brake_window_seconds), (1800, 120));
        let err = Config::from_source(&env_of(&[("RESPONDER_COOLDOWN_SECONDS", "1500ms")])).unwrap_err().to_string();
        assert!(err.contains("RESPONDER_COOLDOWN_SECONDS") && err.contains("whole number"), "{err}");
        let err = Config::from_source(&env_of(&[("RESPONDER_FLEET_BRAKE_WINDOW_SECONDS", "ten")])).unwrap_err();
        assert!(err.to_string().contains("RESPONDER_FLEET_BRAKE_WINDOW_SECONDS"), "{err}");
    }

    #[test]
    fn help_names_every_setting_and_not_the_key() {
        let help = USAGE.help(&env_of(&[("HEMOSTAT_COMMAND_SIGNING_KEY", "hunter2")]));
        for s in USAGE.settings {
            assert!(help.contains(s.name), "{}", s.name);
        }
        assert!(!help.contains("hunter2"), "{help}");
    }
}
