//! The exporter's settings, from environment variables.

use std::time::Duration;

use hemostat_protocol::{
    config::{Env, Setting, Usage, empty_env, process_env},
    secret::Secret,
};

use crate::error::ExporterError;

/// Whether metrics also go to CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudWatchMode {
    On,
    Off,
    /// On when running inside AWS Lambda (see [`running_on_aws`]).
    Auto,
}

impl std::str::FromStr for CloudWatchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(CloudWatchMode::Auto);
        }
        match hemostat_protocol::config::parse_bool(s) {
            Some(true) => Ok(CloudWatchMode::On),
            Some(false) => Ok(CloudWatchMode::Off),
            None => Err("expected true, false or auto".into()),
        }
    }
}

pub const DEDUPE_TTL: Setting = Setting::new(
    "EXPORTER_DEDUPE_TTL_SECONDS",
    "3600",
    "a counted record is remembered this long so a redelivery is not counted twice; \
     above the bridge's HEMOSTAT_BRIDGE_MAX_AGE_SECONDS",
)
.seconds();
pub const CONTAINER_METRICS: Setting = Setting::new(
    "EXPORTER_CONTAINER_METRICS",
    "true",
    "per-container gauges (CPU, memory, status) from the collectors' stats on every scrape",
);
pub const MAX_CONTAINERS: Setting = Setting::new(
    "EXPORTER_MAX_CONTAINERS",
    "2000",
    "containers exported per scrape at most; the rest are counted in hemostat_exporter_containers_truncated",
);
pub const BEARER_TOKEN: Setting =
    Setting::unset("EXPORTER_BEARER_TOKEN", "when set, /metrics requires Authorization: Bearer <token>").secret();
pub const CLOUDWATCH_ENABLED: Setting = Setting::new(
    "EXPORTER_CLOUDWATCH_ENABLED",
    "auto",
    "also send to CloudWatch, as Embedded Metric Format lines on standard output: true, false, or auto (on inside AWS Lambda)",
);
pub const CLOUDWATCH_NAMESPACE: Setting =
    Setting::new("EXPORTER_CLOUDWATCH_NAMESPACE", "HemoStat", "the CloudWatch namespace of the metrics");

pub const DEADMAN_URL: Setting = Setting::unset(
    "EXPORTER_DEADMAN_URL",
    "dead-man's switch (a healthchecks.io-style check URL): requested after every scheduled run that finds HemoStat \
     healthy (every collector and a bridge replica alive), so a monitor outside HemoStat notices when the pings stop",
)
.secret();
pub const DEADMAN_METHOD: Setting =
    Setting::new("EXPORTER_DEADMAN_METHOD", "GET", "GET, or POST (the body: the run's summary as JSON)");

/// What `exporter --help` prints.
pub const USAGE: Usage = Usage {
    name: "exporter",
    about: "\
exporter: HemoStat's exporter function (AWS Lambda, or the local emulator).

Counts every event batch the bridge delivers, serves Prometheus metrics at
/metrics of its function URL, and on its schedule reports collector
heartbeats and sends metrics to CloudWatch.",
    settings: &[
        DEDUPE_TTL,
        CONTAINER_METRICS,
        MAX_CONTAINERS,
        BEARER_TOKEN,
        CLOUDWATCH_ENABLED,
        CLOUDWATCH_NAMESPACE,
        DEADMAN_URL,
        DEADMAN_METHOD,
    ],
};

/// The settings, each read by the [`Setting`] named in its comment (which
/// holds the variable and its default).
#[derive(Debug, Clone)]
pub struct Config {
    /// `DEDUPE_TTL`, at least 1 s: how long a counted record is
    /// remembered, so a redelivery is not counted twice. Must exceed how long
    /// the bridge keeps redelivering (`HEMOSTAT_BRIDGE_MAX_AGE_SECONDS`).
    pub dedupe_ttl: Duration,
    /// `CONTAINER_METRICS`: per-container gauges (CPU, memory, status) from
    /// the collectors' stats keys on every scrape.
    pub container_metrics: bool,
    /// `MAX_CONTAINERS`: at most this many containers are exported per
    /// scrape, so a huge fleet cannot make a scrape slow or its answer exceed
    /// the function URL's 6 MB; the rest are counted in
    /// `hemostat_exporter_containers_truncated`.
    pub max_containers: usize,
    /// `BEARER_TOKEN`: when set, `/metrics` requires `Authorization: Bearer
    /// <token>` (for a function URL with AuthType NONE). Never logged.
    pub bearer_token: Option<Secret>,
    /// `CLOUDWATCH_ENABLED`: `true`, `false`, or `auto` (on inside AWS
    /// Lambda).
    pub cloudwatch: CloudWatchMode,
    /// `CLOUDWATCH_NAMESPACE`: the CloudWatch namespace of the metrics.
    pub cloudwatch_namespace: String,
    /// `DEADMAN_URL`: pinged after each healthy scheduled run. Never logged.
    pub deadman_url: Option<Secret>,
    /// `DEADMAN_METHOD`: POST (with the summary) rather than GET.
    pub deadman_post: bool,
}

impl Default for Config {
    /// Every setting at its default: what an empty environment gives.
    fn default() -> Self {
        Config::from_source(&empty_env).expect("the exporter defaults are valid")
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ExporterError> {
        Config::from_source(&process_env)
    }

    pub fn from_source(env: Env<'_>) -> Result<Self, ExporterError> {
        let dedupe_ttl = DEDUPE_TTL.duration(env)?;
        if dedupe_ttl < Duration::from_secs(1) {
            return Err(ExporterError::Config {
                name: DEDUPE_TTL.name,
                reason: "must be at least 1s: redelivered records would be counted again".into(),
            });
        }
        let namespace = CLOUDWATCH_NAMESPACE.text(env).unwrap_or_default();
        // CloudWatch reserves the AWS/ prefix for AWS's own metrics.
        if namespace.starts_with("AWS/") || namespace.len() > 255 {
            return Err(ExporterError::Config {
                name: CLOUDWATCH_NAMESPACE.name,
                reason: "must not start with AWS/ and be at most 255 characters".into(),
            });
        }
        Ok(Config {
            dedupe_ttl,
            container_metrics: CONTAINER_METRICS.flag(env)?,
            max_containers: MAX_CONTAINERS.parse(env)?,
            bearer_token: BEARER_TOKEN.configured_secret(env),
            cloudwatch: CLOUDWATCH_ENABLED.parse(env)?,
            cloudwatch_namespace: namespace,
            deadman_url: match DEADMAN_URL.configured_secret(env) {
                Some(url) if !(url.expose().starts_with("https://") || url.expose().starts_with("http://")) => {
                    return Err(ExporterError::Config {
                        name: DEADMAN_URL.name,
                        reason: "must be an http:// or https:// URL".into(),
                    });
                }
                url => url,
            },
            deadman_post: match DEADMAN_METHOD.text(env).unwrap_or_default().to_ascii_uppercase().as_str() {
                "GET" => false,
                "POST" => true,
                other => {
                    return Err(ExporterError::Config {
                        name: DEADMAN_METHOD.name,
                        reason: format!("{other:?}: expected GET or POST"),
                    });
                }
            },
        })
    }

    /// Whether metrics go to CloudWatch in this environment.
    pub fn cloudwatch_enabled(&self) -> bool {
        match self.cloudwatch {
            CloudWatchMode::On => true,
            CloudWatchMode::Off => false,
            CloudWatchMode::Auto => running_on_aws(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty())),
        }
    }
}

/// Inside AWS Lambda: the Lambda variables and the execution role's
/// temporary credentials (Lambda always sets a session token). The local
/// emulator sets the Lambda variables too but passes credentials only when
/// the developer has them in the environment, so `auto` stays off locally
/// unless temporary AWS credentials are in the emulator's environment; set
/// `EXPORTER_CLOUDWATCH_ENABLED=false` to be sure.
pub fn running_on_aws(is_set: impl Fn(&str) -> bool) -> bool {
    ["AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"].iter().all(|k| is_set(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults() {
        let d = Config::default();
        assert_eq!(d.dedupe_ttl, Duration::from_secs(3600));
        assert_eq!((d.container_metrics, d.max_containers, d.cloudwatch), (true, 2000, CloudWatchMode::Auto));
        assert_eq!((d.cloudwatch_namespace.as_str(), d.bearer_token), ("HemoStat", None));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = Config { bearer_token: Some("tok-123".into()), ..Config::default() };
        let shown = format!("{c:?}");
        assert!(!shown.contains("tok-123") && shown.contains("bearer_token: Some(Secret(<redacted>))"), "{shown}");
    }

    #[test]
    fn durations_take_units_and_bare_seconds() {
        let env = env_of(&[("EXPORTER_DEDUPE_TTL_SECONDS", "2h")]);
        let c = Config::from_source(&env).unwrap();
        assert_eq!(c.dedupe_ttl, Duration::from_secs(7200));
        let c = Config::from_source(&env_of(&[("EXPORTER_DEDUPE_TTL_SECONDS", "600")])).unwrap();
        assert_eq!(c.dedupe_ttl, Duration::from_secs(600));
        for (name, value) in [
            ("EXPORTER_DEDUPE_TTL_SECONDS", "0"),
            ("EXPORTER_DEDUPE_TTL_SECONDS", "500ms"),
            ("EXPORTER_DEDUPE_TTL_SECONDS", "soon"),
        ] {
            let env = move |n: &str| (n == name).then(|| value.to_owned());
            let err = Config::from_source(&env).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn help_names_every_setting_and_not_the_token() {
        let help = USAGE.help(&env_of(&[("EXPORTER_BEARER_TOKEN", "tok-123")]));
        for s in USAGE.settings {
            assert!(help.contains(s.name), "{}", s.name);
        }
        assert!(!help.contains("tok-123"), "{help}");
    }

    #[test]
    fn cloudwatch_modes() {
        assert_eq!("AUTO".parse::<CloudWatchMode>(), Ok(CloudWatchMode::Auto));
        assert_eq!("yes".parse::<CloudWatchMode>(), Ok(CloudWatchMode::On));
        assert_eq!("0".parse::<CloudWatchMode>(), Ok(CloudWatchMode::Off));
        assert!("maybe".parse::<CloudWatchMode>().is_err());
    }

    #[test]
    fn auto_needs_lambda_and_role_credentials() {
        let lambda = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"];
        assert!(running_on_aws(|k| lambda.contains(&k)));
        // The emulator without the developer's credentials.
        assert!(!running_on_aws(|k| ["AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION"].contains(&k)));
        // A developer's shell with long-term keys, outside Lambda.
        assert!(!running_on_aws(|k| ["AWS_REGION", "AWS_ACCESS_KEY_ID"].contains(&k)));
    }
}
