//! What an alert found, written to the container's facts before the alert
//! leaves: its identity, image and policy, its hold (until when) and the
//! label silences that select it. The safety gate believes these, not the
//! requests that follow the alert (anyone may publish one).
//!
//! Written within [`WRITE_TIMEOUT`]: an alert is never held back longer by
//! Redis being slow or down (it waits in the outbox then); the analyzer's
//! request still carries the hold, which the gate honours.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bollard::models::ContainerInspectResponse;
use hemostat_protocol::{
    ContainerRef,
    connection::Connection,
    facts::{self, Hold, Observed},
    policy::Policy,
};

use super::grace::Graces;
use crate::docker;

/// How long an alert waits for the write.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// The shortest a hold is believed: long enough for the analyzer's request
/// to follow the alert, and for a parent's recovery to take its dependent.
const MIN_HOLD: Duration = Duration::from_secs(60);

/// Cheap to clone.
#[derive(Clone)]
pub struct FactsWriter {
    conn: Connection,
    /// How long a hold found now is believed.
    hold_for: Duration,
    /// The last write failed (logged once per outage).
    failing: Arc<AtomicBool>,
}

impl FactsWriter {
    pub fn new(conn: Connection, graces: &Graces) -> FactsWriter {
        let hold_for = [graces.operator, graces.created, graces.recreated].into_iter().fold(MIN_HOLD, Duration::max);
        FactsWriter { conn, hold_for, failing: Arc::default() }
    }

    /// Records what the alert about `c` found.
    pub async fn record(
        &self,
        c: &ContainerRef,
        inspect: &ContainerInspectResponse,
        policy: &Policy,
        held: Option<&str>,
        silenced_by: &[String],
    ) {
        let Some(id) = inspect.id.as_deref() else { return };
        let observed = Observed {
            policy: policy.clone(),
            ..Observed::from_labels(id, docker::image(inspect).as_deref(), &docker::labels(inspect))
        };
        let until_ms = chrono::Utc::now().timestamp_millis() + self.hold_for.as_millis() as i64;
        let hold = held.map(|reason| Hold { reason: reason.to_owned(), until_ms });
        let mut pipe = redis::pipe();
        let built = facts::observe(&mut pipe, c, &observed)
            .and_then(|()| facts::alerted(&mut pipe, c, hold.as_ref(), silenced_by));
        if let Err(e) = built {
            return tracing::error!(container = %c, error = %e, "could not build the container's facts");
        }
        let written = tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async::<()>(&mut self.conn.clone())).await;
        match written {
            Ok(Ok(())) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("container facts writable again");
                }
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {} ms", WRITE_TIMEOUT.as_millis()),
                };
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(container = %c, %error, "cannot write container facts; the gate goes by the request's hold");
                }
            }
        }
    }
}
