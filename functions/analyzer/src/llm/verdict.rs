//! Strict validation of a model's answer: a JSON object with a known,
//! allowed `action`, a `confidence` in [0, 1] and a non-empty `reason` (or
//! `root_cause`). Anything else is an error, and the rules decide.
//!
//! The diagnosis part is optional: `cause` (a category this version does
//! not know reads as `unknown`), `root_cause`, `evidence` and
//! `recommendation`. Cited evidence must be in what was sent: each line
//! must appear, verbatim, in one of the texts the prompt carried; a single
//! invented line rejects the whole answer.

use hemostat_protocol::{
    Action,
    diagnosis::{Cause, Diagnosis},
};
use serde_json::Value;

use crate::{diagnosis::MAX_CITED, error::AnalyzerError};

/// A validated LLM verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlmVerdict {
    pub action: Action,
    pub confidence: f64,
    pub reason: String,
    /// The model's diagnosis, when it gave one (`cause`, `root_cause` or
    /// `evidence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
}

fn invalid(reason: impl Into<String>) -> AnalyzerError {
    AnalyzerError::InvalidVerdict(reason.into())
}

/// Parses `text`. A JSON object wrapped in one Markdown code fence is
/// accepted (models without a JSON mode often fence it); nothing else
/// around the object is. `sent`: the evidence texts the prompt carried
/// ([`crate::llm::Prompt::evidence`]).
pub fn parse(text: &str, allows: impl Fn(Action) -> bool, sent: &[String]) -> Result<LlmVerdict, AnalyzerError> {
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
    let text_of = |k: &str| obj.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let root_cause = text_of("root_cause");
    let Some(reason) = text_of("reason").or(root_cause) else {
        return Err(invalid("missing \"reason\""));
    };
    let evidence = match obj.get("evidence") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => cited(items, sent)?,
        Some(_) => return Err(invalid("\"evidence\" is not a list of lines")),
    };
    let cause = obj.get("cause").and_then(Value::as_str).map(Cause::parse);
    let diagnosis = (cause.is_some() || root_cause.is_some() || !evidence.is_empty()).then(|| {
        let cause = cause.unwrap_or(Cause::Unknown);
        let restart_helps = obj.get("restart_helps").and_then(Value::as_bool).unwrap_or(action == Action::Restart);
        Diagnosis {
            cause,
            summary: truncate(root_cause.unwrap_or(reason)).to_owned(),
            evidence,
            restart_helps,
            recommendation: text_of("recommendation").map(|r| truncate(r).to_owned()),
        }
    });
    Ok(LlmVerdict { action, confidence, reason: truncate(reason).to_owned(), diagnosis })
}

/// Whether the rules' diagnosis forbids `v`: a model may always do less
/// (`none`), but not what the rules found makes the failure worse. When the
/// rules named a specific cause, a restart or a scale-up where a restart
/// cannot help (a port in use, a missing file, a crash loop) only repeats
/// the failure, and a stop or a cleanup where a restart would help keeps
/// the service down. A generic `app_error` or `unknown` diagnosis forbids
/// nothing: there the model may know better. A tiny model cites the right
/// line and still answers `restart`; this is what keeps it harmless.
pub fn against_rules(v: &LlmVerdict, rules: Option<&Diagnosis>) -> Result<(), AnalyzerError> {
    let Some(d) = rules.filter(|d| !matches!(d.cause, Cause::AppError | Cause::Unknown)) else {
        return Ok(());
    };
    let worse = match v.action {
        Action::Restart | Action::ScaleUp | Action::Start => !d.restart_helps,
        Action::Stop | Action::Cleanup => d.restart_helps,
        Action::None => false,
        // Never a verdict's (see `Action::LLM_CHOICES`): refused wherever the rules know the cause.
        Action::Exec | Action::Recreate => true,
    };
    if worse {
        let helps = if d.restart_helps { "would" } else { "cannot" };
        return Err(AnalyzerError::LlmOverruled(format!(
            "{} where the rules found {} (a restart {helps} help)",
            v.action, d.cause
        )));
    }
    Ok(())
}

/// The cited lines, each checked against what was sent; at most
/// [`MAX_CITED`] are kept.
fn cited(items: &[Value], sent: &[String]) -> Result<Vec<String>, AnalyzerError> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let line = item.as_str().ok_or_else(|| invalid("an \"evidence\" item is not a string"))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !sent.iter().any(|s| s.contains(line)) {
            return Err(invalid(format!("cited evidence was not sent: {:?}", truncate_to(line, 80))));
        }
        if out.len() < MAX_CITED && !out.iter().any(|o| o == line) {
            out.push(line.to_owned());
        }
    }
    Ok(out)
}

fn unfence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else { return text };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").map(str::trim).unwrap_or(text)
}

/// Reasons go into events and logs: keep them bounded.
fn truncate(s: &str) -> &str {
    truncate_to(s, 500)
}

fn truncate_to(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an operator who narrowed `AI_ALLOWED_ACTIONS` to restart and
    /// stop allows (none always is).
    fn allowed(a: Action) -> bool {
        let narrowed = crate::config::parse_actions("restart,stop").unwrap();
        crate::Config { allowed_actions: narrowed, ..crate::Config::default() }.allows(a)
    }

    #[test]
    fn accepts_a_good_answer_fenced_or_not() {
        let v = parse(r#"{"action":"restart","confidence":0.82,"reason":"crashed once"}"#, allowed, &[]).unwrap();
        assert_eq!((v.action, v.confidence, v.reason.as_str()), (Action::Restart, 0.82, "crashed once"));
        let fenced = "```json\n{\"action\":\"none\",\"confidence\":1,\"reason\":\"spike\"}\n```";
        assert_eq!(parse(fenced, allowed, &[]).unwrap().action, Action::None);
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
            r#"{"action":"restart","confidence":0.9,"reason":"x","evidence":["invented line"]}"#,
            r#"{"action":"restart","confidence":0.9,"reason":"x","evidence":"a string"}"#,
            r#"{"action":"restart","confidence":0.9,"reason":"x","evidence":[42]}"#,
        ] {
            assert!(matches!(parse(bad, allowed, &[]), Err(AnalyzerError::InvalidVerdict(_))), "{bad}");
        }
    }

    #[test]
    fn a_diagnosis_is_read_and_its_evidence_checked_against_what_was_sent() {
        let sent = vec!["Error: listen EADDRINUSE: address already in use :::8080".to_owned(), "starting".to_owned()];
        let answer = r#"{"cause": "port_in_use", "root_cause": "Port 8080 is taken by another process.",
            "action": "none", "confidence": 0.9,
            "evidence": ["Error: listen EADDRINUSE: address already in use :::8080", "EADDRINUSE"],
            "recommendation": "Free port 8080."}"#;
        let v = parse(answer, allowed, &sent).unwrap();
        assert_eq!(v.reason, "Port 8080 is taken by another process.");
        let d = v.diagnosis.unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::PortInUse, false));
        assert_eq!(d.evidence, ["Error: listen EADDRINUSE: address already in use :::8080", "EADDRINUSE"]);
        assert_eq!(d.recommendation.as_deref(), Some("Free port 8080."));
        // An unknown category is `unknown`, not a rejection.
        let odd = r#"{"cause": "cosmic_rays", "root_cause": "bit flip", "action": "restart", "confidence": 0.5}"#;
        let d = parse(odd, allowed, &sent).unwrap().diagnosis.unwrap();
        assert_eq!((d.cause, d.restart_helps), (Cause::Unknown, true));
        // One invented line rejects the answer, even beside real ones.
        let invented = answer.replace("\"EADDRINUSE\"", "\"disk full\"");
        assert!(matches!(parse(&invented, allowed, &sent), Err(AnalyzerError::InvalidVerdict(_))));
        // Nothing was sent: nothing can be cited.
        assert!(parse(answer, allowed, &[]).is_err());
        // No diagnosis fields: no diagnosis.
        let plain =
            parse(r#"{"action":"restart","confidence":0.8,"reason":"x","evidence":[]}"#, allowed, &sent).unwrap();
        assert_eq!(plain.diagnosis, None);
    }

    #[test]
    fn nothing_the_rules_found_harmful_gets_through() {
        let verdict = |action| LlmVerdict { action, confidence: 0.9, reason: "model".into(), diagnosis: None };
        let rules = |cause| {
            let (restart_helps, _) = crate::diagnosis::remedy(cause);
            Diagnosis { cause, summary: "rules".into(), evidence: vec![], restart_helps, recommendation: None }
        };
        let overruled = |a, c: Option<Cause>| {
            matches!(against_rules(&verdict(a), c.map(rules).as_ref()), Err(AnalyzerError::LlmOverruled(_)))
        };
        // A restart cannot fix a port in use, a missing file, a crash loop.
        for cause in [Cause::PortInUse, Cause::MissingFileOrConfig, Cause::CrashLoop, Cause::PermissionDenied] {
            assert!(overruled(Action::Restart, Some(cause)), "{cause}");
            assert!(overruled(Action::ScaleUp, Some(cause)), "{cause}");
            assert!(!overruled(Action::None, Some(cause)), "{cause}");
        }
        // A stop keeps down what a restart would bring back.
        for cause in [Cause::OomKilled, Cause::Segfault, Cause::HealthCheckFailing] {
            assert!(overruled(Action::Stop, Some(cause)), "{cause}");
            assert!(overruled(Action::Cleanup, Some(cause)), "{cause}");
            assert!(!overruled(Action::Restart, Some(cause)), "{cause}");
            assert!(!overruled(Action::None, Some(cause)), "{cause}");
        }
        // Where the rules know little, the model decides.
        for cause in [None, Some(Cause::AppError), Some(Cause::Unknown)] {
            for a in [Action::Restart, Action::Stop, Action::None, Action::ScaleUp] {
                assert!(!overruled(a, cause), "{a} {cause:?}");
            }
        }
    }
}
