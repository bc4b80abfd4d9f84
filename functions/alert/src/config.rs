//! The alert function's settings, from the seed's environment variables plus
//! the delivery bounds. A bad value is a start-up error naming the variable
//! (never echoing a secret).

use std::{fmt, time::Duration};

use hemostat_protocol::config::{env_bool, env_or, env_secret, parse_duration};

use crate::error::AlertError;

/// What `alert --help` prints: every variable, its default and meaning.
pub const HELP: &str = "\
alert: HemoStat's alert function (AWS Lambda, or the local emulator).

Consumes remediation_complete, false_alarm and system_alert batches from the
bridge; stores each event in hemostat:events:<type> and hemostat:events:all,
then notifies Slack and/or a JSON webhook. Configured by environment:

  SLACK_WEBHOOK_URL        unset     Slack incoming webhook (secret, never logged)
  ALERT_WEBHOOK_URL        unset     generic JSON webhook: {\"envelope\", \"summary\"} (secret)
  ALERT_WEBHOOK_SECRET     unset     HMAC-SHA256 key: X-HemoStat-Signature-256: sha256=<hex of body>
  ALERT_ENABLED            true      false: store events, send nothing
  ALERT_DEDUPE_TTL         60        same notification (fingerprint) sent once per sink within this; 0 disables
  ALERT_MAX_EVENTS         100       events kept per list
  ALERT_EVENT_TTL          3600      lifetime of the event lists
  ALERT_HTTP_TIMEOUT       5s        one HTTP request
  ALERT_MAX_ATTEMPTS       3         attempts per notification (5xx, 429, timeouts are retried)
  ALERT_RETRY_BASE         500ms     first retry delay, doubling
  ALERT_NOTIFY_DEADLINE    15s       a notification's total time, retries and Retry-After included;
                                     keep it well below the function's timeout
  REDIS_URL                redis://127.0.0.1:6379
  RUST_LOG                 info

Durations take 10, 10s, 500ms, 2m (a bare number is seconds).
";

/// A webhook URL or signing key. `Debug` never shows the value, so it cannot
/// reach a log through a `{:?}` of the configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (a request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `SLACK_WEBHOOK_URL` (the seed's name): Slack incoming webhook; unset
    /// or empty sends nothing to Slack.
    pub slack_webhook_url: Option<Secret>,
    /// `ALERT_WEBHOOK_URL`: a generic webhook receiving the envelope plus a
    /// summary as JSON; unset or empty sends nothing.
    pub webhook_url: Option<Secret>,
    /// `ALERT_WEBHOOK_SECRET`: when set, webhook requests carry
    /// `X-HemoStat-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    pub webhook_secret: Option<Secret>,
    /// `ALERT_ENABLED` (true): false stops notifications; events are still
    /// stored for the dashboard.
    pub enabled: bool,
    /// `ALERT_DEDUPE_TTL` (60 s): a notification with the same fingerprint is
    /// sent once per sink within this window, across replicas and
    /// redeliveries. Zero turns deduplication off.
    pub dedupe_ttl: Duration,
    /// `ALERT_MAX_EVENTS` (100): events kept in each `hemostat:events:*` list.
    pub max_events: usize,
    /// `ALERT_EVENT_TTL` (3600 s): the lists expire this long after their
    /// last event; also how long a stored envelope is recognised when
    /// redelivered.
    pub event_ttl: Duration,
    /// `ALERT_HTTP_TIMEOUT` (5 s): one HTTP request, connect to last byte.
    pub http_timeout: Duration,
    /// `ALERT_MAX_ATTEMPTS` (3): attempts per notification and sink.
    pub max_attempts: u32,
    /// `ALERT_RETRY_BASE` (500 ms): first retry delay, doubling after.
    pub retry_base: Duration,
    /// `ALERT_NOTIFY_DEADLINE` (15 s): everything one notification may take,
    /// retries and Slack's `Retry-After` included, so a batch always ends
    /// well inside the function's timeout (template: 30 s).
    pub notify_deadline: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            slack_webhook_url: None,
            webhook_url: None,
            webhook_secret: None,
            enabled: true,
            dedupe_ttl: Duration::from_secs(60),
            max_events: 100,
            event_ttl: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(5),
            max_attempts: 3,
            retry_base: Duration::from_millis(500),
            notify_deadline: Duration::from_secs(15),
        }
    }
}

fn bad(name: &'static str, reason: impl Into<String>) -> AlertError {
    AlertError::Config { name, reason: reason.into() }
}

impl Config {
    pub fn from_env() -> Result<Self, AlertError> {
        let d = Config::default();
        let config = Config {
            slack_webhook_url: url("SLACK_WEBHOOK_URL")?,
            webhook_url: url("ALERT_WEBHOOK_URL")?,
            webhook_secret: env_secret("ALERT_WEBHOOK_SECRET").map(Secret),
            enabled: env_bool("ALERT_ENABLED", d.enabled)?,
            dedupe_ttl: env_duration("ALERT_DEDUPE_TTL", d.dedupe_ttl)?,
            max_events: env_or("ALERT_MAX_EVENTS", d.max_events)?,
            event_ttl: env_duration("ALERT_EVENT_TTL", d.event_ttl)?,
            http_timeout: env_duration("ALERT_HTTP_TIMEOUT", d.http_timeout)?,
            max_attempts: env_or("ALERT_MAX_ATTEMPTS", d.max_attempts)?,
            retry_base: env_duration("ALERT_RETRY_BASE", d.retry_base)?,
            notify_deadline: env_duration("ALERT_NOTIFY_DEADLINE", d.notify_deadline)?,
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
fn url(name: &'static str) -> Result<Option<Secret>, AlertError> {
    let Some(value) = env_secret(name) else { return Ok(None) };
    let value = value.trim().to_owned();
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(bad(name, "must be an http:// or https:// URL"));
    }
    Ok(Some(Secret(value)))
}

fn env_duration(name: &'static str, default: Duration) -> Result<Duration, AlertError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => parse_duration(&v).map_err(|reason| bad(name, format!("{v:?}: {reason}"))),
        _ => Ok(default),
    }
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

    #[test]
    fn help_names_every_variable() {
        for name in [
            "SLACK_WEBHOOK_URL",
            "ALERT_WEBHOOK_URL",
            "ALERT_WEBHOOK_SECRET",
            "ALERT_ENABLED",
            "ALERT_DEDUPE_TTL",
            "ALERT_MAX_EVENTS",
            "ALERT_EVENT_TTL",
            "ALERT_HTTP_TIMEOUT",
            "ALERT_MAX_ATTEMPTS",
            "ALERT_RETRY_BASE",
            "ALERT_NOTIFY_DEADLINE",
        ] {
            assert!(HELP.contains(name), "{name}");
        }
    }
}
