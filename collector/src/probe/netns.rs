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
