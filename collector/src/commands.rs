//! Consuming this host's command stream (`hemostat:commands:{host}`).
//!
//! Delivery is at-least-once (consumer group, XACK only after the outcome
//! is published); execution is at-most-once (`command_seen` marker taken
//! with SET NX before executing), because restarting a container twice
//! for one command is worse than a lost command, which the responder can
//! reissue.

use std::{collections::HashMap, time::Duration};

use hemostat_protocol::{
    Action, Command, Envelope, EventKind, Publisher,
    command::SignedCommand,
    envelope::agent,
    event::{RemediationComplete, RemediationResult, RemediationStatus},
    keys,
};
use redis::{Value, aio::ConnectionManager};
use tokio_util::sync::CancellationToken;

use crate::{
    backoff::Backoff, error::CollectorError, executor::Executor, outbox::publish_with_retry,
};

pub const GROUP: &str = "collectors";
pub const BLOCK: Duration = Duration::from_secs(5);
const COUNT: usize = 10;
/// Entries a dead predecessor (same host, other pid) left unacknowledged
/// for this long are taken over.
const CLAIM_IDLE: Duration = Duration::from_secs(60);
/// Look for such entries every this many empty reads (~1 min).
const CLAIM_EVERY: u32 = 12;

/// One stream entry; `fields` is None when the entry was trimmed away
/// while pending.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub fields: Option<HashMap<String, String>>,
}

pub struct Consumer<P> {
    /// Its own socket: XREADGROUP BLOCK holds the connection.
    conn: ConnectionManager,
    publisher: P,
    executor: Executor,
    host: String,
    name: String,
    stream: String,
    key: Option<Vec<u8>>,
}

impl<P: Publisher> Consumer<P> {
    pub fn new(
        conn: ConnectionManager,
        publisher: P,
        executor: Executor,
        host: String,
        key: Option<Vec<u8>>,
    ) -> Self {
        Consumer {
            conn,
            publisher,
            executor,
            // Stable across restarts (one collector per host), so a restarted
            // collector finds its own pending commands at once instead of
            // waiting for them to go idle and be claimed.
            name: host.clone(),
            stream: keys::commands(&host),
            host,
            key,
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Backoff::standard();
        // Start (and restart after any error) with this consumer's pending
        // entries: commands delivered before a crash are not lost.
        'session: loop {
            if let Err(e) = self.prepare().await {
                tracing::warn!(error = %e, "command stream unavailable; retrying");
                if !backoff.wait(&cancel).await {
                    return;
                }
                continue;
            }
            let mut cursor = "0".to_owned();
            let mut idle_reads = 0;
            loop {
                let pending = cursor != ">";
                let read = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = self.read(&cursor) => r,
                };
                let entries = match read {
                    Ok(entries) => entries,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading commands failed; retrying");
                        if !backoff.wait(&cancel).await {
                            return;
                        }
                        continue 'session;
                    }
                };
                backoff.reset();
                if pending {
                    match entries.last() {
                        Some(last) => cursor = last.id.clone(),
                        None => cursor = ">".into(),
                    }
                } else if entries.is_empty() {
                    idle_reads += 1;
                    if idle_reads >= CLAIM_EVERY {
                        idle_reads = 0;
                        if self.claim_abandoned().await > 0 {
                            cursor = "0".into();
                        }
                    }
                }
                for entry in entries {
                    // Not raced with shutdown: a half-done command must
                    // finish and report.
                    if let Err(e) = self.process(&entry, &cancel).await {
                        tracing::warn!(entry = %entry.id, error = %e, "command left pending; will retry");
                        if !backoff.wait(&cancel).await {
                            return;
                        }
                        continue 'session;
                    }
                }
            }
        }
    }

    /// Creates the group (from the start of the stream, so commands sent
    /// before this host's first collector started are not skipped) and
    /// takes over entries abandoned by a previous process.
    async fn prepare(&mut self) -> Result<(), CollectorError> {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
        self.claim_abandoned().await;
        Ok(())
    }

    /// XAUTOCLAIM into this consumer's pending list; best effort.
    async fn claim_abandoned(&mut self) -> usize {
        let claimed: Result<Value, _> = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.name)
            .arg(CLAIM_IDLE.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(100)
            .arg("JUSTID")
            .query_async(&mut self.conn)
            .await;
        match claimed {
            Ok(Value::Array(parts)) => {
                let n = match parts.get(1) {
                    Some(Value::Array(ids)) => ids.len(),
                    _ => 0,
                };
                if n > 0 {
                    tracing::info!(
                        entries = n,
                        "took over commands abandoned by a previous collector"
                    );
                }
                n
            }
            Ok(_) => 0,
            Err(e) => {
                tracing::debug!(error = %e, "XAUTOCLAIM failed");
                0
            }
        }
    }

    async fn read(&mut self, cursor: &str) -> Result<Vec<Entry>, CollectorError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(COUNT);
        if cursor == ">" {
            cmd.arg("BLOCK").arg(BLOCK.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(cursor);
        let reply: Value = cmd.query_async(&mut self.conn).await?;
        parse_read_reply(reply)
    }

    async fn ack(&mut self, id: &str) -> Result<(), CollectorError> {
        let _: i64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(id)
            .query_async(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Ok means the entry is finished (acknowledged); Err leaves it pending.
    async fn process(
        &mut self,
        entry: &Entry,
        cancel: &CancellationToken,
    ) -> Result<(), CollectorError> {
        let Some(fields) = &entry.fields else {
            tracing::warn!(entry = %entry.id, "pending command was trimmed from the stream; dropping");
            return self.ack(&entry.id).await;
        };
        let signed = SignedCommand {
            json: fields.get("command").cloned().unwrap_or_default(),
            signature: fields.get("signature").cloned(),
        };
        let cmd = match signed.open(self.key.as_deref()) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::warn!(entry = %entry.id, error = %e, "command refused");
                let claimed = Claimed::read(&signed.json);
                if let Some(container) = claimed.container.clone() {
                    let env = self.complete_refused(&claimed, container, e.to_string());
                    publish_with_retry(&self.publisher, &env?, cancel).await?;
                }
                return self.ack(&entry.id).await;
            }
        };
        if cmd.host != self.host {
            let reason = format!(
                "command for host {:?} refused by the collector of {:?}",
                cmd.host, self.host
            );
            tracing::warn!(entry = %entry.id, command_id = %cmd.id, %reason);
            let result = result(&cmd, RemediationStatus::Rejected, Some(reason));
            publish_with_retry(&self.publisher, &self.complete(&cmd, result)?, cancel).await?;
            return self.ack(&entry.id).await;
        }
        let first: Option<String> = redis::cmd("SET")
            .arg(keys::command_seen(&cmd.id))
            .arg(&self.name)
            .arg("NX")
            .arg("EX")
            .arg(keys::COMMAND_DEDUPE_TTL.as_secs())
            .query_async(&mut self.conn)
            .await?;
        if first.is_none() {
            tracing::info!(command_id = %cmd.id, "command already taken; not executing again");
            return self.ack(&entry.id).await;
        }
        let outcome = self.executor.execute(&cmd).await;
        tracing::info!(
            command_id = %cmd.id, container = %cmd.container, action = %cmd.action,
            status = ?outcome.status, error = ?outcome.error, duration_ms = ?outcome.duration_ms,
            "command done"
        );
        let env = self.complete(&cmd, outcome)?;
        if let Err(e) = publish_with_retry(&self.publisher, &env, cancel).await {
            // Still acknowledged: the command ran and is marked seen, so a
            // redelivery could only be skipped; the outcome is in the log.
            tracing::error!(command_id = %cmd.id, error = %e, "outcome could not be published");
        }
        self.ack(&entry.id).await
    }

    fn complete(
        &self,
        cmd: &Command,
        result: RemediationResult,
    ) -> Result<Envelope, CollectorError> {
        let data = RemediationComplete {
            container: cmd.container.clone(),
            action: cmd.action,
            result,
            host: self.host.clone(),
            command_id: Some(cmd.id.clone()),
            dry_run: cmd.dry_run,
            confidence: Some(cmd.confidence),
            reason: Some(cmd.reason.clone()).filter(|r| !r.is_empty()),
            detected_at: cmd.detected_at.clone(),
        };
        Ok(Envelope::new(
            agent::RESPONDER,
            EventKind::RemediationComplete,
            &data,
        )?)
    }

    /// For a command that could not be trusted or read: reports only what
    /// it claims, so the sender learns why nothing happened.
    fn complete_refused(
        &self,
        claimed: &Claimed,
        container: String,
        why: String,
    ) -> Result<Envelope, CollectorError> {
        let data = RemediationComplete {
            container: container.clone(),
            action: claimed.action,
            result: RemediationResult {
                status: RemediationStatus::Rejected,
                action: claimed.action,
                container,
                error: Some(why.clone()),
                reason: Some(why),
                details: None,
                duration_ms: None,
            },
            host: self.host.clone(),
            command_id: claimed.id.clone(),
            dry_run: false,
            confidence: None,
            reason: None,
            detected_at: None,
        };
        Ok(Envelope::new(
            agent::RESPONDER,
            EventKind::RemediationComplete,
            &data,
        )?)
    }
}

fn result(cmd: &Command, status: RemediationStatus, error: Option<String>) -> RemediationResult {
    RemediationResult {
        status,
        action: cmd.action,
        container: cmd.container.clone(),
        reason: error.clone(),
        error,
        details: None,
        duration_ms: None,
    }
}

/// What an untrusted or malformed command says about itself.
#[derive(Debug)]
struct Claimed {
    id: Option<String>,
    container: Option<String>,
    action: Action,
}

impl Claimed {
    fn read(json: &str) -> Claimed {
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let text = |k: &str| {
            v.get(k)
                .and_then(|s| s.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Claimed {
            id: text("id"),
            container: text("container"),
            action: v
                .get("action")
                .and_then(|a| serde_json::from_value(a.clone()).ok())
                .unwrap_or(Action::None),
        }
    }
}

/// XREADGROUP's reply (RESP2 arrays or RESP3 map) into entries.
pub fn parse_read_reply(reply: Value) -> Result<Vec<Entry>, CollectorError> {
    let bad = |detail: &str| CollectorError::Reply {
        what: "XREADGROUP",
        detail: detail.to_owned(),
    };
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => Ok(kv.remove(1)),
                _ => Err(bad("stream is not [key, entries]")),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => return Err(bad("not an array")),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            return Err(bad("entries are not an array"));
        };
        for entry in entries {
            let Value::Array(mut parts) = entry else {
                return Err(bad("entry is not an array"));
            };
            if parts.is_empty() {
                return Err(bad("empty entry"));
            }
            let fields = if parts.len() > 1 {
                parts.remove(1)
            } else {
                Value::Nil
            };
            let id = text(&parts[0]).ok_or_else(|| bad("entry id is not a string"))?;
            let fields = match fields {
                Value::Nil => None,
                Value::Array(flat) => {
                    let mut map = HashMap::new();
                    for pair in flat.chunks(2) {
                        if let [k, v] = pair
                            && let (Some(k), Some(v)) = (text(k), text(v))
                        {
                            map.insert(k, v);
                        }
                    }
                    Some(map)
                }
                Value::Map(pairs) => Some(
                    pairs
                        .iter()
                        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                        .collect(),
                ),
                _ => return Err(bad("fields are not an array")),
            };
            out.push(Entry { id, fields });
        }
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
                    Value::Array(vec![
                        bulk("command"),
                        bulk("{}"),
                        bulk("signature"),
                        bulk("ab"),
                    ]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let entries = parse_read_reply(reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].fields.as_ref().unwrap()["signature"], "ab");
        assert_eq!(
            entries[1],
            Entry {
                id: "2-0".into(),
                fields: None
            }
        );
        assert!(parse_read_reply(Value::Nil).unwrap().is_empty());
        assert!(parse_read_reply(Value::Int(3)).is_err());
        assert!(parse_read_reply(Value::Array(vec![Value::Int(3)])).is_err());
    }

    #[test]
    fn claimed_fields_of_garbage_are_empty_not_a_panic() {
        let c = Claimed::read("not json");
        assert!(c.container.is_none() && c.id.is_none());
        let c = Claimed::read(r#"{"container":"web","action":"restart","id":"x"}"#);
        assert_eq!(
            (c.container.as_deref(), c.action),
            (Some("web"), Action::Restart)
        );
    }
}
