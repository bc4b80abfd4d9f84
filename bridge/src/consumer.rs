//! One route: read a stream with a consumer group, invoke the function with
//! a batch, ack what succeeded, retry what failed, dead-letter what never
//! will.
//!
//! The loop is sequential on purpose: a blocking `XREADGROUP` that is
//! cancelled half-way would leave its records assigned to this consumer but
//! never delivered (until reclaimed), so nothing is raced against it; each
//! read blocks at most `block_ms`, which bounds shutdown latency.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use redis::{
    AsyncCommands,
    aio::ConnectionManager,
    streams::{StreamClaimReply, StreamId, StreamReadOptions, StreamReadReply},
};
use tokio::sync::watch;

use hemostat_protocol::{
    Envelope,
    batch::{self, BatchEvent, BatchRecord, BatchResponse},
    keys,
    publisher::ENVELOPE_FIELD,
    routes::Route,
};

use crate::{
    Config,
    error::BridgeError,
    invoker::{Invocation, Invoker},
};

/// How often pending records are checked for retry or takeover.
const RECLAIM_EVERY: Duration = Duration::from_millis(500);
/// Remembered failure reasons (for dead-letter entries); bounded.
const MAX_REMEMBERED_ERRORS: usize = 10_000;

pub struct Consumer<I> {
    config: Config,
    stream: String,
    group: String,
    function: String,
    /// Blocking reads only: a blocked read stalls its socket.
    reader: ConnectionManager,
    writer: ConnectionManager,
    invoker: I,
    last_errors: HashMap<String, String>,
}

/// One pending entry as `XPENDING` reports it.
struct Pending {
    id: String,
    consumer: String,
    idle_ms: u64,
    deliveries: u64,
}

impl<I: Invoker> Consumer<I> {
    pub fn new(route: Route, config: Config, reader: ConnectionManager, writer: ConnectionManager, invoker: I) -> Self {
        Consumer {
            stream: route.stream(),
            group: route.group(),
            function: route.function_name(&config.function_prefix),
            config,
            reader,
            writer,
            invoker,
            last_errors: HashMap::new(),
        }
    }

    /// Creates the group at the start of the stream, so events published
    /// before the first bridge started are delivered too (stale ones are
    /// dead-lettered, not acted on).
    pub async fn ensure_group(&self) -> Result<(), BridgeError> {
        let created: Result<(), redis::RedisError> =
            self.writer.clone().xgroup_create_mkstream(&self.stream, &self.group, "0").await;
        match created {
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        let mut last_reclaim = Instant::now();
        let mut failures = 0u32;
        while !*stop.borrow() {
            match self.read_new().await {
                Ok(entries) => {
                    failures = 0;
                    if !entries.is_empty() {
                        let deliveries = vec![1; entries.len()];
                        self.deliver(entries, deliveries).await;
                    }
                }
                Err(e) => {
                    failures += 1;
                    let wait = Duration::from_secs(1 << failures.min(5));
                    tracing::warn!(stream = %self.stream, error = %e, retry_in = ?wait, "reading the stream failed");
                    if e.to_string().contains("NOGROUP") {
                        // The stream or group vanished (e.g. Redis restarted without persistence).
                        let _ = self.ensure_group().await;
                    }
                    let mut stop = stop.clone();
                    let _ = tokio::time::timeout(wait, stop.wait_for(|s| *s)).await;
                }
            }
            if last_reclaim.elapsed() >= RECLAIM_EVERY {
                last_reclaim = Instant::now();
                if let Err(e) = self.reclaim().await {
                    tracing::warn!(stream = %self.stream, error = %e, "reclaiming pending records failed");
                }
            }
        }
        tracing::info!(stream = %self.stream, function = %self.function, "route stopped");
    }

    async fn read_new(&mut self) -> Result<Vec<StreamId>, BridgeError> {
        let options = StreamReadOptions::default()
            .group(&self.group, &self.config.consumer)
            .count(self.config.batch_size)
            .block(self.config.block_ms as usize);
        let reply: Option<StreamReadReply> =
            self.reader.xread_options(&[&self.stream], &[">"], &options).await?;
        Ok(reply.map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect()).unwrap_or_default())
    }

    /// Validates, invokes, then acks / keeps pending / dead-letters.
    async fn deliver(&mut self, entries: Vec<StreamId>, deliveries: Vec<u64>) {
        let mut records = Vec::with_capacity(entries.len());
        for (entry, delivery) in entries.into_iter().zip(deliveries) {
            let body: Option<String> = entry.get(ENVELOPE_FIELD);
            let problem = match &body {
                None => Some(format!("entry has no UTF-8 {ENVELOPE_FIELD:?} field")),
                Some(body) => match Envelope::parse(body.as_bytes()) {
                    Err(e) => Some(e.to_string()),
                    Ok(_) => self.stale(&entry.id),
                },
            };
            match (problem, body) {
                (Some(reason), body) => self.dead_letter(&entry.id, &reason, body.as_deref(), delivery).await,
                (None, Some(body)) => records.push(BatchRecord {
                    message_id: entry.id,
                    event_source_arn: self.stream.clone(),
                    event_source: batch::EVENT_SOURCE.into(),
                    approximate_receive_count: delivery,
                    body,
                }),
                (None, None) => unreachable!("a missing body is always a problem"),
            }
        }
        if records.is_empty() {
            return;
        }
        let ids: Vec<String> = records.iter().map(|r| r.message_id.clone()).collect();
        let sent: HashMap<String, (String, u64)> =
            records.iter().map(|r| (r.message_id.clone(), (r.body.clone(), r.approximate_receive_count))).collect();
        let payload = match serde_json::to_vec(&BatchEvent { records }) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!(error = %e, "could not encode a batch");
                return;
            }
        };
        let started = Instant::now();
        let response = match self.invoker.invoke(&self.function, payload).await {
            Ok(Invocation::Ok(body)) => parse_response(&body),
            Ok(Invocation::FunctionError(error)) => return self.keep_pending(&ids, &error),
            Err(e) => return self.keep_pending(&ids, &e.to_string()),
        };
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        let mut ack: Vec<&str> = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(rejected) = response.rejected_items.iter().find(|r| &r.item_identifier == id) {
                let reason = format!("rejected by {}: {}", self.function, rejected.reason);
                let (body, delivery) = &sent[id];
                self.dead_letter(id, &reason, Some(body), *delivery).await;
            } else if failed.contains(&id.as_str()) {
                self.remember_error(id, "reported as failed by the function (batchItemFailures)");
            } else {
                ack.push(id);
            }
        }
        if !ack.is_empty() {
            let acked: Result<u64, _> = self.writer.xack(&self.stream, &self.group, &ack).await;
            match acked {
                Ok(_) => {
                    for id in &ack {
                        self.last_errors.remove(*id);
                    }
                    tracing::debug!(stream = %self.stream, function = %self.function, acked = ack.len(),
                        failed = failed.len(), took_ms = started.elapsed().as_millis() as u64, "batch delivered");
                }
                // Not acked means delivered again later: at least once, never lost.
                Err(e) => tracing::warn!(stream = %self.stream, error = %e, "ack failed; records will be redelivered"),
            }
        }
    }

    fn keep_pending(&mut self, ids: &[String], error: &str) {
        tracing::warn!(stream = %self.stream, function = %self.function, records = ids.len(), %error,
            "invocation failed; records stay pending for retry");
        for id in ids {
            self.remember_error(id, error);
        }
    }

    fn remember_error(&mut self, id: &str, error: &str) {
        if self.last_errors.len() >= MAX_REMEMBERED_ERRORS {
            self.last_errors.clear();
        }
        self.last_errors.insert(id.to_owned(), error.to_owned());
    }

    /// `Some(reason)` when the record is too old to act on.
    fn stale(&self, id: &str) -> Option<String> {
        if self.config.max_age_seconds == 0 {
            return None;
        }
        let ms: u64 = id.split('-').next()?.parse().ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
        let age = now.saturating_sub(ms) / 1000;
        (age > self.config.max_age_seconds).then(|| format!("stale: {age}s old, older than {}s", self.config.max_age_seconds))
    }

    async fn dead_letter(&mut self, id: &str, reason: &str, body: Option<&str>, attempts: u64) {
        tracing::warn!(stream = %self.stream, id, %reason, attempts, "dead-lettering record");
        let mut fields = vec![
            ("stream", self.stream.clone()),
            ("group", self.group.clone()),
            ("function", self.function.clone()),
            ("id", id.to_owned()),
            ("reason", reason.to_owned()),
            ("attempts", attempts.to_string()),
        ];
        if let Some(body) = body {
            fields.push((ENVELOPE_FIELD, body.to_owned()));
        }
        let result: Result<(), redis::RedisError> = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(keys::DEAD_LETTER_STREAM)
            .arg("MAXLEN")
            .arg("~")
            .arg(keys::STREAM_MAXLEN)
            .arg("*")
            .arg(&fields)
            .ignore()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .ignore()
            .query_async(&mut self.writer)
            .await;
        match result {
            Ok(()) => {
                self.last_errors.remove(id);
            }
            Err(e) => tracing::error!(error = %e, id, "dead-lettering failed; the record stays pending"),
        }
    }

    /// Retries this replica's failed records once their backoff has passed,
    /// takes over records idle at other (presumed dead) consumers, and
    /// dead-letters records out of attempts.
    async fn reclaim(&mut self) -> Result<(), BridgeError> {
        let shortest = self.config.backoff(1).as_millis() as u64;
        let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("IDLE")
            .arg(shortest)
            .arg("-")
            .arg("+")
            .arg(100)
            .query_async(&mut self.writer)
            .await?;
        for (id, consumer, idle_ms, deliveries) in rows {
            let pending = Pending { id, consumer, idle_ms, deliveries };
            let mut due = self.config.backoff(pending.deliveries).as_millis() as u64;
            if pending.consumer != self.config.consumer {
                due = due.max(self.config.reclaim_idle_ms);
            }
            if pending.idle_ms < due {
                continue;
            }
            // XCLAIM with the same min-idle: if another replica claimed it
            // first, the entry is no longer idle and nothing comes back.
            let claimed: StreamClaimReply = self
                .writer
                .xclaim(&self.stream, &self.group, &self.config.consumer, due, &[&pending.id])
                .await?;
            let Some(entry) = claimed.ids.into_iter().next() else { continue };
            if pending.deliveries >= self.config.max_attempts {
                let reason = self
                    .last_errors
                    .get(&entry.id)
                    .cloned()
                    .unwrap_or_else(|| format!("not handled after {} deliveries", pending.deliveries));
                let body: Option<String> = entry.get(ENVELOPE_FIELD);
                self.dead_letter(&entry.id, &reason, body.as_deref(), pending.deliveries).await;
            } else {
                if pending.consumer != self.config.consumer {
                    tracing::info!(stream = %self.stream, id = %entry.id, from = %pending.consumer, idle_ms = pending.idle_ms,
                        "took over a record from an idle consumer");
                }
                self.deliver(vec![entry], vec![pending.deliveries + 1]).await;
            }
        }
        Ok(())
    }

}

/// A function's answer; anything that is not a batch response means "all
/// handled", as Lambda's SQS integration reads it.
fn parse_response(body: &[u8]) -> BatchResponse {
    serde_json::from_slice(body).unwrap_or_default()
}
