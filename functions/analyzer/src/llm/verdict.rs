//! Strict validation of a model's answer: a JSON object with a known,
//! allowed `action`, a `confidence` in [0, 1] and a non-empty `reason`.
//! Anything else is an error, and the rules decide.

use hemostat_protocol::Action;
use serde_json::Value;

use crate::error::AnalyzerError;

/// A validated LLM verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlmVerdict {
    pub action: Action,
    pub confidence: f64,
    pub reason: String,
}

fn invalid(reason: impl Into<String>) -> AnalyzerError {
    AnalyzerError::InvalidVerdict(reason.into())
}

/// Parses `text`. A JSON object wrapped in one Markdown code fence is
/// accepted (models without a JSON mode often fence it); nothing else
/// around the object is.
pub fn parse(text: &str, allows: impl Fn(Action) -> bool) -> Result<LlmVerdict, AnalyzerError> {
    let body = unfence(text.trim());
    let value: Value = serde_json::from_str(body).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let obj = value.as_object().ok_or_else(|| invalid("not a JSON object"))?;
    let name = obj.get("action").and_then(Value::as_str).ok_or_else(|| invalid("missing string \"action\""))?;
    let action: Action = serde_json::from_value(Value::String(name.to_owned()))
        .map_err(|_| invalid(format!("unknown action {:?}", truncate(name))))?;
    if !allows(action) {
        return Err(invalid(format!("action {name} is not allowed")));
    }
    let confidence =
        obj.get("confidence").and_then(Value::as_f64).ok_or_else(|| invalid("missing number \"confidence\""))?;
    if !(0.0..=1.0).contains(&confidence) {
        return Err(invalid(format!("confidence {confidence} is outside [0, 1]")));
    }
    let reason = obj.get("reason").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(invalid("missing \"reason\""));
    }
    Ok(LlmVerdict { action, confidence, reason: truncate(reason).to_owned() })
}

fn unfence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else { return text };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").map(str::trim).unwrap_or(text)
}

/// Reasons go into events and logs: keep them bounded.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(500) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(a: Action) -> bool {
        matches!(a, Action::Restart | Action::None | Action::Stop)
    }

    #[test]
    fn accepts_a_good_answer_fenced_or_not() {
        let v = parse(r#"{"action":"restart","confidence":0.82,"reason":"crashed once"}"#, allowed).unwrap();
        assert_eq!((v.action, v.confidence, v.reason.as_str()), (Action::Restart, 0.82, "crashed once"));
        let fenced = "```json\n{\"action\":\"none\",\"confidence\":1,\"reason\":\"spike\"}\n```";
        assert_eq!(parse(fenced, allowed).unwrap().action, Action::None);
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "restart",
            "Sure! {\"action\":\"restart\",\"confidence\":0.9,\"reason\":\"x\"}",
            "[1]",
            r#"{"action":"exec","confidence":0.9,"reason":"x"}"#,
            r#"{"action":"scale_up","confidence":0.9,"reason":"x"}"#,
            r#"{"action":"reboot","confidence":0.9,"reason":"x"}"#,
            r#"{"action":"restart","confidence":1.5,"reason":"x"}"#,
            r#"{"action":"restart","confidence":-0.1,"reason":"x"}"#,
            r#"{"action":"restart","confidence":"high","reason":"x"}"#,
            r#"{"action":"restart","reason":"x"}"#,
            r#"{"confidence":0.9,"reason":"x"}"#,
            r#"{"action":"restart","confidence":0.9}"#,
            r#"{"action":"restart","confidence":0.9,"reason":"  "}"#,
        ] {
            assert!(matches!(parse(bad, allowed), Err(AnalyzerError::InvalidVerdict(_))), "{bad}");
        }
    }
}
