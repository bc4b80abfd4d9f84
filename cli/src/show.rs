//! Writing for people: ages, times, one line per event.

use hemostat_protocol::{Envelope, EventKind};
use serde_json::Value;

/// `3s`, `4m`, `2h`, `3d`: how long ago (or how long left).
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Epoch ms as RFC 3339 (UTC, seconds).
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

pub fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// A number with one decimal, or `-`.
pub fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}%"))
}

/// The container an event is about: `host/name`, or `name` when no host.
pub fn subject(env: &Envelope) -> String {
    let d = &env.data;
    let name = text(d, "container");
    match text(d, "host") {
        "" => name.to_owned(),
        host if name.is_empty() => host.to_owned(),
        host => format!("{host}/{name}"),
    }
}

/// What an event says, in one line.
pub fn summary(env: &Envelope) -> String {
    let d = &env.data;
    let diagnosis = d.pointer("/diagnosis/cause").and_then(Value::as_str).map(|c| format!(" [cause {c}]"));
    let mut line = match env.kind {
        EventKind::HealthAlert => {
            let issues: Vec<&str> =
                d.get("issues").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            issues.join("; ")
        }
        EventKind::RemediationNeeded => {
            let confidence = d.get("confidence").and_then(Value::as_f64).unwrap_or_default();
            let method = text(d, "analysis_method");
            let method = if method.is_empty() { String::new() } else { format!(", {method}") };
            format!("{} (confidence {confidence:.2}{method}): {}", text(d, "action"), text(d, "reason"))
        }
        EventKind::RemediationComplete => {
            let result = d.get("result").cloned().unwrap_or_default();
            let mut line = format!("{} {}", text(d, "action"), text(&result, "status"));
            for field in ["reason", "error"] {
                let why = text(&result, field);
                if !why.is_empty() {
                    line.push_str(&format!(": {why}"));
                }
            }
            if let Some(ms) = result.get("duration_ms").and_then(Value::as_u64) {
                line.push_str(&format!(" ({ms} ms)"));
            }
            let request = text(d, "reason");
            if !request.is_empty() {
                line.push_str(&format!(" <- {request}"));
            }
            line
        }
        EventKind::FalseAlarm => format!("false alarm: {}", text(d, "reason")),
        EventKind::SystemAlert => format!("{}: {}", text(d, "kind"), text(d, "message")),
        EventKind::ApprovalAnswer => format!("{} approval {} by {}", text(d, "answer"), text(d, "id"), text(d, "by")),
    };
    if let Some(cause) = diagnosis {
        line.push_str(&cause);
    }
    line
}

/// `2026-12-02T10:00:00.123456  remediation_complete  web-1/api  restart success ...`
pub fn event_line(env: &Envelope) -> String {
    format!("{:<26}  {:<20}  {:<24}  {}", env.timestamp, env.kind.as_str(), subject(env), summary(env))
}

/// Prints `value` as pretty JSON on stdout.
pub fn json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_a_clock() {
        assert_eq!(span(4_500), "4s");
        assert_eq!(span(125_000), "2m05s");
        assert_eq!(span(7_260_000), "2h01m");
        assert_eq!(span(-5), "0s");
    }

    #[test]
    fn an_event_line_names_kind_container_and_outcome() {
        let env = Envelope::parse(
            br#"{"timestamp":"2026-12-02T10:00:00.000001","agent":"HemoStat-Responder","type":"remediation_complete",
            "data":{"container":"api","host":"h1","action":"restart","reason":"exit 1",
            "result":{"status":"rejected","action":"restart","container":"api","reason":"silenced: upgrade (until x)"}}}"#,
        )
        .unwrap();
        let line = event_line(&env);
        assert!(line.contains("remediation_complete") && line.contains("h1/api"), "{line}");
        assert!(line.contains("restart rejected: silenced: upgrade (until x) <- exit 1"), "{line}");
    }
}
