//! Catching up: after a lost stream, a reopening or a restart, the
//! engine's event log is replayed from the cursor, then the exits no event
//! reported are found in state (`reconcile`).

use std::{collections::HashMap, time::Duration};

use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;

use super::{SEEN_HORIZON_NANOS, Watcher, cursor, judge, reconcile, reconcile::Decision};
use crate::inflight::now_nanos;

impl Watcher {
    /// Replays the engine's event log from the last event handled up to
    /// now, then reports from state the exits that no event covered.
    /// `lost`: after a lost stream or a restart (logged); else the idle
    /// watchdog's routine reopening (logged only when it found something).
    pub(super) async fn catch_up(
        &mut self,
        filters: &HashMap<&str, Vec<&str>>,
        lost: bool,
    ) -> Result<(), crate::error::CollectorError> {
        // Where the last catch-up that did not finish started (its replay
        // moved `last`, but its exits from state were never reconciled),
        // else the last event handled. Kept until this one finishes, also in
        // a cursor written meanwhile (at shutdown).
        let cutoff = *self.catching_up_from.get_or_insert(self.last);
        let until = now_nanos();
        // From a little before: an event stamped just before the last one
        // handled may not have reached the watcher (`seen` skips the rest).
        let since = timestamp(cutoff.saturating_sub(cursor::MARGIN_NANOS));
        let options = EventsOptionsBuilder::new().since(&since).until(&timestamp(until)).filters(filters).build();
        self.replayed_dies = Some(HashMap::new());
        // Exits reported by an earlier catch-up stay reported (they may
        // still be after the cutoff); those long settled are forgotten.
        let horizon = cutoff.saturating_sub(SEEN_HORIZON_NANOS);
        self.reported.retain(|_, finished| *finished >= horizon);
        let mut stream = self.docker.events(Some(options));
        let mut replayed = 0u32;
        // A finite query: the engine closes it after `until`.
        let replay: Result<(), crate::error::CollectorError> = loop {
            match tokio::time::timeout(REPLAY_TIMEOUT, stream.next()).await {
                Ok(Some(Ok(msg))) => {
                    replayed += 1;
                    self.handle(&msg).await;
                }
                Ok(Some(Err(e))) => break Err(e.into()),
                Ok(None) => break Ok(()),
                Err(_) => break Ok(()),
            }
        };
        let dies = self.replayed_dies.take().unwrap_or_default();
        replay?;
        let exits = reconcile::exits_since(&self.docker, cutoff).await?;
        let mut reported = 0u32;
        for exit in exits {
            // An event of the container handled at or after the exit (its
            // die, or a later one: Docker orders a container's events)
            // covers it, whether replayed now or handled before.
            let covered = dies.get(&exit.id).copied().max(self.seen.get(&exit.id).map(|(t, _)| *t));
            let reported_before = self.reported.get(&exit.id).copied();
            match exit.decide(cutoff, covered, reported_before, self.alert_daemon_exits) {
                Decision::Report => {
                    tracing::info!(container = %exit.name, exit_code = exit.code, "exit found in state after reconnecting (no event for it)");
                    reported += 1;
                    self.reported.insert(exit.id.clone(), exit.finished_nano);
                    let facts = judge::Basis::State(exit.facts.clone());
                    self.judging.start(exit.suspect(), facts, now_nanos()).await;
                }
                Decision::Skip(why) => {
                    tracing::info!(container = %exit.name, exit_code = exit.code, reason = why, "exit found in state not reported");
                }
                Decision::Seen => {}
            }
        }
        if lost || reported > 0 {
            tracing::info!(replayed_events = replayed, reported_from_state = reported, "caught up with Docker");
        } else {
            tracing::debug!(replayed_events = replayed, "caught up with Docker");
        }
        self.catching_up_from = None;
        self.dirty = true;
        Ok(())
    }
}

/// Docker's `since`/`until` format: seconds.nanoseconds.
pub(super) fn timestamp(nanos: i64) -> String {
    format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
}

/// A replay that goes silent this long is over (the engine should close
/// it at `until`; this guards against one that does not).
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);
