//! What the handler needs from Redis, as a trait so the handler can be
//! tested without a server: the dashboard's event log, notification dedupe
//! claims, and the failure counter.
//!
//! The event log, as the dashboard reads it: `hemostat:events:<type>` and
//! `hemostat:events:all`, each a list of envelope JSON strings exactly as
//! received, newest first, at most `ALERT_MAX_EVENTS`, expiring
//! `ALERT_EVENT_TTL` after the last push.

use std::{future::Future, time::Duration};

use hemostat_protocol::connection::Connection;
use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};

use hemostat_protocol::{EventKind, keys};

use crate::error::AlertError;

/// Notifications that failed after every retry (a plain counter, INCR).
pub const FAILURES: &str = keys::ALERT_FAILURES;

/// The marker of an envelope in `list`: the envelope's digest, in the
/// list's slot.
fn stored_marker(list: &str, envelope_json: &str) -> String {
    let digest = Sha256::digest(envelope_json.as_bytes());
    keys::alert_stored(list, &hex::encode(&digest[..16]))
}

/// The lists an event of `kind` goes to.
pub fn lists(kind: EventKind) -> [String; 2] {
    [keys::events(kind.as_str()), keys::events("all")]
}

pub trait EventLog: Send + Sync {
    /// Pushes the envelope onto its lists unless this exact envelope is
    /// there already; `true` when it was stored now.
    fn store(&self, kind: EventKind, envelope_json: &str) -> impl Future<Output = Result<bool, AlertError>> + Send;
    /// Takes the right to send `fingerprint` to `sink`; `false` when another
    /// delivery (a replica, a redelivery, an identical event) holds it.
    fn claim(&self, sink: &str, fingerprint: &str) -> impl Future<Output = Result<bool, AlertError>> + Send;
    /// Gives a claim back after a failed delivery, so the next identical
    /// event is not suppressed by a notification nobody received.
    fn release(&self, sink: &str, fingerprint: &str) -> impl Future<Output = Result<(), AlertError>> + Send;
    fn count_failure(&self, sink: &str) -> impl Future<Output = Result<(), AlertError>> + Send;
}

/// One list's marker and push in one atomic script: a crash in between can
/// leave neither a marker without its event (the redelivery would then be
/// skipped, losing the event) nor an event without its marker. Same effect
/// as a MULTI of LPUSH, LTRIM, EXPIRE, made conditional. One script per
/// list, each with its own marker in the list's slot, because the lists
/// live in different slots of a cluster; each is idempotent, so a crash
/// between the two lists is repaired by the redelivery.
const STORE: &str = r"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
";

pub struct RedisLog {
    conn: Connection,
    script: Script,
    max_events: usize,
    event_ttl: Duration,
    dedupe_ttl: Duration,
}

impl RedisLog {
    pub fn new(conn: Connection, max_events: usize, event_ttl: Duration, dedupe_ttl: Duration) -> Self {
        RedisLog { conn, script: Script::new(STORE), max_events, event_ttl, dedupe_ttl }
    }

    pub fn from_config(conn: Connection, config: &crate::Config) -> Self {
        RedisLog::new(conn, config.max_events, config.event_ttl, config.dedupe_ttl)
    }
}

impl EventLog for RedisLog {
    async fn store(&self, kind: EventKind, envelope_json: &str) -> Result<bool, AlertError> {
        let ttl = self.event_ttl.as_secs().max(1);
        let mut stored_now = false;
        for list in lists(kind) {
            let stored: i64 = self
                .script
                .key(stored_marker(&list, envelope_json))
                .key(&list)
                .arg(envelope_json)
                .arg(self.max_events)
                .arg(ttl)
                .arg(ttl)
                .invoke_async(&mut self.conn.clone())
                .await?;
            stored_now |= stored == 1;
        }
        Ok(stored_now)
    }

    async fn claim(&self, sink: &str, fingerprint: &str) -> Result<bool, AlertError> {
        // Sub-second TTLs round up: SET EX takes whole seconds.
        let ttl = self.dedupe_ttl.as_millis().div_ceil(1000) as u64;
        if ttl == 0 {
            return Ok(true);
        }
        let set: Option<String> = redis::cmd("SET")
            .arg(keys::alert_dedupe(sink, fingerprint))
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set.is_some())
    }

    async fn release(&self, sink: &str, fingerprint: &str) -> Result<(), AlertError> {
        let _: i64 = self.conn.clone().del(keys::alert_dedupe(sink, fingerprint)).await?;
        Ok(())
    }

    async fn count_failure(&self, _sink: &str) -> Result<(), AlertError> {
        let _: i64 = self.conn.clone().incr(FAILURES, 1).await?;
        Ok(())
    }
}
