//! Writing what the sampler measured to Redis: per container the
//! `hemostat:stats:<host/name>` key and a chart sample, and the deletion of
//! removed containers' keys, all in one pipeline per interval (one round
//! trip however many containers the host runs).

use std::time::Duration;

use chrono::Utc;
use hemostat_protocol::{ContainerRef, connection::Connection, envelope::seed_timestamp, keys, series::SeriesSample};

use crate::usage::{View, round2};

pub struct Store {
    conn: Connection,
    /// How long one write may take.
    limit: Duration,
    /// Keys of removed containers, deleted with the next write.
    deleted: Vec<String>,
    /// Whether the last write failed (log once per outage).
    down: bool,
}

/// One interval's writes, sent by [`Store::write`].
pub struct Batch {
    pipe: redis::Pipeline,
    /// Stats keys in the pipeline.
    writes: usize,
    timestamp: String,
    now_ms: i64,
}

impl Batch {
    /// A batch stamped now: every key and sample in it carries the same time.
    pub fn now() -> Batch {
        Batch { pipe: redis::pipe(), writes: 0, timestamp: seed_timestamp(), now_ms: Utc::now().timestamp_millis() }
    }

    /// The container's stats key, and its chart sample if it is running.
    pub fn add(&mut self, view: &View<'_>) {
        let m = view.metrics(self.timestamp.clone());
        match serde_json::to_string(&m) {
            Ok(json) => {
                self.pipe.set_ex(view.who.key(), json, keys::STATS_TTL.as_secs()).ignore();
                self.writes += 1;
            }
            Err(e) => tracing::warn!(container = %view.who.name, error = %e, "stats not serialisable"),
        }
        // The dashboard's charts: a short capped list per container, in the
        // same round trip as the stats.
        if let Some(u) = view.usage {
            let series = keys::series(&ContainerRef::new(&view.who.host, &view.who.name));
            let sample = SeriesSample { t: self.now_ms, cpu: round2(u.cpu_pct), mem: round2(u.memory_pct) };
            // Numbers only: serialising cannot fail.
            self.pipe
                .lpush(&series, serde_json::to_string(&sample).unwrap_or_default())
                .ignore()
                .ltrim(&series, 0, keys::SERIES_MAX as isize - 1)
                .ignore()
                .expire(&series, keys::SERIES_TTL.as_secs() as i64)
                .ignore();
        }
    }
}

impl Store {
    /// `interval` is the sampling interval, which bounds each write.
    pub fn new(conn: Connection, interval: Duration) -> Store {
        // A stuck Redis must not pile up ticks; the next interval writes
        // fresher values anyway.
        Store { conn, limit: interval.max(Duration::from_secs(1)), deleted: Vec::new(), down: false }
    }

    /// Deletes a removed container's key with the next write that succeeds.
    pub fn remove(&mut self, key: String) {
        self.deleted.push(key);
    }

    pub async fn write(&mut self, mut batch: Batch) {
        let deleted = std::mem::take(&mut self.deleted);
        for key in &deleted {
            batch.pipe.del(key).ignore();
        }
        if batch.writes == 0 && deleted.is_empty() {
            return;
        }
        let result = tokio::time::timeout(self.limit, batch.pipe.query_async::<()>(&mut self.conn)).await;
        match result {
            Ok(Ok(())) => {
                if self.down {
                    tracing::info!("stats written to Redis again");
                }
                self.down = false;
            }
            Ok(Err(e)) if !self.down => {
                self.down = true;
                tracing::warn!(error = %e, "writing stats to Redis failed; retrying every interval");
            }
            Err(_) if !self.down => {
                self.down = true;
                tracing::warn!("writing stats to Redis timed out; retrying every interval");
            }
            _ => {}
        }
        if self.down {
            // Removals must not be forgotten during an outage.
            self.deleted.extend(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{Identity, Usage};

    /// The pipeline's commands, as (name, key) pairs.
    fn commands(batch: &Batch) -> Vec<(String, String)> {
        batch
            .pipe
            .cmd_iter()
            .map(|c| {
                let mut args = c.args_iter().map(|a| match a {
                    redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                });
                (args.next().unwrap_or_default(), args.next().unwrap_or_default())
            })
            .collect()
    }

    fn who() -> Identity {
        Identity { host: "h1".into(), id: "c1".into(), name: "web".into(), image: None }
    }

    #[test]
    fn a_running_container_gets_its_key_and_a_capped_chart_sample() {
        let mut batch = Batch::now();
        let usage = Usage { cpu_pct: 12.345, memory_pct: 50.0, ..Default::default() };
        let who = who();
        batch.add(&View { who: &who, status: "running", health: None, usage: Some(&usage) });
        let names: Vec<(String, String)> = commands(&batch);
        let series = keys::series(&ContainerRef::new("h1", "web"));
        let expected = [("SETEX", who.key()), ("LPUSH", series.clone()), ("LTRIM", series.clone()), ("EXPIRE", series)];
        assert_eq!(names, expected.map(|(c, k)| (c.to_owned(), k)));
        assert_eq!(batch.writes, 1);
    }

    #[test]
    fn a_stopped_container_gets_its_key_only() {
        let mut batch = Batch::now();
        let who = who();
        batch.add(&View { who: &who, status: "exited", health: None, usage: None });
        assert_eq!(commands(&batch), [("SETEX".to_owned(), who.key())]);
    }
}
