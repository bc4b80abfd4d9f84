//! Publishing an event: the seed pub/sub channel and the durable stream.

use std::future::Future;

use redis::aio::ConnectionManager;

use crate::{envelope::Envelope, error::ProtocolError, keys};

/// Where events go. Handlers are generic over this so they can be tested
/// without Redis.
pub trait Publisher: Send + Sync {
    /// Publishes `env`; returns the durable stream entry id.
    fn publish(&self, env: &Envelope) -> impl Future<Output = Result<String, ProtocolError>> + Send;
}

/// Publishes to Redis: one `MULTI` with `XADD` to the kind's stream (what the
/// bridge consumes; survives nobody listening), `PUBLISH` to the seed
/// channel of its kind (what seed-protocol consumers subscribe to), and
/// `PUBLISH` to the literal channel [`ALL_CHANNEL`]. All or nothing.
#[derive(Clone)]
pub struct RedisPublisher {
    conn: ConnectionManager,
}

impl RedisPublisher {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisPublisher { conn }
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

impl Publisher for RedisPublisher {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        let json = env.to_json();
        let mut conn = self.conn.clone();
        let (id,): (String,) = redis::pipe()
            .atomic()
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
        tracing::debug!(kind = %env.kind, stream_id = %id, "published");
        Ok(id)
    }
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
