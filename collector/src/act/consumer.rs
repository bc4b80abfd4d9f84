//! Consuming this host's command stream (`hemostat:commands:{host}`).
//!
//! Delivery is at-least-once (consumer group, XACK only after the outcome
//! is published); execution is at-most-once (the [`marker`] is taken with
//! SET NX just before executing), because restarting a container twice for
//! one command is worse than a lost command, which the responder can
//! reissue. A command whose collector died mid-action is reported as failed
//! with an unknown outcome rather than silently dropped.
//!
//! Each command runs in its own task, in its container's [`Lanes`] lane:
//! verifying one fix for seconds does not delay commands for other
//! containers, while commands for one container keep their order.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use hemostat_protocol::{
    Action, Command, Publisher,
    backoff::Backoff,
    command::{SignedCommand, VerifyingKeys},
    connection::Connection,
    event::RemediationStatus,
    keys,
    stream::{Entry, Group},
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    admission::{Admission, admit},
    executor::Executor,
    lanes::{Lanes, Slot},
    marker::{self, Marker},
    report::{complete, complete_refused, result},
};
use crate::{
    error::CollectorError,
    liveness::{self, Progress},
    outbox::{Refusal, classify, publish_with_retry},
};

/// The error a command gets when its collector died while executing it.
pub const OUTCOME_UNKNOWN: &str = "collector restarted while executing; outcome unknown";

pub const GROUP: &str = "collectors";
pub const BLOCK: Duration = Duration::from_secs(5);
const COUNT: usize = 10;
/// `HEMOSTAT_COMMAND_MAX_AGE`'s default: a command is meant for the problem
/// it was issued for, and a collector back after an hour must not replay an
/// hour of restarts.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Entries a dead predecessor (same host, other pid) left unacknowledged
/// for this long are taken over.
const CLAIM_IDLE: Duration = Duration::from_secs(60);
/// Look for such entries every this many empty reads (~1 min).
const CLAIM_EVERY: u32 = 12;

pub struct Consumer<P> {
    /// Its own socket: XREADGROUP BLOCK holds the connection.
    conn: Connection,
    /// For the command tasks (markers, XACK), which must not queue behind
    /// a blocked XREADGROUP.
    tasks_conn: Connection,
    publisher: P,
    executor: Executor,
    host: String,
    group: Group,
    /// The public keys commands must be signed with; None: unsigned
    /// commands are accepted (the operator said so).
    keys: Option<VerifyingKeys>,
    /// This process, in markers: tells "executing here" from "executing in
    /// a collector that has since died".
    instance: String,
    lanes: Lanes,
    /// Commands issued longer ago than this are refused as expired; zero
    /// accepts any age.
    max_age: Duration,
    /// Entries and command ids with a task in this process.
    running: Arc<Mutex<Running>>,
    tasks: JoinSet<()>,
    /// Where each read that returns counts as progress.
    progress: Option<Arc<Progress>>,
}

#[derive(Default)]
struct Running {
    entries: HashSet<String>,
    commands: HashSet<String>,
}

/// What a command task needs, cloned out of the consumer.
struct Task<P> {
    conn: Connection,
    publisher: P,
    executor: Executor,
    host: String,
    group: Group,
    instance: String,
    running: Arc<Mutex<Running>>,
}

impl<P: Publisher + Clone + Send + Sync + 'static> Consumer<P> {
    pub fn new(
        conn: Connection,
        tasks_conn: Connection,
        publisher: P,
        executor: Executor,
        host: String,
        keys: Option<VerifyingKeys>,
        concurrency: usize,
    ) -> Self {
        Consumer {
            conn,
            tasks_conn,
            publisher,
            executor,
            // The consumer name is the host, stable across restarts (one
            // collector per host), so a restarted collector finds its own
            // pending commands at once instead of waiting for them to go idle
            // and be claimed.
            group: Group::new(keys::commands(&host), GROUP, &host),
            host,
            keys,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            lanes: Lanes::new(concurrency),
            max_age: DEFAULT_MAX_AGE,
            running: Arc::default(),
            tasks: JoinSet::new(),
            progress: None,
        }
    }

    /// Records each read that returns in `progress`.
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Refuse commands issued longer ago than `max_age` (zero: any age).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Consumes until shutdown, then waits for the commands under way: a
    /// half-done command must finish and report.
    pub async fn run(mut self, cancel: CancellationToken) {
        self.consume(&cancel).await;
        while self.tasks.join_next().await.is_some() {}
    }

    async fn consume(&mut self, cancel: &CancellationToken) {
        let cancel = cancel.clone();
        let mut backoff = Backoff::redis();
        // Start (and restart after any error) with this consumer's pending
        // entries: commands delivered before a crash are not lost.
        'session: loop {
            if let Err(e) = self.prepare().await {
                tracing::warn!(error = %e, "command stream unavailable; retrying");
                if !backoff.wait_or(cancel.cancelled()).await {
                    return;
                }
                continue;
            }
            let mut cursor = "0".to_owned();
            let mut idle_reads = 0;
            loop {
                let pending = cursor != ">";
                let read = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = self.read(&cursor) => r,
                };
                // A read that returns, even empty or failed, is a consumer
                // that is not stuck: Redis being down shows elsewhere, and
                // restarting the consumer would not help it.
                if let Some(p) = &self.progress {
                    p.progressed(liveness::Task::Consumer);
                    if let Ok(entries) = &read {
                        p.commands_read(entries.len());
                    }
                }
                let entries = match read {
                    Ok(entries) => entries,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading commands failed; retrying");
                        if !backoff.wait_or(cancel.cancelled()).await {
                            return;
                        }
                        continue 'session;
                    }
                };
                backoff.reset();
                if pending {
                    match entries.last() {
                        Some(last) => cursor = last.id.clone(),
                        None => cursor = ">".into(),
                    }
                } else if entries.is_empty() {
                    idle_reads += 1;
                    if idle_reads >= CLAIM_EVERY {
                        idle_reads = 0;
                        if self.claim_abandoned().await > 0 {
                            cursor = "0".into();
                        }
                    }
                }
                // Reap finished tasks so the set does not grow.
                while self.tasks.try_join_next().is_some() {}
                for entry in entries {
                    if let Err(e) = self.process(&entry, &cancel).await {
                        tracing::warn!(entry = %entry.id, error = %e, "command left pending; will retry");
                        if !backoff.wait_or(cancel.cancelled()).await {
                            return;
                        }
                        continue 'session;
                    }
                }
            }
        }
    }

    /// Creates the group (from the start of the stream, so commands sent
    /// before this host's first collector started are not skipped) and
    /// takes over entries abandoned by a previous process.
    async fn prepare(&mut self) -> Result<(), CollectorError> {
        self.group.ensure(&mut self.conn).await?;
        self.claim_abandoned().await;
        Ok(())
    }

    /// Takes entries idle at a previous consumer into this one's pending
    /// list; best effort.
    async fn claim_abandoned(&mut self) -> usize {
        match self.group.claim_idle(&mut self.conn, CLAIM_IDLE, 100).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(entries = n, "took over commands abandoned by a previous collector");
                }
                n
            }
            Err(e) => {
                tracing::debug!(error = %e, "XAUTOCLAIM failed");
                0
            }
        }
    }

    async fn read(&mut self, cursor: &str) -> Result<Vec<Entry>, CollectorError> {
        let entries = if cursor == ">" {
            self.group.read_new(&mut self.conn, COUNT, Some(BLOCK)).await?
        } else {
            self.group.read_own_pending(&mut self.conn, cursor, COUNT).await?
        };
        Ok(entries)
    }

    /// Ok means the entry is finished (acknowledged) or handed to a task;
    /// Err leaves it pending.
    async fn process(&mut self, entry: &Entry, cancel: &CancellationToken) -> Result<(), CollectorError> {
        let Some(fields) = &entry.fields else {
            tracing::warn!(entry = %entry.id, "pending command was trimmed from the stream; dropping");
            return ack(&self.group, &mut self.conn, &entry.id).await;
        };
        let Some(signed) = SignedCommand::from_fields(fields) else {
            // Nothing to execute nor to report on.
            tracing::warn!(entry = %entry.id, "command refused: entry has no command field");
            return ack(&self.group, &mut self.conn, &entry.id).await;
        };
        let cmd = match admit(&signed, self.keys.as_ref(), &self.host, &entry.id, self.max_age, chrono::Utc::now()) {
            Admission::Run(cmd) => cmd,
            Admission::Unopened { claimed, why } => {
                tracing::warn!(entry = %entry.id, error = %why, "command refused");
                if let Some(container) = claimed.container.clone() {
                    let env = complete_refused(&self.host, &claimed, container, why);
                    report(publish_with_retry(&self.publisher, &env?, cancel).await, &entry.id)?;
                }
                return ack(&self.group, &mut self.conn, &entry.id).await;
            }
            Admission::Refused { cmd, reason } => {
                tracing::warn!(entry = %entry.id, command_id = %cmd.id, container = %cmd.container, action = %cmd.action, %reason,
                    "command refused");
                let result = result(&cmd, RemediationStatus::Rejected, Some(reason));
                report(
                    publish_with_retry(&self.publisher, &complete(&self.host, &cmd, result)?, cancel).await,
                    &entry.id,
                )?;
                return ack(&self.group, &mut self.conn, &entry.id).await;
            }
        };
        let duplicate = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.entries.contains(&entry.id) {
                // Re-read from the pending list while its task runs: the
                // task acknowledges it.
                return Ok(());
            }
            let duplicate = running.commands.contains(&cmd.id);
            if !duplicate {
                running.entries.insert(entry.id.clone());
                running.commands.insert(cmd.id.clone());
            }
            duplicate
        };
        if duplicate {
            tracing::info!(command_id = %cmd.id, entry = %entry.id, "command already executing here; not executing again");
            return ack(&self.group, &mut self.conn, &entry.id).await;
        }
        // Joined now, in arrival order; the task waits for its turn.
        let turn = self.lanes.join(&cmd.container);
        let task = Task {
            conn: self.tasks_conn.clone(),
            publisher: self.publisher.clone(),
            executor: self.executor.clone(),
            host: self.host.clone(),
            group: self.group.clone(),
            instance: self.instance.clone(),
            running: self.running.clone(),
        };
        let entry_id = entry.id.clone();
        let cancel = cancel.clone();
        self.tasks.spawn(async move {
            let mut turn = turn.await;
            let slot = turn.slot();
            task.run(&entry_id, cmd, slot, &cancel).await;
            drop(turn);
        });
        Ok(())
    }
}

impl<P: Publisher> Task<P> {
    async fn run(mut self, entry: &str, cmd: Command, slot: Slot, cancel: &CancellationToken) {
        if let Err(e) = self.execute(entry, &cmd, slot, cancel).await {
            tracing::warn!(entry, command_id = %cmd.id, error = %e, "command left pending; will retry");
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.entries.remove(entry);
        running.commands.remove(&cmd.id);
    }

    /// Ok means acknowledged; Err leaves the entry pending for a re-read.
    async fn execute(
        &mut self,
        entry: &str,
        cmd: &Command,
        slot: Slot,
        cancel: &CancellationToken,
    ) -> Result<(), CollectorError> {
        if cancel.is_cancelled() {
            // Queued behind another command at shutdown and not started:
            // left pending, unmarked, for the next collector to run.
            return Err(CollectorError::Cancelled);
        }
        let result = match marker::take(&mut self.conn, &self.host, &cmd.id, &self.instance).await? {
            Marker::Taken => self.executor.execute(cmd, slot, cancel).await,
            Marker::Done { status } => {
                tracing::info!(command_id = %cmd.id, %status, "command already executed; not executing again");
                return ack(&self.group, &mut self.conn, entry).await;
            }
            Marker::Executing { instance } if instance == self.instance => {
                // Ran in this process, whose task could not record the end:
                // its outcome was published (or logged) then.
                tracing::info!(command_id = %cmd.id, "command already executed here; not executing again");
                return ack(&self.group, &mut self.conn, entry).await;
            }
            // A restart or start is finished instead: the executor finds it
            // moot if the container runs again since the problem (the dead
            // collector got that far), and carries it out if not, so a
            // crash is neither restarted twice nor left down.
            Marker::Executing { .. }
                if matches!(cmd.action, Action::Restart | Action::Start) && cmd.context.detected_at.is_some() =>
            {
                tracing::warn!(command_id = %cmd.id, container = %cmd.container, action = %cmd.action, "command was executing when its collector stopped; finishing it unless the container runs again already");
                self.executor.execute(cmd, slot, cancel).await
            }
            Marker::Executing { .. } => {
                tracing::warn!(command_id = %cmd.id, container = %cmd.container, action = %cmd.action, "command was executing when its collector stopped; reporting the outcome as unknown");
                result(cmd, RemediationStatus::Failed, Some(OUTCOME_UNKNOWN.into()))
            }
        };
        tracing::info!(
            command_id = %cmd.id, container = %cmd.container, action = %cmd.action,
            status = ?result.status, error = ?result.error, verified = ?result.verified,
            duration_ms = ?result.duration_ms, "command done"
        );
        let status = serde_json::to_value(result.status)?;
        let status = status.as_str().unwrap_or("unknown").to_owned();
        let env = complete(&self.host, cmd, result)?;
        if let Err(e) = publish_with_retry(&self.publisher, &env, cancel).await {
            // Still finished: the command ran and is marked, so a
            // redelivery could only be skipped; the outcome is in the log.
            tracing::error!(command_id = %cmd.id, error = %e, "outcome could not be published");
        }
        marker::finish(&mut self.conn, &self.host, &cmd.id, &status).await?;
        ack(&self.group, &mut self.conn, entry).await
    }
}

/// Whether a refusal's report is out, for its entry's sake: `Ok` when it
/// was delivered, or given up for good (dead-lettered by the outbox:
/// publishing it again cannot help, and the entry is acknowledged like a
/// delivered one); `Err` leaves the entry pending for a retry.
fn report(published: Result<String, CollectorError>, entry: &str) -> Result<(), CollectorError> {
    match published {
        Ok(_) => Ok(()),
        Err(CollectorError::Protocol(e)) if classify(&e) == Refusal::Final => {
            tracing::error!(entry, error = %e, "refusal report not delivered; acknowledging the command anyway");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Acknowledges one entry: the reader (for entries it drops) and each
/// task (for the command it ran) share this.
async fn ack(group: &Group, conn: &mut Connection, id: &str) -> Result<(), CollectorError> {
    group.ack(conn, &[id]).await?;
    Ok(())
}
