//! The exporter function: HemoStat's events as metrics, for Prometheus
//! (text exposition over a function URL) and CloudWatch.
//!
//! Functions are stateless and run as several instances, so every counter
//! lives in Redis: each batch of events is counted in one atomic Lua script
//! that also remembers which records it has counted, so a record the bridge
//! delivers again is never counted twice. A scrape reads the counters back,
//! adds gauges read fresh from Redis (collector liveness, per-container
//! stats), and renders the Prometheus text format.
//!
//! One binary serves three kinds of invocation (told apart by the protocol's
//! `invocation`): a batch
//! of events from the bridge, an HTTP request through the function URL
//! (`GET /metrics`), and the EventBridge schedule (collector check and
//! CloudWatch gauges).
//!
//! Module map:
//! - `handler`: the Lambda handler, generic over the publisher and the
//!   CloudWatch sink so it can be driven in tests.
//! - [`metrics`]: the metric families (names, types, help, buckets,
//!   CloudWatch names) and how a series is written as a Redis hash field.
//! - `events`: an event becomes facts (a count, an observation): a pure
//!   function, the one mapping behind both Prometheus and CloudWatch.
//! - `store`: Redis: the counting script with dedupe, the scrape's reads,
//!   the once-per-transition markers of missing collectors.
//! - `collectors`: which collectors are up, which went silent, and the
//!   `system_alert`s that say so, once per transition.
//! - `exposition`: the Prometheus text format.
//! - `http`: the function URL's routes (`/metrics`, optional bearer token).
//! - `cloudwatch`: Embedded Metric Format documents within the
//!   specification's limits, written to standard output.
//! - `deadman`: the dead-man's switch, pinged after each healthy
//!   scheduled run.
//! - `keys`: the exporter's own Redis keys.
//! - `config`: environment variables.
//! - `error`: the crate's error enum.

mod cloudwatch;
mod collectors;
mod config;
mod deadman;
mod error;
mod events;
mod exposition;
mod handler;
mod http;
mod keys;
// A public module: the metric families are the exporter's contract with the
// Prometheus rules and dashboards, checked by name (`metrics::ALL`, ...).
pub mod metrics;
mod store;

pub use cloudwatch::{Datum, EmfSink, MetricSink, Sink};
pub use config::{Config, USAGE};
pub use error::ExporterError;
pub use handler::Exporter;
pub use store::RedisStore;
