//! The supervisor: what a stalled task gets. A task that made no progress
//! for its expected period is restarted once (its old instance stopped
//! first, so two never run at once); if the new instance makes no progress
//! for another period either, the collector reports itself degraded, once
//! per task and episode, as a `system_alert` through the outbox
//! ([`SystemAlert::COLLECTOR_DEGRADED`]); when the task progresses again,
//! its recovery ([`SystemAlert::COLLECTOR_RECOVERED_TASKS`]).
//!
//! What "progress" means per task is in [`Task`]: each counts what it does
//! when all is well but quiet (an empty read, a round over no containers,
//! an idle turn, a reopening of an idle event stream), so a quiet host is
//! never called stalled.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use hemostat_protocol::{
    Envelope, EventKind,
    envelope::agent,
    event::{Severity, SystemAlert},
};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{Progress, Task};

/// How often the tasks are judged.
const TICK: Duration = Duration::from_secs(1);

/// A task's body, ready to run with its own cancellation token.
pub(crate) type Body = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How an instance is stopped before its replacement starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its token is cancelled, so it ends as at shutdown (the watcher saves
    /// its cursor, the consumer lets the commands under way finish and
    /// report); aborted if it has not ended within this time.
    Cancel(Duration),
    /// Aborted at once: its state lives outside it (the outbox's log), and
    /// its token means "shut down", not "stop".
    Abort,
}

/// A task the supervisor owns: how to start an instance of it, how to stop one.
pub(crate) struct Supervised {
    task: Task,
    stop: Stop,
    start: Box<dyn FnMut(CancellationToken) -> Body + Send>,
    /// An instance already running (the outbox's, started before Docker
    /// was reached); None: the supervisor starts the first.
    running: Option<JoinHandle<()>>,
}

impl Supervised {
    pub(crate) fn new(task: Task, stop: Stop, start: impl FnMut(CancellationToken) -> Body + Send + 'static) -> Self {
        Supervised { task, stop, start: Box::new(start), running: None }
    }

    /// `handle` is the first instance, already running.
    pub(crate) fn running(mut self, handle: JoinHandle<()>) -> Self {
        self.running = Some(handle);
        self
    }
}

/// What a judgement calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Stalled past its period: restart it.
    Restart,
    /// It progressed after its restart: the restart helped.
    Settled,
    /// Stalled still, a period after its restart: report it.
    Degraded,
    /// It progressed after it was reported degraded.
    Recovered,
}

/// Where a task is in an episode of stalling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Restarted { at: Instant },
    Degraded { at: Instant },
}

/// One task's episode, judged from its progress alone (pure, for tests).
#[derive(Debug)]
struct Episode {
    phase: Phase,
}

impl Episode {
    /// `ago`: since its last progress; `period`: its expected period.
    fn judge(&mut self, now: Instant, ago: Duration, period: Duration) -> Option<Verdict> {
        // Progress after `at`: its last progress is more recent than `at`.
        let since = |at: Instant| ago < now.saturating_duration_since(at);
        let (phase, verdict) = match self.phase {
            Phase::Running if ago > period => (Phase::Restarted { at: now }, Verdict::Restart),
            Phase::Restarted { at } if since(at) => (Phase::Running, Verdict::Settled),
            Phase::Restarted { at } if now.saturating_duration_since(at) > period => {
                (Phase::Degraded { at: now }, Verdict::Degraded)
            }
            Phase::Degraded { at } if since(at) => (Phase::Running, Verdict::Recovered),
            _ => return None,
        };
        self.phase = phase;
        Some(verdict)
    }
}

struct Instance {
    supervised: Supervised,
    token: CancellationToken,
    handle: JoinHandle<()>,
    episode: Episode,
}

/// Watches [`Progress`] and acts on it. `report` queues a system alert
/// (the outbox's `send`).
pub(crate) struct Supervisor {
    progress: Arc<Progress>,
    host: String,
    report: Box<dyn Fn(Envelope) + Send>,
    tasks: Vec<Supervised>,
}

impl Supervisor {
    pub(crate) fn new(progress: Arc<Progress>, host: String, report: impl Fn(Envelope) + Send + 'static) -> Self {
        Supervisor { progress, host, report: Box::new(report), tasks: Vec::new() }
    }

    pub(crate) fn supervise(mut self, task: Supervised) -> Self {
        self.tasks.push(task);
        self
    }

    /// Starts the tasks and judges them every second until `cancel`; then
    /// waits for each to end, in the order they were added (the outbox
    /// last: it ends once every sender is gone).
    pub(crate) async fn run(self, cancel: CancellationToken) {
        let Supervisor { progress, host, report, tasks } = self;
        let mut instances: Vec<Instance> = tasks
            .into_iter()
            .map(|mut supervised| {
                let token = cancel.child_token();
                let handle = match supervised.running.take() {
                    Some(handle) => handle,
                    None => tokio::spawn((supervised.start)(token.clone())),
                };
                Instance { supervised, token, handle, episode: Episode { phase: Phase::Running } }
            })
            .collect();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            for instance in &mut instances {
                judge(instance, &progress, &host, &report, &cancel);
            }
        }
        // The alerts' outbox handle goes first, or the outbox would wait for it.
        drop(report);
        for instance in instances {
            let Instance { supervised, handle, .. } = instance;
            // Its start closure may hold an outbox handle too.
            drop(supervised);
            let _ = handle.await;
        }
    }
}

fn judge(
    instance: &mut Instance,
    progress: &Progress,
    host: &str,
    report: &(dyn Fn(Envelope) + Send),
    cancel: &CancellationToken,
) {
    let task = instance.supervised.task;
    // Not watched (the watcher without an idle watchdog). An instance that
    // ended on its own makes no progress either, and is restarted alike.
    let Some(period) = progress.period(task) else { return };
    let ago = progress.ago(task);
    let name = task.name();
    match instance.episode.judge(Instant::now(), ago, period) {
        None => {}
        Some(Verdict::Restart) => {
            progress.restarted(task);
            tracing::warn!(
                task = name,
                progress_seconds_ago = ago.as_secs(),
                expected_seconds = period.as_secs(),
                "collector task made no progress for its expected period: restarting it"
            );
            restart(instance, cancel);
        }
        Some(Verdict::Settled) => {
            tracing::info!(task = name, "collector task progresses again after its restart");
        }
        Some(Verdict::Degraded) => {
            progress.set_degraded(task, true);
            tracing::error!(
                task = name,
                progress_seconds_ago = ago.as_secs(),
                "collector task still makes no progress after its restart: collector degraded"
            );
            let message = format!(
                "collector task {name} on {host} has made no progress for {} s (expected within {} s), restart included: the collector is partly blind or deaf",
                ago.as_secs(),
                period.as_secs()
            );
            send(report, SystemAlert::COLLECTOR_DEGRADED, Severity::High, host, message, Some(ago.as_secs()));
        }
        Some(Verdict::Recovered) => {
            progress.set_degraded(task, false);
            tracing::info!(task = name, "degraded collector task progresses again");
            let message = format!("collector task {name} on {host} progresses again");
            send(report, SystemAlert::COLLECTOR_RECOVERED_TASKS, Severity::Low, host, message, None);
        }
    }
}

/// Stops the instance (see [`Stop`]) and starts a new one once the old
/// one has ended: two instances of a task never run at once (one drain
/// per outbox log, one reader per consumer name). Does not wait.
fn restart(instance: &mut Instance, cancel: &CancellationToken) {
    let old = std::mem::replace(&mut instance.handle, tokio::spawn(async {}));
    let stop = instance.supervised.stop;
    match stop {
        Stop::Cancel(_) => instance.token.cancel(),
        Stop::Abort => old.abort(),
    }
    instance.token = cancel.child_token();
    let body = (instance.supervised.start)(instance.token.clone());
    let name = instance.supervised.task.name();
    instance.handle = tokio::spawn(async move {
        let mut old = old;
        let ended = match stop {
            Stop::Cancel(grace) => tokio::time::timeout(grace, &mut old).await.is_ok(),
            Stop::Abort => false,
        };
        if !ended {
            if let Stop::Cancel(grace) = stop {
                tracing::warn!(
                    task = name,
                    grace_seconds = grace.as_secs(),
                    "stalled task did not stop in time: aborted"
                );
                old.abort();
            }
            // Polled once more only if it had not ended (a JoinHandle must
            // not be polled after it completed).
            let _ = old.await;
        }
        body.await;
    });
}

fn send(
    report: &(dyn Fn(Envelope) + Send),
    kind: &str,
    severity: Severity,
    host: &str,
    message: String,
    missing_for_seconds: Option<u64>,
) {
    let alert = SystemAlert {
        kind: kind.to_owned(),
        severity,
        host: host.to_owned(),
        message,
        last_seen: None,
        missing_for_seconds,
        container: None,
        approval: None,
    };
    match Envelope::new(agent::MONITOR, EventKind::SystemAlert, &alert) {
        Ok(env) => report(env),
        Err(e) => tracing::error!(error = %e, kind, "could not build the collector's system alert"),
    }
}

#[cfg(test)]
mod tests;
