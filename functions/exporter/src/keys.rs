//! The exporter's Redis keys, as the protocol crate spells them.

pub use hemostat_protocol::keys::{collector_missing, exporter_metrics as metrics, exporter_seen as seen};
