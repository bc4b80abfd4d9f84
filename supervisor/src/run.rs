//! Starting, watching and restarting the parts, as PID 1 of the container.
//!
//! Each part runs in a process group of its own, so that when it dies the
//! processes it started (the emulator's functions) go with it. The
//! supervisor reaps every child, its own and orphans reparented to it
//! (`waitpid(-1)`), as an init must. A part that dies is started again
//! after a backoff (hemostat_protocol's: 1 s doubling to 30 s, jittered);
//! one that dies `max_failures` times in a row, each time within `stable`
//! of its start, ends the supervisor with exit 1, after the others are
//! stopped: Docker's restart policy and `docker ps` then show it.
//! SIGTERM or SIGINT stop the parts in reverse order (Redis last, so that
//! it writes its append-only file), and the supervisor exits 0.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::process::{CommandExt, ExitStatusExt},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use hemostat_protocol::backoff::Backoff;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::{
    error::SupervisorError,
    parts::{Part, Ready},
};

/// How long a part may take to answer before the next one starts anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often exits are looked for, besides on SIGCHLD.
const TICK: Duration = Duration::from_millis(500);

/// Quick deaths in a row, and when to give up on them.
#[derive(Debug, Clone)]
pub struct Restarts {
    max_failures: u32,
    stable: Duration,
    failures: u32,
    backoff: Backoff,
}

/// What to do after a part exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    RestartIn(Duration),
    GiveUp(u32),
}

impl Restarts {
    pub fn new(max_failures: u32, stable: Duration) -> Restarts {
        Restarts { max_failures, stable, failures: 0, backoff: Backoff::standard() }
    }

    /// After a run of `ran`: a long run forgives the earlier deaths.
    pub fn exited(&mut self, ran: Duration) -> Verdict {
        if ran >= self.stable {
            self.failures = 0;
            self.backoff.reset();
        }
        self.failures += 1;
        if self.failures >= self.max_failures {
            Verdict::GiveUp(self.failures)
        } else {
            Verdict::RestartIn(self.backoff.next_delay())
        }
    }
}

struct Slot {
    part: Part,
    /// Its pid (= its process group) and when it started.
    running: Option<(i32, Instant)>,
    restart_at: Option<Instant>,
    restarts: Restarts,
}

pub struct Supervisor {
    slots: Vec<Slot>,
    stable: Duration,
}

impl Supervisor {
    pub fn new(parts: Vec<Part>, max_failures: u32, stable: Duration) -> Supervisor {
        let slots = parts
            .into_iter()
            .map(|part| Slot { part, running: None, restart_at: None, restarts: Restarts::new(max_failures, stable) })
            .collect();
        Supervisor { slots, stable }
    }

    /// Runs until a signal (Ok) or a part that keeps dying (Err).
    pub async fn run(mut self) -> Result<(), SupervisorError> {
        let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
        let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
        let mut child = signal(SignalKind::child()).map_err(signal_error)?;

        let result = self.supervise(&mut term, &mut int, &mut child).await;
        self.stop_all().await;
        result
    }

    async fn supervise(
        &mut self,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
        child: &mut tokio::signal::unix::Signal,
    ) -> Result<(), SupervisorError> {
        // In order: each waits for the one before to answer (or to have
        // failed for good, which ends everything).
        for i in 0..self.slots.len() {
            self.start(i)?;
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                self.reap()?;
                self.restart_due()?;
                if self.is_ready(i).await {
                    break;
                }
                if Instant::now() >= deadline {
                    warn!(
                        part = self.slots[i].part.name,
                        "not answering after {READY_TIMEOUT:?}; starting the next part anyway"
                    );
                    break;
                }
                tokio::select! {
                    _ = term.recv() => return Ok(()),
                    _ = int.recv() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
        info!(parts = ?self.slots.iter().map(|s| s.part.name).collect::<Vec<_>>(), "HemoStat is up");
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: stopping"); return Ok(()); }
                _ = int.recv() => { info!("SIGINT: stopping"); return Ok(()); }
                _ = child.recv() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            self.reap()?;
            self.restart_due()?;
        }
    }

    async fn is_ready(&self, i: usize) -> bool {
        let slot = &self.slots[i];
        if slot.running.is_none() {
            return false;
        }
        match slot.part.ready {
            Ready::Started => true,
            Ready::Tcp(port) => tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok(),
            Ready::Redis(port) => redis_answers(port).await,
        }
    }

    fn start(&mut self, i: usize) -> Result<(), SupervisorError> {
        let slot = &mut self.slots[i];
        let part = &slot.part;
        let mut command = Command::new(&part.program);
        command.args(&part.args);
        for var in Part::removed_vars() {
            command.env_remove(var);
        }
        command.envs(part.env.iter().map(|(k, v)| (k, v)));
        if let Some((uid, gid)) = part.user {
            // As root, std also drops every supplementary group before setuid.
            command.uid(uid).gid(gid);
        }
        // Its own process group: what it starts dies with it.
        command.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| SupervisorError::Spawn { part: part.name, why: format!("{}: {e}", part.program.display()) })?;
        let pid = child.id() as i32;
        // Every line prefixed with the part's name, as scripts/stack.sh does.
        if let Some(out) = child.stdout.take() {
            forward(part.name, out);
        }
        if let Some(err) = child.stderr.take() {
            forward(part.name, err);
        }
        // Reaped by waitpid(-1) below, never through `child`.
        drop(child);
        info!(part = part.name, pid, "started");
        slot.running = Some((pid, Instant::now()));
        slot.restart_at = None;
        Ok(())
    }

    /// Collects every exited child; a part's exit decides its restart.
    fn reap(&mut self) -> Result<(), SupervisorError> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid pointer to an int; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return Ok(());
            }
            let Some(slot) = self.slots.iter_mut().find(|s| s.running.is_some_and(|(p, _)| p == pid)) else {
                continue; // an orphan reparented to us: reaped is all it needed
            };
            let (_, started) = slot.running.take().unwrap_or((pid, Instant::now()));
            // Whatever it left behind in its group goes too.
            // SAFETY: kill(2) on a process group id we created; no memory involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let ran = started.elapsed();
            let how = describe(ExitStatus::from_raw(status));
            match slot.restarts.exited(ran) {
                Verdict::RestartIn(delay) => {
                    warn!(
                        part = slot.part.name,
                        pid,
                        "{how} after {:.1} s; restarting in {:.1} s",
                        ran.as_secs_f64(),
                        delay.as_secs_f64()
                    );
                    slot.restart_at = Some(Instant::now() + delay);
                }
                Verdict::GiveUp(times) => {
                    error!(part = slot.part.name, pid, "{how} after {:.1} s", ran.as_secs_f64());
                    return Err(SupervisorError::GaveUp {
                        part: slot.part.name,
                        times,
                        stable_secs: self.stable.as_secs(),
                    });
                }
            }
        }
    }

    fn restart_due(&mut self) -> Result<(), SupervisorError> {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].running.is_none() && self.slots[i].restart_at.is_some_and(|at| at <= now) {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// SIGTERM to every part, the last started first, Redis a moment after
    /// the rest (Docker's stop gives 10 s in all before its SIGKILL).
    async fn stop_all(&mut self) {
        let (store, others): (Vec<usize>, Vec<usize>) =
            (0..self.slots.len()).rev().partition(|i| matches!(self.slots[*i].part.ready, Ready::Redis(_)));
        for group in [others, store] {
            for &i in &group {
                if let Some((pid, _)) = self.slots[i].running {
                    // SAFETY: kill(2) on our own process group.
                    unsafe { libc::kill(-pid, libc::SIGTERM) };
                }
            }
            let deadline = Instant::now() + Duration::from_secs(4);
            while group.iter().any(|&i| self.slots[i].running.is_some()) && Instant::now() < deadline {
                self.reap_quietly();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for &i in &group {
                if let Some((pid, _)) = self.slots[i].running.take() {
                    warn!(part = self.slots[i].part.name, "did not stop within 4 s: killed");
                    // SAFETY: as above.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
            }
        }
        self.reap_quietly();
    }

    /// Reaps while stopping: exits are expected, nothing restarts.
    fn reap_quietly(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: as in reap.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            for slot in &mut self.slots {
                if slot.running.is_some_and(|(p, _)| p == pid) {
                    slot.running = None;
                    info!(part = slot.part.name, "stopped ({})", describe(ExitStatus::from_raw(status)));
                }
            }
        }
    }
}

fn signal_error(e: std::io::Error) -> SupervisorError {
    SupervisorError::Spawn { part: "supervisor", why: format!("cannot watch signals: {e}") }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "exited".to_owned(),
    }
}

/// Copies a part's output to the supervisor's stderr a line at a time,
/// each line headed `[part] `. A thread each: blocking reads of a pipe.
fn forward(name: &'static str, stream: impl Read + Send + 'static) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let mut out = std::io::stderr().lock();
            let _ = out.write_all(format!("[{name}] ").as_bytes());
            let _ = out.write_all(&line);
            if !line.ends_with(b"\n") {
                let _ = out.write_all(b"\n");
            }
            line.clear();
        }
    });
}

/// Redis is up when PING gets PONG, or NOAUTH (it wants a password);
/// LOADING (its append-only file) is not up yet.
async fn redis_answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 64];
        let n = stream.read(&mut reply).await.ok()?;
        let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
        Some(reply.starts_with("+PONG") || reply.starts_with("-NOAUTH"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt).await.ok().flatten().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn counts(verdicts: &[Verdict]) -> HashMap<&'static str, usize> {
        let mut map = HashMap::new();
        map.insert("restart", verdicts.iter().filter(|v| matches!(v, Verdict::RestartIn(_))).count());
        map.insert("give_up", verdicts.iter().filter(|v| matches!(v, Verdict::GiveUp(_))).count());
        map
    }

    #[test]
    fn quick_deaths_in_a_row_end_in_giving_up_with_growing_delays() {
        let mut r = Restarts::new(4, Duration::from_secs(30));
        let verdicts: Vec<Verdict> = (0..4).map(|_| r.exited(Duration::from_secs(1))).collect();
        assert_eq!(counts(&verdicts)["restart"], 3);
        assert_eq!(verdicts[3], Verdict::GiveUp(4));
        let delays: Vec<Duration> =
            verdicts.iter().filter_map(|v| if let Verdict::RestartIn(d) = v { Some(*d) } else { None }).collect();
        // Equal jitter: 1 s nominal gives 0.5-1 s, then 1-2 s, then 2-4 s.
        assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_secs(1), "{delays:?}");
        assert!(delays[2] >= Duration::from_secs(2), "{delays:?}");
    }

    #[test]
    fn a_long_run_forgives_earlier_deaths() {
        let mut r = Restarts::new(3, Duration::from_secs(30));
        assert!(matches!(r.exited(Duration::from_secs(1)), Verdict::RestartIn(_)));
        assert!(matches!(r.exited(Duration::from_secs(1)), Verdict::RestartIn(_)));
        // Up for a minute: a new count, and the shortest delay again.
        match r.exited(Duration::from_secs(60)) {
            Verdict::RestartIn(d) => assert!(d <= Duration::from_secs(1), "{d:?}"),
            v => panic!("gave up after a long run: {v:?}"),
        }
        assert!(matches!(r.exited(Duration::from_secs(1)), Verdict::RestartIn(_)));
        assert_eq!(r.exited(Duration::from_secs(1)), Verdict::GiveUp(3));
    }
}
