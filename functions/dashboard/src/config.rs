//! The dashboard's settings, from environment variables.

use hemostat_protocol::{
    ProtocolError,
    approval::slack,
    config::{Env, Setting, Usage, empty_env, process_env},
    secret::Secret,
};

// The page counts whole seconds (refresh) and the views whole seconds
// (window), hence `whole_seconds` below.
pub const REFRESH: Setting =
    Setting::new("DASHBOARD_REFRESH_SECONDS", "3", "how often the page polls the JSON API, 2 to 5 s").seconds();
pub const ISSUE_WINDOW: Setting = Setting::new(
    "DASHBOARD_ISSUE_WINDOW_SECONDS",
    "3600",
    "a health alert older than this is history, not an active issue",
)
.seconds();
pub const STREAM_SCAN: Setting =
    Setting::new("DASHBOARD_STREAM_SCAN", "500", "newest entries read from each durable stream to find active issues");
pub const MAX_CONTAINERS: Setting =
    Setting::new("DASHBOARD_MAX_CONTAINERS", "1000", "containers listed at most (the answer says when it was cut)");
pub const AUTH_TOKEN: Setting = Setting::unset(
    "DASHBOARD_AUTH_TOKEN",
    "required of every request, as Authorization: Bearer <token> or as the password of HTTP Basic (browsers \
     ask); unset, only requests an AWS_IAM function URL authenticated are served",
)
.secret();

/// What `dashboard --help` prints.
pub const USAGE: Usage = Usage {
    name: "dashboard",
    about: "\
dashboard: HemoStat's dashboard function (an AWS Lambda function URL, or the
local emulator's).

Serves one page and a small JSON API read from Redis: containers, active
issues, events, the fleet; answers pending approvals (its page's buttons,
and Slack's at /slack/actions).",
    settings: &[REFRESH, ISSUE_WINDOW, STREAM_SCAN, MAX_CONTAINERS, AUTH_TOKEN, slack::SIGNING_SECRET],
};

/// The settings, each read by the [`Setting`] named in its comment (which
/// holds the variable and its default).
#[derive(Debug, Clone)]
pub struct Config {
    /// `REFRESH`, in whole seconds: how often the page polls the JSON API,
    /// 2 to 5 s (the seed's Streamlit page refreshed every 5 s; under 2 s
    /// every open tab would cost an invocation a second per endpoint).
    pub refresh_seconds: u64,
    /// `ISSUE_WINDOW`, in whole seconds: a health alert older than this is
    /// history, not an active issue.
    pub issue_window_seconds: u64,
    /// `STREAM_SCAN`: newest entries read from each durable stream to find
    /// active issues, so one request's work is bounded whatever the stream's
    /// length.
    pub stream_scan: usize,
    /// `MAX_CONTAINERS`: containers listed at most (sorted by host and
    /// name; the answer says when it was cut).
    pub max_containers: usize,
    /// `AUTH_TOKEN`: what a caller must present when the function URL's
    /// `AuthType` is `NONE` (see `auth`). Never logged.
    pub auth_token: Option<Secret>,
    /// `slack::SIGNING_SECRET`: the Slack app's signing secret. Set, the
    /// dashboard serves `POST /slack/actions` (Slack's Approve and Deny
    /// buttons), which it authenticates by Slack's signature; unset, that
    /// path is unknown. Never logged.
    pub slack_signing_secret: Option<Secret>,
}

impl Default for Config {
    /// Every setting at its default: what an empty environment gives.
    fn default() -> Self {
        Config::from_source(&empty_env).expect("the dashboard defaults are valid")
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ProtocolError> {
        Config::from_source(&process_env)
    }

    pub fn from_source(env: Env<'_>) -> Result<Self, ProtocolError> {
        let config = Config {
            refresh_seconds: REFRESH.whole_seconds(env)?,
            issue_window_seconds: ISSUE_WINDOW.whole_seconds(env)?,
            stream_scan: STREAM_SCAN.parse(env)?,
            max_containers: MAX_CONTAINERS.parse(env)?,
            auth_token: AUTH_TOKEN.configured_secret(env),
            slack_signing_secret: slack::SIGNING_SECRET.configured_secret(env),
        };
        config.validate()?;
        Ok(config)
    }

    /// Values that parse but cannot work are refused at start-up, naming the variable.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if !(2..=5).contains(&self.refresh_seconds) {
            return Err(REFRESH.invalid(&self.refresh_seconds.to_string(), "must be 2 to 5 seconds"));
        }
        if self.stream_scan == 0 {
            return Err(STREAM_SCAN.invalid("0", "must be at least 1"));
        }
        if self.max_containers == 0 {
            return Err(MAX_CONTAINERS.invalid("0", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn refresh_outside_two_to_five_seconds_is_refused() {
        assert!(Config::default().validate().is_ok());
        let err = Config { refresh_seconds: 1, ..Config::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("DASHBOARD_REFRESH_SECONDS"), "{err}");
        assert!(Config { refresh_seconds: 6, ..Config::default() }.validate().is_err());
        assert!(Config { stream_scan: 0, ..Config::default() }.validate().is_err());
    }

    #[test]
    fn durations_take_units_and_bare_seconds() {
        let d = Config::default();
        assert_eq!((d.refresh_seconds, d.issue_window_seconds, d.stream_scan, d.max_containers), (3, 3600, 500, 1000));
        let c = Config::from_source(&env_of(&[
            ("DASHBOARD_REFRESH_SECONDS", "5s"),
            ("DASHBOARD_ISSUE_WINDOW_SECONDS", "2h"),
        ]))
        .unwrap();
        assert_eq!((c.refresh_seconds, c.issue_window_seconds), (5, 7200));
        let err = Config::from_source(&env_of(&[("DASHBOARD_REFRESH_SECONDS", "2500ms")])).unwrap_err().to_string();
        assert!(err.contains("DASHBOARD_REFRESH_SECONDS") && err.contains("whole number"), "{err}");
        let err = Config::from_source(&env_of(&[("DASHBOARD_ISSUE_WINDOW_SECONDS", "1d")])).unwrap_err().to_string();
        assert!(err.contains("DASHBOARD_ISSUE_WINDOW_SECONDS"), "{err}");
    }

    #[test]
    fn help_names_every_setting() {
        let help = USAGE.help(&empty_env);
        for s in USAGE.settings {
            assert!(help.contains(s.name), "{}", s.name);
        }
    }

    #[test]
    fn the_token_is_kept_and_never_shown() {
        assert_eq!(Config::default().auth_token, None);
        let c = Config::from_source(&env_of(&[("DASHBOARD_AUTH_TOKEN", "t0k-5ecret")])).unwrap();
        assert_eq!(c.auth_token.as_ref().map(Secret::expose), Some("t0k-5ecret"));
        assert!(!format!("{c:?}").contains("5ecret"));
        assert!(!USAGE.help(&env_of(&[("DASHBOARD_AUTH_TOKEN", "t0k-5ecret")])).contains("5ecret"));
        let c = Config::from_source(&env_of(&[("SLACK_SIGNING_SECRET", "s1ack-5ecret")])).unwrap();
        assert_eq!(c.slack_signing_secret.as_ref().map(Secret::expose), Some("s1ack-5ecret"));
        assert!(!format!("{c:?}").contains("5ecret"));
    }
}
