//! The alert function's settings, from the seed's environment variables plus
//! the delivery bounds. A bad value is a start-up error naming the variable
//! (never echoing a secret).

use std::time::Duration;

use hemostat_protocol::{
    config::{Env, Setting, Usage, empty_env, process_env},
    secret::Secret,
};

use hemostat_protocol::EventKind;

use crate::{error::AlertError, filter::Filter, notice::Level};
use lettre::message::Mailbox;

/// Where PagerDuty events go unless `ALERT_PAGERDUTY_URL` says otherwise
/// (an EU account's `https://events.eu.pagerduty.com/v2/enqueue`).
pub const PAGERDUTY_ENQUEUE_URL: &str = "https://events.pagerduty.com/v2/enqueue";

pub const SLACK_WEBHOOK_URL: Setting =
    Setting::unset("SLACK_WEBHOOK_URL", "Slack incoming webhook; unset sends nothing to Slack").secret();
pub const SLACK_APPROVAL_BUTTONS: Setting = Setting::new(
    "ALERT_SLACK_APPROVAL_BUTTONS",
    "false",
    "approval_requested messages carry Approve and Deny buttons (needs the Slack app's interactivity pointed at the dashboard's /slack/actions, with SLACK_SIGNING_SECRET on the dashboard and the responder)",
);
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
pub const NTFY_URL: Setting =
    Setting::unset("ALERT_NTFY_URL", "ntfy topic URL (https://ntfy.sh/<topic>); unset sends nothing to ntfy").secret();
pub const NTFY_TOKEN: Setting =
    Setting::unset("ALERT_NTFY_TOKEN", "ntfy access token, sent as Authorization: Bearer (protected topics)").secret();
pub const DISCORD_WEBHOOK_URL: Setting =
    Setting::unset("ALERT_DISCORD_WEBHOOK_URL", "Discord channel webhook; unset sends nothing to Discord").secret();
pub const TEAMS_WEBHOOK_URL: Setting = Setting::unset(
    "ALERT_TEAMS_WEBHOOK_URL",
    "Microsoft Teams Workflows (or incoming) webhook, Adaptive Card messages; unset sends nothing to Teams",
)
.secret();
pub const PAGERDUTY_ROUTING_KEY: Setting = Setting::unset(
    "ALERT_PAGERDUTY_ROUTING_KEY",
    "PagerDuty Events API v2 integration (routing) key; unset sends nothing to PagerDuty",
)
.secret();
pub const PAGERDUTY_URL: Setting =
    Setting::new("ALERT_PAGERDUTY_URL", PAGERDUTY_ENQUEUE_URL, "PagerDuty Events API v2 endpoint");
pub const GOTIFY_URL: Setting =
    Setting::unset("ALERT_GOTIFY_URL", "Gotify server base URL; with ALERT_GOTIFY_TOKEN, sends to Gotify").secret();
pub const GOTIFY_TOKEN: Setting =
    Setting::unset("ALERT_GOTIFY_TOKEN", "Gotify application token (sent as X-Gotify-Key)").secret();

pub const SMTP_HOST: Setting =
    Setting::unset("ALERT_SMTP_HOST", "SMTP server for email notifications (STARTTLS required); unset sends no email");
pub const SMTP_PORT: Setting = Setting::new("ALERT_SMTP_PORT", "587", "SMTP submission port (STARTTLS)");
pub const SMTP_USERNAME: Setting = Setting::unset("ALERT_SMTP_USERNAME", "SMTP login; unset: no authentication");
pub const SMTP_PASSWORD: Setting = Setting::unset("ALERT_SMTP_PASSWORD", "SMTP password").secret();
pub const SMTP_FROM: Setting = Setting::new("ALERT_SMTP_FROM", "HemoStat <hemostat@localhost>", "the From address");
pub const SMTP_TO: Setting =
    Setting::unset("ALERT_SMTP_TO", "recipients, comma-separated (needed with ALERT_SMTP_HOST)");
pub const SMTP_CA_CERT: Setting = Setting::unset(
    "ALERT_SMTP_CA_CERT",
    "PEM file of the CA the SMTP server's certificate is checked against; unset: the system's roots",
);

/// Each sink's filter: the event kinds it gets (`ALERT_<SINK>_EVENTS`,
/// comma-separated; unset: all) and the lowest level
/// (`ALERT_<SINK>_MIN_SEVERITY`: info, warning, error, critical).
pub const FILTERS: [(&str, Setting, Setting); 8] = [
    ("slack", events("ALERT_SLACK_EVENTS"), min("ALERT_SLACK_MIN_SEVERITY", "info")),
    ("webhook", events("ALERT_WEBHOOK_EVENTS"), min("ALERT_WEBHOOK_MIN_SEVERITY", "info")),
    ("ntfy", events("ALERT_NTFY_EVENTS"), min("ALERT_NTFY_MIN_SEVERITY", "info")),
    ("discord", events("ALERT_DISCORD_EVENTS"), min("ALERT_DISCORD_MIN_SEVERITY", "info")),
    ("teams", events("ALERT_TEAMS_EVENTS"), min("ALERT_TEAMS_MIN_SEVERITY", "info")),
    // Paging for a fix that worked would wake someone for nothing; the
    // resolve that closes an incident passes whatever the minimum.
    ("pagerduty", events("ALERT_PAGERDUTY_EVENTS"), min("ALERT_PAGERDUTY_MIN_SEVERITY", "warning")),
    ("gotify", events("ALERT_GOTIFY_EVENTS"), min("ALERT_GOTIFY_MIN_SEVERITY", "info")),
    ("email", events("ALERT_EMAIL_EVENTS"), min("ALERT_EMAIL_MIN_SEVERITY", "info")),
];

const fn events(name: &'static str) -> Setting {
    Setting::unset(
        name,
        "event kinds this sink gets, comma-separated (remediation_complete, false_alarm, system_alert); unset: all",
    )
}

const fn min(name: &'static str, default: &'static str) -> Setting {
    Setting::new(name, default, "lowest level this sink gets: info, warning, error, critical")
}

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
then notifies every configured sink: Slack, a JSON webhook, ntfy, Discord,
Microsoft Teams, PagerDuty, Gotify, email (SMTP with STARTTLS), each with
its own filter.",
    settings: &[
        SLACK_WEBHOOK_URL,
        SLACK_APPROVAL_BUTTONS,
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
        NTFY_URL,
        NTFY_TOKEN,
        DISCORD_WEBHOOK_URL,
        TEAMS_WEBHOOK_URL,
        PAGERDUTY_ROUTING_KEY,
        PAGERDUTY_URL,
        GOTIFY_URL,
        GOTIFY_TOKEN,
        FILTERS[0].1,
        FILTERS[0].2,
        FILTERS[1].1,
        FILTERS[1].2,
        FILTERS[2].1,
        FILTERS[2].2,
        FILTERS[3].1,
        FILTERS[3].2,
        FILTERS[4].1,
        FILTERS[4].2,
        FILTERS[5].1,
        FILTERS[5].2,
        FILTERS[6].1,
        FILTERS[6].2,
        SMTP_HOST,
        SMTP_PORT,
        SMTP_USERNAME,
        SMTP_PASSWORD,
        SMTP_FROM,
        SMTP_TO,
        SMTP_CA_CERT,
        FILTERS[7].1,
        FILTERS[7].2,
    ],
};

/// The settings, each read by the [`Setting`] named in its comment (which
/// holds the variable and its default).
#[derive(Debug, Clone)]
pub struct Config {
    /// `SLACK_WEBHOOK_URL` (the seed's name); `None` sends nothing to Slack.
    pub slack_webhook_url: Option<Secret>,
    /// `SLACK_APPROVAL_BUTTONS`: Approve and Deny buttons on approval requests.
    pub slack_approval_buttons: bool,
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
    /// `NTFY_URL`, `NTFY_TOKEN`: the ntfy topic and its access token.
    pub ntfy_url: Option<Secret>,
    pub ntfy_token: Option<Secret>,
    /// `DISCORD_WEBHOOK_URL`.
    pub discord_webhook_url: Option<Secret>,
    /// `TEAMS_WEBHOOK_URL`.
    pub teams_webhook_url: Option<Secret>,
    /// `PAGERDUTY_ROUTING_KEY`, `PAGERDUTY_URL`.
    pub pagerduty_routing_key: Option<Secret>,
    pub pagerduty_url: String,
    /// `GOTIFY_URL`, `GOTIFY_TOKEN`: both needed.
    pub gotify_url: Option<Secret>,
    pub gotify_token: Option<Secret>,
    /// `SMTP_*`: the email sink, when `SMTP_HOST` is set.
    pub smtp: Option<Smtp>,
    /// `FILTERS`: each sink's filter, by sink name.
    pub filters: Vec<(&'static str, Filter)>,
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
            slack_approval_buttons: SLACK_APPROVAL_BUTTONS.flag(env)?,
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
            ntfy_url: url(NTFY_URL, env)?,
            ntfy_token: NTFY_TOKEN.configured_secret(env),
            discord_webhook_url: url(DISCORD_WEBHOOK_URL, env)?,
            teams_webhook_url: url(TEAMS_WEBHOOK_URL, env)?,
            pagerduty_routing_key: PAGERDUTY_ROUTING_KEY.configured_secret(env),
            pagerduty_url: PAGERDUTY_URL.text(env).unwrap_or_default(),
            gotify_url: url(GOTIFY_URL, env)?,
            gotify_token: GOTIFY_TOKEN.configured_secret(env),
            smtp: smtp(env)?,
            filters: FILTERS
                .iter()
                .map(|(name, e, m)| Ok((*name, filter(*e, *m, env)?)))
                .collect::<Result<_, AlertError>>()?,
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
        if self.gotify_url.is_some() != self.gotify_token.is_some() {
            return Err(bad("ALERT_GOTIFY_URL/ALERT_GOTIFY_TOKEN", "set both or neither"));
        }
        if !(self.pagerduty_url.starts_with("https://") || self.pagerduty_url.starts_with("http://")) {
            return Err(bad("ALERT_PAGERDUTY_URL", "must be an http:// or https:// URL"));
        }
        Ok(())
    }

    /// The filter of the sink `name` (everything, when unknown).
    pub fn filter(&self, name: &str) -> Filter {
        self.filters.iter().find(|(n, _)| *n == name).map(|(_, f)| f.clone()).unwrap_or_default()
    }
}

/// Where and how to send, from the `ALERT_SMTP_*` settings.
#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// PEM of the CA the server's certificate is checked against, instead
    /// of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// The email sink's settings; `None` without `ALERT_SMTP_HOST`.
fn smtp(env: Env<'_>) -> Result<Option<Smtp>, AlertError> {
    let Some(host) = SMTP_HOST.configured(env) else { return Ok(None) };
    let mailbox = |setting: Setting, text: &str| {
        text.trim().parse::<Mailbox>().map_err(|e| bad(setting.name, format!("{:?}: {e}", text.trim())))
    };
    let to: Vec<Mailbox> = SMTP_TO
        .configured(env)
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| mailbox(SMTP_TO, t))
        .collect::<Result<_, _>>()?;
    if to.is_empty() {
        return Err(bad(SMTP_TO.name, "at least one recipient is needed with ALERT_SMTP_HOST"));
    }
    let ca_pem = match SMTP_CA_CERT.configured(env) {
        None => None,
        Some(path) => Some(std::fs::read(&path).map_err(|e| bad(SMTP_CA_CERT.name, format!("{path}: {e}")))?),
    };
    Ok(Some(Smtp {
        host,
        port: SMTP_PORT.parse(env)?,
        username: SMTP_USERNAME.configured(env),
        password: SMTP_PASSWORD.configured_secret(env),
        from: mailbox(SMTP_FROM, &SMTP_FROM.text(env).unwrap_or_default())?,
        to,
        ca_pem,
    }))
}

/// A sink's filter from its two settings.
fn filter(events: Setting, min: Setting, env: Env<'_>) -> Result<Filter, AlertError> {
    let kinds = match events.configured(env) {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| match k.parse::<EventKind>() {
                    Ok(kind @ (EventKind::RemediationComplete | EventKind::FalseAlarm | EventKind::SystemAlert)) => {
                        Ok(kind)
                    }
                    _ => Err(bad(
                        events.name,
                        format!("{k:?}: expected remediation_complete, false_alarm or system_alert"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let level = min.text(env).unwrap_or_default();
    let min_level =
        Level::parse(&level).ok_or_else(|| bad(min.name, format!("{level:?}: expected one of {}", Level::NAMES)))?;
    Ok(Filter { kinds, min_level })
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
