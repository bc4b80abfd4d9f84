//! Command-line flags and their environment variables.

use std::{fmt, time::Duration};

use clap::Parser;
use hemostat_protocol::connection::redact;

/// HemoStat collector: watches this host's Docker engine, reports crashes
/// and executes remediation commands.
#[derive(Clone, Parser)]
#[command(name = "hemostat-collector", version, about)]
pub struct Config {
    /// Redis URL (redis:// or rediss://, may carry a password).
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// Docker Engine endpoint (unix:// socket or tcp://).
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,

    /// This host's name in the fleet: commands are addressed to it and
    /// alerts carry it. Defaults to the machine's hostname.
    #[arg(long = "host", env = "HEMOSTAT_HOST", default_value_t = hostname())]
    pub host: String,

    /// HMAC key for remediation commands. When set, unsigned or forged
    /// commands are refused.
    #[arg(long, env = "HEMOSTAT_COMMAND_KEY", hide_env_values = true)]
    pub command_key: Option<String>,

    /// Grace period before a stop or restart kills the container (e.g. 10,
    /// 10s, 500ms). A container label `hemostat.stop_timeout` overrides it.
    #[arg(long, env = "HEMOSTAT_STOP_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub stop_timeout: Duration,

    /// How often the heartbeat key is refreshed (its TTL is three times this).
    #[arg(long, env = "HEMOSTAT_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Manage only containers carrying these labels: `key=value` or `key`,
    /// comma-separated, all must match (empty: every container). Lets
    /// several collectors share one engine without touching each other's
    /// containers.
    #[arg(long, env = "HEMOSTAT_LABEL_SELECTOR", default_value = "")]
    pub label_selector: String,

    /// Opt-in mode: manage only containers labelled `hemostat.enable=true`
    /// (or autoheal's `autoheal=true`).
    #[arg(long, env = "HEMOSTAT_OPT_IN", default_value_t = false, value_parser = parse_flag)]
    pub opt_in: bool,

    /// Print one JSON snapshot of every container and exit.
    #[arg(long)]
    pub once: bool,
}

fn parse_flag(s: &str) -> Result<bool, String> {
    hemostat_protocol::config::parse_bool(s).ok_or_else(|| format!("{s:?} is not true or false"))
}

impl Config {
    pub fn scope(&self) -> Result<crate::scope::Scope, crate::error::CollectorError> {
        crate::scope::Scope::new(&self.label_selector, self.opt_in).map_err(crate::error::CollectorError::Config)
    }

    /// The command key, with an empty value meaning "not configured".
    pub fn command_key(&self) -> Option<&[u8]> {
        self.command_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(str::as_bytes)
    }
}

// By hand, so that logging a Config never leaks the key or a Redis password.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("redis_url", &redact(&self.redis_url))
            .field("docker_host", &self.docker_host)
            .field("host", &self.host)
            .field("command_key", &self.command_key().map(|_| "***"))
            .field("stop_timeout", &self.stop_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("label_selector", &self.label_selector)
            .field("opt_in", &self.opt_in)
            .field("once", &self.once)
            .finish()
    }
}

/// `10`, `10s`, `500ms`, `2m`: bare numbers are seconds, as Docker's `-t`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 10, 10s, 500ms)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s or m)")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The machine's hostname: /etc/hostname, else the `hostname` command.
pub fn hostname() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned());
    let name = from_file.filter(|s| !s.is_empty()).or_else(|| {
        std::process::Command::new("hostname")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    name.unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Config::parse_from([
            "hemostat-collector",
            "--redis-url",
            "redis://:hunter2@r:6379",
            "--command-key",
            "topsecret",
            "--host",
            "h1",
        ]);
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2") && !s.contains("topsecret"), "{s}");
        assert_eq!(c.command_key(), Some(&b"topsecret"[..]));
    }
}
