//! Wires template, functions, the two APIs, function URLs and schedules into one server.

use std::{collections::BTreeMap, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, serve::ListenerExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    access::{Access, Hosts, Token},
    config::{Config, ScheduleOverrides},
    error::{Error, Result},
    function::Function,
    function_url,
    instance::Launcher,
    schedule, server,
    state::{Shared, arn},
    template::{FunctionSpec, Template, TemplateSettings},
};

/// How long open HTTP requests get to finish once instances are gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// A bound, running emulator whose first instances are already starting.
pub struct Emulator {
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// `--url-port` listeners: function name, listener, bound address.
    url_listeners: Vec<(String, TcpListener, SocketAddr)>,
}

impl Emulator {
    /// Reads the template, checks every binary exists, binds, and starts one
    /// instance per function so cold starts happen now rather than on the first request.
    pub async fn start(config: Config) -> Result<Emulator> {
        let settings = TemplateSettings {
            parameter_overrides: config.parameter_overrides.clone(),
            region: config.region.clone(),
            account_id: config.account_id.clone(),
            ..TemplateSettings::default()
        };
        let template = Template::load(&config.template, &settings)?;
        check_schedule_intervals(&template, &config.schedules)?;
        let specs = select(template, &config.functions)?;

        let listener =
            TcpListener::bind(config.listen).await.map_err(|source| Error::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr: config.listen, source })?;

        let mut url_listeners = Vec::new();
        for (name, port) in &config.url_ports {
            let has_url = specs.iter().any(|s| &s.name == name && s.url.is_some());
            if !has_url {
                return Err(Error::UrlPortWithoutUrl { function: name.clone() });
            }
            let wanted = SocketAddr::new(config.url_address.unwrap_or(config.listen.ip()), *port);
            let listener = TcpListener::bind(wanted).await.map_err(|source| Error::Bind { addr: wanted, source })?;
            let bound = listener.local_addr().map_err(|source| Error::Bind { addr: wanted, source })?;
            url_listeners.push((name.clone(), listener, bound));
        }

        // Only the function processes learn it, through AWS_LAMBDA_RUNTIME_API.
        let runtime_secret = Token::generate();
        let launcher = Arc::new(Launcher {
            bin_dir: config.bin_dir.clone(),
            runtime_api_base: format!("http://{}/runtime/{}", connect_addr(addr), runtime_secret.expose()),
            region: config.region.clone(),
            host_env: config.host_env.clone(),
            env_vars: config.env_vars.clone(),
        });
        let known: Vec<&str> = specs.iter().flat_map(|s| [s.name.as_str(), s.logical_id.as_str()]).collect();
        for entry in config.env_vars.unknown(&known) {
            warn!(entry, "--env-vars names no function that runs here: its variables are unused");
        }
        for spec in &specs {
            let path = launcher.binary_path(spec);
            if !path.is_file() {
                return Err(Error::MissingBinary { function: spec.name.clone(), path });
            }
        }

        let mut functions = BTreeMap::new();
        for spec in specs {
            let max = spec.reserved_concurrency.map_or(config.max_concurrency, |n| n as usize);
            let arn = arn(&config.region, &config.account_id, &spec.name);
            info!(
                function = %spec.name,
                binary = %launcher.binary_path(&spec).display(),
                memory_mb = spec.memory_mb,
                timeout_secs = spec.timeout_secs,
                max_instances = max,
                "function loaded"
            );
            if spec.url.is_some() {
                info!(function = %spec.name, url = %format!("http://{addr}{}{}/", function_url::PREFIXES[0], spec.name), "function URL");
            }
            let function = Arc::new(Function::new(spec, arn, max, launcher.clone()));
            functions.insert(function.name().to_owned(), function);
        }
        let access = Access { token: config.token, runtime_secret, hosts: Hosts::of(addr) };
        let shared = Arc::new(Shared::new(functions, config.region, config.account_id, config.schedules, access));
        for (name, _, bound) in &url_listeners {
            info!(function = %name, url = %format!("http://{bound}/"), "function URL on its own port");
        }
        let emulator = Emulator { listener, addr, shared, url_listeners };
        for function in emulator.shared.functions() {
            if let Err(e) = function.start() {
                stop_instances(&emulator.shared).await;
                return Err(e);
            }
        }
        Ok(emulator)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn function_names(&self) -> Vec<String> {
        self.shared.functions().map(|f| f.name().to_owned()).collect()
    }

    /// Where `--url-port` serves `function`'s URL, if it was asked to.
    pub fn url_addr(&self, function: &str) -> Option<SocketAddr> {
        self.url_listeners.iter().find(|(name, _, _)| name == function).map(|(_, _, addr)| *addr)
    }

    /// The loaded functions, for callers that watch them while the emulator
    /// serves (the benchmark reads their cold starts).
    pub fn functions(&self) -> Vec<Arc<Function>> {
        self.shared.functions().cloned().collect()
    }

    /// Serves both APIs until `shutdown` resolves, then kills every instance.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Emulator { listener, shared, url_listeners, .. } = self;
        let fallback: Router = function_url::router().with_state(shared.clone());
        let stop = CancellationToken::new();
        let mut server = tokio::spawn(server::serve(listener, shared.clone(), fallback, stop.clone()));
        for (name, listener, addr) in url_listeners {
            let router = function_url::port_router(shared.clone(), name.clone(), Hosts::of(addr));
            // Connect info gives function URL events their `sourceIp`.
            let server =
                axum::serve(listener.tap_io(no_delay), router.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(stop.clone().cancelled_owned());
            // Secondary listeners: a failure is logged, the main server carries on.
            tokio::spawn(async move {
                if let Err(e) = server.await {
                    warn!(function = %name, %addr, "function URL server failed: {e}");
                }
            });
        }

        schedule::start(&shared, &stop);

        let early = tokio::select! {
            result = &mut server => Some(result),
            () = shutdown => None,
        };
        info!("shutting down");
        stop_instances(&shared).await;
        stop.cancel();
        let result = match early {
            Some(result) => result,
            None => match tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    warn!("requests still open after shutdown; dropping them");
                    server.abort();
                    return Ok(());
                }
            },
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Serve(e)),
            Err(join) => Err(Error::Serve(std::io::Error::other(join))),
        }
    }
}

/// Where the function processes reach the listener: its address, or loopback
/// for a wildcard one (a request addressed to `0.0.0.0` would be refused:
/// that is nobody's name).
fn connect_addr(listener: SocketAddr) -> SocketAddr {
    match listener.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], listener.port())),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, listener.port()))
        }
        _ => listener,
    }
}

/// Every exchange here is a small request answered by a small response; Nagle's
/// algorithm would only hold segments back waiting for ACKs.
fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        warn!("cannot set TCP_NODELAY: {e}");
    }
}

async fn stop_instances(shared: &Shared) {
    let all = shared.functions().map(|f| f.shutdown());
    futures::future::join_all(all).await;
}

/// A `--schedule-interval` must name a function of the template (whether or
/// not `--functions` selects it), so a typo does not silently keep the slow schedule.
fn check_schedule_intervals(template: &Template, overrides: &ScheduleOverrides) -> Result<()> {
    for name in overrides.intervals.keys() {
        let known = name == "*" || template.functions.iter().any(|f| &f.name == name || &f.logical_id == name);
        if !known {
            let available: Vec<&str> = template.functions.iter().map(|f| f.name.as_str()).collect();
            return Err(Error::ScheduleIntervalUnknown { function: name.clone(), available: available.join(", ") });
        }
    }
    Ok(())
}

/// Applies `--functions`, by function name or logical id.
fn select(template: Template, wanted: &[String]) -> Result<Vec<FunctionSpec>> {
    if wanted.is_empty() {
        return Ok(template.functions);
    }
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|w| !template.functions.iter().any(|f| &f.name == *w || &f.logical_id == *w))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let available: Vec<&str> = template.functions.iter().map(|f| f.name.as_str()).collect();
        return Err(Error::UnknownFunctions { unknown: unknown.join(", "), available: available.join(", ") });
    }
    Ok(template.functions.into_iter().filter(|f| wanted.iter().any(|w| w == &f.name || w == &f.logical_id)).collect())
}
