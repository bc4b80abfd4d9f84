//! Running commands concurrently without reordering them per container.
//!
//! Verification holds a command for seconds; commands for other containers
//! must not wait behind it, but two commands for one container (stop, then
//! start) must run in the order they arrived. Each container has a lane:
//! a command waits for the one before it in its lane, then for one of a
//! bounded number of slots, so a burst cannot run unbounded Docker work.
//!
//! The slot bounds the Docker work, not the watching after it: a command
//! hands its [`Slot`] back once its action is done and keeps only its lane
//! while it verifies. Holding slots through verification made a storm of N
//! crashes take N / slots verification windows (200 crashes, 4 slots, 3 s:
//! 150 s) where Docker's restart policy starts them all at once.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

#[derive(Clone)]
pub struct Lanes {
    /// Per lane, the completion signal of its last command.
    last: Arc<Mutex<HashMap<String, oneshot::Receiver<()>>>>,
    slots: Arc<Semaphore>,
}

/// The right to run; dropping it lets the lane's next command go.
pub struct Turn {
    slot: Slot,
    _done: oneshot::Sender<()>,
}

/// One of the bounded slots for Docker work; dropping it lets another
/// container's command start.
#[derive(Default)]
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Turn {
    /// Takes the slot out of the turn, to be handed back (dropped) when the
    /// command's Docker work is done, while the turn keeps the lane.
    pub fn slot(&mut self) -> Slot {
        std::mem::take(&mut self.slot)
    }
}

impl Lanes {
    pub fn new(concurrency: usize) -> Self {
        Lanes { last: Arc::default(), slots: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    /// Takes a place in `lane` now (call in arrival order); the future
    /// resolves when it is this command's turn.
    pub fn join(&self, lane: &str) -> impl Future<Output = Turn> + Send + 'static {
        let (done, signal) = oneshot::channel();
        let before = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            // Forget lanes whose last command finished (sender dropped).
            last.retain(|_, rx| matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
            last.insert(lane.to_owned(), signal)
        };
        let slots = self.slots.clone();
        async move {
            if let Some(before) = before {
                // Err only means the previous command ended: its turn is over.
                let _ = before.await;
            }
            Turn {
                // The semaphore is never closed, so this is always Some.
                slot: Slot { _permit: slots.acquire_owned().await.ok() },
                _done: done,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_lane_is_ordered_other_lanes_are_not_blocked() {
        let lanes = Lanes::new(4);
        let first = lanes.join("web").await;
        let second = lanes.join("web");
        let other = lanes.join("db");
        tokio::time::timeout(Duration::from_millis(100), other).await.expect("db is not blocked by web");
        let second = tokio::spawn(second);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "second web command waits for the first");
        drop(first);
        tokio::time::timeout(Duration::from_millis(100), second).await.expect("runs after").unwrap();
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        let lanes = Lanes::new(1);
        let a = lanes.join("a").await;
        let b = tokio::spawn(lanes.join("b"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!b.is_finished());
        drop(a);
        tokio::time::timeout(Duration::from_millis(100), b).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_slot_handed_back_frees_other_lanes_but_not_its_own() {
        let lanes = Lanes::new(1);
        let mut first = lanes.join("web").await;
        let next_web = tokio::spawn(lanes.join("web"));
        let db = tokio::spawn(lanes.join("db"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!db.is_finished(), "the only slot is taken");
        drop(first.slot());
        let db = tokio::time::timeout(Duration::from_millis(100), db).await.expect("slot handed back").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!next_web.is_finished(), "web's lane is still held by the first command");
        drop((first, db));
        tokio::time::timeout(Duration::from_millis(100), next_web).await.expect("lane and slot free").unwrap();
    }
}
