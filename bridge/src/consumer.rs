//! One route: read a stream with a consumer group, invoke the function with
//! a batch, ack what succeeded, retry what failed, dead-letter what never
//! will.
//!
//! Reads are sequential: a blocking `XREADGROUP` that is cancelled half-way
//! would leave its records assigned to this consumer but never delivered
//! (until reclaimed), so nothing is raced against it; each read blocks at
//! most `block_ms`, which bounds shutdown latency. Deliveries overlap: up to
//! `max_in_flight` batches are being invoked and acked at once, and a read
//! only starts once a slot is free, so records are never read and then left
//! waiting. Every record is acked only after its own invocation succeeded,
//! whatever the order the invocations finish in: still at least once.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use hemostat_protocol::{
    ProtocolError,
    backoff::Backoff,
    connection::Connection,
    stream::{self, Entry, Group, Pending},
};
use tokio::{
    sync::{Semaphore, watch},
    task::JoinSet,
};

use hemostat_protocol::{
    Envelope,
    batch::{self, BatchRecord, BatchResponse},
    keys,
    publisher::{ENVELOPE_FIELD, REPLAY_FOR_FIELD, dead_letter},
};

use crate::{
    Config,
    binding::Binding,
    error::BridgeError,
    health::Beat,
    invoker::{Invocation, Invoker},
    stats::{Event, Stats},
};

/// How often pending records are checked for retry or takeover.
const RECLAIM_EVERY: Duration = Duration::from_millis(500);
/// Pending entries examined per reclaim pass.
const RECLAIM_SCAN: usize = 1000;
/// Takeovers a record may go through on top of `max_attempts` before it is
/// dead-lettered anyway: a record on which every bridge dies must not loop
/// forever.
const MAX_TAKEOVERS: u64 = 10;
/// How long takeover counts are kept (refreshed on each takeover).
const TAKEOVERS_TTL_SECONDS: i64 = 24 * 3600;
/// Remembered failure reasons (for dead-letter entries); bounded.
const MAX_REMEMBERED_ERRORS: usize = 10_000;

pub struct Consumer<I> {
    route: Arc<Route<I>>,
    /// Blocking reads only: a blocked read stalls its socket.
    reader: Connection,
}

/// What the read loop and its delivery tasks share.
struct Route<I> {
    config: Config,
    binding: Binding,
    group: Group,
    /// Multiplexed: concurrent acks from several deliveries are pipelined.
    writer: Connection,
    invoker: I,
    stats: Arc<Stats>,
    last_errors: Mutex<HashMap<String, String>>,
    /// Ids being delivered by this process right now: the reclaimer must
    /// not hand them out again just because the function is slow.
    in_flight: Mutex<HashSet<String>>,
    /// The route's last read (or wait on busy deliveries): what `/healthz`
    /// and the heartbeat tell a hung read by.
    progress: Arc<Beat>,
}

impl<I: Invoker> Consumer<I> {
    pub fn new(binding: Binding, config: Config, reader: Connection, writer: Connection, invoker: I) -> Self {
        Self::with_stats(binding, config, reader, writer, invoker, Arc::default())
    }

    /// [`Consumer::new`], counting into `stats` (shared by every route).
    pub fn with_stats(
        binding: Binding,
        config: Config,
        reader: Connection,
        writer: Connection,
        invoker: I,
        stats: Arc<Stats>,
    ) -> Self {
        let group = Group::new(&binding.stream, &binding.group, &config.consumer);
        let route = Route {
            config,
            binding,
            group,
            writer,
            invoker,
            stats,
            last_errors: Mutex::default(),
            in_flight: Mutex::default(),
            progress: Arc::default(),
        };
        Consumer { route: Arc::new(route), reader }
    }

    /// The route's progress, for the replica's health.
    pub(crate) fn progress(&self) -> Arc<Beat> {
        self.route.progress.clone()
    }

    /// Creates the group at the start of the stream, so events published
    /// before the first bridge started are delivered too (stale ones are
    /// dead-lettered, not acted on).
    pub async fn ensure_group(&self) -> Result<(), BridgeError> {
        self.route.ensure_group().await
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let route = self.route.clone();
        let slots = Arc::new(Semaphore::new(usize::from(route.config.max_in_flight.max(1))));
        let mut deliveries = JoinSet::new();
        let mut last_reclaim = Instant::now();
        let mut backoff = Backoff::redis();
        while !*stop.borrow() {
            while deliveries.try_join_next().is_some() {}
            // A free slot first, so what is read is delivered at once.
            let slot = 'wait: loop {
                tokio::select! {
                    slot = slots.clone().acquire_owned() => break 'wait Some(slot),
                    _ = stop.wait_for(|s| *s) => break 'wait None,
                    // Every slot busy delivering (each bounded by the invoke
                    // timeout): the route works, it is not stalled.
                    _ = tokio::time::sleep(Duration::from_millis(route.config.block_ms)) => route.progress.now(),
                }
            };
            let Some(Ok(slot)) = slot else { break };
            match self.read_new().await {
                Ok(entries) => {
                    backoff.reset();
                    route.progress.now();
                    if !entries.is_empty() {
                        route.mark_in_flight(&entries);
                        let count = vec![1; entries.len()];
                        let route = route.clone();
                        deliveries.spawn(async move {
                            route.deliver(entries, count).await;
                            drop(slot);
                        });
                    }
                }
                Err(e) => {
                    drop(slot);
                    let wait = backoff.next_delay();
                    tracing::warn!(stream = %route.binding.stream, error = %e, retry_in = ?wait, "reading the stream failed");
                    if stream::is_missing_group(&e) {
                        // The stream or group vanished (e.g. Redis restarted without persistence).
                        let _ = route.ensure_group().await;
                    }
                    let _ = tokio::time::timeout(wait, stop.wait_for(|s| *s)).await;
                }
            }
            if last_reclaim.elapsed() >= RECLAIM_EVERY {
                last_reclaim = Instant::now();
                match route.reclaim().await {
                    Ok(batches) => {
                        for (entries, count) in batches {
                            // Claimed records are ours now: deliver them even
                            // if stopping (a slot always frees up).
                            let Ok(slot) = slots.clone().acquire_owned().await else { break };
                            let route = route.clone();
                            deliveries.spawn(async move {
                                route.deliver(entries, count).await;
                                drop(slot);
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(stream = %route.binding.stream, error = %e, "reclaiming pending records failed")
                    }
                }
            }
        }
        // In-flight batches finish, and are acked, before the route stops.
        while deliveries.join_next().await.is_some() {}
        tracing::info!(stream = %route.binding.stream, function = %route.binding.function, "route stopped");
    }

    async fn read_new(&mut self) -> Result<Vec<Entry>, ProtocolError> {
        let route = &self.route;
        let block = Duration::from_millis(route.config.block_ms);
        route.group.read_new(&mut self.reader, route.config.batch_size, Some(block)).await
    }
}

impl<I: Invoker> Route<I> {
    async fn ensure_group(&self) -> Result<(), BridgeError> {
        Ok(self.group.ensure(&mut self.writer.clone()).await?)
    }

    fn mark_in_flight(&self, entries: &[Entry]) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.extend(entries.iter().map(|e| e.id.clone()));
    }

    fn is_in_flight(&self, id: &str) -> bool {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).contains(id)
    }

    /// Validates, invokes, then acks / keeps pending / dead-letters; the
    /// records stop being in flight afterwards, whatever happened.
    async fn deliver(&self, entries: Vec<Entry>, deliveries: Vec<u64>) {
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        self.deliver_batch(entries, deliveries).await;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for id in &ids {
            in_flight.remove(id);
        }
    }

    async fn deliver_batch(&self, entries: Vec<Entry>, deliveries: Vec<u64>) {
        let mut records = Vec::with_capacity(entries.len());
        let mut not_ours = Vec::new();
        for (entry, delivery) in entries.into_iter().zip(deliveries) {
            if entry.field(REPLAY_FOR_FIELD).is_some_and(|group| group != self.binding.group) {
                not_ours.push(entry.id);
                continue;
            }
            let body = entry.field(ENVELOPE_FIELD).map(str::to_owned);
            let (problem, stale) = match &body {
                None if entry.fields.is_none() => {
                    (Some("trimmed from the stream (MAXLEN) while pending".to_owned()), false)
                }
                None => (Some(format!("entry has no UTF-8 {ENVELOPE_FIELD:?} field")), false),
                Some(body) => match Envelope::parse(body.as_bytes()) {
                    Err(e) => (Some(e.to_string()), false),
                    Ok(_) => {
                        let stale = self.stale(&entry);
                        let is_stale = stale.is_some();
                        (stale, is_stale)
                    }
                },
            };
            match (problem, body) {
                (None, Some(body)) => {
                    records.push(batch::record(entry.id, self.binding.stream.clone(), body, delivery))
                }
                (problem, body) => {
                    let reason = problem.unwrap_or_else(|| format!("entry has no {ENVELOPE_FIELD:?} field"));
                    self.dead_letter(&entry.id, &reason, body.as_deref(), delivery, stale).await
                }
            }
        }
        self.pass_over(&not_ours).await;
        if records.is_empty() {
            return;
        }
        let event = batch::event(records);
        let payload = match serde_json::to_vec(&event) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!(error = %e, "could not encode a batch");
                return;
            }
        };
        let records = event.records;
        let (stream, function) = (self.binding.stream.as_str(), self.binding.function.as_str());
        let started = Instant::now();
        let response = match self.invoker.invoke(function, payload).await {
            Ok(Invocation::Ok(body)) => parse_response(&body),
            Ok(Invocation::FunctionError(error)) => return self.keep_pending(&records, &error),
            Err(e) => return self.keep_pending(&records, &e.to_string()),
        };
        let mut ack: Vec<&str> = Vec::with_capacity(records.len());
        let mut failed = 0;
        for record in &records {
            let id = batch::message_id(record);
            if let Some(rejected) = response.rejected_items.iter().find(|r| r.item_identifier == id) {
                let reason = format!("rejected by {function}: {}", rejected.reason);
                self.dead_letter(id, &reason, Some(batch::body(record)), batch::receive_count(record), false).await;
            } else if response.batch_item_failures.iter().any(|f| f.item_identifier == id) {
                failed += 1;
                self.remember_error(id, "reported as failed by the function (batchItemFailures)");
            } else {
                ack.push(id);
            }
        }
        if ack.is_empty() {
            return;
        }
        let acked = self.group.ack(&mut self.writer.clone(), &ack).await;
        match acked {
            Ok(_) => {
                self.forget_errors(&ack);
                let took_ms = started.elapsed().as_millis() as u64;
                self.stats.record(Event::Acked { stream, function, records: ack.len(), failed, took_ms });
            }
            // Not acked means delivered again later: at least once, never lost.
            Err(e) => tracing::warn!(%stream, error = %e, "ack failed; records will be redelivered"),
        }
    }

    /// Acknowledges replays meant for another group unseen; one that is
    /// not acked now comes again, and is passed over again.
    async fn pass_over(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        match self.group.ack(&mut self.writer.clone(), &ids).await {
            Ok(_) => {
                self.forget_errors(&ids);
                self.stats.record(Event::PassedOver { stream: &self.binding.stream, records: ids.len() });
            }
            Err(e) => tracing::warn!(stream = %self.binding.stream, error = %e, "ack of others' replays failed"),
        }
    }

    fn keep_pending(&self, records: &[BatchRecord], error: &str) {
        let (stream, function) = (self.binding.stream.as_str(), self.binding.function.as_str());
        self.stats.record(Event::InvocationFailed { stream, function, records: records.len(), error });
        for record in records {
            self.remember_error(batch::message_id(record), error);
        }
    }

    fn remember_error(&self, id: &str, error: &str) {
        let mut errors = self.last_errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() >= MAX_REMEMBERED_ERRORS {
            errors.clear();
        }
        errors.insert(id.to_owned(), error.to_owned());
    }

    fn forget_errors(&self, ids: &[&str]) {
        let mut errors = self.last_errors.lock().unwrap_or_else(|e| e.into_inner());
        if !errors.is_empty() {
            for id in ids {
                errors.remove(*id);
            }
        }
    }

    /// `Some(reason)` when the record is too old to act on.
    fn stale(&self, entry: &Entry) -> Option<String> {
        if self.config.max_age_seconds == 0 {
            return None;
        }
        let ms = entry.added_ms()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
        let age = now.saturating_sub(ms) / 1000;
        (age > self.config.max_age_seconds)
            .then(|| format!("stale: {age}s old, older than {}s", self.config.max_age_seconds))
    }

    /// `stale`: given up for its age (counted apart: it is an incident
    /// nobody acted on, and people are told).
    async fn dead_letter(&self, id: &str, reason: &str, body: Option<&str>, attempts: u64, stale: bool) {
        let mut fields = vec![
            (dead_letter::STREAM, self.binding.stream.clone()),
            (dead_letter::GROUP, self.binding.group.clone()),
            (dead_letter::FUNCTION, self.binding.function.clone()),
            (dead_letter::ID, id.to_owned()),
            (dead_letter::REASON, reason.to_owned()),
            (dead_letter::ATTEMPTS, attempts.to_string()),
        ];
        if let Some(body) = body {
            fields.push((ENVELOPE_FIELD, body.to_owned()));
        }
        // Dead letter first, then the ack: a record is never acked without
        // its dead letter. The two keys live in different slots of a
        // cluster, so no MULTI can hold both; a crash in between leaves the
        // record pending, and it is dead-lettered again (a duplicate with
        // the same `stream` and `id` fields), never lost.
        let mut writer = self.writer.clone();
        let result: Result<(), ProtocolError> = async {
            let _: String = redis::cmd("XADD")
                .arg(keys::DEAD_LETTER_STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(keys::STREAM_MAXLEN)
                .arg("*")
                .arg(&fields)
                .query_async(&mut writer)
                .await?;
            self.group.ack(&mut writer, &[id]).await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                self.forget_errors(&[id]);
                self.stats.record(Event::DeadLettered { stream: &self.binding.stream, id, reason, attempts, stale });
            }
            Err(e) => tracing::error!(error = %e, id, "dead-lettering failed; the record stays pending"),
        }
    }

    /// Claims this replica's failed records once their backoff has passed
    /// and records idle at other (presumed dead) consumers, dead-letters
    /// records out of attempts, and returns the batches to deliver again
    /// (marked in flight). A record that failed here is retried alone, so a
    /// poisonous record cannot drag its batch-mates to the dead letter;
    /// records taken over from a dead replica go in full batches.
    async fn reclaim(&self) -> Result<Vec<(Vec<Entry>, Vec<u64>)>, BridgeError> {
        let rows = self.group.pending(&mut self.writer.clone(), self.config.shortest_backoff(), RECLAIM_SCAN).await?;
        let mut batches = Vec::new();
        let (mut taken, mut taken_count): (Vec<Entry>, Vec<u64>) = (Vec::new(), Vec::new());
        let candidates: Vec<Pending> = rows
            .into_iter()
            .filter(|pending| !(pending.consumer == self.config.consumer && self.is_in_flight(&pending.id)))
            .collect();
        let takeovers = self.takeovers(&candidates).await?;
        for (pending, takeovers) in candidates.into_iter().zip(takeovers) {
            let mine = pending.consumer == self.config.consumer;
            // Deliveries to consumers that died ended unknown, not failed:
            // the previous takeovers, and this one if the owner is dead.
            let unknown = takeovers + u64::from(!mine);
            let failures = pending.deliveries.saturating_sub(unknown);
            let due = self.due_ms(&pending.id, failures, mine);
            if pending.idle_ms < due {
                continue;
            }
            // XCLAIM with the same min-idle: if another replica claimed it
            // first, the entry is no longer idle and nothing comes back.
            let claimed =
                self.group.claim(&mut self.writer.clone(), Duration::from_millis(due), &[&pending.id]).await?;
            let Some(entry) = claimed.into_iter().next() else { continue };
            let exhausted =
                failures >= self.config.max_attempts || pending.deliveries >= self.config.max_attempts + MAX_TAKEOVERS;
            if exhausted {
                let reason =
                    self.last_errors.lock().unwrap_or_else(|e| e.into_inner()).get(&entry.id).cloned().unwrap_or_else(
                        || {
                            format!(
                                "not handled after {} deliveries ({unknown} to consumers that died)",
                                pending.deliveries
                            )
                        },
                    );
                self.dead_letter(&entry.id, &reason, entry.field(ENVELOPE_FIELD), pending.deliveries, false).await;
                continue;
            }
            if !mine {
                self.count_takeover(&entry.id).await;
                let (stream, from) = (self.binding.stream.as_str(), pending.consumer.as_str());
                self.stats.record(Event::TakenOver { stream, id: &entry.id, from, idle_ms: pending.idle_ms });
            }
            self.mark_in_flight(std::slice::from_ref(&entry));
            if mine {
                batches.push((vec![entry], vec![pending.deliveries + 1]));
                continue;
            }
            taken.push(entry);
            taken_count.push(pending.deliveries + 1);
            if taken.len() >= self.config.batch_size.max(1) {
                batches.push((std::mem::take(&mut taken), std::mem::take(&mut taken_count)));
            }
        }
        if !taken.is_empty() {
            batches.push((taken, taken_count));
        }
        Ok(batches)
    }
}

impl<I: Invoker> Route<I> {
    /// How long a pending record must have been idle before it is retried
    /// (ours: its backoff) or taken over (another consumer's).
    fn due_ms(&self, id: &str, failures: u64, mine: bool) -> u64 {
        let due = self.config.backoff(failures.max(1), id).as_millis() as u64;
        if mine { due } else { due.max(self.config.reclaim_idle_ms) }
    }

    fn takeovers_key(&self) -> String {
        keys::bridge_takeovers(&self.binding.stream, &self.binding.group)
    }

    /// Takeover counts of `rows`, in order (0 when never taken over).
    async fn takeovers(&self, rows: &[Pending]) -> Result<Vec<u64>, BridgeError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = rows.iter().map(|p| p.id.as_str()).collect();
        let counts: Vec<Option<u64>> =
            redis::cmd("HMGET").arg(self.takeovers_key()).arg(&ids).query_async(&mut self.writer.clone()).await?;
        Ok(counts.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Best effort: a lost count only makes a later dead letter come one
    /// attempt sooner.
    async fn count_takeover(&self, id: &str) {
        let key = self.takeovers_key();
        let counted: Result<(), redis::RedisError> = redis::pipe()
            .hincr(&key, id, 1)
            .ignore()
            .expire(&key, TAKEOVERS_TTL_SECONDS)
            .ignore()
            .query_async(&mut self.writer.clone())
            .await;
        if let Err(e) = counted {
            tracing::warn!(error = %e, id, "counting a takeover failed");
        }
    }
}

/// A function's answer; anything that is not a batch response means "all
/// handled", as Lambda's SQS integration reads it.
fn parse_response(body: &[u8]) -> BatchResponse {
    serde_json::from_slice(body).unwrap_or_default()
}
