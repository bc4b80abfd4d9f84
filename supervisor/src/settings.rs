//! What the supervisor is told by its environment (the image sets the
//! paths; `docker run -e` the rest), read once and checked before anything
//! starts.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use crate::error::SupervisorError;

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
        let docker_socket = match var("DOCKER_HOST") {
            None => Some(PathBuf::from("/var/run/docker.sock")),
            Some(host) => host.strip_prefix("unix://").map(PathBuf::from),
        };
        Ok(Settings {
            state_dir: path("HEMOSTAT_STATE_DIR", "/var/lib/hemostat"),
            bin_dir: path("HEMOSTAT_BIN_DIR", "/usr/local/bin"),
            template: path("HEMOSTAT_TEMPLATE", "/etc/hemostat/template.yaml"),
            redis_conf: path("HEMOSTAT_REDIS_CONF", "/etc/hemostat/durability.conf"),
            external_redis: var("REDIS_URL").is_some(),
            redis_port: parse(&var, "HEMOSTAT_REDIS_PORT", 6379)?,
            local_port: parse(&var, "HEMOSTAT_LOCAL_PORT", 9001)?,
            dashboard_address: parse(&var, "HEMOSTAT_DASHBOARD_ADDRESS", IpAddr::from([0, 0, 0, 0]))?,
            dashboard_port: parse(&var, "HEMOSTAT_DASHBOARD_PORT", 8080)?,
            host: var("HEMOSTAT_HOST"),
            docker_socket,
            max_failures: parse(&var, "HEMOSTAT_SUPERVISOR_MAX_FAILURES", 5u32)?.max(1),
            stable: Duration::from_secs(parse(&var, "HEMOSTAT_SUPERVISOR_STABLE_SECONDS", 30u64)?),
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
