//! The exporter's settings, from environment variables.

use std::time::Duration;

use hemostat_protocol::config::{env_bool, env_or, env_secret, parse_duration};

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

#[derive(Clone)]
pub struct Config {
    /// `EXPORTER_DEDUPE_TTL_SECONDS` (3600): how long a counted record is
    /// remembered, so a redelivery is not counted twice. Must exceed how
    /// long the bridge keeps redelivering (`HEMOSTAT_BRIDGE_MAX_AGE_SECONDS`,
    /// 600 s by default).
    pub dedupe_ttl: Duration,
    /// `EXPORTER_CONTAINER_METRICS` (true): per-container gauges (CPU,
    /// memory, status) from the collectors' stats keys on every scrape.
    pub container_metrics: bool,
    /// `EXPORTER_MAX_CONTAINERS` (2000): at most this many containers are
    /// exported per scrape, so a huge fleet cannot make a scrape slow or
    /// its answer exceed the function URL's 6 MB; the rest are counted in
    /// `hemostat_exporter_containers_truncated`.
    pub max_containers: usize,
    /// `EXPORTER_BEARER_TOKEN` (unset): when set, `/metrics` requires
    /// `Authorization: Bearer <token>` (for a function URL with AuthType
    /// NONE). Never logged.
    pub bearer_token: Option<String>,
    /// `EXPORTER_CLOUDWATCH_ENABLED` (auto): `true`, `false`, or `auto` (on
    /// inside AWS Lambda).
    pub cloudwatch: CloudWatchMode,
    /// `EXPORTER_CLOUDWATCH_NAMESPACE` (HemoStat): the CloudWatch namespace;
    /// the template's IAM policy allows PutMetricData in this one only.
    pub cloudwatch_namespace: String,
    /// `EXPORTER_CLOUDWATCH_ENDPOINT` (unset): CloudWatch endpoint override
    /// (tests point it at moto). `AWS_ENDPOINT_URL_CLOUDWATCH`, which the
    /// SDK reads itself, works as well outside the emulator.
    pub cloudwatch_endpoint: Option<String>,
    /// `EXPORTER_CLOUDWATCH_TIMEOUT` (5s): bound on each PutMetricData call.
    pub cloudwatch_timeout: Duration,
}

impl std::fmt::Debug for Config {
    // Hand-written so the token can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("dedupe_ttl", &self.dedupe_ttl)
            .field("container_metrics", &self.container_metrics)
            .field("max_containers", &self.max_containers)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("cloudwatch", &self.cloudwatch)
            .field("cloudwatch_namespace", &self.cloudwatch_namespace)
            .field("cloudwatch_endpoint", &self.cloudwatch_endpoint)
            .field("cloudwatch_timeout", &self.cloudwatch_timeout)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dedupe_ttl: Duration::from_secs(3600),
            container_metrics: true,
            max_containers: 2000,
            bearer_token: None,
            cloudwatch: CloudWatchMode::Auto,
            cloudwatch_namespace: "HemoStat".into(),
            cloudwatch_endpoint: None,
            cloudwatch_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ExporterError> {
        let dedupe_ttl: u64 = env_or("EXPORTER_DEDUPE_TTL_SECONDS", 3600)?;
        if dedupe_ttl == 0 {
            return Err(ExporterError::Config {
                name: "EXPORTER_DEDUPE_TTL_SECONDS",
                reason: "must be at least 1: redelivered records would be counted again".into(),
            });
        }
        let namespace = std::env::var("EXPORTER_CLOUDWATCH_NAMESPACE")
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "HemoStat".into());
        // CloudWatch reserves the AWS/ prefix for AWS's own metrics.
        if namespace.starts_with("AWS/") || namespace.len() > 255 {
            return Err(ExporterError::Config {
                name: "EXPORTER_CLOUDWATCH_NAMESPACE",
                reason: "must not start with AWS/ and be at most 255 characters".into(),
            });
        }
        let timeout = match std::env::var("EXPORTER_CLOUDWATCH_TIMEOUT") {
            Ok(v) if !v.trim().is_empty() => {
                parse_duration(&v).ok().filter(|d| !d.is_zero()).ok_or_else(|| ExporterError::Config {
                    name: "EXPORTER_CLOUDWATCH_TIMEOUT",
                    reason: format!("{v:?} is not a positive duration (5, 5s, 500ms, 1m)"),
                })?
            }
            _ => Duration::from_secs(5),
        };
        Ok(Config {
            dedupe_ttl: Duration::from_secs(dedupe_ttl),
            container_metrics: env_bool("EXPORTER_CONTAINER_METRICS", true)?,
            max_containers: env_or("EXPORTER_MAX_CONTAINERS", 2000)?,
            bearer_token: env_secret("EXPORTER_BEARER_TOKEN"),
            cloudwatch: env_or("EXPORTER_CLOUDWATCH_ENABLED", CloudWatchMode::Auto)?,
            cloudwatch_namespace: namespace,
            cloudwatch_endpoint: env_secret("EXPORTER_CLOUDWATCH_ENDPOINT"),
            cloudwatch_timeout: timeout,
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
