//! Which operators' label silences select a container: matched here,
//! because the collector alone reads labels, and labels may hold secrets
//! that must not leave the host. An alert carries only the ids of the
//! silences that select its container (`health_alert.silenced_by`); the gate
//! refuses with the silence's reason while that silence still holds, so
//! removing it, or its end, takes effect at once.
//!
//! An alert reads the live silences from Redis after it asked (a silence
//! added just before a crash holds for it), concurrent alerts sharing one
//! read; read only (pruning ended ones is the gate's and the CLI's job), and
//! within [`READ_TIMEOUT`]: an alert is never held back longer by Redis
//! being slow or down. Then the last list read stands in, and for
//! [`MAX_AGE`] Redis is not asked again (a storm during an outage does not
//! wait [`READ_TIMEOUT`] per alert). The heartbeat's question ([`any`])
//! takes a list up to [`MAX_AGE`] old.
//!
//! [`any`]: LabelSilences::any

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use hemostat_protocol::{
    connection::Connection,
    silence::{self, Silence, Subject, TargetKind},
};
use tokio::sync::Mutex;

/// How old the list may be for the heartbeat, or after a failed read.
pub const MAX_AGE: Duration = Duration::from_secs(2);
/// How long an alert waits for the list.
pub const READ_TIMEOUT: Duration = Duration::from_millis(500);

/// The live silences (every kind: label silences are matched here, the
/// others only for edge restarts), read lazily. Cheap to clone.
#[derive(Clone)]
pub struct LabelSilences {
    conn: Connection,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    /// When the last read started.
    read_at: Option<Instant>,
    silences: Vec<Silence>,
    /// Whether the last read failed (the warning is logged once per outage).
    failing: bool,
}

impl LabelSilences {
    pub fn new(conn: Connection) -> LabelSilences {
        LabelSilences { conn, cache: Arc::default() }
    }

    /// The ids of the live label silences that select a container with
    /// these labels.
    pub async fn selecting(&self, labels: &HashMap<String, String>) -> Vec<String> {
        let asked = Instant::now();
        let mut cache = self.cache.lock().await;
        let fresh = cache.read_at.is_some_and(|t| t >= asked);
        let resting = cache.failing && cache.read_at.is_some_and(|t| t.elapsed() < MAX_AGE);
        if !fresh && !resting {
            self.refresh(&mut cache).await;
        }
        let now = chrono::Utc::now().timestamp_millis();
        cache.silences.iter().filter(|s| s.until_ms() > now && s.selects(labels)).map(|s| s.id.clone()).collect()
    }

    /// The refusal of the live silence of any kind (container, host,
    /// image, project, label) that holds for `subject`, from the list read
    /// as for an alert (the last one read while Redis is down): what a
    /// decision taken on the host without the gate must respect too.
    pub async fn refusal(&self, subject: &Subject) -> Option<String> {
        let mut cache = self.cache.lock().await;
        if cache.read_at.is_none_or(|t| t.elapsed() >= MAX_AGE) {
            self.refresh(&mut cache).await;
        }
        let now = chrono::Utc::now().timestamp_millis();
        cache.silences.iter().find(|s| s.until_ms() > now && s.matches(subject)).map(Silence::refusal)
    }

    /// Whether any label silence holds now (the list read as for an alert).
    pub async fn any(&self) -> bool {
        let mut cache = self.cache.lock().await;
        if cache.read_at.is_none_or(|t| t.elapsed() >= MAX_AGE) {
            self.refresh(&mut cache).await;
        }
        let now = chrono::Utc::now().timestamp_millis();
        cache.silences.iter().any(|s| s.kind == TargetKind::Label && s.until_ms() > now)
    }

    async fn refresh(&self, cache: &mut Cache) {
        // Tried now either way: a Redis that is down is asked again after
        // MAX_AGE, not by every alert of a storm.
        cache.read_at = Some(Instant::now());
        let read = tokio::time::timeout(READ_TIMEOUT, silence::holding(&mut self.conn.clone())).await;
        match read {
            Ok(Ok(all)) => {
                cache.silences = all;
                if std::mem::replace(&mut cache.failing, false) {
                    tracing::info!(silences = cache.silences.len(), "silences readable again");
                }
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {} ms", READ_TIMEOUT.as_millis()),
                };
                if !std::mem::replace(&mut cache.failing, true) {
                    tracing::warn!(%error, kept = cache.silences.len(), "cannot read silences; alerts use the last list read");
                }
            }
        }
    }
}
