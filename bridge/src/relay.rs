//! The relay: brings events that reached only a seed channel into their
//! durable stream.
//!
//! Publishers written against the original seed protocol (a custom
//! analyzer, a custom monitor) `PUBLISH` to `hemostat:<type>` and nothing
//! else. Pub/sub reaches only whoever listens at that moment, and the bridge
//! reads streams, so without this their `remediation_needed` would never
//! pass the responder's safety gate. HemoStat's own publishers already
//! append to the stream and mark each message (see
//! [`hemostat_protocol::publisher::published_mark`]); the relay appends
//! only unmarked messages, marking them with `SET NX`, so each message
//! lands in its stream once however many bridge replicas relay.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::sync::watch;

use hemostat_protocol::{
    Envelope, EventKind,
    backoff::Backoff,
    connection::{Connection, Target},
    keys,
    publisher::{ENVELOPE_FIELD, PUBLISHED_MARK_TTL_SECONDS, dead_letter, published_mark},
};

use crate::{
    error::BridgeError,
    health::Beat,
    stats::{Event, Stats},
};

/// What became of one channel message.
#[derive(Debug, PartialEq, Eq)]
pub enum Relayed {
    /// Appended to its stream.
    Appended,
    /// Already in its stream (HemoStat published it, or another relay did).
    AlreadyThere,
    /// Not a seed envelope of the channel's type: dead-lettered.
    Malformed,
}

/// How the relay knows it still hears: it pings itself on its own channel
/// through Redis every `every`; a subscription that heard nothing for three
/// pings is half-open (the node died without closing the socket, a
/// firewall dropped it) and is replaced.
pub(crate) struct Keepalive {
    pub(crate) channel: String,
    pub(crate) every: Duration,
    pub(crate) heard: Arc<Beat>,
}

/// Relays until `stop`, pinging itself every `keepalive`; reconnects with
/// backoff when the subscription drops or stops hearing its pings.
pub async fn run(target: Target, keepalive: Duration, stop: watch::Receiver<bool>) {
    static RELAYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RELAYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let channel = keys::bridge_keepalive(&format!("relay-{}-{n}", std::process::id()));
    let keepalive = Keepalive { channel, every: keepalive, heard: Arc::default() };
    run_with(target, keepalive, Arc::default(), stop).await
}

/// [`run`], hearing its keepalive on `keepalive.heard` and counting into `stats`.
pub(crate) async fn run_with(target: Target, keepalive: Keepalive, stats: Arc<Stats>, mut stop: watch::Receiver<bool>) {
    let writer = match target.lazy() {
        Ok(writer) => writer,
        Err(e) => {
            tracing::error!(error = %e, "relay cannot address Redis; seed-channel messages will not be relayed");
            return;
        }
    };
    let mut backoff = Backoff::redis();
    let mut nodes = target.subscribers(&writer).await;
    while !*stop.borrow() {
        // Any node of a cluster hears every PUBLISH; after a failure try the
        // next node the cluster serves from now, so neither a dead node nor
        // dead seeds silence the relay.
        match relay_until_disconnected(nodes.current(), &writer, &keepalive, &stats, &mut stop).await {
            Ok(()) => backoff.reset(),
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?wait, "relay subscription failed");
                let _ = tokio::time::timeout(wait, stop.changed()).await;
                nodes.advance().await;
            }
        }
    }
}

async fn relay_until_disconnected(
    node: &redis::Client,
    writer: &Connection,
    keepalive: &Keepalive,
    stats: &Stats,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), BridgeError> {
    // Bounded like every other Redis call: a node that accepts and then
    // never answers must not hold the relay forever.
    let subscribed = tokio::time::timeout(keepalive.every * 3, async {
        let mut pubsub = node.get_async_pubsub().await?;
        for kind in EventKind::ALL {
            pubsub.subscribe(kind.channel()).await?;
        }
        pubsub.subscribe(&keepalive.channel).await?;
        Ok::<_, BridgeError>(pubsub)
    })
    .await
    .map_err(|_| BridgeError::Config("subscribing timed out".into()))??;
    let mut writer = writer.clone();
    tracing::info!(channels = EventKind::ALL.len(), node = %node.get_connection_info().addr(),
        "relay subscribed to the seed channels");
    keepalive.heard.now();
    let mut ping = tokio::time::interval(keepalive.every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut messages = subscribed.into_on_message();
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = ping.tick() => {
                let silent = keepalive.heard.ago();
                if silent > keepalive.every * 3 {
                    return Err(BridgeError::Config(format!(
                        "no keepalive heard for {}s: the subscription is half-open",
                        silent.as_secs()
                    )));
                }
                let sent: Result<i64, _> =
                    redis::cmd("PUBLISH").arg(&keepalive.channel).arg("ping").query_async(&mut writer).await;
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "relay keepalive not sent");
                }
            }
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(BridgeError::Config("relay subscription closed".into()));
                };
                let channel = message.get_channel_name().to_owned();
                if channel == keepalive.channel {
                    keepalive.heard.now();
                    continue;
                }
                let payload: Vec<u8> = message.get_payload().unwrap_or_default();
                match relay(&mut writer, &channel, &payload).await {
                    Ok(Relayed::Appended) => stats.record(Event::Relayed { channel: &channel }),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%channel, error = %e, "relaying failed; the message is lost to the stream"),
                }
            }
        }
    }
}

/// Appends one channel message to its stream unless it is already there.
pub async fn relay<C>(conn: &mut C, channel: &str, payload: &[u8]) -> Result<Relayed, BridgeError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let text = String::from_utf8_lossy(payload);
    let Some(channel_kind) = EventKind::ALL.into_iter().find(|k| k.channel() == channel) else {
        return Err(BridgeError::Config(format!("relay got a message on {channel:?}, not a seed channel")));
    };
    let mark = published_mark(channel_kind, &text);
    // First relay to see it wins; HemoStat's own publishes are marked already.
    let first: bool = redis::cmd("SET")
        .arg(&mark)
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(PUBLISHED_MARK_TTL_SECONDS)
        .query_async::<Option<String>>(conn)
        .await?
        .is_some();
    if !first {
        return Ok(Relayed::AlreadyThere);
    }
    let problem = match Envelope::parse(payload) {
        Err(e) => Some(e.to_string()),
        Ok(env) if env.kind.channel() != channel => Some(format!("a {} event on channel {channel}", env.kind)),
        Ok(_) => None,
    };
    if let Some(reason) = problem {
        let reason = format!("malformed message on seed channel {channel}: {reason}");
        tracing::warn!(%reason, "relay dead-lettering");
        // Capped like every stream: anyone who can publish on a seed
        // channel can send garbage, and it must not grow Redis forever.
        let _: String = redis::cmd("XADD")
            .arg(keys::DEAD_LETTER_STREAM)
            .arg("MAXLEN")
            .arg("~")
            .arg(keys::STREAM_MAXLEN)
            .arg("*")
            .arg(&[
                (dead_letter::STREAM, channel),
                (dead_letter::REASON, reason.as_str()),
                (ENVELOPE_FIELD, text.as_ref()),
            ])
            .query_async(conn)
            .await?;
        return Ok(Relayed::Malformed);
    }
    let _: String = redis::cmd("XADD")
        .arg(channel_kind.stream())
        .arg("MAXLEN")
        .arg("~")
        .arg(keys::STREAM_MAXLEN)
        .arg("*")
        .arg(ENVELOPE_FIELD)
        .arg(text.as_ref())
        .query_async(conn)
        .await?;
    Ok(Relayed::Appended)
}
