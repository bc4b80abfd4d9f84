//! Reading HemoStat's durable streams back, as the tests' evidence.

use hemostat_protocol::{Envelope, EventKind, event::RemediationComplete, publisher::ENVELOPE_FIELD};
use redis::{AsyncCommands, streams::StreamRangeReply};
use serde::de::DeserializeOwned;

/// Every event of `kind` in its durable stream, oldest first, with the time
/// Redis took it (ms, from the entry id) and its `data` decoded as `T`.
/// Entries that are not such events are skipped, and an unreachable Redis
/// reads as empty: callers poll until what they wait for is there, also
/// across a Redis restart.
pub async fn stream_events<T: DeserializeOwned>(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    kind: EventKind,
) -> Vec<(u64, T)> {
    let reply: StreamRangeReply = conn.xrange_all(kind.stream()).await.unwrap_or_default();
    reply
        .ids
        .iter()
        .filter_map(|e| {
            let ms = e.id.split('-').next()?.parse().ok()?;
            let json: String = e.get(ENVELOPE_FIELD)?;
            let data = Envelope::parse(json.as_bytes()).ok()?.data_of::<T>(kind).ok()?;
            Some((ms, data))
        })
        .collect()
}

/// The `remediation_complete`s of the container named `name`, oldest first.
pub async fn outcomes_for(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    name: &str,
) -> Vec<RemediationComplete> {
    stream_events::<RemediationComplete>(conn, EventKind::RemediationComplete)
        .await
        .into_iter()
        .map(|(_, c)| c)
        .filter(|c| c.container == name)
        .collect()
}
