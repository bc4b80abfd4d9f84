//! The one task that empties the outbox: the head is sent until Redis
//! takes it (or refuses it for good: then it is dead-lettered and the next
//! one goes), and appends are synced to disk beside it.

use std::sync::Arc;

use hemostat_protocol::{
    Envelope, EventKind, ProtocolError, Publisher,
    backoff::Backoff,
    envelope::agent,
    event::{Severity, SystemAlert},
};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    AWAY_WAIT, FACTS_WAIT, FactsState, Head, IDLE_TURN, REFUSED_ATTEMPTS, Refusal, SYNC_INTERVAL, Shared, classify,
    dead_letters, push, refusal, stopping,
};
use crate::liveness::Task;

/// The drain and the syncer, until the drain is done; then a last sync.
pub(super) async fn run<P: Publisher>(publisher: P, shared: Arc<Shared>, cancel: CancellationToken) {
    let stop = CancellationToken::new();
    // Aborted (a stalled drain restarted), the syncer ends with it.
    let _syncer_ends = stop.clone().drop_guard();
    let syncer = tokio::spawn(syncer(shared.clone(), stop.clone()));
    drain(publisher, &shared, &cancel).await;
    stop.cancel();
    let _ = syncer.await;
    let mut s = shared.lock();
    s.stopped = true;
    if let Err(e) = s.log.sync_all() {
        tracing::error!(error = %e, "outbox: final sync to disk failed");
    }
    let pending = s.log.pending();
    if pending > 0 {
        tracing::info!(pending, "outbox stopped: undelivered events stay on disk for the next start");
    }
    if !s.spill.is_empty() {
        tracing::error!(
            lost = s.spill.len(),
            "outbox stopped with undelivered events held in memory (the disk refused them)"
        );
    }
    for (_, r) in std::mem::take(&mut s.receipts) {
        let _ = r.send(Err(stopping()));
    }
}

/// Syncs appends to disk, one `fsync` per [`SYNC_INTERVAL`] at most.
async fn syncer(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = shared.sync.notified() => {}
            _ = stop.cancelled() => return,
        }
        // The appends of the next moment join this sync.
        tokio::select! {
            _ = tokio::time::sleep(SYNC_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
        let handle = {
            let mut s = shared.lock();
            if !std::mem::take(&mut s.dirty) {
                continue;
            }
            s.log.sync_handle()
        };
        let synced = match handle {
            Ok((file, dir)) => tokio::task::spawn_blocking(move || {
                file.sync_data()?;
                dir.map_or(Ok(()), |d| d.sync_all())
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Err(e) => Err(e),
        };
        if let Err(e) = synced {
            tracing::warn!(error = %e, "outbox: fsync failed; events are written but may not survive a power loss");
        }
    }
}

async fn drain<P: Publisher>(publisher: P, shared: &Shared, cancel: &CancellationToken) {
    let patience = shared.settings.refusal_patience;
    let mut backoff = Backoff::redis();
    // Failed attempts in the current outage, for the recovery summary.
    let mut failures = 0u64;
    let mut dropped_before = 0u64;
    // Attempts at the current head, and since when Redis refuses "for now".
    let mut attempts: Option<(Head, u64)> = None;
    let mut refused_since: Option<Instant> = None;
    let progress = shared.settings.progress.clone();
    let mut facts = Facts { current: shared.settings.facts_current.clone(), waited: false, told: false };
    let turned = || {
        if let Some(p) = &progress {
            p.progressed(Task::Outbox);
        }
    };
    loop {
        turned();
        let (head, closed) = {
            let mut s = shared.lock();
            (s.head(), s.closed)
        };
        let head = match head {
            Ok(Some(head)) => Some(head),
            // No handle left: nothing more can come.
            Ok(None) if closed => break,
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot read from disk; retrying");
                if !backoff.wait_or(cancel.cancelled()).await {
                    break;
                }
                continue;
            }
        };
        let Some((head, payload)) = head else {
            // A permit stored by notify_one covers a push between the
            // check above and this wait.
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = cancel.cancelled(), if !cancel.is_cancelled() => {}
                // Idle is progress too: the loop shows it still turns.
                _ = tokio::time::sleep(IDLE_TURN) => {}
            }
            continue;
        };
        let tries = match attempts {
            Some((h, n)) if h == head => n + 1,
            _ => 1,
        };
        attempts = Some((head, tries));
        let result = match Envelope::parse(&payload) {
            Ok(env) => {
                if env.kind == EventKind::HealthAlert {
                    facts.wait(cancel).await;
                }
                publisher.publish(&env).await.map_err(|e| (env.kind.to_string(), e))
            }
            Err(e) => Err(("unknown".to_owned(), e)),
        };
        let (kind, error) = match result {
            Ok(id) => {
                tracing::debug!(stream_id = %id, "event published");
                if let Some(p) = &progress {
                    p.delivered();
                }
                if failures > 0 {
                    let dropped = shared.lock().dropped - dropped_before;
                    tracing::info!(
                        failed_attempts = failures,
                        dropped,
                        "Redis is back; delivering held events in order"
                    );
                    failures = 0;
                }
                backoff.reset();
                refused_since = None;
                let receipt = shared.lock().finish(head);
                if let Some(r) = receipt {
                    let _ = r.send(Ok(id));
                }
                continue;
            }
            Err(failed) => failed,
        };
        let class = classify(&error);
        let give_up = match class {
            Refusal::Transient => false,
            Refusal::ForNow => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                since.elapsed() >= patience && tries >= REFUSED_ATTEMPTS
            }
            Refusal::Final => tries >= REFUSED_ATTEMPTS,
        };
        if give_up {
            dead_letter(shared, head, &payload, &kind, &error, tries);
            continue;
        }
        if cancel.is_cancelled() {
            // Shutting down and Redis still fails: what is left waits on
            // disk for the next start.
            break;
        }
        // The wait for current facts was spent on a Redis that was away:
        // the next attempt, maybe the first one it takes, waits again.
        facts.waited = false;
        if failures == 0 {
            dropped_before = shared.lock().dropped;
        }
        failures += 1;
        let queued = {
            let s = shared.lock();
            s.log.pending() + s.spill.len() as u64
        };
        match class {
            Refusal::Transient => tracing::warn!(
                %kind, queued, attempt = failures, error = %error,
                "publish failed; holding events until Redis is back"
            ),
            _ => tracing::warn!(
                %kind, queued, attempt = tries, error = %error, refusal = ?class,
                "Redis refused the event; retrying it before giving it up"
            ),
        }
        // Shutdown during the wait: the loop comes back for one last try.
        backoff.wait_or(cancel.cancelled()).await;
    }
}

/// Moves `head` out of the way: into the dead-letter file, counted, its
/// receipt told why.
fn dead_letter(shared: &Shared, head: Head, payload: &[u8], kind: &str, error: &ProtocolError, attempts: u64) {
    let dir = &shared.settings.dir;
    let reason = error.to_string();
    let seq = match head {
        Head::Log(seq) => seq,
        Head::Spill(_) => 0,
    };
    let letter = dead_letters::DeadLetter { seq, kind: Some(kind), reason: &reason, attempts, record: payload };
    let file = match dead_letters::write(dir, &letter) {
        Ok(path) => path.display().to_string(),
        Err(e) => {
            tracing::error!(error = %e, "outbox: cannot write the dead-letter file; the refused event is only in this log");
            format!("nowhere ({e})")
        }
    };
    let mut s = shared.lock();
    s.dead_lettered += 1;
    let receipt = s.finish(head);
    tracing::error!(
        %kind, seq, attempts, dead_lettered_total = s.dead_lettered, reason = %refusal::redacted(&reason), %file,
        "Redis refused an event for good: dead-lettered; the events after it go on"
    );
    let report = s.report_dead_letter(kind);
    drop(s);
    if let Some(r) = receipt {
        let _ = r.send(Err(ProtocolError::Undelivered(format!(
            "refused by Redis ({}); dead-lettered in {file}",
            refusal::redacted(&reason)
        ))));
    }
    if let Some(unreported) = report {
        let message = format!(
            "Redis refused a {kind} from the collector on {} for good ({}): kept on that host in {file}{}",
            shared.settings.host,
            refusal::redacted(&reason),
            match unreported {
                0 => String::new(),
                n => format!("; {n} more dead-lettered in the minute before"),
            }
        );
        let alert = SystemAlert {
            kind: SystemAlert::OUTBOX_DEAD_LETTERED.into(),
            severity: Severity::High,
            host: shared.settings.host.clone(),
            message,
            last_seen: None,
            missing_for_seconds: None,
            container: container_of(payload),
            approval: None,
        };
        match Envelope::new(agent::MONITOR, EventKind::SystemAlert, &alert) {
            Ok(env) => push(shared, &env, None),
            Err(e) => tracing::error!(error = %e, "could not build the dead letter's system alert"),
        }
    }
}

/// The container an envelope is about, if its data names one.
fn container_of(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value["data"]["container"].as_str().map(str::to_owned)
}

/// The registry's facts, as alerts wait for them ([`super::Settings`]).
struct Facts {
    current: Option<watch::Receiver<FactsState>>,
    /// A wait in this spell of stale facts ran out and Redis took what
    /// went after: the next alerts go without waiting.
    waited: bool,
    /// Said that events are held while Redis is away (once per outage).
    told: bool,
}

impl Facts {
    async fn wait(&mut self, cancel: &CancellationToken) {
        let Some(current) = &mut self.current else { return };
        let started = Instant::now();
        // However the state flips meanwhile (a flapping Redis), one wait is
        // over by AWAY_WAIT: the delivery loop keeps turning.
        let give_up = started + AWAY_WAIT;
        loop {
            let state = *current.borrow_and_update();
            let budget = match state {
                FactsState::Current => {
                    self.waited = false;
                    let waited_ms = started.elapsed().as_millis() as u64;
                    if std::mem::take(&mut self.told) {
                        tracing::info!(
                            waited_ms,
                            "Redis is back and this host's container facts are written; delivering held events in order"
                        );
                    } else if waited_ms > 0 {
                        tracing::info!(waited_ms, "container facts current; delivering alerts");
                    }
                    return;
                }
                _ if self.waited => return,
                FactsState::Stale => FACTS_WAIT,
                FactsState::Away => {
                    if !std::mem::replace(&mut self.told, true) {
                        tracing::warn!(
                            "Redis does not answer this host's registry: holding events until Redis is back"
                        );
                    }
                    AWAY_WAIT
                }
            };
            let budget = budget.min(give_up.saturating_duration_since(Instant::now()));
            tokio::select! {
                changed = tokio::time::timeout(budget, current.changed()) => match changed {
                    Ok(Ok(())) => continue,
                    // The registry is gone (shutting down): nothing to wait for.
                    Ok(Err(_)) => return,
                    Err(_) => {
                        self.waited = true;
                        tracing::warn!(?state, "container facts not current; delivering alerts anyway (the gate refuses containers it has no facts of)");
                        return;
                    }
                },
                _ = cancel.cancelled() => return,
            }
        }
    }
}
