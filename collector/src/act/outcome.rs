//! What one command's execution came to, before the executor turns it into
//! a `RemediationResult`. A leaf so that the executor and the modules it
//! drives ([`verify`](super::verify)) can both build one without importing
//! each other.

use hemostat_protocol::event::RemediationStatus;

/// The part of a result that differs between outcomes.
#[derive(Debug)]
pub struct Outcome {
    pub status: RemediationStatus,
    pub error: Option<String>,
    pub details: Option<String>,
    pub verified: Option<bool>,
}

impl Outcome {
    pub fn failed(error: impl Into<String>) -> Self {
        Outcome { status: RemediationStatus::Failed, error: Some(error.into()), details: None, verified: None }
    }
    pub fn rejected(error: impl Into<String>) -> Self {
        Outcome { status: RemediationStatus::Rejected, ..Outcome::failed(error) }
    }
    pub fn with(status: RemediationStatus, details: impl Into<String>) -> Self {
        Outcome { status, error: None, details: Some(details.into()), verified: None }
    }
    pub fn dry_run(details: impl Into<String>) -> Self {
        Outcome::with(RemediationStatus::DryRun, details)
    }
    pub(crate) fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}
