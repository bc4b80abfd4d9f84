//! The analyzer function: decides what a `health_alert` means.
//!
//! Module map:
//! - `handler`: the Lambda handler: batch in, `remediation_needed` or
//!   `false_alarm` out; generic over [`hemostat_protocol::Publisher`] and
//!   [`Llm`].
//! - `history`: each container's recent alerts in Redis, stored and
//!   read in one atomic round trip.
//! - `diagnosis`: why a container failed, read from the alert's
//!   evidence (exit code, Docker state, failure signatures in logs).
//! - `measured`: what the collector measured of an alert (an exit, the
//!   run's uptime, how long a breach was sustained).
//! - `fingerprint`: a failure line with what varies between runs
//!   masked, so a repeat of the same failure can be recognised.
//! - `signatures`: the failure signatures, a catalogue kept as data
//!   (`functions/analyzer/signatures/*.yaml`), compiled once, matched in
//!   linear time.
//! - `rules`: the rule table, a pure function of (alert, history).
//! - `llm`: LLM analysis (OpenAI Chat Completions, Anthropic Messages),
//!   the prompt, strict validation of the answer.
//! - `cache`: LLM verdicts cached by failure signature.
//! - `budget`: the hourly LLM call budget.
//! - `analysis`: a verdict and how it was reached (`analysis_method`).
//! - `config`: environment variables and the provider selection rule.
//! - `error`: the crate's error enum.

mod analysis;
mod budget;
mod cache;
mod config;
mod diagnosis;
mod error;
mod fingerprint;
mod handler;
mod history;
mod llm;
mod measured;
mod rules;
mod signatures;

// The API: the handler and its settings (main.rs), the LLM client and the
// trait it implements, the two Redis-atomic pieces (the history and the
// LLM budget) that tests check against a real server, and the runtimes
// signatures (and the incident files) may name.
pub use budget::{hour_bucket, take as take_llm_call};
pub use config::{Config, LlmConfig, Provider, USAGE};
pub use error::AnalyzerError;
pub use handler::{Analyzer, NoLlm};
pub use history::{AlertSummary, record as record_history};
pub use llm::{Llm, LlmClient, Prompt, http_client};
pub use signatures::RUNTIMES;

/// Parses and compiles the embedded failure signatures, returning how many
/// there are: main.rs calls it at start, so an invalid catalogue stops the
/// analyzer with a clear error instead of diagnosing without it.
pub fn load_signatures() -> Result<usize, AnalyzerError> {
    signatures::catalogue().map(|c| c.signatures().len())
}

/// The ids of the failure signatures `line` matches, in catalogue order:
/// what `hemostat-bench-signatures` times (matching must stay linear in the
/// line's length whatever the catalogue's size).
pub fn matching_signatures(line: &str) -> Result<Vec<&'static str>, AnalyzerError> {
    let c = signatures::catalogue()?;
    Ok(c.matching(line).map(|i| c.get(i).id.as_str()).collect())
}
