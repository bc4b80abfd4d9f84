//! The analyzer function: decides what a `health_alert` means.
//!
//! Module map:
//! - [`handler`]: the Lambda handler: batch in, `remediation_needed` or
//!   `false_alarm` out; generic over [`hemostat_protocol::Publisher`] and
//!   [`llm::Llm`].
//! - [`history`]: each container's recent alerts in Redis, stored and
//!   read in one atomic round trip.
//! - [`diagnosis`]: why a container failed, read from the alert's
//!   evidence (exit code, Docker state, failure signatures in logs).
//! - [`rules`]: the rule table, a pure function of (alert, history).
//! - [`llm`]: LLM analysis (OpenAI Chat Completions, Anthropic Messages),
//!   the prompt, strict validation of the answer.
//! - [`cache`]: LLM verdicts cached by failure signature.
//! - [`budget`]: the hourly LLM call budget.
//! - [`analysis`]: a verdict and how it was reached (`analysis_method`).
//! - [`config`]: environment variables and the provider selection rule.
//! - [`error`]: the crate's error enum.

pub mod analysis;
pub mod budget;
pub mod cache;
pub mod config;
pub mod diagnosis;
pub mod error;
pub mod handler;
pub mod history;
pub mod llm;
pub mod rules;

pub use config::Config;
pub use error::AnalyzerError;
pub use handler::{Analyzer, NoLlm};
