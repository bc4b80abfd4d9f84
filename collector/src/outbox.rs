//! Getting events to Redis despite Redis outages.
//!
//! Alerts go through a queue drained by one task, so a Redis outage delays
//! alerts (kept in memory, retried with backoff) without ever stalling the
//! Docker event loop behind it.

use hemostat_protocol::{Envelope, Publisher};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{backoff::Backoff, error::CollectorError};

/// 1+2+4+8+16 s: about half a minute of outage is ridden out.
const ATTEMPTS: u32 = 6;
/// Alerts held while Redis is away; beyond this the oldest news is stale.
const CAPACITY: usize = 1024;

/// Publishes, retrying with backoff. Stops retrying (after one attempt) once
/// shutdown is requested, so shutdown is not held up by a dead Redis.
pub async fn publish_with_retry<P: Publisher>(
    publisher: &P,
    env: &Envelope,
    cancel: &CancellationToken,
) -> Result<String, CollectorError> {
    let mut backoff = Backoff::standard();
    let mut attempt = 1;
    loop {
        match publisher.publish(env).await {
            Ok(id) => return Ok(id),
            Err(e) if attempt < ATTEMPTS && !cancel.is_cancelled() => {
                tracing::warn!(kind = %env.kind, attempt, error = %e, "publish failed; retrying");
                if !backoff.wait(cancel).await {
                    return Err(e.into());
                }
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Envelope>,
}

impl Outbox {
    /// The task ends once every `Outbox` clone is dropped and the queue is
    /// drained.
    pub fn spawn<P: Publisher + 'static>(
        publisher: P,
        cancel: CancellationToken,
    ) -> (Outbox, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Envelope>(CAPACITY);
        let task = tokio::spawn(async move {
            while let Some(env) = rx.recv().await {
                match publish_with_retry(&publisher, &env, &cancel).await {
                    Ok(id) => tracing::debug!(kind = %env.kind, stream_id = %id, "event published"),
                    Err(e) => {
                        tracing::error!(kind = %env.kind, error = %e, "event dropped: Redis unreachable")
                    }
                }
            }
        });
        (Outbox { tx }, task)
    }

    pub fn send(&self, env: Envelope) {
        if let Err(e) = self.tx.try_send(env) {
            tracing::error!(error = %e, "event dropped: outbox full or closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use hemostat_protocol::{EventKind, ProtocolError, envelope::agent};

    use super::*;

    /// Fails `fail` times, then succeeds.
    struct Flaky {
        fail: u32,
        calls: Arc<AtomicU32>,
    }

    impl Publisher for Flaky {
        async fn publish(&self, _env: &Envelope) -> Result<String, ProtocolError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail {
                Err(ProtocolError::RedisUrl("down".into()))
            } else {
                Ok("1-0".into())
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_redis_is_back_and_gives_up_eventually() {
        let env = Envelope::new(
            agent::MONITOR,
            EventKind::HealthAlert,
            &serde_json::json!({}),
        )
        .unwrap();
        let cancel = CancellationToken::new();
        let calls = Arc::new(AtomicU32::new(0));
        let flaky = Flaky {
            fail: 3,
            calls: calls.clone(),
        };
        assert_eq!(
            publish_with_retry(&flaky, &env, &cancel).await.unwrap(),
            "1-0"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let calls = Arc::new(AtomicU32::new(0));
        let dead = Flaky {
            fail: u32::MAX,
            calls: calls.clone(),
        };
        assert!(publish_with_retry(&dead, &env, &cancel).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }
}
