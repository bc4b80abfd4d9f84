//! Settings for one emulator run, independent of where they came from (CLI, tests).

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use crate::{access::Token, env_vars::EnvVars};

#[derive(Debug, Clone)]
pub struct Config {
    /// The SAM template describing the functions.
    pub template: PathBuf,
    /// Port 0 picks a free port; `Emulator::local_addr` tells which.
    pub listen: SocketAddr,
    /// Directory holding the function binaries named by the template.
    pub bin_dir: PathBuf,
    /// Function names or logical ids to run; empty runs all.
    pub functions: Vec<String>,
    /// Template parameter values that replace the `Default`s.
    pub parameter_overrides: BTreeMap<String, String>,
    /// Instances per function when the template sets no `ReservedConcurrentExecutions`.
    pub max_concurrency: usize,
    /// Account id in ARNs, `${AWS::AccountId}` and function URL events.
    pub account_id: String,
    /// Region in ARNs, `AWS_REGION` and function URL domain names.
    pub region: String,
    /// The environment that template variables are overridden from. Passed in
    /// rather than read from the process so tests can run side by side.
    pub host_env: HashMap<String, String>,
    /// Per-function variables (`--env-vars`): they win over `host_env`.
    pub env_vars: EnvVars,
    /// Functions (by name) whose URL is also served at the root of its own port,
    /// on the `listen` address's IP; port 0 picks a free one (see
    /// `Emulator::url_addr`). Every function URL is served under
    /// `/urls/{function}/` on `listen` regardless.
    pub url_ports: BTreeMap<String, u16>,
    /// The IP the `url_ports` listen on instead of `listen`'s: in a container,
    /// the dashboard on 0.0.0.0 (reachable through a published port) while
    /// the Invoke and Runtime APIs stay on loopback.
    pub url_address: Option<IpAddr>,
    /// Whether `Schedule` events fire, and at what interval where overridden.
    pub schedules: ScheduleOverrides,
    /// What callers of the Invoke API and of `AWS_IAM` function URLs must
    /// present (see `access`). [`Config::new`] makes a random one that
    /// nobody knows: set it to one the callers were given.
    pub token: Token,
}

impl Config {
    /// Defaults matching the CLI's, with the host environment taken from this process.
    pub fn new(template: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> Config {
        let host_env: HashMap<String, String> = std::env::vars().collect();
        let region = host_env.get("AWS_REGION").cloned().unwrap_or_else(|| "us-east-1".to_owned());
        Config {
            template: template.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            bin_dir: bin_dir.into(),
            functions: Vec::new(),
            parameter_overrides: BTreeMap::new(),
            max_concurrency: 4,
            account_id: "000000000000".to_owned(),
            region,
            host_env,
            env_vars: EnvVars::default(),
            url_ports: BTreeMap::new(),
            url_address: None,
            schedules: ScheduleOverrides::default(),
            token: Token::generate(),
        }
    }
}

/// What decides how often a function's schedules fire, beyond the template.
#[derive(Debug, Clone, Default)]
pub struct ScheduleOverrides {
    /// Off: no schedule fires at all.
    pub disabled: bool,
    /// A fixed interval replacing the expression, by function name or logical
    /// id; `*` applies to every function without an entry of its own.
    pub intervals: BTreeMap<String, Duration>,
}
