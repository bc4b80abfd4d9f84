//! One function instance: a child process running the function binary, its
//! environment, its log capture and its supervisor.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{
    env_vars::EnvVars,
    error::{Error, Result},
    template::FunctionSpec,
};

/// Host variables a function sees even though the template does not declare them.
const PASSTHROUGH: &[&str] = &["PATH", "HOME"];
/// Credentials Lambda would provide from the execution role; `sam local` passes the
/// developer's own, and so do we.
const CREDENTIALS: &[&str] = &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// How long an exited process's remaining output may take to be printed.
const OUTPUT_DRAIN: Duration = Duration::from_millis(200);

/// What every launch needs to know about the emulator. No `Debug`: the
/// Runtime API's address holds its secret.
#[derive(Clone)]
pub struct Launcher {
    pub bin_dir: PathBuf,
    /// `http://127.0.0.1:PORT/runtime/<secret>`; the function and instance
    /// are appended.
    pub runtime_api_base: String,
    pub region: String,
    pub host_env: HashMap<String, String>,
    /// Per-function variables on top of `host_env`.
    pub env_vars: EnvVars,
}

impl Launcher {
    pub fn binary_path(&self, spec: &FunctionSpec) -> PathBuf {
        self.bin_dir.join(&spec.binary)
    }

    /// Spawns instance `id` of `spec`; once its process is gone and reaped,
    /// `on_exit` hears the instance id and how it exited.
    pub(crate) fn launch(
        &self,
        spec: &FunctionSpec,
        id: u64,
        on_exit: impl FnOnce(u64, &str) + Send + 'static,
    ) -> Result<Arc<Instance>> {
        let path = self.binary_path(spec);
        let runtime_api = format!("{}/{}/{id}", self.runtime_api_base, spec.name);
        let host_env = self.env_vars.environment_for(&spec.name, &spec.logical_id, &self.host_env);
        let env = launch_environment(spec, &host_env, &runtime_api, &self.region, &self.bin_dir);
        let mut command = Command::new(&path);
        command
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        // Before spawn: fork and exec are part of a cold start.
        let spawned = Instant::now();
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            function: spec.name.clone(),
            path: path.clone(),
            source,
        })?;
        let instance = Arc::new(Instance {
            id,
            pid: child.id().unwrap_or_default(),
            spawned,
            kill: CancellationToken::new(),
            exited: CancellationToken::new(),
            current_request: Mutex::new(None),
        });
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(forward_lines(out, spec.name.clone(), instance.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(forward_lines(err, spec.name.clone(), instance.clone())));
        }
        tokio::spawn(supervise(spec.name.clone(), instance.clone(), child, readers, on_exit));
        Ok(instance)
    }
}

/// The process's environment: a few host variables, the template's variables
/// (a host variable of the same name wins, as with `sam local --env-vars`), and
/// the variables Lambda itself sets, which nothing can override.
pub fn launch_environment(
    spec: &FunctionSpec,
    host_env: &HashMap<String, String>,
    runtime_api: &str,
    region: &str,
    task_root: &Path,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for key in PASSTHROUGH.iter().chain(CREDENTIALS) {
        if let Some(value) = host_env.get(*key) {
            env.insert((*key).to_owned(), value.clone());
        }
    }
    if let Some(value) = host_env.get("RUST_LOG") {
        env.insert("RUST_LOG".into(), value.clone());
    }
    for (key, value) in &spec.environment {
        match host_env.get(key).or(value.as_ref()) {
            Some(value) => {
                env.insert(key.clone(), value.clone());
            }
            None => {
                env.remove(key);
            }
        }
    }
    let now = chrono::Utc::now();
    let stream = format!("{}/[$LATEST]{}", now.format("%Y/%m/%d"), uuid::Uuid::new_v4().simple());
    let lambda = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.name)),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("_HANDLER", spec.handler.clone()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("TZ", ":UTC".to_owned()),
    ];
    for (key, value) in lambda {
        env.insert(key.to_owned(), value);
    }
    env
}

/// A running function process as the pool sees it.
#[derive(Debug)]
pub struct Instance {
    pub id: u64,
    pub pid: u32,
    pub spawned: Instant,
    /// Cancelled to kill the process.
    pub kill: CancellationToken,
    /// Cancelled by the supervisor once the process has been reaped.
    pub exited: CancellationToken,
    current_request: Mutex<Option<String>>,
}

impl Instance {
    pub fn set_current_request(&self, request_id: Option<String>) {
        *self.current_request.lock().unwrap_or_else(|p| p.into_inner()) = request_id;
    }

    fn current_request(&self) -> Option<String> {
        self.current_request.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn supervise(
    function: String,
    instance: Arc<Instance>,
    mut child: Child,
    readers: Vec<JoinHandle<()>>,
    on_exit: impl FnOnce(u64, &str),
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = instance.kill.cancelled() => {
            if let Err(e) = child.start_kill() {
                warn!(function = %function, instance = instance.id, "cannot kill: {e}");
            }
            child.wait().await
        }
    };
    let exit = match status {
        Ok(status) => describe(status),
        Err(e) => format!("unknown exit ({e})"),
    };
    // Let the process's last words (often the reason it died) print before we report
    // the exit; bounded, because a grandchild may hold the pipes open.
    let _ = tokio::time::timeout(OUTPUT_DRAIN, futures::future::join_all(readers)).await;
    on_exit(instance.id, &exit);
    instance.exited.cancel();
}

/// Lambda's wording for an exit, e.g. "exit status 3" or "signal: killed".
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return match signal {
                libc_signals::SIGKILL => "signal: killed".to_owned(),
                libc_signals::SIGABRT => "signal: aborted".to_owned(),
                libc_signals::SIGSEGV => "signal: segmentation fault".to_owned(),
                other => format!("signal: {other}"),
            };
        }
    }
    status.to_string()
}

#[cfg(unix)]
mod libc_signals {
    pub const SIGABRT: i32 = 6;
    pub const SIGKILL: i32 = 9;
    pub const SIGSEGV: i32 = 11;
}

/// Copies a process's output to ours, tagged with the function and the request
/// being handled, so interleaved output from many instances stays readable.
async fn forward_lines(stream: impl AsyncRead + Unpin, function: String, instance: Arc<Instance>) {
    use std::io::Write;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let mut out = std::io::stdout().lock();
        let _ = match instance.current_request() {
            Some(request_id) => writeln!(out, "[{function}] [{request_id}] {text}"),
            None => writeln!(out, "[{function}] {text}"),
        };
    }
}

/// Makes the kernel kill the child if the emulator dies without cleaning up
/// (e.g. SIGKILL), which `kill_on_drop` cannot cover.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl,
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}
