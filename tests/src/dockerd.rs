//! A private `dockerd` per test, for tests that stop, crash or restart the
//! engine (the shared one from `scripts/test-env.sh` serves every other
//! test and must stay up).
//!
//! Everything lives under one temporary directory (data, exec root, socket,
//! pidfile, log) and in its own containerd namespaces, so the daemon sees
//! no other daemon's containers. Dropping it removes its containers, stops
//! it and its containerd, unmounts what it left mounted, and deletes the
//! directory.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use bollard::Docker;

use crate::{
    docker::test_image,
    paths::log_dir,
    polling::wait_until,
    process::{file_tail, kill_and_reap, spawn_logged, terminate},
};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Unix socket paths are limited to 108 bytes.
const MAX_SOCKET_PATH: usize = 100;

pub struct PrivateDockerd {
    dir: PathBuf,
    namespace: String,
    log_path: PathBuf,
    child: Option<Child>,
    /// `--live-restore`: containers outlive the daemon's stop and restart.
    live_restore: bool,
    /// A TCP listener on 127.0.0.1 with mutual TLS, besides the socket.
    tls: Option<TlsListener>,
    /// In a network namespace of its own, with bridge networking (and
    /// iptables there): what compose.yaml's default needs.
    bridged: bool,
}

/// What a daemon started with [`PrivateDockerd::start_tls`] listens with:
/// `--tlsverify` on `tcp://127.0.0.1:port`, clients' certificates checked
/// against `ca`.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub port: u16,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PrivateDockerd {
    /// Starts a daemon, waits until it answers, and imports the busybox
    /// test image ([`test_image`]) into it from the host's static busybox.
    pub async fn start() -> Self {
        Self::start_with(false, None).await
    }

    /// [`start`](Self::start) with `--live-restore`, as production engines
    /// run: a [`restart`](Self::restart) leaves the containers running (and
    /// exiting, unseen, while the daemon is away) instead of stopping them.
    pub async fn start_live_restore() -> Self {
        Self::start_with(true, None).await
    }

    /// [`start`](Self::start), also listening on 127.0.0.1 with mutual TLS
    /// ([`tls_host`](Self::tls_host)); the socket stays plain.
    pub async fn start_tls(tls: TlsListener) -> Self {
        Self::start_with(false, Some(tls)).await
    }

    /// [`start`](Self::start) with bridge networks, in a network namespace
    /// of its own (`unshare --net`, its loopback up): the shared engine and
    /// the host's network are untouched, and the ports it publishes are on
    /// that namespace's loopback ([`in_netns`](Self::in_netns) reaches them).
    pub async fn start_bridged() -> Self {
        Self::start_with_network(false, None, true).await
    }

    /// A command run in the daemon's network namespace (`nsenter -n`);
    /// for a bridged daemon, the loopback its published ports are on.
    pub fn in_netns(&self, program: &str) -> Command {
        let pid = self.child.as_ref().map(Child::id).expect("private dockerd is running");
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &pid.to_string(), "-n", program]);
        cmd
    }

    async fn start_with(live_restore: bool, tls: Option<TlsListener>) -> Self {
        Self::start_with_network(live_restore, tls, false).await
    }

    async fn start_with_network(live_restore: bool, tls: Option<TlsListener>, bridged: bool) -> Self {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        // Short, because the socket path must fit in sun_path.
        let base = std::env::temp_dir();
        let base = if base.as_os_str().len() < 40 { base } else { PathBuf::from("/tmp") };
        let dir = base.join(format!("hsd-{id}"));
        std::fs::create_dir_all(dir.join("data")).expect("create private dockerd dir");
        std::fs::create_dir_all(dir.join("exec")).expect("create private dockerd exec root");
        let mut daemon = PrivateDockerd {
            log_path: log_dir().join(format!("{}-dockerd-{id}.log", crate::current_test_name())),
            namespace: format!("hemostat-e2e-{id}"),
            dir,
            child: None,
            live_restore,
            tls,
            bridged,
        };
        assert!(
            daemon.socket().as_os_str().len() < MAX_SOCKET_PATH,
            "socket path {} too long",
            daemon.socket().display()
        );
        daemon.launch().await;
        daemon.import_image();
        daemon
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("d.sock")
    }

    /// `unix://…`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `tcp://127.0.0.1:port` of the TLS listener, for `DOCKER_HOST`.
    pub fn tls_host(&self) -> Option<String> {
        self.tls.as_ref().map(|t| format!("tcp://127.0.0.1:{}", t.port))
    }

    /// A client for this daemon (API version negotiated).
    pub async fn docker(&self) -> Docker {
        let client = Docker::connect_with_unix(&self.socket().to_string_lossy(), 120, bollard::API_DEFAULT_VERSION)
            .expect("docker client for the private daemon");
        client
            .negotiate_version()
            .await
            .unwrap_or_else(|e| panic!("private dockerd does not answer: {e}\n{}", self.log_tail(30)))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Graceful stop (SIGTERM): dockerd stops its containers (without
    /// live-restore) and its containerd. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, libc::SIGTERM, Duration::from_secs(60));
        }
    }

    /// Abrupt death (SIGKILL), like a crash or OOM kill: containerd and the
    /// container shims survive, so containers keep running (and may exit)
    /// while the daemon is gone. Idempotent.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// Starts the daemon again on the same directories and socket (after
    /// [`stop`](Self::stop) or [`crash`](Self::crash)) and waits until it
    /// answers.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "private dockerd is still running");
        self.launch().await;
    }

    /// [`stop`](Self::stop), then [`start_again`](Self::start_again).
    pub async fn restart(&mut self) {
        self.stop();
        self.start_again().await;
    }

    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log_path, lines)
    }

    async fn launch(&mut self) {
        let dir = &self.dir;
        let mut cmd = if self.bridged {
            // unshare execs: the child is dockerd itself, in the new namespace.
            let mut cmd = Command::new("unshare");
            cmd.args(["--net", "sh", "-c", "ip link set lo up && exec dockerd \"$@\"", "sh"]);
            cmd
        } else {
            Command::new("dockerd")
        };
        cmd.arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(self.host())
            .arg("--pidfile")
            .arg(dir.join("d.pid"))
            .args(["--containerd-namespace", &self.namespace])
            .args(["--containerd-plugins-namespace", &format!("{}-plugins", self.namespace)]);
        if !self.bridged {
            cmd.args(["--bridge=none", "--iptables=false", "--ip6tables=false"]);
        }
        if self.live_restore {
            cmd.arg("--live-restore");
        }
        if let Some(tls) = &self.tls {
            cmd.arg("-H")
                .arg(format!("tcp://127.0.0.1:{}", tls.port))
                .arg("--tlsverify")
                .arg("--tlscacert")
                .arg(&tls.ca)
                .arg("--tlscert")
                .arg(&tls.cert)
                .arg("--tlskey")
                .arg(&tls.key);
        }
        let child = spawn_logged(&mut cmd, &self.log_path)
            .unwrap_or_else(|e| panic!("spawning dockerd failed: {e} (run scripts/test-env.sh install)"));
        self.child = Some(child);
        let socket = self.socket();
        let mut exited = false;
        let ready = wait_until(READY_TIMEOUT, || {
            exited = !self.is_running();
            let socket = socket.clone();
            let dead = exited;
            async move { dead || ping(&socket).await }
        })
        .await;
        if !ready || exited {
            let tail = self.log_tail(40);
            self.crash();
            panic!("private dockerd did not come up (exited: {exited}):\n{tail}");
        }
    }

    /// The same image `scripts/test-env.sh` builds: a static busybox with
    /// its applets, imported locally (no registry needed).
    fn import_image(&self) {
        let rootfs = self.dir.join("rootfs");
        let script = r#"set -e
busybox="$(command -v busybox)"
mkdir -p "$1/bin" "$1/tmp"
chmod 1777 "$1/tmp"
cp "$busybox" "$1/bin/busybox"
for a in $("$busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"; done
tar -C "$1" -c . | docker -H "$2" import -c 'ENV PATH=/bin' - "$3" >/dev/null
rm -rf "$1"
"#;
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("import")
            .arg(&rootfs)
            .arg(self.host())
            .arg(test_image())
            .output()
            .expect("run sh to import the test image");
        assert!(
            out.status.success(),
            "importing {} into the private dockerd failed: {}",
            test_image(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Best-effort cleanup from Drop: containers first (their shims and
    /// mounts go with them), then the daemon, then whatever survived it.
    fn clean_up(&mut self) {
        if self.is_running() {
            let socket = self.socket();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), remove_all(&socket)).await.ok() })
            })
            .join();
        }
        self.stop();
        // dockerd stops its containerd; a crashed one leaves it orphaned.
        for pidfile in ["exec/containerd/containerd.pid"] {
            if let Some(pid) = owned_pid(&self.dir.join(pidfile), &self.dir) {
                stop_pid(pid);
            }
        }
        // Shims of this daemon's namespace (containers of a crashed daemon).
        for pid in pids_with(&format!("-namespace {}", self.namespace)) {
            stop_pid(pid);
        }
        unmount_under(&self.dir);
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: removing {} failed: {e}", self.dir.display());
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.clean_up();
    }
}

async fn ping(socket: &Path) -> bool {
    let Ok(client) = Docker::connect_with_unix(&socket.to_string_lossy(), 5, bollard::API_DEFAULT_VERSION) else {
        return false;
    };
    matches!(tokio::time::timeout(Duration::from_secs(5), client.ping()).await, Ok(Ok(_)))
}

async fn remove_all(socket: &Path) {
    let Ok(client) = Docker::connect_with_unix(&socket.to_string_lossy(), 60, bollard::API_DEFAULT_VERSION) else {
        return;
    };
    let Ok(client) = client.negotiate_version().await else { return };
    let options = bollard::query_parameters::ListContainersOptions { all: true, ..Default::default() };
    let Ok(containers) = client.list_containers(Some(options)).await else { return };
    for id in containers.into_iter().filter_map(|c| c.id) {
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = client.remove_container(&id, Some(options)).await;
    }
}

/// The pid in `pidfile` if that process is alive and its command line
/// mentions `marker`: never signal a recycled pid.
fn owned_pid(pidfile: &Path, marker: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline.contains(&*marker.to_string_lossy()).then_some(pid)
}

/// Processes whose command line contains `needle` (a unique namespace).
fn pids_with(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGTERM, then SIGKILL after 10 s.
fn stop_pid(pid: i32) {
    // SAFETY: plain syscalls on a pid just checked to be ours.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    for _ in 0..100 {
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Detaches every mount under `dir` (deepest first), so deleting the
/// directory deletes only our files.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let Ok(c) = std::ffi::CString::new(p) else { continue };
        // SAFETY: a valid C string; MNT_DETACH cannot hurt other mounts.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}
