//! Publishing an event: the seed pub/sub channel and the durable stream.

use std::future::Future;

use crate::connection::Connection;
use sha2::{Digest, Sha256};

use crate::{envelope::Envelope, error::ProtocolError, event::EventKind, keys};

/// Where events go. Handlers are generic over this so they can be tested
/// without Redis.
pub trait Publisher: Send + Sync {
    /// Publishes `env`; returns the durable stream entry id.
    fn publish(&self, env: &Envelope) -> impl Future<Output = Result<String, ProtocolError>> + Send;
}

/// Publishes to Redis: one `MULTI` with `XADD` to the kind's stream (what the
/// bridge consumes; survives nobody listening), `PUBLISH` to the seed
/// channel of its kind (what seed-protocol consumers subscribe to), and
/// `PUBLISH` to the literal channel [`ALL_CHANNEL`]. All or nothing. An
/// alert is first attested by its host ([`crate::attestation`]).
#[derive(Clone)]
pub struct RedisPublisher {
    conn: Connection,
}

impl RedisPublisher {
    pub fn new(conn: Connection) -> Self {
        RedisPublisher { conn }
    }

    pub fn connection(&self) -> Connection {
        self.conn.clone()
    }
}

impl Publisher for RedisPublisher {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        let json = env.to_json();
        // An alert is attested under its host's prefix before anyone can
        // read it (see `attestation`): refused for a host not ours.
        let attestation = crate::attestation::key(env);
        if let Some(key) = &attestation {
            crate::attestation::attest(&self.conn, key).await?;
        }
        let mut conn = self.conn.clone();
        let (id,): (String,) = redis::pipe()
            .atomic()
            // Before the PUBLISH, in the same MULTI: the bridge's relay must
            // see the mark when the message reaches it.
            .cmd("SET")
            .arg(published_mark(env.kind, &json))
            .arg(1)
            .arg("EX")
            .arg(PUBLISHED_MARK_TTL_SECONDS)
            .ignore()
            .cmd("XADD")
            .arg(env.kind.stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(keys::STREAM_MAXLEN)
            .arg("*")
            .arg("envelope")
            .arg(&json)
            .cmd("PUBLISH")
            .arg(env.kind.channel())
            .arg(&json)
            .ignore()
            .cmd("PUBLISH")
            .arg(ALL_CHANNEL)
            .arg(&json)
            .ignore()
            .query_async(&mut conn)
            .await?;
        // An event acknowledged but lost in a failover would be an alert
        // nobody acts on: published means on a replica too.
        conn.wait_replicated(&env.kind.stream()).await?;
        if let Some(key) = &attestation {
            conn.wait_replicated(key).await?;
        }
        tracing::debug!(kind = %env.kind, stream_id = %id, "published");
        Ok(id)
    }
}

/// How long a message stays marked as published by HemoStat: pub/sub
/// delivers in milliseconds, and a mark per event must not pile up.
pub const PUBLISHED_MARK_TTL_SECONDS: u64 = 60;

/// The key marking a message (its exact JSON) as already in its stream.
/// HemoStat's publishers set it; the bridge's relay sets it with NX when it
/// appends a message some other publisher put only on a seed channel, so
/// each message reaches its stream exactly once whatever the number of
/// relays.
pub fn published_mark(kind: EventKind, json: &str) -> String {
    let digest = Sha256::digest(json.as_bytes());
    keys::published_mark(&kind.stream(), &hex::encode(&digest[..16]))
}

/// The seed documents `redis-cli SUBSCRIBE "hemostat:*"` to watch every
/// event, but SUBSCRIBE takes a channel name, not a pattern: it only hears
/// a channel literally named `hemostat:*`. So every event is published there
/// too, and the documented command works. (Pattern subscribers, `PSUBSCRIBE
/// hemostat:*`, hear each event on its own channel and on this one; the
/// channel name tells them apart.)
pub const ALL_CHANNEL: &str = "hemostat:*";

/// The field of a stream entry that holds the envelope JSON.
pub const ENVELOPE_FIELD: &str = "envelope";

/// The field of a stream entry replayed from the dead-letter stream
/// (`hemostat dead-letters replay`) that names the one consumer group it is for: the
/// group that gave up on it. Every other group of the stream handled the
/// original already, so it acknowledges the replay without delivering it.
pub const REPLAY_FOR_FIELD: &str = "replay_for";

/// The field of a stream entry replayed from the dead-letter stream that
/// holds the dead letter's id: a replay interrupted between appending the
/// entry and deleting the dead letter finds it there and does not append
/// it twice.
pub const REPLAY_OF_FIELD: &str = "replay_of";

/// The fields of a dead letter (see [`crate::keys::DEAD_LETTER_STREAM`]),
/// besides the envelope: where the record came from and why it was given up.
pub mod dead_letter {
    /// The stream the record was read from.
    pub const STREAM: &str = "stream";
    /// The consumer group that gave up on it.
    pub const GROUP: &str = "group";
    /// The function the bridge invoked with it.
    pub const FUNCTION: &str = "function";
    /// The record's id in its stream.
    pub const ID: &str = "id";
    pub const REASON: &str = "reason";
    /// Deliveries before it was given up.
    pub const ATTEMPTS: &str = "attempts";
}
