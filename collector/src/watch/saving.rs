//! The watcher's cursor (`cursor.rs`), written as the watcher goes (offered
//! to the saver every tick something changed) and once more at shutdown.

use super::{
    STOP_WAIT, Watcher,
    cursor::{Cursor, Memory},
};

impl Watcher {
    /// What the cursor is made of now.
    pub(super) fn memory(&mut self) -> Memory<'_> {
        Memory {
            last: self.last,
            seen: &self.seen,
            reported: &self.reported,
            kills: self.detector.kills().collect(),
            pending: self.judging.pending(),
            catching_up_from: self.catching_up_from,
        }
    }

    /// Offers the cursor to the saver when something changed or an alert
    /// is still pending. A cursor offered while one is pending leaves its
    /// container out, so it stays dirty: the next tick after the hand-over
    /// writes the cursor that remembers it (else a `kill -9` then would
    /// report that exit again).
    pub(super) fn save(&mut self) {
        let pending = !self.judging.is_idle();
        if self.saver.is_none() || !(self.dirty || pending) {
            return;
        }
        let cursor = Cursor::of(&self.memory());
        if let Some(saver) = &mut self.saver
            && saver.offer(&cursor)
        {
            self.dirty = pending;
        }
    }

    /// At shutdown: lets the alerts being judged reach the outbox (a few
    /// seconds at most), then writes the cursor one last time.
    pub(super) async fn stop(mut self) {
        self.judging.settle(tokio::time::Instant::now() + STOP_WAIT).await;
        let cursor = Cursor::of(&self.memory());
        if let Some(saver) = &mut self.saver {
            saver.flush(&cursor).await;
            let stats = saver.stats();
            tracing::info!(
                cursor = %cursor.time,
                writes = stats.writes,
                failures = stats.failures,
                mean_us = stats.total.as_micros().checked_div(u128::from(stats.writes)).unwrap_or_default() as u64,
                max_us = stats.max.as_micros() as u64,
                "cursor saved"
            );
        }
    }
}
