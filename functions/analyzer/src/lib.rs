//! The analyzer function: decides what a `health_alert` means.
//!
//! Module map:
//! - [`rules`]: the seed's rule table, a pure function from an alert to a
//!   verdict (action, confidence, reason).
//! - [`handler`]: the Lambda handler: batch in, `remediation_needed` or
//!   `false_alarm` out, generic over [`hemostat_protocol::Publisher`].
//! - [`config`]: environment variables.

pub mod config;
pub mod handler;
pub mod rules;

pub use config::Config;
pub use handler::Analyzer;
