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
//! - `sinks`: where notices go: one `Service` per receiver, each in its own
//!   file (Slack, the signed JSON webhook, ntfy, Discord, Teams, PagerDuty,
//!   Gotify) rendering the request its API expects and reading its answers,
//!   and email (SMTP with STARTTLS required);
//!   one delivery loop with a per-request timeout,
//!   bounded retries with backoff, `Retry-After`, and an overall deadline.
//! - `filter`: which notices a sink wants (its events and lowest level).
//! - `probe`: `hemostat notify test`: one test notice through every sink.
//! - `store`: what the handler needs from Redis (event log, dedupe claims,
//!   failure counter) as a small trait, with the Redis implementation.
//! - `handler`: the Lambda handler: store, then notify concurrently.
//! - `config`: environment variables (`alert --help` lists them).
//! - `error`: the crate's error enum.

mod config;
mod error;
mod filter;
mod handler;
mod notice;
mod probe;
mod sinks;
mod store;

pub use config::{Config, USAGE};
pub use error::AlertError;
pub use handler::Alert;
pub use notice::Level;
pub use probe::{Tried, test_notice, try_sinks};
pub use sinks::{
    Delivered, NAMES as SINK_NAMES, client,
    webhook::{SIGNATURE_HEADER, signature},
};
pub use store::{FAILURES, RedisLog};
