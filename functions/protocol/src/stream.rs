//! Reading a stream as one consumer of a consumer group: the only code that
//! speaks `XGROUP`, `XREADGROUP`, `XACK`, `XPENDING`, `XCLAIM` and
//! `XAUTOCLAIM`, for the bridge's routes and the collector's command reader
//! alike.
//!
//! Replies are parsed here, once, in RESP2 and RESP3 shapes, including the
//! entry Redis returns with no fields when it was trimmed (`MAXLEN`) while
//! still pending: such an entry is an [`Entry`] with `fields: None`, never a
//! parse error that would stall the reader on it forever. Retrying is the
//! caller's business, with [`crate::backoff::Backoff`].

use std::{collections::HashMap, time::Duration};

use redis::{Value, aio::ConnectionLike};

use crate::ProtocolError;

/// One stream entry. `fields` is `None` when the entry was trimmed from the
/// stream while it sat in a pending list: its id is all that is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub fields: Option<HashMap<String, String>>,
}

impl Entry {
    /// The field's value, if the entry has it as UTF-8.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.as_ref()?.get(name).map(String::as_str)
    }

    /// When Redis added the entry (the milliseconds part of its id).
    pub fn added_ms(&self) -> Option<u64> {
        self.id.split('-').next()?.parse().ok()
    }
}

/// One row of `XPENDING`: an entry delivered but not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    /// The consumer it was last delivered to.
    pub consumer: String,
    /// Milliseconds since that delivery.
    pub idle_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
}

/// A stream, a consumer group on it and this process's name in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub stream: String,
    pub group: String,
    pub consumer: String,
}

impl Group {
    pub fn new(stream: impl Into<String>, group: impl Into<String>, consumer: impl Into<String>) -> Self {
        Group { stream: stream.into(), group: group.into(), consumer: consumer.into() }
    }

    /// Creates the stream and the group if missing. The group starts at the
    /// beginning of the stream, so entries written before the first consumer
    /// started are delivered too (a consumer decides whether they are stale).
    pub async fn ensure<C: ConnectionLike>(&self, conn: &mut C) -> Result<(), ProtocolError> {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Entries never delivered to anyone, waiting up to `block` for the
    /// first (`None`: return at once). A connection blocked here serves
    /// nothing else, so callers give blocking reads their own.
    pub async fn read_new<C: ConnectionLike>(
        &self,
        conn: &mut C,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Entry>, ProtocolError> {
        self.read(conn, ">", count, block).await
    }

    /// This consumer's own pending entries with ids after `after` (`"0"`
    /// from the start): what it was given before a crash and never acked.
    pub async fn read_own_pending<C: ConnectionLike>(
        &self,
        conn: &mut C,
        after: &str,
        count: usize,
    ) -> Result<Vec<Entry>, ProtocolError> {
        self.read(conn, after, count, None).await
    }

    async fn read<C: ConnectionLike>(
        &self,
        conn: &mut C,
        cursor: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Entry>, ProtocolError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(&self.group).arg(&self.consumer).arg("COUNT").arg(count.max(1));
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(cursor);
        let reply: Value = cmd.query_async(conn).await?;
        parse_read_reply(reply)
    }

    /// Acknowledges `ids`; returns how many were still pending.
    pub async fn ack<C: ConnectionLike>(&self, conn: &mut C, ids: &[&str]) -> Result<u64, ProtocolError> {
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(redis::cmd("XACK").arg(&self.stream).arg(&self.group).arg(ids).query_async(conn).await?)
    }

    /// Up to `count` pending entries of any consumer, idle at least `min_idle`.
    pub async fn pending<C: ConnectionLike>(
        &self,
        conn: &mut C,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Pending>, ProtocolError> {
        let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("IDLE")
            .arg(min_idle.as_millis() as u64)
            .arg("-")
            .arg("+")
            .arg(count.max(1))
            .query_async(conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, consumer, idle_ms, deliveries)| Pending { id, consumer, idle_ms, deliveries })
            .collect())
    }

    /// Whether the group has taken entry `id` and acknowledged it: it was
    /// delivered (the group's last-delivered id is at or past it) and is
    /// not pending any more. A group that does not exist has taken nothing.
    pub async fn consumed<C: ConnectionLike>(&self, conn: &mut C, id: &str) -> Result<bool, ProtocolError> {
        let Some(wanted) = parse_id(id) else {
            return Err(ProtocolError::MalformedData { kind: "stream entry id".into(), reason: format!("{id:?}") });
        };
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .arg(id)
            .arg(1)
            .query_async(conn)
            .await
            .or_else(|e| if e.code() == Some("NOGROUP") { Ok(Vec::new()) } else { Err(e) })?;
        if !pending.is_empty() {
            return Ok(false);
        }
        let groups: redis::streams::StreamInfoGroupsReply =
            match redis::cmd("XINFO").arg("GROUPS").arg(&self.stream).query_async(conn).await {
                Ok(groups) => groups,
                Err(e) if e.to_string().contains("no such key") => {
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            };
        Ok(groups
            .groups
            .iter()
            .find(|g| g.name == self.group)
            .and_then(|g| parse_id(&g.last_delivered_id))
            .is_some_and(|last| last >= wanted))
    }

    /// Takes `ids` over for this consumer if they are still idle at least
    /// `min_idle`: when another consumer claimed one first, it is no longer
    /// idle and does not come back, so two replicas never both take it.
    pub async fn claim<C: ConnectionLike>(
        &self,
        conn: &mut C,
        min_idle: Duration,
        ids: &[&str],
    ) -> Result<Vec<Entry>, ProtocolError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let reply: Value = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(ids)
            .query_async(conn)
            .await?;
        parse_entries("XCLAIM", reply)
    }

    /// Moves up to `count` entries idle at least `min_idle` at any consumer
    /// into this one's pending list (where [`Group::read_own_pending`] finds
    /// them); returns how many moved.
    pub async fn claim_idle<C: ConnectionLike>(
        &self,
        conn: &mut C,
        min_idle: Duration,
        count: usize,
    ) -> Result<usize, ProtocolError> {
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count.max(1))
            .arg("JUSTID")
            .query_async(conn)
            .await?;
        match reply {
            // [next cursor, claimed ids, deleted ids (Redis 7)]
            Value::Array(parts) => match parts.get(1) {
                Some(Value::Array(ids)) => Ok(ids.len()),
                _ => Err(bad("XAUTOCLAIM", "no list of claimed ids")),
            },
            _ => Err(bad("XAUTOCLAIM", "not an array")),
        }
    }
}

/// True for the error a read gets when its stream or group vanished (Redis
/// restarted without persistence, someone deleted the key): the cure is
/// [`Group::ensure`], not a retry.
pub fn is_missing_group(error: &ProtocolError) -> bool {
    matches!(error, ProtocolError::Redis(e) if e.code() == Some("NOGROUP"))
}

fn bad(what: &'static str, detail: &str) -> ProtocolError {
    ProtocolError::Reply { what, detail: detail.to_owned() }
}

/// `XREADGROUP`'s reply (RESP2 arrays or a RESP3 map of streams) into entries.
fn parse_read_reply(reply: Value) -> Result<Vec<Entry>, ProtocolError> {
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => Ok(kv.remove(1)),
                _ => Err(bad("XREADGROUP", "stream is not [key, entries]")),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => return Err(bad("XREADGROUP", "not an array")),
    };
    let mut out = Vec::new();
    for entries in streams {
        out.extend(parse_entries("XREADGROUP", entries)?);
    }
    Ok(out)
}

/// A list of `[id, [field, value, ...]]` entries; `[id, nil]` (or a bare
/// nil, as XCLAIM of a deleted entry gave before Redis 7) is a trimmed one.
fn parse_entries(what: &'static str, entries: Value) -> Result<Vec<Entry>, ProtocolError> {
    let Value::Array(entries) = entries else {
        return Err(bad(what, "entries are not an array"));
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut parts = match entry {
            Value::Array(parts) if !parts.is_empty() => parts,
            Value::Nil => continue,
            _ => return Err(bad(what, "entry is not [id, fields]")),
        };
        let fields = if parts.len() > 1 { parts.swap_remove(1) } else { Value::Nil };
        let id = text(&parts[0]).ok_or_else(|| bad(what, "entry id is not a string"))?;
        let fields = match fields {
            Value::Nil => None,
            Value::Array(flat) => Some(
                flat.chunks(2)
                    .filter_map(|pair| match pair {
                        [k, v] => Some((text(k)?, text(v)?)),
                        _ => None,
                    })
                    .collect(),
            ),
            Value::Map(pairs) => Some(pairs.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect()),
            _ => return Err(bad(what, "fields are not an array")),
        };
        out.push(Entry { id, fields });
    }
    Ok(out)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// A stream entry id as numbers (milliseconds, sequence), so ids compare
/// as Redis orders them.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_resp2_replies_including_trimmed_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("hemostat:commands:h1"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("command"), bulk("{}"), bulk("sig"), bulk("ab")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let entries = parse_read_reply(reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].field("sig"), Some("ab"));
        assert_eq!(entries[0].added_ms(), Some(1));
        assert_eq!(entries[1], Entry { id: "2-0".into(), fields: None });
        assert_eq!(entries[1].field("sig"), None);
    }

    #[test]
    fn parses_resp3_maps() {
        let fields = Value::Map(vec![(bulk("data"), bulk("x"))]);
        let reply = Value::Map(vec![(bulk("s"), Value::Array(vec![Value::Array(vec![bulk("5-1"), fields])]))]);
        let entries = parse_read_reply(reply).unwrap();
        assert_eq!(entries[0].field("data"), Some("x"));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        assert!(parse_read_reply(Value::Nil).unwrap().is_empty());
        for reply in [
            Value::Int(3),
            Value::Array(vec![Value::Int(3)]),
            Value::Array(vec![Value::Array(vec![bulk("s"), Value::Int(1)])]),
            Value::Array(vec![Value::Array(vec![bulk("s"), Value::Array(vec![Value::Array(vec![])])])]),
            Value::Array(vec![Value::Array(vec![bulk("s"), Value::Array(vec![Value::Array(vec![Value::Int(1)])])])]),
        ] {
            let e = parse_read_reply(reply).unwrap_err();
            assert!(matches!(e, ProtocolError::Reply { what: "XREADGROUP", .. }), "{e}");
        }
        // XCLAIM before Redis 7 answered nil for an entry deleted meanwhile.
        assert!(parse_entries("XCLAIM", Value::Array(vec![Value::Nil])).unwrap().is_empty());
    }
}
