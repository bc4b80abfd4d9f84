//! The outcome of analysing one alert: a verdict and how it was reached.

use hemostat_protocol::{Action, diagnosis::Diagnosis};

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

    /// `rules`: the rules' diagnosis, kept when the model gave none.
    pub fn llm(v: LlmVerdict, model: &str, cached: bool, rules: Option<Diagnosis>) -> Self {
        Analysis {
            action: v.action,
            confidence: v.confidence,
            reason: v.reason,
            method: Method::Llm,
            model: Some(model.to_owned()),
            fallback_reason: None,
            cached,
            diagnosis: v.diagnosis.or(rules),
        }
    }
}
