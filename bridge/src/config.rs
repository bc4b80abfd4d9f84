//! The bridge's settings: flags, each readable from the environment.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use hemostat_protocol::{
    backoff::Backoff,
    config::{DEFAULT_REDIS_URL, library_help, parse_duration, parse_millis, parse_seconds},
    secret::{RedisUrl, Secret},
};

use crate::binding::RouteSpec;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "hemostat-bridge",
    version,
    about = "Carries HemoStat events from Redis streams to functions, at least once.",
    after_help = library_help()
)]
pub struct Config {
    /// Redis URL (redis:// or rediss://, credentials allowed; never logged).
    // A `RedisUrl`: the derived `Debug` shows it without its credentials.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true, value_parser = clap::value_parser!(RedisUrl))]
    pub redis_url: RedisUrl,

    /// Base URL of the Lambda Invoke API: the local emulator, any Lambda-compatible endpoint, or `aws`
    /// for AWS Lambda's own regional endpoint (region and credentials from the standard AWS chain).
    #[arg(long, env = "HEMOSTAT_LAMBDA_ENDPOINT", default_value = "http://127.0.0.1:9001")]
    pub lambda_endpoint: String,

    /// How functions are invoked: `sdk` (aws-sdk-lambda, SigV4-signed: the cloud's code path, also
    /// against the emulator) or `http` (plain unsigned HTTP; emulator only).
    #[arg(long, env = "HEMOSTAT_BRIDGE_INVOKER", value_enum, default_value_t = InvokerKind::Sdk)]
    pub invoker: InvokerKind,

    /// The local emulator's token (its HEMOSTAT_LAMBDA_TOKEN; never logged): `sdk` signs with it as the
    /// secret access key, `http` sends it as a bearer token. Not for AWS Lambda, which takes the
    /// standard AWS credentials.
    #[arg(long, env = "HEMOSTAT_LAMBDA_TOKEN", hide_env_values = true, value_parser = clap::value_parser!(Secret))]
    pub lambda_token: Option<Secret>,

    /// Replaces protocol's routes: comma-separated `stream=function` (stream: an event kind such as
    /// `health_alert`, or a full stream name; function: the short name, prefixed). Default: protocol's ROUTES.
    #[arg(long, env = "HEMOSTAT_BRIDGE_ROUTES", value_delimiter = ',')]
    pub routes: Vec<RouteSpec>,

    /// Invocations in flight at once per route. More than 1 overlaps the Redis round trips and the
    /// invocations (throughput) at the price of strict per-stream ordering between batches.
    #[arg(long, env = "HEMOSTAT_BRIDGE_MAX_IN_FLIGHT", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_in_flight: u16,

    /// Prefix of the deployed function names (`{prefix}-analyzer`); matches template.yaml's FunctionPrefix.
    #[arg(long, env = "HEMOSTAT_FUNCTION_PREFIX", default_value = "hemostat")]
    pub function_prefix: String,

    /// This replica's consumer name in every group; must be unique per replica.
    #[arg(long, env = "HEMOSTAT_BRIDGE_CONSUMER", default_value_t = default_consumer())]
    pub consumer: String,

    /// Relay events that seed-protocol publishers put only on a seed channel
    /// into their stream, so e.g. a custom analyzer's `remediation_needed`
    /// still passes the responder's safety gate.
    #[arg(long, env = "HEMOSTAT_BRIDGE_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay: bool,

    /// Most records handed to one invocation.
    #[arg(long, env = "HEMOSTAT_BRIDGE_BATCH_SIZE", default_value_t = 10)]
    pub batch_size: usize,

    // Durations below: a bare number keeps the unit in the variable's name
    // (configurations from before units were accepted); `250ms`, `10s`,
    // `2m`, `1h` work too. Kept as integers: the consumer counts in them.
    /// How long one read waits for new records (bare number: milliseconds).
    #[arg(long, env = "HEMOSTAT_BRIDGE_BLOCK_MS", default_value = "1000", value_parser = parse_millis)]
    pub block_ms: u64,

    /// Deliveries of a record before it is dead-lettered.
    #[arg(long, env = "HEMOSTAT_BRIDGE_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u64,

    /// First retry delay (bare number: milliseconds); doubles with every further attempt (each delay
    /// jittered between half and all of it).
    #[arg(long, env = "HEMOSTAT_BRIDGE_RETRY_BASE_MS", default_value = "1000", value_parser = parse_millis)]
    pub retry_base_ms: u64,

    /// A record pending this long (bare number: milliseconds) at another consumer is taken over: that
    /// replica is presumed dead. Keep it above the longest function timeout.
    #[arg(long, env = "HEMOSTAT_BRIDGE_RECLAIM_IDLE_MS", default_value = "60000", value_parser = parse_millis)]
    pub reclaim_idle_ms: u64,

    /// Records older than this (bare number: seconds) are dead-lettered as stale instead of delivered:
    /// acting on an hour-old crash would do harm. 0 disables.
    #[arg(long, env = "HEMOSTAT_BRIDGE_MAX_AGE_SECONDS", default_value = "600", value_parser = parse_seconds)]
    pub max_age_seconds: u64,

    /// Longest wait for one invocation (bare number: seconds).
    #[arg(long, env = "HEMOSTAT_BRIDGE_INVOKE_TIMEOUT_SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub invoke_timeout_seconds: u64,

    /// How often this replica writes its heartbeat (`hemostat:bridge:heartbeat:<consumer>`, expiring
    /// after three intervals) with each route's lag, and checks the alert thresholds below.
    #[arg(long, env = "HEMOSTAT_BRIDGE_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// A `bridge_lag` system alert when this many records of a stream wait unread by its group
    /// (0: never on count).
    #[arg(long, env = "HEMOSTAT_BRIDGE_LAG_ALERT", default_value_t = 1000)]
    pub lag_alert: u64,

    /// A `bridge_lag` system alert when a stream's oldest unread record is this old (0: never on age).
    /// Below HEMOSTAT_BRIDGE_MAX_AGE_SECONDS, so people hear of it before records go stale.
    #[arg(long, env = "HEMOSTAT_BRIDGE_WAIT_ALERT", default_value = "2m", value_parser = parse_duration)]
    pub wait_alert: Duration,

    /// How often the relay pings itself through Redis; three silent intervals and its subscription
    /// is taken for half-open and replaced.
    #[arg(long, env = "HEMOSTAT_BRIDGE_KEEPALIVE", default_value = "5s", value_parser = parse_duration)]
    pub keepalive: Duration,

    /// Serve `/healthz` and `/metrics` (Prometheus text) on this address, e.g. `127.0.0.1:9465`
    /// (empty: not served). `/healthz` answers 503 when a route has not read for three block
    /// timeouts (10 s at least) or the relay stopped hearing its keepalive.
    #[arg(long, env = "HEMOSTAT_BRIDGE_LISTEN", default_value = "")]
    pub listen: String,
}

/// Retry delays grow no longer than this: the default `HEMOSTAT_BRIDGE_MAX_AGE_SECONDS`, past which
/// a record is dead-lettered as stale when it is delivered again anyway.
const LONGEST_RETRY_DELAY: Duration = Duration::from_secs(600);

/// The Invoke API client; see [`Config::invoker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InvokerKind {
    Sdk,
    Http,
}

fn default_consumer() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "bridge".to_owned() } else { host };
    format!("{host}-{}", std::process::id())
}

impl Config {
    /// `None` when the endpoint is AWS's own (`--lambda-endpoint aws`).
    pub fn endpoint_override(&self) -> Option<&str> {
        let e = self.lambda_endpoint.trim();
        (!e.eq_ignore_ascii_case("aws") && !e.is_empty()).then_some(e)
    }

    /// The emulator's token, when one is configured (empty is none).
    pub fn lambda_token(&self) -> Option<&Secret> {
        self.lambda_token.as_ref().filter(|t| !t.is_empty())
    }

    pub fn block(&self) -> Duration {
        Duration::from_millis(self.block_ms)
    }

    pub fn invoke_timeout(&self) -> Duration {
        Duration::from_secs(self.invoke_timeout_seconds)
    }

    /// The retry delays: `--retry-base-ms` doubling with every failed
    /// delivery, up to [`LONGEST_RETRY_DELAY`], jittered.
    fn retry_backoff(&self) -> Backoff {
        Backoff::new(Duration::from_millis(self.retry_base_ms), LONGEST_RETRY_DELAY)
    }

    /// Delay before delivery number `deliveries + 1` of record `id`. The
    /// jitter is drawn from the id: every scan and every replica computes
    /// the same delay for a record (one moment it is due, one min-idle for
    /// its XCLAIM), while records that failed together retry spread out.
    pub fn backoff(&self, deliveries: u64, id: &str) -> Duration {
        self.retry_backoff().delay_for(deliveries, id)
    }

    /// The shortest [`Config::backoff`] of any record: how long a record
    /// must have been idle before a scan for retries looks at it.
    pub fn shortest_backoff(&self) -> Duration {
        self.retry_backoff().shortest(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_with_jitter_stable_per_record() {
        let c = Config::parse_from(["hemostat-bridge", "--retry-base-ms", "100"]);
        for (deliveries, nominal) in [(1, 100), (2, 200), (4, 800), (13, 409_600), (14, 600_000), (40, 600_000)] {
            let nominal = Duration::from_millis(nominal);
            for id in ["1700000000000-0", "1700000000000-1", "1700000000001-0"] {
                let delay = c.backoff(deliveries, id);
                assert!(delay >= nominal / 2 && delay <= nominal, "{deliveries}, {id}: {delay:?} for {nominal:?}");
                assert!(delay >= c.shortest_backoff(), "a scan sees every record once due");
                assert_eq!(delay, c.backoff(deliveries, id), "the same on every scan");
            }
        }
        let spread: std::collections::HashSet<Duration> =
            (0..20).map(|i| c.backoff(3, &format!("1700000000000-{i}"))).collect();
        assert!(spread.len() > 15, "records that failed together retry apart: {spread:?}");
        assert_eq!(c.shortest_backoff(), Duration::from_millis(50));
    }

    #[test]
    fn durations_take_units_and_bare_numbers_in_the_named_unit() {
        let d = Config::parse_from(["hemostat-bridge"]);
        assert_eq!((d.block_ms, d.retry_base_ms, d.reclaim_idle_ms), (1000, 1000, 60_000));
        assert_eq!((d.max_age_seconds, d.invoke_timeout_seconds), (600, 60));
        let c = Config::parse_from([
            "hemostat-bridge",
            "--block-ms",
            "250",
            "--retry-base-ms",
            "2s",
            "--reclaim-idle-ms",
            "2m",
            "--max-age-seconds",
            "1h",
            "--invoke-timeout-seconds",
            "90",
        ]);
        assert_eq!((c.block_ms, c.retry_base_ms, c.reclaim_idle_ms), (250, 2000, 120_000));
        assert_eq!((c.max_age_seconds, c.invoke_timeout_seconds), (3600, 90));
        assert_eq!((c.block(), c.invoke_timeout()), (Duration::from_millis(250), Duration::from_secs(90)));
        for bad in [["--block-ms", "fast"], ["--max-age-seconds", "1500ms"], ["--invoke-timeout-seconds", "1d"]] {
            let err = Config::try_parse_from(["hemostat-bridge", bad[0], bad[1]]).unwrap_err().to_string();
            assert!(err.contains(bad[0]), "{err}");
        }
    }

    #[test]
    fn debug_hides_the_redis_password() {
        let c = Config::parse_from(["hemostat-bridge", "--redis-url", "redis://:hunter2@r:6379"]);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && shown.contains("redis://***@r:6379"), "{shown}");
        assert_eq!(&*c.redis_url, "redis://:hunter2@r:6379");
    }

    #[test]
    fn debug_hides_the_lambda_token() {
        let c = Config::parse_from(["hemostat-bridge", "--lambda-token", "t0ken-5ecret"]);
        let shown = format!("{c:?}");
        assert!(!shown.contains("5ecret"), "{shown}");
        assert_eq!(c.lambda_token().map(Secret::expose), Some("t0ken-5ecret"));
        assert!(Config::parse_from(["hemostat-bridge", "--lambda-token", ""]).lambda_token().is_none());
    }

    #[test]
    fn aws_means_no_endpoint_override() {
        let c = Config::parse_from(["hemostat-bridge", "--lambda-endpoint", "aws"]);
        assert_eq!(c.endpoint_override(), None);
        let c = Config::parse_from(["hemostat-bridge", "--routes", "health_alert=a,x:y=b", "--invoker", "http"]);
        assert_eq!(c.endpoint_override(), Some("http://127.0.0.1:9001"));
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.invoker, InvokerKind::Http);
    }
}
