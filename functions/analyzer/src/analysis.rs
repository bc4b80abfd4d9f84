//! The outcome of analysing one alert: a verdict and how it was reached.

use hemostat_protocol::{
    Action,
    diagnosis::{Cause, Diagnosis},
};

use crate::{error::AnalyzerError, llm::LlmVerdict, rules};

/// `analysis_method` in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No LLM configured: the rules decided.
    RuleBased,
    /// The LLM decided (now, or earlier for the same failure signature).
    Llm,
    /// An LLM is configured but did not decide; `fallback_reason` says why.
    RuleFallback,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::RuleBased => "rule_based",
            Method::Llm => "llm",
            Method::RuleFallback => "rule_fallback",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub action: Action,
    pub confidence: f64,
    pub reason: String,
    pub method: Method,
    /// Set when `method` is `Llm`.
    pub model: Option<String>,
    /// Set when `method` is `RuleFallback`.
    pub fallback_reason: Option<&'static str>,
    /// The LLM verdict came from the cache.
    pub cached: bool,
    /// Why the container failed: the model's, when it gave one, else the
    /// rules'.
    pub diagnosis: Option<Diagnosis>,
}

impl Analysis {
    pub fn rules(v: rules::RuleDecision) -> Self {
        Analysis {
            action: v.action,
            confidence: v.confidence,
            reason: v.reason,
            method: Method::RuleBased,
            model: None,
            fallback_reason: None,
            cached: false,
            diagnosis: v.diagnosis,
        }
    }

    pub fn fallback(v: rules::RuleDecision, reason: &'static str) -> Self {
        Analysis { method: Method::RuleFallback, fallback_reason: Some(reason), ..Analysis::rules(v) }
    }

    pub fn from_error(v: rules::RuleDecision, error: &AnalyzerError) -> Self {
        Analysis::fallback(v, error.fallback_reason())
    }

    /// `rules`: the rules' diagnosis, kept when the model gave none, or
    /// only a vaguer one (`app_error`, `unknown`) where the rules named a
    /// cause: a small model's "app error" must not hide the port in use
    /// the rules read in the log.
    pub fn llm(v: LlmVerdict, model: &str, cached: bool, rules: Option<Diagnosis>) -> Self {
        let vague = |d: &Diagnosis| matches!(d.cause, Cause::AppError | Cause::Unknown);
        let diagnosis = match (v.diagnosis, rules) {
            (Some(m), Some(r)) if vague(&m) && !vague(&r) => Some(r),
            (m, r) => m.or(r),
        };
        Analysis {
            action: v.action,
            confidence: v.confidence,
            reason: v.reason,
            method: Method::Llm,
            model: Some(model.to_owned()),
            fallback_reason: None,
            cached,
            diagnosis,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vaguer_model_diagnosis_leaves_the_rules_one() {
        let d = |cause| Diagnosis {
            cause,
            summary: cause.to_string(),
            evidence: vec![],
            restart_helps: false,
            recommendation: None,
        };
        let verdict = |m: Option<Cause>| LlmVerdict {
            action: Action::None,
            confidence: 0.9,
            reason: "model".into(),
            diagnosis: m.map(d),
        };
        let cause = |m: Option<Cause>, r: Option<Cause>| {
            Analysis::llm(verdict(m), "m", false, r.map(d)).diagnosis.map(|d| d.cause)
        };
        assert_eq!(cause(Some(Cause::AppError), Some(Cause::PortInUse)), Some(Cause::PortInUse));
        assert_eq!(cause(Some(Cause::Unknown), Some(Cause::DiskFull)), Some(Cause::DiskFull));
        // A specific cause of the model's stands, even against the rules'.
        assert_eq!(cause(Some(Cause::PermissionDenied), Some(Cause::PortInUse)), Some(Cause::PermissionDenied));
        assert_eq!(cause(Some(Cause::AppError), Some(Cause::Unknown)), Some(Cause::AppError));
        assert_eq!(cause(None, Some(Cause::PortInUse)), Some(Cause::PortInUse));
        assert_eq!(cause(Some(Cause::AppError), None), Some(Cause::AppError));
    }
}
