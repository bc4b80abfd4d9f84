//! What the supervisor is told by its environment (the image sets the
//! paths; `docker run -e` the rest), read once and checked before anything
//! starts.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use hemostat_protocol::config::{Setting, Usage};

use crate::error::SupervisorError;

pub const STATE_DIR: Setting = Setting::new(
    "HEMOSTAT_STATE_DIR",
    "/var/lib/hemostat",
    "the state volume: keys, tokens, Redis users and data, the collector's cursor",
);
pub const BIN_DIR: Setting = Setting::new("HEMOSTAT_BIN_DIR", "/usr/local/bin", "where every HemoStat binary is");
pub const TEMPLATE: Setting =
    Setting::new("HEMOSTAT_TEMPLATE", "/etc/hemostat/template.yaml", "the SAM template the emulator runs");
pub const REDIS_CONF: Setting = Setting::new(
    "HEMOSTAT_REDIS_CONF",
    "/etc/hemostat/durability.conf",
    "the durability settings of the image's Redis",
);
pub const REDIS_PORT: Setting = Setting::new("HEMOSTAT_REDIS_PORT", "6379", "Redis, on the container's 127.0.0.1");
pub const LOCAL_PORT: Setting =
    Setting::new("HEMOSTAT_LOCAL_PORT", "9001", "the emulator's Invoke API, on the container's 127.0.0.1");
pub const DASHBOARD_ADDRESS: Setting = Setting::new(
    "HEMOSTAT_DASHBOARD_ADDRESS",
    "0.0.0.0",
    "where the dashboard listens in the container; 127.0.0.1 with --network host",
);
pub const DASHBOARD_PORT: Setting =
    Setting::new("HEMOSTAT_DASHBOARD_PORT", "8080", "the dashboard's port in the container (publish the same number)");
pub const HOST: Setting =
    Setting::unset("HEMOSTAT_HOST", "the collector's host name in the fleet (default: the engine's name)");
pub const DOCKER_HOST: Setting =
    Setting::new("DOCKER_HOST", "unix:///var/run/docker.sock", "the Docker engine the collector watches");
pub const MAX_FAILURES: Setting = Setting::new(
    "HEMOSTAT_SUPERVISOR_MAX_FAILURES",
    "5",
    "quick deaths in a row of one part before the supervisor gives up (exit 1)",
);
pub const STABLE_SECONDS: Setting = Setting::new(
    "HEMOSTAT_SUPERVISOR_STABLE_SECONDS",
    "30",
    "a run this long is not a quick death: the count starts again",
)
.seconds();

/// What `hemostat-supervisor --help` prints.
pub const USAGE: Usage = Usage {
    name: "hemostat-supervisor",
    about: "HemoStat in one container: makes the keys and tokens in the state volume on the first start, then \
runs Redis, the Lambda emulator with every function, the bridge and the collector, restarting a part that \
dies and exiting 1 when one keeps dying. Every other variable is passed on to the parts.",
    settings: &[
        STATE_DIR,
        BIN_DIR,
        TEMPLATE,
        REDIS_CONF,
        REDIS_PORT,
        LOCAL_PORT,
        DASHBOARD_ADDRESS,
        DASHBOARD_PORT,
        HOST,
        DOCKER_HOST,
        MAX_FAILURES,
        STABLE_SECONDS,
    ],
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// The state volume: keys, tokens, Redis users and data, the collector's cursor.
    pub state_dir: PathBuf,
    /// Where hemostat-local, the functions, the bridge, the collector and `hemostat` are.
    pub bin_dir: PathBuf,
    pub template: PathBuf,
    /// The durability settings redis-server starts with.
    pub redis_conf: PathBuf,
    /// The Redis every part uses instead of the image's own (no redis-server then).
    pub external_redis: bool,
    pub redis_port: u16,
    /// The emulator's Invoke and Runtime APIs, on 127.0.0.1 only.
    pub local_port: u16,
    /// The dashboard, at the root of a port of its own.
    pub dashboard_address: IpAddr,
    pub dashboard_port: u16,
    /// The collector's host name, if given; else the engine's.
    pub host: Option<String>,
    /// The engine's socket when DOCKER_HOST is a unix:// one (or unset).
    pub docker_socket: Option<PathBuf>,
    /// How many quick deaths in a row of one part end the supervisor.
    pub max_failures: u32,
    /// A run at least this long was not a quick death: the count starts again.
    pub stable: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Settings, SupervisorError> {
        Settings::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// From `var` (a variable's value when set and not empty), so tests need no process state.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SupervisorError> {
        let path = |name: &str, default: &str| PathBuf::from(var(name).unwrap_or_else(|| default.to_owned()));
        let docker_socket = match var(DOCKER_HOST.name) {
            None => Some(PathBuf::from("/var/run/docker.sock")),
            Some(host) => host.strip_prefix("unix://").map(PathBuf::from),
        };
        Ok(Settings {
            state_dir: path(STATE_DIR.name, STATE_DIR.default.unwrap_or_default()),
            bin_dir: path(BIN_DIR.name, BIN_DIR.default.unwrap_or_default()),
            template: path(TEMPLATE.name, TEMPLATE.default.unwrap_or_default()),
            redis_conf: path(REDIS_CONF.name, REDIS_CONF.default.unwrap_or_default()),
            external_redis: var("REDIS_URL").is_some(),
            redis_port: parse(&var, REDIS_PORT.name, 6379)?,
            local_port: parse(&var, LOCAL_PORT.name, 9001)?,
            dashboard_address: parse(&var, DASHBOARD_ADDRESS.name, IpAddr::from([0, 0, 0, 0]))?,
            dashboard_port: parse(&var, DASHBOARD_PORT.name, 8080)?,
            host: var(HOST.name),
            docker_socket,
            max_failures: parse(&var, MAX_FAILURES.name, 5u32)?.max(1),
            stable: Duration::from_secs(parse(&var, STABLE_SECONDS.name, 30u64)?),
        })
    }
}

fn parse<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, SupervisorError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(value) => {
            value.trim().parse().map_err(|e: T::Err| SupervisorError::Setting { name, value, why: e.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SupervisorError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_fit_the_image() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/hemostat"));
        assert_eq!((s.redis_port, s.local_port, s.dashboard_port), (6379, 9001, 8080));
        assert_eq!(s.docker_socket, Some(PathBuf::from("/var/run/docker.sock")));
        assert!(!s.external_redis);
        assert_eq!((s.max_failures, s.stable), (5, Duration::from_secs(30)));
    }

    #[test]
    fn a_bad_value_is_named_in_the_error() {
        let e = settings(&[("HEMOSTAT_REDIS_PORT", "sixty")]).unwrap_err();
        assert!(e.to_string().starts_with("HEMOSTAT_REDIS_PORT=\"sixty\""), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(settings(&[("HEMOSTAT_DASHBOARD_ADDRESS", "localhost")]).is_err());
    }

    #[test]
    fn only_a_unix_docker_host_is_a_socket() {
        let s = settings(&[("DOCKER_HOST", "unix:///run/docker.sock")]).unwrap();
        assert_eq!(s.docker_socket, Some(PathBuf::from("/run/docker.sock")));
        assert_eq!(settings(&[("DOCKER_HOST", "tcp://docker:2376")]).unwrap().docker_socket, None);
    }
}
