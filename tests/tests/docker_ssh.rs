//! The collector on a Docker engine reached over ssh, as Docker's own
//! client writes it: `DOCKER_HOST=ssh://user@host[:port]` (plus the
//! engine's socket path when it is not `/var/run/docker.sock`). A private
//! `sshd` on 127.0.0.1 with a key made for the test stands for the remote
//! host; a private `dockerd` is the engine behind it.
//!
//! - the collector sees the engine's containers and heals a crash through
//!   one ssh forward;
//! - a host whose key is not known is refused (no trust on first sight),
//!   and so is a key the server does not accept, each at start-up in ssh's
//!   own words, and the collector exits non-zero;
//! - a `DOCKER_HOST` that tries to pass ssh an option is refused before
//!   anything runs.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use hemostat_e2e::{PrivateDockerd, RedisServer, TempDir, bin_dir, free_port, start_collector, test_host, wait_for};

/// A private `sshd` on 127.0.0.1 accepting one client key for root.
struct Sshd {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Sshd {
    async fn start() -> Sshd {
        let dir = TempDir::new();
        let d = &dir.0;
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd refuses to start without its privilege separation folder.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAllowStreamLocalForwarding yes\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run /usr/sbin/sshd (scripts/test-env.sh install installs openssh-server)");
        let up = wait_for(Duration::from_secs(10), || async {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
        })
        .await;
        assert!(up.is_some(), "sshd did not listen: {}", std::fs::read_to_string(d.join("sshd.log")).unwrap());
        Sshd { child, port, dir }
    }

    /// An ssh client configuration for this server: the test's key, and
    /// known hosts holding the server's key when `known` (else none).
    fn client_config(&self, known: bool, key: &Path) -> PathBuf {
        let d = &self.dir.0;
        let known_hosts = d.join(if known { "known_hosts" } else { "empty_known_hosts" });
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let line =
            format!("[127.0.0.1]:{} {}", self.port, host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
        std::fs::write(&known_hosts, if known { line + "\n" } else { String::new() }).unwrap();
        let file = d.join(format!("ssh_config_{}_{}", known, key.file_name().unwrap().to_string_lossy()));
        std::fs::write(
            &file,
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n",
                key.display(),
                known_hosts.display()
            ),
        )
        .unwrap();
        file
    }

    fn url(&self, engine: &PrivateDockerd) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, engine.socket().display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hemostat-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `hemostat-collector --once` over ssh, its forward's folder made in `tmp`.
fn snapshot(url: &str, config: &Path, tmp: &Path) -> Output {
    Command::new(bin_dir().join("hemostat-collector"))
        .arg("--once")
        .env("DOCKER_HOST", url)
        .env("DOCKER_SSH_CONFIG", config)
        .env("TMPDIR", tmp)
        .env_remove("XDG_RUNTIME_DIR")
        .env("RUST_LOG", "info")
        .output()
        .expect("run hemostat-collector --once (cargo build --workspace --bins first)")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// What is in `dir` (the forward's folders: each collector is given a
/// temporary folder of its own, so tests running side by side do not see
/// each other's).
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_on_an_ssh_engine_sees_its_containers_and_heals_a_crash() {
    let sshd = Sshd::start().await;
    let engine = PrivateDockerd::start().await;
    let docker = engine.docker().await;
    let container = hemostat_e2e::container::start_crash_on_usr1(&docker).await;
    let config = sshd.client_config(true, &sshd.dir.0.join("client_key"));
    let url = sshd.url(&engine);

    // One snapshot over ssh lists the container, and leaves no forward behind.
    let tmp = TempDir::new();
    let out = snapshot(&url, &config, &tmp.0);
    assert!(out.status.success(), "snapshot over ssh failed:\n{}\nsshd:\n{}", text(&out), sshd.log());
    assert!(String::from_utf8_lossy(&out.stdout).contains(container.name()), "{}", text(&out));
    assert_eq!(entries(&tmp.0), Vec::<PathBuf>::new(), "the forward's folder was left behind");

    // The collector, alone (it heals at the edge), over ssh.
    let redis = RedisServer::start_node().await;
    let conn = redis.connection().await;
    let collector = start_collector(&redis.url(), &test_host(), |b| {
        b.env("DOCKER_HOST", &url)
            .env("DOCKER_SSH_CONFIG", &config)
            .env("TMPDIR", &tmp.0)
            .env_remove("XDG_RUNTIME_DIR")
            .env("HEMOSTAT_EDGE_HEAL_AFTER", "2s")
            .env("HEMOSTAT_VERIFY_SECONDS", "2")
    })
    .await;
    // The forward's socket is this user's alone.
    let dirs = entries(&tmp.0);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dirs[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dirs[0].display());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    hemostat_e2e::crash_and_expect_edge_heal(&container, &conn, || collector.log_tail(40)).await;
    // All of it through one login: one forward, not an ssh per connection.
    let logins = sshd.log().matches("Accepted publickey").count();
    assert_eq!(logins, 2, "one for the snapshot, one for the collector:\n{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_key_a_refused_key_and_an_option_in_the_url_stop_the_collector() {
    let sshd = Sshd::start().await;
    let engine = PrivateDockerd::start().await;
    let url = sshd.url(&engine);

    // The server's key is not in known hosts: refused, not trusted on first sight.
    let unknown = sshd.client_config(false, &sshd.dir.0.join("client_key"));
    let tmp = TempDir::new();
    let out = snapshot(&url, &unknown, &tmp.0);
    assert!(!out.status.success(), "an unknown host key was accepted:\n{}", text(&out));
    assert!(text(&out).contains("Host key verification failed"), "{}", text(&out));
    assert_eq!(entries(&tmp.0), Vec::<PathBuf>::new(), "a failed forward left its folder");

    // A key the server does not know.
    let stranger = sshd.dir.0.join("stranger_key");
    keygen(&stranger);
    let refused = sshd.client_config(true, &stranger);
    let collector = hemostat_e2e::stack::collector("redis://127.0.0.1:1", &test_host())
        .env("DOCKER_HOST", &url)
        .env("DOCKER_SSH_CONFIG", &refused)
        .spawn();
    let exit = collector.wait_exit(Duration::from_secs(40)).await;
    assert!(exit.is_some_and(|s| !s.success()), "still running or succeeded ({exit:?}):\n{}", collector.log_tail(20));
    let log = collector.log();
    assert!(log.contains("Permission denied"), "{log}");
    assert!(!log.contains("collector ready"), "{log}");

    // An option smuggled in as the host: refused before any ssh runs.
    let marker = sshd.dir.0.join("pwned");
    let hostile = format!("ssh://-oProxyCommand=touch{}", marker.display());
    let out = snapshot(&hostile, &refused, &tmp.0);
    assert!(!out.status.success() && text(&out).contains("DOCKER_HOST"), "{}", text(&out));
    assert!(!marker.exists(), "the URL ran a command");
}
