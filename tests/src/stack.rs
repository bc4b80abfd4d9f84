//! HemoStat's own long-running parts as test processes: the Lambda emulator
//! and the bridge, started and waited for in one place.

use std::time::Duration;

use crate::{
    port::free_port,
    process::{Process, ProcessBuilder},
};

/// How long a part may take to come up on a loaded machine.
const READY: Duration = Duration::from_secs(20);

/// Starts `hemostat-local` on a free loopback port, after `configure` has
/// added its template, functions and environment, and waits until it
/// listens. Returns the process and its Invoke API endpoint
/// (`http://127.0.0.1:PORT`).
pub async fn start_emulator(configure: impl FnOnce(ProcessBuilder) -> ProcessBuilder) -> (Process, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let emulator = configure(Process::builder("hemostat-local")).args(["--listen", &listen]).spawn();
    emulator.wait_for_line("listening on", READY).await;
    (emulator, format!("http://{listen}"))
}

/// Starts `hemostat-bridge` as `configure` sets it up and waits until every
/// route is ready.
pub async fn start_bridge(configure: impl FnOnce(ProcessBuilder) -> ProcessBuilder) -> Process {
    let bridge = configure(Process::builder("hemostat-bridge")).spawn();
    bridge.wait_for_line("bridge ready", READY).await;
    bridge
}
