//! Settings for one emulator run, independent of where they came from (CLI, tests).

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::PathBuf,
};

#[derive(Debug, Clone)]
pub struct Config {
    pub template: PathBuf,
    /// Port 0 picks a free port; see [`crate::Emulator::local_addr`].
    pub listen: SocketAddr,
    pub bin_dir: PathBuf,
    /// Function names or logical ids to run; empty runs all.
    pub functions: Vec<String>,
    pub parameter_overrides: BTreeMap<String, String>,
    /// Instances per function when the template sets no `ReservedConcurrentExecutions`.
    pub max_concurrency: usize,
    pub account_id: String,
    pub region: String,
    /// The environment that template variables are overridden from. Passed in
    /// rather than read from the process so tests can run side by side.
    pub host_env: HashMap<String, String>,
}

impl Config {
    /// Defaults matching the CLI's, with the host environment taken from this process.
    pub fn new(template: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> Config {
        let host_env: HashMap<String, String> = std::env::vars().collect();
        let region = host_env
            .get("AWS_REGION")
            .cloned()
            .unwrap_or_else(|| "us-east-1".to_owned());
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
        }
    }
}
