//! The alert function's settings, from the seed's environment variables plus
//! the delivery bounds. A bad value is a start-up error naming the variable
//! (never echoing a secret).

use std::time::Duration;

use hemostat_protocol::{
    config::{Env, Setting, Usage, empty_env, process_env},
    secret::Secret,
};

use crate::error::AlertError;

pub const SLACK_WEBHOOK_URL: Setting =
    Setting::unset("SLACK_WEBHOOK_URL", "Slack incoming webhook; unset sends nothing to Slack").secret();
pub const WEBHOOK_URL: Setting = Setting::unset(
    "ALERT_WEBHOOK_URL",
    "generic webhook: POST {\"envelope\", \"summary\"} as JSON; unset sends nothing",
)
.secret();
pub const WEBHOOK_SECRET: Setting = Setting::unset(
    "ALERT_WEBHOOK_SECRET",
    "HMAC-SHA256 key: webhook requests carry X-HemoStat-Signature-256: sha256=<hex of the body>",
)
.secret();
pub const ENABLED: Setting = Setting::new("ALERT_ENABLED", "true", "false: store events, send nothing");
pub const DEDUPE_TTL: Setting = Setting::new(
    "ALERT_DEDUPE_TTL",
    "60",
    "the same notification (fingerprint) goes to each sink once within this; 0 disables",
)
.seconds();
pub const MAX_EVENTS: Setting = Setting::new("ALERT_MAX_EVENTS", "100", "events kept per hemostat:events:* list");
pub const EVENT_TTL: Setting =
    Setting::new("ALERT_EVENT_TTL", "3600", "lifetime of the event lists after their last event").seconds();
pub const HTTP_TIMEOUT: Setting = Setting::new("ALERT_HTTP_TIMEOUT", "5s", "one HTTP request").seconds();
pub const MAX_ATTEMPTS: Setting =
    Setting::new("ALERT_MAX_ATTEMPTS", "3", "attempts per notification and sink (5xx, 429, timeouts are retried)");
pub const RETRY_BASE: Setting =
    Setting::new("ALERT_RETRY_BASE", "500ms", "first retry delay, doubling (jittered)").seconds();
pub const NOTIFY_DEADLINE: Setting = Setting::new(
    "ALERT_NOTIFY_DEADLINE",
    "15s",
    "a notification's total time, retries and Retry-After included; keep it well below the function's timeout",
)
.seconds();

/// What `alert --help` prints.
pub const USAGE: Usage = Usage {
    name: "alert",
    about: "\
alert: HemoStat's alert function (AWS Lambda, or the local emulator).

Consumes remediation_complete, false_alarm and system_alert batches from the
bridge; stores each event in hemostat:events:<type> and hemostat:events:all,
then notifies Slack and/or a JSON webhook.",
    settings: &[
        SLACK_WEBHOOK_URL,
        WEBHOOK_URL,
        WEBHOOK_SECRET,
        ENABLED,
        DEDUPE_TTL,
        MAX_EVENTS,
        EVENT_TTL,
        HTTP_TIMEOUT,
        MAX_ATTEMPTS,
        RETRY_BASE,
        NOTIFY_DEADLINE,
    ],
};

/// The settings, each read by the [`Setting`] named in its comment (which
/// holds the variable and its default).
#[derive(Debug, Clone)]
pub struct Config {
    /// `SLACK_WEBHOOK_URL` (the seed's name); `None` sends nothing to Slack.
    pub slack_webhook_url: Option<Secret>,
    /// `WEBHOOK_URL`: a generic webhook receiving the envelope plus a
    /// summary as JSON; `None` sends nothing.
    pub webhook_url: Option<Secret>,
    /// `WEBHOOK_SECRET`: when set, webhook requests carry
    /// `X-HemoStat-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    pub webhook_secret: Option<Secret>,
    /// `ENABLED`: false stops notifications; events are still stored for
    /// the dashboard.
    pub enabled: bool,
    /// `DEDUPE_TTL`: a notification with the same fingerprint is sent once
    /// per sink within this window, across replicas and redeliveries. Zero
    /// turns deduplication off.
    pub dedupe_ttl: Duration,
    /// `MAX_EVENTS`: events kept in each `hemostat:events:*` list.
    pub max_events: usize,
    /// `EVENT_TTL`: the lists expire this long after their last event; also
    /// how long a stored envelope is recognised when redelivered.
    pub event_ttl: Duration,
    /// `HTTP_TIMEOUT`: one HTTP request, connect to last byte.
    pub http_timeout: Duration,
    /// `MAX_ATTEMPTS`: attempts per notification and sink.
    pub max_attempts: u32,
    /// `RETRY_BASE`: first retry delay, doubling after.
    pub retry_base: Duration,
    /// `NOTIFY_DEADLINE`: everything one notification may take, retries and
    /// Slack's `Retry-After` included, so a batch always ends well inside the
    /// function's timeout (template: 30 s).
    pub notify_deadline: Duration,
}

impl Default for Config {
    /// Every setting at its default: what an empty environment gives.
    fn default() -> Self {
        Config::from_source(&empty_env).expect("the alert defaults are valid")
    }
}

fn bad(name: &'static str, reason: impl Into<String>) -> AlertError {
    AlertError::Config { name, reason: reason.into() }
}

impl Config {
    pub fn from_env() -> Result<Self, AlertError> {
        Config::from_source(&process_env)
    }

    pub fn from_source(env: Env<'_>) -> Result<Self, AlertError> {
        let config = Config {
            slack_webhook_url: url(SLACK_WEBHOOK_URL, env)?,
            webhook_url: url(WEBHOOK_URL, env)?,
            webhook_secret: WEBHOOK_SECRET.configured_secret(env),
            enabled: ENABLED.flag(env)?,
            dedupe_ttl: DEDUPE_TTL.duration(env)?,
            max_events: MAX_EVENTS.parse(env)?,
            event_ttl: EVENT_TTL.duration(env)?,
            http_timeout: HTTP_TIMEOUT.duration(env)?,
            max_attempts: MAX_ATTEMPTS.parse(env)?,
            retry_base: RETRY_BASE.duration(env)?,
            notify_deadline: NOTIFY_DEADLINE.duration(env)?,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), AlertError> {
        if self.max_events == 0 {
            return Err(bad("ALERT_MAX_EVENTS", "must be at least 1"));
        }
        // Redis EXPIRE takes whole seconds; 0 would delete the lists at once.
        if self.event_ttl.as_secs() == 0 {
            return Err(bad("ALERT_EVENT_TTL", "must be at least 1 s"));
        }
        if self.max_attempts == 0 {
            return Err(bad("ALERT_MAX_ATTEMPTS", "must be at least 1"));
        }
        if self.http_timeout.is_zero() || self.notify_deadline.is_zero() {
            return Err(bad("ALERT_HTTP_TIMEOUT/ALERT_NOTIFY_DEADLINE", "must be above 0"));
        }
        Ok(())
    }

    /// Whether any notification would be sent at all.
    pub fn notifies(&self) -> bool {
        self.enabled && (self.slack_webhook_url.is_some() || self.webhook_url.is_some())
    }
}

/// An optional webhook URL; checked for a scheme so a typo is a start-up
/// error rather than every notification failing. The value is never part of
/// the error.
fn url(setting: Setting, env: Env<'_>) -> Result<Option<Secret>, AlertError> {
    let Some(value) = setting.configured(env) else { return Ok(None) };
    let value = value.trim().to_owned();
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(bad(setting.name, "must be an http:// or https:// URL"));
    }
    Ok(Some(Secret::new(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Config {
            slack_webhook_url: Some(Secret::new("https://hooks.slack.com/services/T0/B0/XYZ")),
            webhook_secret: Some(Secret::new("hunter2")),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hooks.slack.com") && !shown.contains("hunter2"), "{shown}");
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults_and_durations() {
        let d = Config::default();
        assert!(d.enabled && d.slack_webhook_url.is_none());
        assert_eq!((d.dedupe_ttl, d.event_ttl), (Duration::from_secs(60), Duration::from_secs(3600)));
        assert_eq!((d.http_timeout, d.retry_base), (Duration::from_secs(5), Duration::from_millis(500)));
        assert_eq!((d.max_events, d.max_attempts, d.notify_deadline), (100, 3, Duration::from_secs(15)));
        let c = Config::from_source(&env_of(&[("ALERT_DEDUPE_TTL", "2m"), ("ALERT_EVENT_TTL", "1h")])).unwrap();
        assert_eq!((c.dedupe_ttl, c.event_ttl), (Duration::from_secs(120), Duration::from_secs(3600)));
        let err = Config::from_source(&env_of(&[("ALERT_HTTP_TIMEOUT", "5 sec")])).unwrap_err().to_string();
        assert!(err.contains("ALERT_HTTP_TIMEOUT"), "{err}");
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let err = Config::from_source(&env_of(&[("SLACK_WEBHOOK_URL", "hooks.slack.com/T0/XYZ")])).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("SLACK_WEBHOOK_URL") && !err.contains("XYZ"), "{err}");
    }

    #[test]
    fn help_names_every_setting_and_no_secret() {
        let env = env_of(&[("ALERT_WEBHOOK_SECRET", "hunter2")]);
        let help = USAGE.help(&env);
        for s in USAGE.settings {
            assert!(help.contains(s.name), "{}", s.name);
        }
        assert!(!help.contains("hunter2"), "{help}");
    }
}
