//! Wires template, functions and the two APIs into one server.

use std::{collections::BTreeMap, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    config::Config,
    error::{Error, Result},
    function::Function,
    instance::Launcher,
    invoke_api, runtime_api,
    template::{Template, TemplateSettings},
};

/// How long open HTTP requests get to finish once instances are gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// State shared by all HTTP handlers.
pub struct Shared {
    functions: BTreeMap<String, Arc<Function>>,
    region: String,
    account_id: String,
}

impl Shared {
    pub fn function(&self, name: &str) -> Option<Arc<Function>> {
        self.functions.get(name).cloned()
    }

    pub fn arn(&self, name: &str) -> String {
        arn(&self.region, &self.account_id, name)
    }
}

pub fn arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account_id}:function:{name}")
}

/// A bound, running emulator whose first instances are already starting.
pub struct Emulator {
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
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
        let specs = select(template, &config.functions)?;

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;

        let launcher = Arc::new(Launcher {
            bin_dir: config.bin_dir.clone(),
            runtime_api_base: format!("http://{addr}/runtime"),
            region: config.region.clone(),
            host_env: config.host_env.clone(),
        });
        for spec in &specs {
            let path = launcher.binary_path(spec);
            if !path.is_file() {
                return Err(Error::MissingBinary {
                    function: spec.name.clone(),
                    path,
                });
            }
        }

        let mut functions = BTreeMap::new();
        for spec in specs {
            let max = spec
                .reserved_concurrency
                .map_or(config.max_concurrency, |n| n as usize);
            let arn = arn(&config.region, &config.account_id, &spec.name);
            info!(
                function = %spec.name,
                binary = %launcher.binary_path(&spec).display(),
                memory_mb = spec.memory_mb,
                timeout_secs = spec.timeout_secs,
                max_instances = max,
                "function loaded"
            );
            let function = Arc::new(Function::new(spec, arn, max, launcher.clone()));
            functions.insert(function.name().to_owned(), function);
        }
        let shared = Arc::new(Shared {
            functions,
            region: config.region,
            account_id: config.account_id,
        });
        let emulator = Emulator {
            listener,
            addr,
            shared,
        };
        for function in emulator.shared.functions.values() {
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
        self.shared.functions.keys().cloned().collect()
    }

    /// Serves both APIs until `shutdown` resolves, then kills every instance.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Emulator {
            listener, shared, ..
        } = self;
        let router = Router::new()
            .merge(runtime_api::router())
            .merge(invoke_api::router())
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let server =
            axum::serve(listener, router).with_graceful_shutdown(stop.clone().cancelled_owned());
        let mut server = tokio::spawn(async move { server.await });

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

async fn stop_instances(shared: &Shared) {
    let all = shared.functions.values().map(|f| f.shutdown());
    futures::future::join_all(all).await;
}

/// Applies `--functions`, by function name or logical id.
fn select(template: Template, wanted: &[String]) -> Result<Vec<crate::template::FunctionSpec>> {
    if wanted.is_empty() {
        return Ok(template.functions);
    }
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|w| {
            !template
                .functions
                .iter()
                .any(|f| &f.name == *w || &f.logical_id == *w)
        })
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let available: Vec<&str> = template.functions.iter().map(|f| f.name.as_str()).collect();
        return Err(Error::UnknownFunctions {
            unknown: unknown.join(", "),
            available: available.join(", "),
        });
    }
    Ok(template
        .functions
        .into_iter()
        .filter(|f| wanted.iter().any(|w| w == &f.name || w == &f.logical_id))
        .collect())
}
