//! Connecting from inside a container's network namespace, so a port the
//! container publishes nowhere (or only on its loopback) is reachable.
//!
//! A socket stays in the namespace it was created in: a short-lived OS
//! thread of its own enters the namespace (`setns`), connects, and hands
//! the connected socket back to tokio. Never a runtime thread: one that
//! changed namespace would carry it into every later task it runs.

use std::{
    io,
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::Duration,
};

/// Why no connection was made.
#[derive(Debug)]
pub enum ConnectError {
    /// The collector cannot enter the namespace (not root, no
    /// CAP_SYS_ADMIN, not in the host's pid namespace): nothing is known
    /// of the container's health.
    Unavailable(String),
    /// The container's process is gone (it stopped or restarted).
    Gone(String),
    /// Entered, but the connection failed: the probe fails.
    Refused(io::Error),
}

/// Whose process a pid is, in the /proc the collector reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The container's: its cgroup names the container.
    Container,
    /// No process has that pid there (it ended, or this /proc is not the
    /// host's and never held it).
    Nobody(String),
    /// Another process, or one that cannot be told: this /proc is not the
    /// host's (a collector in a container of its own without `--pid host`),
    /// so entering its namespace would probe something else.
    Other(String),
}

/// Whether `pid` under `proc` is container `container_id`'s process: its
/// `cgroup` file names the container's id, as Docker's cgroup paths do
/// (`/docker/<id>`, `docker-<id>.scope`; Podman's `libpod-<id>.scope`).
pub fn owner(proc: &Path, pid: i64, container_id: &str) -> Owner {
    let path = proc.join(pid.to_string()).join("cgroup");
    match std::fs::read_to_string(&path) {
        Ok(cgroup) if container_id.len() >= 12 && cgroup.contains(container_id) => Owner::Container,
        Ok(_) => Owner::Other(format!(
            "pid {pid} in {} is not the container's process (its cgroup does not name the container): not the host's /proc",
            proc.display()
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Owner::Nobody(format!("{}: {e}", path.display())),
        Err(e) => Owner::Other(format!("{}: {e}", path.display())),
    }
}

/// A TCP connection to `addr` made inside the network namespace of the
/// process `pid` (in the host's /proc, mounted at `proc`), within `timeout`.
pub async fn connect(
    proc: &Path,
    pid: i64,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, ConnectError> {
    let path = proc.join(pid.to_string()).join("ns/net");
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("hemostat-probe".into())
        .spawn(move || {
            let _ = tx.send(connect_inside(&path, addr, timeout));
        })
        .map_err(|e| ConnectError::Unavailable(format!("no thread for the probe: {e}")))?;
    let stream =
        rx.await.map_err(|_| ConnectError::Unavailable("the probe's thread ended without an answer".into()))??;
    tokio::net::TcpStream::from_std(stream).map_err(ConnectError::Refused)
}

/// On the calling thread, which must end afterwards (it stays in the namespace).
fn connect_inside(path: &PathBuf, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let shown = path.display();
    let ns = std::fs::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ConnectError::Gone(format!("{shown}: {e}")),
        _ => ConnectError::Unavailable(format!("{shown}: {e}")),
    })?;
    // SAFETY: `ns` is an open namespace file for the duration of the call,
    // and CLONE_NEWNET changes this thread's network namespace only; the
    // thread ends after this function.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(ConnectError::Unavailable(format!("setns({shown}): {}", io::Error::last_os_error())));
    }
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(ConnectError::Refused)?;
    stream.set_nonblocking(true).map_err(ConnectError::Refused)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_is_the_containers_only_when_its_cgroup_names_the_container() {
        let proc = std::env::temp_dir().join(format!("hemostat-proc-{}", std::process::id()));
        let id = "ab".repeat(32);
        std::fs::create_dir_all(proc.join("42")).unwrap();
        std::fs::write(proc.join("42/cgroup"), format!("12:memory:/docker/{id}\n0::/system.slice/docker-{id}.scope\n"))
            .unwrap();
        std::fs::create_dir_all(proc.join("7")).unwrap();
        std::fs::write(proc.join("7/cgroup"), "0::/\n").unwrap();
        assert_eq!(owner(&proc, 42, &id), Owner::Container);
        // The same number in a /proc that is not the host's: another process.
        assert!(matches!(owner(&proc, 7, &id), Owner::Other(why) if why.contains("not the host's /proc")));
        assert!(matches!(owner(&proc, 8, &id), Owner::Nobody(_)));
        assert!(matches!(owner(&proc, 42, "ab"), Owner::Other(_)), "too short an id to tell");
        let _ = std::fs::remove_dir_all(&proc);
    }
}
