//! What the dashboard reads from Redis, as a small trait of plain reads so
//! the handler is tested without a server (`MemoryStore`, in unit tests and the fuzzer) and the Redis
//! implementation is tested against a real one.
//!
//! Reads, and one write: a person's answer to an approval, published as
//! an `approval_answer` for the responder (which decides whether it
//! counts). Nothing else is written, so the dashboard cannot disturb the
//! loop it shows.

#[cfg(any(test, feature = "fuzzing"))]
use std::collections::HashMap;
use std::future::Future;

use hemostat_protocol::connection::Connection;
use redis::{AsyncCommands, streams::StreamRangeReply};

use hemostat_protocol::{
    Envelope, Publisher, RedisPublisher,
    approval::{self, Approval},
    publisher::ENVELOPE_FIELD,
};

use crate::error::DashboardError;

/// One durable stream entry: its id (`<ms>-<seq>`) and its envelope JSON,
/// if the entry has one.
pub type StreamEntry = (String, Option<String>);

pub trait Store: Send + Sync {
    /// `SMEMBERS key`.
    fn members(&self, key: &str) -> impl Future<Output = Result<Vec<String>, DashboardError>> + Send;
    /// `GET` of every key, in order, in one round trip (missing keys are None).
    fn get_many(&self, keys: &[String]) -> impl Future<Output = Result<Vec<Option<String>>, DashboardError>> + Send;
    /// `GET` and `PTTL` of every key, in order, in one pipeline: the value
    /// and its milliseconds left (`-1`: no expiry) of each key that exists.
    /// Both commands of a key go to its slot, so on a cluster the pipeline
    /// is split by slot (a container's keys by its hash tag) and still one
    /// round trip per node.
    fn get_with_ttl(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<(String, i64)>>, DashboardError>> + Send;
    /// A sorted set, lowest score first, with the scores.
    fn scored(&self, key: &str) -> impl Future<Output = Result<Vec<(String, f64)>, DashboardError>> + Send;
    /// The values of a hash (`HVALS key`).
    fn hash_values(&self, key: &str) -> impl Future<Output = Result<Vec<String>, DashboardError>> + Send;
    /// The first `limit` elements of a list (`LRANGE key 0 limit-1`).
    fn list(&self, key: &str, limit: usize) -> impl Future<Output = Result<Vec<String>, DashboardError>> + Send;
    /// The newest `count` entries of a stream, newest first (`XREVRANGE + - COUNT`).
    fn stream_tail(
        &self,
        stream: &str,
        count: usize,
    ) -> impl Future<Output = Result<Vec<StreamEntry>, DashboardError>> + Send;
    /// Every pending approval, as `Approval::to_json` shows it.
    fn pending_approvals(&self) -> impl Future<Output = Result<Vec<serde_json::Value>, DashboardError>> + Send;
    /// One approval, whatever its state (`Approval::to_json`).
    fn approval(&self, id: &str) -> impl Future<Output = Result<Option<serde_json::Value>, DashboardError>> + Send;
    /// Publishes an event (attested as the dashboard's, see
    /// `hemostat_protocol::attestation`): an `approval_answer`.
    fn publish(&self, env: &Envelope) -> impl Future<Output = Result<String, DashboardError>> + Send;
}

/// The store of a deployed dashboard: one multiplexed connection per
/// instance, cloned per request.
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
}

impl RedisStore {
    pub fn new(conn: Connection) -> Self {
        RedisStore { conn }
    }
}

impl Store for RedisStore {
    async fn members(&self, key: &str) -> Result<Vec<String>, DashboardError> {
        Ok(self.conn.clone().smembers(key).await?)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, DashboardError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // A pipeline of GETs rather than one MGET: the keys span hash slots,
        // which MGET refuses on Redis Cluster.
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.get(key);
        }
        Ok(pipe.query_async(&mut self.conn.clone()).await?)
    }

    async fn get_with_ttl(&self, keys: &[String]) -> Result<Vec<Option<(String, i64)>>, DashboardError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.get(key).pttl(key);
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn.clone()).await?;
        let mut out = Vec::with_capacity(keys.len());
        for pair in replies.chunks(2) {
            let value: Option<String> = redis::from_redis_value_ref(&pair[0]).map_err(redis::RedisError::from)?;
            let ttl: i64 = match pair.get(1) {
                Some(t) => redis::from_redis_value_ref(t).map_err(redis::RedisError::from)?,
                None => -1,
            };
            // Gone between the GET and the PTTL (-2): it just closed.
            out.push(value.filter(|_| ttl != -2).map(|v| (v, ttl)));
        }
        Ok(out)
    }

    async fn scored(&self, key: &str) -> Result<Vec<(String, f64)>, DashboardError> {
        Ok(self.conn.clone().zrange_withscores(key, 0, -1).await?)
    }

    async fn hash_values(&self, key: &str) -> Result<Vec<String>, DashboardError> {
        Ok(self.conn.clone().hvals(key).await?)
    }

    async fn list(&self, key: &str, limit: usize) -> Result<Vec<String>, DashboardError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self.conn.clone().lrange(key, 0, limit as isize - 1).await?)
    }

    async fn pending_approvals(&self) -> Result<Vec<serde_json::Value>, DashboardError> {
        Ok(approval::pending(&mut self.conn.clone()).await?.iter().map(Approval::to_json).collect())
    }

    async fn approval(&self, id: &str) -> Result<Option<serde_json::Value>, DashboardError> {
        Ok(approval::get(&mut self.conn.clone(), id).await?.as_ref().map(Approval::to_json))
    }

    async fn publish(&self, env: &Envelope) -> Result<String, DashboardError> {
        Ok(RedisPublisher::new(self.conn.clone()).publish(env).await?)
    }

    async fn stream_tail(&self, stream: &str, count: usize) -> Result<Vec<StreamEntry>, DashboardError> {
        let reply: StreamRangeReply = self.conn.clone().xrevrange_count(stream, "+", "-", count).await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|e| {
                let envelope: Option<String> = e.get(ENVELOPE_FIELD);
                (e.id, envelope)
            })
            .collect())
    }
}

/// An in-memory [`Store`] for the handler's unit tests and `hemostat-fuzz`:
/// fill its public maps.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    pub sets: HashMap<String, Vec<String>>,
    pub strings: HashMap<String, String>,
    /// Milliseconds left of a string key (absent: no expiry).
    pub ttls: HashMap<String, i64>,
    pub zsets: HashMap<String, Vec<(String, f64)>>,
    /// Hashes' values.
    pub hashes: HashMap<String, Vec<String>>,
    /// Lists, first element first (as `LRANGE` returns them).
    pub lists: HashMap<String, Vec<String>>,
    /// Streams, oldest entry first (as `XADD` appends them).
    pub streams: HashMap<String, Vec<StreamEntry>>,
    /// Approvals, as `Approval::to_json` shows them (any state).
    pub approvals: Vec<serde_json::Value>,
    /// What was published, in order (shared by the store's clones).
    pub published: std::sync::Arc<std::sync::Mutex<Vec<Envelope>>>,
    /// When set, every read fails as if Redis were down.
    pub down: bool,
}

#[cfg(any(test, feature = "fuzzing"))]
impl MemoryStore {
    fn check(&self) -> Result<(), DashboardError> {
        if self.down {
            return Err(redis::RedisError::from((redis::ErrorKind::Io, "connection refused")).into());
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl Store for MemoryStore {
    async fn members(&self, key: &str) -> Result<Vec<String>, DashboardError> {
        self.check()?;
        Ok(self.sets.get(key).cloned().unwrap_or_default())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, DashboardError> {
        self.check()?;
        Ok(keys.iter().map(|k| self.strings.get(k).cloned()).collect())
    }

    async fn get_with_ttl(&self, keys: &[String]) -> Result<Vec<Option<(String, i64)>>, DashboardError> {
        self.check()?;
        Ok(keys
            .iter()
            .map(|k| self.strings.get(k).map(|v| (v.clone(), self.ttls.get(k).copied().unwrap_or(-1))))
            .collect())
    }

    async fn scored(&self, key: &str) -> Result<Vec<(String, f64)>, DashboardError> {
        self.check()?;
        let mut all = self.zsets.get(key).cloned().unwrap_or_default();
        all.sort_by(|a, b| a.1.total_cmp(&b.1));
        Ok(all)
    }

    async fn hash_values(&self, key: &str) -> Result<Vec<String>, DashboardError> {
        self.check()?;
        Ok(self.hashes.get(key).cloned().unwrap_or_default())
    }

    async fn list(&self, key: &str, limit: usize) -> Result<Vec<String>, DashboardError> {
        self.check()?;
        Ok(self.lists.get(key).map(|l| l.iter().take(limit).cloned().collect()).unwrap_or_default())
    }

    async fn stream_tail(&self, stream: &str, count: usize) -> Result<Vec<StreamEntry>, DashboardError> {
        self.check()?;
        Ok(self.streams.get(stream).map(|s| s.iter().rev().take(count).cloned().collect()).unwrap_or_default())
    }

    async fn pending_approvals(&self) -> Result<Vec<serde_json::Value>, DashboardError> {
        self.check()?;
        Ok(self.approvals.iter().filter(|a| a["state"] == "pending").cloned().collect())
    }

    async fn approval(&self, id: &str) -> Result<Option<serde_json::Value>, DashboardError> {
        self.check()?;
        Ok(self.approvals.iter().find(|a| a["id"] == id).cloned())
    }

    async fn publish(&self, env: &Envelope) -> Result<String, DashboardError> {
        self.check()?;
        let mut published = self.published.lock().expect("not poisoned");
        published.push(env.clone());
        Ok(format!("{}-0", published.len()))
    }
}
