//! The analyzer's diagnosis an event carries, as issues and the history show it.

use serde::Serialize;
use serde_json::Value;

use super::str_field;

/// Evidence lines shown per diagnosis: the analyzer bounds them already,
/// this only keeps a hostile publisher from filling the page.
pub const EVIDENCE_LINES: usize = 10;
/// Characters kept of each evidence line (then `…`).
pub const EVIDENCE_CHARS: usize = 500;

/// Why a container failed, as the analyzer diagnosed it: an event's
/// `data.diagnosis`, read leniently (a missing cause reads `unknown`,
/// anything not a string is left out). Shown as text, like everything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosisView {
    /// The category (`port_in_use`, `oom_killed`, ...).
    pub cause: String,
    /// One sentence for a human.
    pub summary: Option<String>,
    /// What a human should do, when the fix is outside the container.
    pub recommendation: Option<String>,
    /// Whether a restart can be expected to help, when said.
    pub restart_helps: Option<bool>,
    /// The lines it rests on (log lines, health output, Docker's error).
    pub evidence: Vec<String>,
}

fn cut(line: &str, max: usize) -> String {
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// The `diagnosis` of an event's data, when it has one.
pub(super) fn diagnosis_of(data: &Value) -> Option<DiagnosisView> {
    let d = data.get("diagnosis").filter(|d| d.is_object())?;
    Some(DiagnosisView {
        cause: str_field(d, "cause").unwrap_or_else(|| "unknown".into()),
        summary: str_field(d, "summary"),
        recommendation: str_field(d, "recommendation"),
        restart_helps: d.get("restart_helps").and_then(Value::as_bool),
        evidence: d
            .get("evidence")
            .and_then(Value::as_array)
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|l| !l.trim().is_empty())
                    .take(EVIDENCE_LINES)
                    .map(|l| cut(l, EVIDENCE_CHARS))
                    .collect()
            })
            .unwrap_or_default(),
    })
}
