//! `ssh://` engines: one `ssh` process forwards a private local socket to
//! the engine's socket on the remote host, and the Docker client talks to
//! that socket as to a local engine.
//!
//! Why a forward and not what Docker's own client does (one `ssh ... docker
//! system dial-stdio` per connection): the collector holds an events
//! stream, a stats stream per container on a remote engine (its cgroups
//! are not on this machine) and short requests besides, so a process per
//! connection would be a hundred `ssh` processes on a busy host. One
//! forward multiplexes them all over a single SSH connection, and needs no
//! `docker` binary on the remote host, only `sshd` allowing stream-local
//! forwarding (OpenSSH's default).
//!
//! Authentication is the `ssh` client's own (keys, agent, `~/.ssh/config`,
//! or the file `DOCKER_SSH_CONFIG` names); `BatchMode` makes it fail rather
//! than ask, and the host key must already be known: an unknown key is
//! refused, not accepted on first sight. The local socket is in a folder
//! only this user can enter (the socket gives whoever can connect to it
//! the remote engine), removed at shutdown. A dead forward (the network,
//! the remote sshd restarting) is started again with the shared backoff;
//! meanwhile the collector sees an engine that does not answer, as with a
//! restarting local `dockerd`.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use hemostat_protocol::backoff::Backoff;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use tokio_util::sync::CancellationToken;

use crate::error::CollectorError;

/// The engine's socket on the remote host when the URL names none: where
/// Docker (and the docker.io package) put it.
const DEFAULT_REMOTE_SOCKET: &str = "/var/run/docker.sock";
/// How long the first forward may take to come up (a login over a slow
/// link, a jump host) before the collector gives up with ssh's own words.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The last lines of ssh's standard error kept for the error message.
const STDERR_LINES: usize = 5;
/// A Unix socket's path must fit `sun_path` (108 bytes on Linux).
const MAX_SOCKET_PATH: usize = 100;

/// Where `ssh://[user@]host[:port][/remote/socket]` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    user: Option<String>,
    host: String,
    port: Option<u16>,
    remote_socket: String,
    config: Option<PathBuf>,
}

impl Target {
    /// Parses `url` (`ssh://` already checked by the caller) strictly: a
    /// user or host that `ssh` could read as an option (a leading `-`), or
    /// a character outside what host names and users are made of, is a
    /// configuration error, so `DOCKER_HOST` can never smuggle
    /// `-oProxyCommand=...` into the command line.
    pub fn parse(url: &str, config: Option<&Path>) -> Result<Self, CollectorError> {
        let bad = |why: &str| CollectorError::Config(format!("DOCKER_HOST {url}: {why}"));
        let rest = url.strip_prefix("ssh://").ok_or_else(|| bad("expected ssh://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (Some(user), hostport),
            None => (None, authority),
        };
        if let Some(user) = user
            && (user.is_empty()
                || user.starts_with('-')
                || !user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(bad("the user may hold only letters, digits, '.', '_' and '-', and not start with '-'"));
        }
        let (host, port) = split_port(hostport).ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
        let host_ok = !host.is_empty()
            && !host.starts_with('-')
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
        if !host_ok {
            return Err(bad("expected ssh://[user@]host[:port][/path/to/docker.sock] with a host name or address"));
        }
        let remote_socket = if path.is_empty() || path == "/" { DEFAULT_REMOTE_SOCKET } else { path };
        // `-L local:remote` splits on ':'; a space or control character has
        // no place in a socket path either.
        if remote_socket.chars().any(|c| c == ':' || c.is_whitespace() || c.is_control()) {
            return Err(bad("the remote socket path may not hold ':', spaces or control characters"));
        }
        Ok(Target {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            remote_socket: remote_socket.to_owned(),
            config: config.map(Path::to_owned),
        })
    }

    /// The ssh client configuration file to use (`ssh -F`), if any.
    pub fn with_config(self, config: Option<&Path>) -> Self {
        Target { config: config.map(Path::to_owned), ..self }
    }

    /// `ssh` forwarding `local` to the remote socket and nothing else: no
    /// command, no terminal, no standard input.
    fn command(&self, local: &Path) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(["-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"])
            // A socket left by a forward that died is replaced, not a reason to fail.
            .args(["-o", "StreamLocalBindUnlink=yes", "-o", "StreamLocalBindMask=0177"])
            // A path that went dead is noticed in about 30 s, then started again.
            .args(["-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]);
        if let Some(config) = &self.config {
            ssh.arg("-F").arg(config);
        }
        if let Some(port) = self.port {
            ssh.arg("-p").arg(port.to_string());
        }
        if let Some(user) = &self.user {
            ssh.arg("-l").arg(user);
        }
        ssh.arg("-L").arg(format!("{}:{}", local.display(), self.remote_socket));
        ssh.arg("--").arg(&self.host);
        ssh.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        ssh
    }

    /// Where it points, for logs: no secret is ever part of an ssh URL
    /// HemoStat accepts (a password in it is refused as a bad user name).
    fn display(&self) -> String {
        let user = self.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("ssh://{user}{}{port}{}", self.host, self.remote_socket)
    }
}

/// `host[:port]`, `[v6]:port` or a bare v6 address; None for a bad port.
fn split_port(hostport: &str) -> Option<(&str, Option<u16>)> {
    let parse = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(parse(p)?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match hostport.split_once(':') {
        Some((host, p)) if !p.contains(':') => Some((host, Some(parse(p)?))),
        // More than one ':' without brackets: a bare IPv6 address.
        _ => Some((hostport, None)),
    }
}

/// Starts the forward, waits until its local socket is there, and keeps it
/// up until `cancel`; returns the socket's path. An error is ssh's own
/// last words (host key unknown, permission denied, no route), at once.
pub async fn open(target: Target, cancel: CancellationToken) -> Result<PathBuf, CollectorError> {
    let dir = private_dir()?;
    let socket = dir.join("docker.sock");
    let (mut child, stderr) = spawn(&target, &socket)?;
    let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT;
    loop {
        if socket.exists() {
            break;
        }
        if let Some(status) = child.try_wait().map_err(|e| CollectorError::Config(format!("ssh: {e}")))? {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(CollectorError::Config(format!(
                "{}: ssh exited ({status}) before forwarding the engine's socket: {}",
                target.display(),
                last_words(&stderr).await
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(CollectorError::Config(format!(
                "{}: no forward after {} s: {}",
                target.display(),
                OPEN_TIMEOUT.as_secs(),
                last_words(&stderr).await
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(docker_host = %target.display(), socket = %socket.display(), "engine reached over ssh");
    tokio::spawn(keep_up(target, dir, socket.clone(), child, cancel));
    Ok(socket)
}

/// Restarts the forward whenever it ends, until `cancel`; then stops it
/// and removes its folder.
async fn keep_up(target: Target, dir: PathBuf, socket: PathBuf, mut child: Child, cancel: CancellationToken) {
    // Dropped with this task, at `cancel` or when the runtime shuts down
    // (`--once` returns without waiting for it): the socket goes with it,
    // and the child, killed on drop.
    let _dir = Removed(dir);
    let mut backoff = Backoff::standard();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                tracing::warn!(docker_host = %target.display(), %status, "the ssh forward to the engine ended; starting it again");
                if !backoff.wait_or(cancel.cancelled()).await {
                    break;
                }
                match spawn(&target, &socket) {
                    Ok((next, _)) => child = next,
                    Err(e) => tracing::warn!(docker_host = %target.display(), error = %e, "ssh could not be started"),
                }
            }
        }
    }
    let _ = child.kill().await;
}

/// A folder removed when this is dropped.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Stderr = Arc<Mutex<VecDeque<String>>>;

fn spawn(target: &Target, socket: &Path) -> Result<(Child, Stderr), CollectorError> {
    let mut child = target
        .command(socket)
        .spawn()
        .map_err(|e| CollectorError::Config(format!("{}: cannot run ssh: {e}", target.display())))?;
    let stderr: Stderr = Arc::default();
    if let Some(pipe) = child.stderr.take() {
        let kept = stderr.clone();
        let docker_host = target.display();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(%docker_host, ssh = %line, "ssh");
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() == STDERR_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
    }
    Ok((child, stderr))
}

/// What ssh said last, once its standard error had a moment to arrive.
async fn last_words(stderr: &Stderr) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let kept = stderr.lock().unwrap_or_else(|e| e.into_inner());
    if kept.is_empty() { "it said nothing".to_owned() } else { kept.iter().cloned().collect::<Vec<_>>().join("; ") }
}

/// A fresh folder only this user can enter.
fn private_dir() -> Result<PathBuf, CollectorError> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    // 16 hex digits: unguessable enough for a folder only its owner can
    // enter (made with create, never reused), short enough to leave room
    // for a long TMPDIR in the socket path's 108 bytes.
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = base.join(format!("hemostat-ssh-{}", &id[..16]));
    if dir.join("docker.sock").as_os_str().len() > MAX_SOCKET_PATH {
        return Err(CollectorError::Config(format!(
            "{} is too long a folder for a Unix socket; set TMPDIR to a shorter one",
            base.display()
        )));
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| CollectorError::Config(format!("cannot make {}: {e}", dir.display())))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target, String> {
        Target::parse(url, None).map_err(|e| e.to_string())
    }

    #[test]
    fn urls_as_docker_writes_them() {
        let t = parse("ssh://deploy@build-7.example.com").unwrap();
        assert_eq!((t.user.as_deref(), t.host.as_str(), t.port), (Some("deploy"), "build-7.example.com", None));
        assert_eq!(t.remote_socket, DEFAULT_REMOTE_SOCKET);
        let t = parse("ssh://127.0.0.1:2222/run/user/1000/docker.sock").unwrap();
        assert_eq!((t.user, t.host.as_str(), t.port), (None, "127.0.0.1", Some(2222)));
        assert_eq!(t.remote_socket, "/run/user/1000/docker.sock");
        let t = parse("ssh://root@[::1]:22/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.remote_socket.as_str()), ("::1", Some(22), DEFAULT_REMOTE_SOCKET));
        assert_eq!(parse("ssh://fe80::1").unwrap().host, "fe80::1");
    }

    #[test]
    fn nothing_in_the_url_becomes_an_ssh_option() {
        for url in [
            "ssh://-oProxyCommand=touch${IFS}/tmp/pwned@host",
            "ssh://-oProxyCommand=sh",
            "ssh://user@-oProxyCommand=sh",
            "ssh://us er@host",
            "ssh://user:password@host",
            "ssh://@host",
            "ssh://",
            "ssh://host:0",
            "ssh://host:99999",
            "ssh://host:22x",
            "ssh://host/var/run/docker.sock:/etc/passwd",
            "ssh://host/a b",
            "ssh://ho$t",
        ] {
            assert!(parse(url).is_err(), "{url} was accepted");
        }
        // What is accepted goes after `--`, as a single argument each.
        let t = parse("ssh://deploy@host:2200/run/docker.sock").unwrap();
        let cmd = t.command(Path::new("/tmp/x/docker.sock"));
        let args: Vec<String> = cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let tail = &args[args.len() - 8..];
        assert_eq!(tail, ["-p", "2200", "-l", "deploy", "-L", "/tmp/x/docker.sock:/run/docker.sock", "--", "host"]);
        assert!(args.contains(&"BatchMode=yes".to_owned()));
    }

    #[tokio::test]
    async fn a_refused_login_is_ssh_own_words_at_once() {
        // Port 1 on loopback: nothing listens, ssh says so and exits.
        let t = Target::parse("ssh://nobody@127.0.0.1:1", None).unwrap();
        let began = std::time::Instant::now();
        let e = open(t, CancellationToken::new()).await.unwrap_err().to_string();
        assert!(e.contains("ssh exited") && e.to_lowercase().contains("refused"), "{e}");
        assert!(began.elapsed() < OPEN_TIMEOUT, "{:?}", began.elapsed());
    }
}
