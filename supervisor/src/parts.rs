//! The parts of the stack, in the order they start: Redis (unless
//! REDIS_URL), the Lambda emulator with every function of template.yaml,
//! the bridge, the collector. Each gets the secrets it needs and no other:
//! the signing key and the dashboard token only the emulator (its
//! functions), the emulator's token the emulator and the bridge, the
//! public key the collector.

use std::{ffi::OsString, path::PathBuf};

use crate::{settings::Settings, state::Secrets};

/// The variables that carry secrets: removed from every part's environment,
/// then given back only to the part that needs each.
const SECRET_VARS: [&str; 4] =
    ["HEMOSTAT_LAMBDA_TOKEN", "DASHBOARD_AUTH_TOKEN", "HEMOSTAT_COMMAND_SIGNING_KEY", "REDIS_URL"];

#[derive(Debug, Clone)]
pub struct Part {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Set on top of the supervisor's environment (minus SECRET_VARS).
    pub env: Vec<(String, String)>,
    /// Started, the next part waits until this answers.
    pub ready: Ready,
    /// The user and group it runs as; `None`: the supervisor's.
    pub user: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// PING answers (PONG, or NOAUTH: up, and wants a password).
    Redis(u16),
    /// Something accepts connections on 127.0.0.1:port.
    Tcp(u16),
    /// Started is enough.
    Started,
}

impl Part {
    pub fn removed_vars() -> &'static [&'static str] {
        &SECRET_VARS
    }
}

pub fn parts(settings: &Settings, host: &str, secrets: &Secrets) -> Vec<Part> {
    let bin = |name: &str| settings.bin_dir.join(name);
    let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let external = std::env::var("REDIS_URL").unwrap_or_default();
    let mut parts = Vec::new();

    let (collector_url, bridge_url) = match &secrets.redis {
        Some(users) => {
            let mut args: Vec<OsString> = vec![settings.redis_conf.clone().into()];
            for (flag, value) in [
                ("--bind", OsString::from("127.0.0.1")),
                ("--port", settings.redis_port.to_string().into()),
                ("--dir", users.data_dir.clone().into()),
                ("--aclfile", users.acl_file.clone().into()),
            ] {
                args.push(flag.into());
                args.push(value);
            }
            parts.push(Part {
                name: "redis",
                // Found on PATH: /usr/bin in both images.
                program: PathBuf::from("redis-server"),
                args,
                env: Vec::new(),
                ready: Ready::Redis(settings.redis_port),
                user: users.run_as,
            });
            (users.collector_url.expose().to_owned(), users.bridge_url.expose().to_owned())
        }
        None => (external.clone(), external.clone()),
    };

    let listen = format!("127.0.0.1:{}", settings.local_port);
    let mut local_args: Vec<OsString> = vec![
        "--template".into(),
        settings.template.clone().into(),
        "--listen".into(),
        listen.clone().into(),
        "--bin-dir".into(),
        settings.bin_dir.clone().into(),
        "--url-port".into(),
        format!("hemostat-dashboard={}", settings.dashboard_port).into(),
        "--url-address".into(),
        settings.dashboard_address.to_string().into(),
    ];
    let mut local_env: Vec<(String, String)> = env(&[
        ("HEMOSTAT_LAMBDA_TOKEN", secrets.lambda_token.expose()),
        ("DASHBOARD_AUTH_TOKEN", secrets.dashboard_token.expose()),
        ("HEMOSTAT_COMMAND_SIGNING_KEY", secrets.signing_key.expose()),
    ]);
    match &secrets.redis {
        Some(users) => {
            local_args.push("--env-vars".into());
            local_args.push(users.functions_env.clone().into());
        }
        None => local_env.push(("REDIS_URL".to_owned(), external.clone())),
    }
    // The dashboard and exporter URLs need no emulator token: the dashboard
    // asks for its own, the exporter's metrics stay inside the container
    // (its URL is served on the loopback --listen only). Yours come after and win.
    let overrides = format!(
        "DashboardUrlAuthType=NONE ExporterUrlAuthType=NONE {}",
        std::env::var("HEMOSTAT_LOCAL_PARAMETER_OVERRIDES").unwrap_or_default()
    );
    local_env.push(("HEMOSTAT_LOCAL_PARAMETER_OVERRIDES".to_owned(), overrides.trim_end().to_owned()));
    // Its log goes to `docker logs`, not a terminal: no colour codes.
    if std::env::var_os("NO_COLOR").is_none() {
        local_env.push(("NO_COLOR".to_owned(), "1".to_owned()));
    }
    parts.push(Part {
        name: "functions",
        program: bin("hemostat-local"),
        args: local_args,
        env: local_env,
        ready: Ready::Tcp(settings.local_port),
        user: None,
    });

    parts.push(Part {
        name: "bridge",
        program: bin("hemostat-bridge"),
        args: Vec::new(),
        env: env(&[
            ("REDIS_URL", &bridge_url),
            ("HEMOSTAT_LAMBDA_ENDPOINT", &format!("http://{listen}")),
            ("HEMOSTAT_LAMBDA_TOKEN", secrets.lambda_token.expose()),
        ]),
        ready: Ready::Started,
        user: None,
    });

    let mut collector_env: Vec<(String, String)> = env(&[
        ("REDIS_URL", &collector_url),
        ("HEMOSTAT_HOST", host),
        ("HEMOSTAT_COMMAND_PUBLIC_KEYS", &secrets.public_keys),
        ("HEMOSTAT_COLLECTOR_STATE_DIR", &settings.state_dir.join("collector").display().to_string()),
    ]);
    // The host's /proc and cgroups when mounted (cheap per-second stats);
    // without them the collector falls back to Docker's stats API.
    for (var, dir) in [("HEMOSTAT_PROC_ROOT", "/host/proc"), ("HEMOSTAT_CGROUP_ROOT", "/host/cgroup")] {
        if std::env::var_os(var).is_none() && std::path::Path::new(dir).is_dir() {
            collector_env.push((var.to_owned(), dir.to_owned()));
        }
    }
    parts.push(Part {
        name: "collector",
        program: bin("hemostat-collector"),
        args: Vec::new(),
        env: collector_env,
        ready: Ready::Started,
        user: None,
    });
    parts
}
