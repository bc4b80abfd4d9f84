//! The alert function: tells people what HemoStat did, and keeps the event
//! log the dashboard reads.
//!
//! It consumes `remediation_complete`, `false_alarm` and `system_alert`. Per
//! batch it first stores every event (in record order, idempotent under
//! redelivery), then notifies the configured sinks for all records at once,
//! each notification deduplicated across replicas and bounded in time, so a
//! slow or dead Slack never blocks the event log or the batch.
//!
//! Module map:
//! - `notice`: what an event says to a human: title, colour (the seed's),
//!   fields, whether it is a critical alert that led to no action, and the
//!   fingerprint notifications are deduplicated by.
//! - `format`: the wire payloads: Slack attachments and the generic JSON
//!   webhook (envelope + summary, optionally HMAC-signed).
//! - `deliver`: HTTP delivery with a per-request timeout, bounded retries
//!   with backoff, Slack's 429 `Retry-After`, and an overall deadline.
//! - `store`: what the handler needs from Redis (event log, dedupe claims,
//!   failure counter) as a small trait, with the Redis implementation.
//! - `handler`: the Lambda handler: store, then notify concurrently.
//! - `config`: environment variables (`alert --help` lists them).
//! - `error`: the crate's error enum.

mod config;
mod deliver;
mod error;
mod format;
mod handler;
mod notice;
mod store;

pub use config::{Config, USAGE};
pub use deliver::client;
pub use error::AlertError;
pub use format::{SIGNATURE_HEADER, signature};
pub use handler::Alert;
pub use store::{FAILURES, RedisLog};
