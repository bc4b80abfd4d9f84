//! Command-line entry point of the local Lambda emulator.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use hemostat_local::{Config, Error, Token};
use tracing_subscriber::EnvFilter;

/// Runs the HemoStat Lambda functions locally behind the Lambda Runtime and Invoke APIs.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// SAM template describing the functions.
    #[arg(long, env = "HEMOSTAT_LOCAL_TEMPLATE", default_value = "template.yaml")]
    template: PathBuf,

    /// Address to serve the Runtime and Invoke APIs on; port 0 picks a free port.
    #[arg(long, env = "HEMOSTAT_LOCAL_LISTEN", default_value = "127.0.0.1:9001")]
    listen: SocketAddr,

    /// Directory holding the function binaries [default: the directory of this executable].
    #[arg(long, env = "HEMOSTAT_LOCAL_BIN_DIR")]
    bin_dir: Option<PathBuf>,

    /// Comma-separated function names or logical ids to run [default: all].
    #[arg(long, env = "HEMOSTAT_LOCAL_FUNCTIONS", value_delimiter = ',')]
    functions: Vec<String>,

    /// Template parameter overrides as KEY=VALUE, several separated by spaces (as `sam deploy
    /// --parameter-overrides` takes them) or by repeating the flag; a later value for a key wins.
    #[arg(long = "parameter-overrides", env = "HEMOSTAT_LOCAL_PARAMETER_OVERRIDES")]
    parameter_overrides: Vec<String>,

    /// Per-function environment variables, as `sam local invoke --env-vars` takes them (JSON:
    /// {"Parameters": {...}, "<logical id or name>": {...}}); they win over this process's
    /// environment, for the variables the template declares.
    #[arg(long, env = "HEMOSTAT_LOCAL_ENV_VARS")]
    env_vars: Option<PathBuf>,

    /// The token callers of the Invoke API (and of AWS_IAM function URLs) must present: as
    /// `Authorization: Bearer <token>`, or as the secret access key of a SigV4 signature (AWS SDKs and
    /// CLIs). Prefer the variable: a flag shows in `ps`. Unset: a random token nobody knows, so only
    /// function URLs with AuthType NONE and schedules invoke anything.
    #[arg(long, env = "HEMOSTAT_LAMBDA_TOKEN", hide_env_values = true)]
    lambda_token: Option<String>,

    /// Instances per function when the template sets no ReservedConcurrentExecutions.
    #[arg(long, env = "HEMOSTAT_LOCAL_MAX_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrency: u32,

    /// AWS account id used in ARNs and ${AWS::AccountId}.
    #[arg(long, env = "HEMOSTAT_LOCAL_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,

    /// Also serve FUNCTION's URL at the root of its own PORT (as FUNCTION=PORT; repeat
    /// for several). Every function with FunctionUrlConfig is served under
    /// /urls/FUNCTION/ on --listen regardless; a port of its own suits pages with absolute links.
    #[arg(long = "url-port", env = "HEMOSTAT_LOCAL_URL_PORTS", value_delimiter = ',', value_parser = parse_url_port)]
    url_ports: Vec<(String, u16)>,

    /// The IP the --url-port listeners bind (default: --listen's). In a container: 0.0.0.0 for a
    /// published dashboard port, with --listen (the Invoke and Runtime APIs) kept on 127.0.0.1.
    #[arg(long, env = "HEMOSTAT_LOCAL_URL_ADDRESS")]
    url_address: Option<std::net::IpAddr>,

    /// Deliver FUNCTION's Schedule events every DURATION instead of on their
    /// rate/cron (as FUNCTION=DURATION, e.g. hemostat-exporter=2s or *=500ms; repeat for several).
    #[arg(long = "schedule-interval", env = "HEMOSTAT_LOCAL_SCHEDULE_INTERVALS", value_delimiter = ',', value_parser = parse_schedule_interval)]
    schedule_intervals: Vec<(String, std::time::Duration)>,

    /// Deliver no Schedule events at all.
    #[arg(long, env = "HEMOSTAT_LOCAL_NO_SCHEDULES", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    no_schedules: bool,

    /// Worker threads of the emulator's own runtime; 0 runs everything on one
    /// thread, which measured fastest (scripts/bench-emulator.sh): every
    /// invocation is a few hand-offs between connections, and another worker
    /// only adds cross-thread wake-ups. The functions are separate processes either way.
    #[arg(long, env = "HEMOSTAT_LOCAL_WORKER_THREADS", default_value_t = hemostat_local::DEFAULT_WORKER_THREADS)]
    worker_threads: usize,
}

fn parse_url_port(s: &str) -> Result<(String, u16), Error> {
    match s.split_once('=') {
        Some((name, port)) if !name.trim().is_empty() => match port.trim().parse() {
            Ok(port) => Ok((name.trim().to_owned(), port)),
            Err(_) => Err(Error::UrlPortFlag(s.to_owned())),
        },
        _ => Err(Error::UrlPortFlag(s.to_owned())),
    }
}

fn parse_schedule_interval(s: &str) -> Result<(String, std::time::Duration), Error> {
    hemostat_local::parse_interval_flag(s)
}

fn parse_override(s: &str) -> Result<(String, String), Error> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(Error::ParameterOverride(s.to_owned())),
    }
}

fn default_bin_dir() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(Error::BinDir)?;
    exe.parent()
        .map(PathBuf::from)
        .ok_or_else(|| Error::BinDir(std::io::Error::other("the executable has no parent directory")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => default_bin_dir()?,
    };
    let mut config = Config::new(cli.template, bin_dir);
    config.listen = cli.listen;
    config.functions = cli.functions.into_iter().filter(|f| !f.is_empty()).collect();
    config.parameter_overrides = cli
        .parameter_overrides
        .iter()
        .flat_map(|overrides| overrides.split_whitespace())
        .map(parse_override)
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    match cli.lambda_token.filter(|t| !t.is_empty()) {
        Some(token) => config.token = Token::new(token),
        None => tracing::warn!(
            "HEMOSTAT_LAMBDA_TOKEN is not set: the Invoke API accepts nobody (a random token nobody knows); \
             set it, and give the same to the bridge"
        ),
    }
    if let Some(path) = &cli.env_vars {
        config.env_vars = hemostat_local::EnvVars::load(path)?;
    }
    config.max_concurrency = cli.max_concurrency as usize;
    config.account_id = cli.account_id;
    config.url_ports = cli.url_ports.into_iter().collect();
    config.url_address = cli.url_address;
    config.schedules.disabled = cli.no_schedules;
    config.schedules.intervals = cli.schedule_intervals.into_iter().collect();
    hemostat_local::run(config, shutdown_signal()).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let runtime = match hemostat_local::runtime(Some(cli.worker_threads)) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hemostat-local: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("hemostat-local: {e}");
            ExitCode::FAILURE
        }
    }
}
