//! Everything the exporter keeps in or reads from Redis.

use std::time::Duration;

use hemostat_protocol::connection::Connection;
use hemostat_protocol::{ContainerRef, EventKind, keys as protocol_keys, liveness::BridgeHeartbeat, metrics::Metrics};
use redis::AsyncCommands;

use crate::{error::ExporterError, keys, metrics::Update};

/// One record's updates, and its identity for the dedupe.
#[derive(Debug, Clone)]
pub struct RecordCounts {
    /// Where the record came from (its stream).
    pub source: String,
    /// The stream entry id (the bridge's `messageId`).
    pub message_id: String,
    pub updates: Vec<Update>,
}

/// What a scrape reads, besides the collectors.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The metrics hash: (series, number).
    pub stored: Vec<(String, String)>,
    /// `SCARD hemostat:containers`.
    pub containers_total: u64,
    /// (stream, XLEN) for every event stream and the dead-letter stream.
    pub streams: Vec<(String, u64)>,
    /// Per-container stats, when enabled; at most the configured number.
    pub containers: Vec<ContainerStats>,
    /// Containers left out by the bound.
    pub truncated: u64,
}

/// The seed's stats fields the exporter turns into gauges (of the stats
/// record, [`Metrics`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    pub container: ContainerRef,
    pub status: Option<String>,
    pub cpu_pct: f64,
    pub memory_pct: f64,
}

/// A collector as Redis knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorReading {
    pub host: String,
    /// The score in `hemostat:collectors`: epoch ms of the last heartbeat.
    pub last_seen_ms: u64,
    /// The heartbeat key's JSON; `None` once it expired (three intervals).
    pub heartbeat: Option<String>,
    /// Whether it is currently reported missing (the marker exists).
    pub reported_missing: bool,
}

/// At most this many collectors are read (a fleet is far smaller).
const MAX_COLLECTORS: isize = 10_000;
/// Stats keys read per pipeline.
const STATS_CHUNK: usize = 500;

#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    dedupe_ttl: Duration,
    script: std::sync::Arc<redis::Script>,
}

impl RedisStore {
    pub fn new(conn: Connection, dedupe_ttl: Duration) -> Self {
        RedisStore { conn, dedupe_ttl, script: std::sync::Arc::new(redis::Script::new(include_str!("count.lua"))) }
    }

    /// Counts the records not counted before, in one atomic script, and
    /// says for each whether it was counted now (`true`) or is a duplicate.
    pub async fn count(&self, records: &[RecordCounts]) -> Result<Vec<bool>, ExporterError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.script.prepare_invoke();
        invocation.key(keys::metrics());
        for r in records {
            invocation.key(keys::seen(&r.source, &r.message_id));
        }
        invocation
            .arg(self.dedupe_ttl.as_secs().max(1))
            .arg(crate::metrics::series(crate::metrics::DUPLICATES.name, &[]));
        for r in records {
            invocation.arg(r.updates.len());
            for u in &r.updates {
                match u {
                    Update::Int(field, delta) => invocation.arg("i").arg(field).arg(*delta),
                    Update::Float(field, delta) => invocation.arg("f").arg(field).arg(*delta),
                };
            }
        }
        let mut conn = self.conn.clone();
        let flags: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Ok(flags.into_iter().map(|f| f == 1).collect())
    }

    /// Adds `by` to an unlabelled stored counter (the exporter's own).
    pub async fn incr(&self, family: &crate::metrics::Family, by: i64) -> Result<(), ExporterError> {
        let mut conn = self.conn.clone();
        let () = conn.hincr(keys::metrics(), crate::metrics::series(family.name, &[]), by).await?;
        Ok(())
    }

    /// What a scrape shows besides the collectors.
    pub async fn snapshot(&self, container_metrics: bool, max_containers: usize) -> Result<Snapshot, ExporterError> {
        let mut conn = self.conn.clone();
        let mut streams: Vec<String> = EventKind::ALL.iter().map(|k| k.stream()).collect();
        streams.push(protocol_keys::DEAD_LETTER_STREAM.to_owned());
        let mut pipe = redis::pipe();
        pipe.hgetall(keys::metrics()).scard(protocol_keys::CONTAINERS);
        for s in &streams {
            pipe.xlen(s);
        }
        let (stored, containers_total, lengths): (Vec<(String, String)>, u64, Vec<u64>) = {
            let mut values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
            let lengths = values.split_off(2);
            let mut it = values.into_iter();
            let stored = redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil))?;
            let total = redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil))?;
            let lengths = lengths.into_iter().map(redis::from_redis_value).collect::<Result<_, _>>()?;
            (stored, total, lengths)
        };
        let mut snapshot = Snapshot {
            stored,
            containers_total,
            streams: streams.into_iter().zip(lengths).collect(),
            ..Snapshot::default()
        };
        if container_metrics {
            let members = if max_containers > 0 && containers_total > 0 {
                self.members(max_containers).await?
            } else {
                Vec::new()
            };
            snapshot.truncated = containers_total.saturating_sub(members.len() as u64);
            snapshot.containers = self.stats(&members).await?;
        }
        Ok(snapshot)
    }

    /// Up to `max` members of `hemostat:containers`, by SSCAN so a huge set
    /// never blocks Redis.
    async fn members(&self, max: usize) -> Result<Vec<ContainerRef>, ExporterError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SSCAN")
                .arg(protocol_keys::CONTAINERS)
                .arg(cursor)
                .arg("COUNT")
                .arg(max.min(1000))
                .query_async(&mut conn)
                .await?;
            out.extend(batch.iter().filter_map(|m| ContainerRef::parse(m)));
            cursor = next;
            if cursor == 0 || out.len() >= max {
                break;
            }
        }
        out.sort();
        out.dedup();
        out.truncate(max);
        Ok(out)
    }

    async fn stats(&self, members: &[ContainerRef]) -> Result<Vec<ContainerStats>, ExporterError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(members.len());
        // Pipelined GETs, not MGET: the stats keys live in many cluster slots.
        for chunk in members.chunks(STATS_CHUNK) {
            let mut pipe = redis::pipe();
            for c in chunk {
                pipe.get(protocol_keys::stats(c));
            }
            let values: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
            for (c, json) in chunk.iter().zip(values) {
                // A stopped container's stats may have expired: not exported.
                let Some(json) = json else { continue };
                let Some(m) = Metrics::parse(&json) else {
                    tracing::debug!(container = %c, "stats key is not a stats record; skipped");
                    continue;
                };
                out.push(ContainerStats {
                    container: c.clone(),
                    status: m.status,
                    cpu_pct: m.cpu_pct,
                    memory_pct: m.memory_pct,
                });
            }
        }
        Ok(out)
    }

    /// Every known collector with its heartbeat (if still alive) and
    /// whether it is currently reported missing.
    pub async fn collectors(&self) -> Result<Vec<CollectorReading>, ExporterError> {
        let mut conn = self.conn.clone();
        let hosts: Vec<(String, f64)> =
            conn.zrange_withscores(protocol_keys::COLLECTORS, 0, MAX_COLLECTORS - 1).await?;
        if hosts.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (host, _) in &hosts {
            pipe.get(protocol_keys::heartbeat(host)).exists(keys::collector_missing(host));
        }
        let values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(hosts.len());
        for ((host, score), pair) in hosts.into_iter().zip(values.chunks(2)) {
            let heartbeat: Option<String> = redis::from_redis_value(pair[0].clone())?;
            let reported_missing: bool = redis::from_redis_value(pair[1].clone())?;
            out.push(CollectorReading { host, last_seen_ms: score.max(0.0) as u64, heartbeat, reported_missing });
        }
        Ok(out)
    }

    /// Every registered bridge replica's heartbeat, `None` for one whose
    /// key expired (a replica that stopped, or was scaled away).
    pub async fn bridges(&self) -> Result<Vec<Option<BridgeHeartbeat>>, ExporterError> {
        let mut conn = self.conn.clone();
        let names: Vec<String> = conn.zrange(protocol_keys::BRIDGES, 0, MAX_COLLECTORS - 1).await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let beat: Option<String> = conn.get(protocol_keys::bridge_heartbeat(&name)).await?;
            // An unreadable heartbeat counts as none: the replica is not
            // vouching for itself.
            out.push(beat.and_then(|b| serde_json::from_str(&b).ok()));
        }
        Ok(out)
    }

    /// Remembers the longest live heartbeat interval (seconds).
    pub async fn remember_interval(&self, seconds: f64) -> Result<(), ExporterError> {
        let () = self.conn.clone().set(protocol_keys::EXPORTER_COLLECTOR_INTERVAL, seconds).await?;
        Ok(())
    }

    /// The interval last remembered, if any.
    pub async fn remembered_interval(&self) -> Result<Option<f64>, ExporterError> {
        Ok(self.conn.clone().get(protocol_keys::EXPORTER_COLLECTOR_INTERVAL).await?)
    }

    /// How long the Redis server holding `host`'s heartbeat has been up.
    pub async fn redis_uptime(&self, host: &str) -> Result<Duration, ExporterError> {
        Ok(self.conn.uptime(&protocol_keys::heartbeat(host)).await?)
    }

    /// Marks `host` missing; true only for the caller that set the marker,
    /// which then publishes the alert.
    pub async fn mark_missing(&self, host: &str) -> Result<bool, ExporterError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(keys::collector_missing(host))
            .arg(crate::events::now_rfc3339())
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Clears `host`'s marker; true only for the caller whose DEL removed
    /// it, which then publishes the recovery.
    pub async fn clear_missing(&self, host: &str) -> Result<bool, ExporterError> {
        let mut conn = self.conn.clone();
        let removed: u64 = conn.del(keys::collector_missing(host)).await?;
        Ok(removed == 1)
    }
}
