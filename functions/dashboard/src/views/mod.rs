//! The JSON API's answers, one file per view as the handler routes them:
//! [`containers`] (the grid, marked with the silences and breakers that hold
//! it), [`silences`], [`issues`], [`events`] (the history) and [`series`];
//! [`diagnosis`] is the analyzer's diagnosis as issues and events show it,
//! and this file holds the few readers of raw events they share.
//!
//! Every answer is built from raw Redis values by pure functions (time is an
//! argument), so every rule here is tested without Redis.
//!
//! Everything read is someone else's writing (collectors, functions, custom
//! seed-protocol publishers, an LLM's reasons): it is parsed leniently (a
//! malformed value is skipped or shown as unknown, never an error for the
//! whole page) and never trusted as markup (see [`crate::handler`]).

mod containers;
mod diagnosis;
mod events;
mod issues;
mod series;
mod silences;

use serde_json::Value;

pub use containers::{
    containers_to_read, containers_view, facts_from_alerts, hosts_of, mark_safety, needs_alert_facts,
};
pub use events::{EventFilter, events_view};
pub use issues::issues_view;
pub use series::series_view;
pub use silences::{add_open_windows, live_silences, silences_view};

fn str_field(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The ms part of a stream id (`<ms>-<seq>`).
pub fn stream_ms(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

/// Who an event is about: `data.host` and `data.container` (either may be
/// empty: seed-protocol publishers send no host, system alerts no container).
fn subject(data: &Value) -> (String, String) {
    let host = str_field(data, "host").unwrap_or_default();
    let name = str_field(data, "container").unwrap_or_default();
    (host, name)
}

/// `host/name`, or whichever part is known.
fn subject_key(host: &str, name: &str) -> String {
    match (host.is_empty(), name.is_empty()) {
        (false, false) => format!("{host}/{name}"),
        (true, _) => name.to_owned(),
        (false, true) => host.to_owned(),
    }
}

/// A stream entry's envelope as (ms, type, data); anything else is skipped.
fn parse_entry(id: &str, envelope: Option<&str>) -> Option<(i64, String, Value)> {
    let ms = stream_ms(id)?;
    let v: Value = serde_json::from_str(envelope?).ok()?;
    let kind = v.get("type")?.as_str()?.to_owned();
    let data = v.get("data")?.clone();
    data.is_object().then_some((ms, kind, data))
}

#[cfg(test)]
mod fixtures {
    //! Events and silences as the tests of every view write them.

    use hemostat_protocol::silence::{Silence, TargetKind};
    use serde_json::{Value, json};

    pub(super) fn env(kind: &str, data: Value) -> String {
        json!({"timestamp": "2025-11-03T10:30:45.123456", "agent": "HemoStat-Test", "type": kind, "data": data})
            .to_string()
    }

    pub(super) fn entry(ms: i64, kind: &str, data: Value) -> (String, Option<String>) {
        (format!("{ms}-0"), Some(env(kind, data)))
    }

    pub(super) const NOW: i64 = 1_800_000_000_000;

    pub(super) const HOSTILE: &str = "<script>alert(1)</script>";

    pub(super) fn diagnosed(cause: &str, line: &str) -> Value {
        json!({"cause": cause, "summary": format!("{cause} summary"), "evidence": [line, "", 7],
            "restart_helps": false, "recommendation": "Free the port."})
    }

    pub(super) fn silence(id: &str, kind: TargetKind, target: &str, reason: &str, end_ms: i64) -> (String, f64) {
        let until = chrono::DateTime::from_timestamp_millis(end_ms).unwrap().to_rfc3339();
        let s = Silence {
            id: id.into(),
            kind,
            target: target.into(),
            reason: reason.into(),
            created: "2027-01-15T08:00:00+00:00".into(),
            until,
            by: "alice".into(),
            window: None,
        };
        (serde_json::to_string(&s).unwrap(), end_ms as f64)
    }
}
