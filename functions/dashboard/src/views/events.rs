//! `/api/events`: the remediation history, filtered.

use serde::Serialize;
use serde_json::Value;

use hemostat_protocol::EventKind;

use super::{
    diagnosis::{DiagnosisView, diagnosis_of},
    str_field, subject, subject_key,
};
use crate::error::DashboardError;

/// Remediation statuses the history can be filtered by.
pub const STATUSES: [&str; 5] = ["success", "failed", "rejected", "dry_run", "not_applicable"];

/// `/api/events` query parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Case-insensitive substring of the event's `host/name`.
    pub container: Option<String>,
    /// One event type: the list `hemostat:events:<type>` is read instead of `:all`.
    pub kind: Option<EventKind>,
    /// A remediation result status (`success`, `rejected`, ...).
    pub status: Option<String>,
    /// At most this many rows (1 to 100, the lists' length).
    pub limit: usize,
}

impl EventFilter {
    /// Parses a raw query string; an unknown type or status, or a bad limit, is a clear 400.
    pub fn parse(query: &str) -> Result<EventFilter, DashboardError> {
        let mut filter = EventFilter { limit: hemostat_protocol::keys::EVENTS_MAX, ..EventFilter::default() };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key.as_ref() {
                "container" => filter.container = Some(value.to_lowercase()),
                "type" => {
                    let kind = value.parse::<EventKind>().map_err(|_| {
                        DashboardError::BadRequest(format!(
                            "unknown type {value:?}: one of {}",
                            EventKind::ALL.map(|k| k.as_str()).join(", ")
                        ))
                    })?;
                    filter.kind = Some(kind);
                }
                "status" => {
                    if !STATUSES.contains(&value) {
                        return Err(DashboardError::BadRequest(format!(
                            "unknown status {value:?}: one of {}",
                            STATUSES.join(", ")
                        )));
                    }
                    filter.status = Some(value.to_owned());
                }
                "limit" => {
                    filter.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=hemostat_protocol::keys::EVENTS_MAX).contains(n))
                        .ok_or_else(|| {
                            DashboardError::BadRequest(format!(
                                "limit {value:?}: expected 1 to {}",
                                hemostat_protocol::keys::EVENTS_MAX
                            ))
                        })?;
                }
                // Unknown parameters (cache busters, ...) are ignored, as most APIs do.
                _ => {}
            }
        }
        Ok(filter)
    }

    /// The list to read.
    pub fn list_key(&self) -> String {
        hemostat_protocol::keys::events(self.kind.map_or("all", EventKind::as_str))
    }

    fn matches(&self, row: &EventRow) -> bool {
        self.kind.is_none_or(|k| row.kind == k.as_str())
            && self.status.as_ref().is_none_or(|s| row.status.as_deref() == Some(s.as_str()))
            && self.container.as_ref().is_none_or(|c| row.key.to_lowercase().contains(c.as_str()))
    }
}

/// One row of the history: an event as the alert function stored it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// The envelope's timestamp (seed format, UTC).
    pub timestamp: String,
    pub agent: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub host: String,
    pub container: String,
    /// `host/name` (or whichever is known), what the container filter matches.
    pub key: String,
    pub action: Option<String>,
    /// `data.result.status` of a remediation.
    pub status: Option<String>,
    /// One line for the table: the reason, error, message or issues.
    pub summary: String,
    /// The analyzer's diagnosis the event carries (`remediation_complete`,
    /// `false_alarm`).
    pub diagnosis: Option<DiagnosisView>,
    /// The whole `data`, for the details view.
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsView {
    /// The list read (`hemostat:events:all` or `:<type>`).
    pub source: String,
    pub events: Vec<EventRow>,
    /// Elements of the list that were not envelopes (skipped).
    pub skipped: usize,
}

/// Builds the history from a list's elements (newest first).
pub fn events_view(raw: &[String], filter: &EventFilter) -> EventsView {
    let mut skipped = 0;
    let mut events = Vec::new();
    for item in raw {
        let Some(row) = event_row(item) else {
            skipped += 1;
            continue;
        };
        if filter.matches(&row) && events.len() < filter.limit {
            events.push(row);
        }
    }
    EventsView { source: filter.list_key(), events, skipped }
}

fn event_row(item: &str) -> Option<EventRow> {
    let v: Value = serde_json::from_str(item).ok()?;
    let kind = str_field(&v, "type")?;
    let data = v.get("data").filter(|d| d.is_object())?.clone();
    let (host, container) = subject(&data);
    let summary = ["/result/reason", "/result/error", "/result/details", "/reason", "/message"]
        .iter()
        .find_map(|p| data.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned))
        .or_else(|| {
            let issues: Vec<&str> = data.get("issues")?.as_array()?.iter().filter_map(Value::as_str).collect();
            (!issues.is_empty()).then(|| issues.join("; "))
        })
        .unwrap_or_default();
    Some(EventRow {
        timestamp: str_field(&v, "timestamp").unwrap_or_default(),
        agent: str_field(&v, "agent").unwrap_or_default(),
        key: subject_key(&host, &container),
        host,
        container,
        action: str_field(&data, "action")
            .or_else(|| data.pointer("/result/action").and_then(Value::as_str).map(str::to_owned)),
        status: data.pointer("/result/status").and_then(Value::as_str).map(str::to_owned),
        kind,
        summary,
        diagnosis: diagnosis_of(&data),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::views::{
        diagnosis::EVIDENCE_LINES,
        fixtures::{HOSTILE, diagnosed, env},
    };

    #[test]
    fn history_rows_carry_the_diagnosis_and_hostile_lines_stay_text() {
        let raw = vec![
            env(
                "remediation_complete",
                json!({"container": "web", "host": "h1", "action": "restart",
                    "result": {"status": "failed", "action": "restart", "container": "web", "error": "exited again"},
                    "diagnosis": diagnosed("port_in_use", HOSTILE)}),
            ),
            env(
                "false_alarm",
                json!({"container": "api", "host": "h1", "reason": "spike",
                "diagnosis": {"cause": "cpu_burn", "evidence": (0..20).map(|i| format!("l{i}")).collect::<Vec<_>>()}}),
            ),
            env("false_alarm", json!({"container": "db", "host": "h1", "reason": "spike", "diagnosis": "junk"})),
        ];
        let view = events_view(&raw, &EventFilter::parse("").unwrap());
        let d = view.events[0].diagnosis.as_ref().unwrap();
        assert_eq!(view.events[0].summary, "exited again", "the summary is unchanged");
        assert_eq!((d.cause.as_str(), d.recommendation.as_deref()), ("port_in_use", Some("Free the port.")));
        assert_eq!(d.evidence, [HOSTILE]);
        assert_eq!(view.events[1].diagnosis.as_ref().unwrap().evidence.len(), EVIDENCE_LINES);
        assert!(view.events[2].diagnosis.is_none(), "not an object: no diagnosis, the row still shown");
        // The API answers JSON that no browser can read as markup, and the
        // page only ever sets the line as text.
        let json = crate::handler::escape_json_for_html(&serde_json::to_string(&view).unwrap());
        assert!(!json.contains('<') && json.contains("\\u003cscript\\u003e"), "{json}");
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["events"][0]["diagnosis"]["evidence"][0], HOSTILE);
        let script = include_str!("../../assets/app.js");
        assert!(!script.contains("innerHTML") && !script.contains("insertAdjacentHTML"), "text only in the page");
    }

    #[test]
    fn events_are_filtered_by_container_type_and_status() {
        let raw = vec![
            env(
                "remediation_complete",
                json!({"container": "web", "host": "h1", "action": "restart", "result": {"status": "success", "action": "restart", "container": "web"}}),
            ),
            env(
                "remediation_complete",
                json!({"container": "api", "host": "h1", "action": "restart", "result": {"status": "rejected", "action": "restart", "container": "api", "reason": "cooldown: 3540 s left"}}),
            ),
            env("false_alarm", json!({"container": "web", "host": "h2", "reason": "Transient spike"})),
            env(
                "system_alert",
                json!({"kind": "collector_missing", "severity": "high", "host": "h3", "message": "collector on h3 silent for 35 s"}),
            ),
            "garbage".into(),
        ];
        let all = events_view(&raw, &EventFilter::parse("").unwrap());
        assert_eq!(all.events.len(), 4);
        assert_eq!(all.skipped, 1);
        assert_eq!(all.source, "hemostat:events:all");
        assert_eq!(all.events[1].summary, "cooldown: 3540 s left");
        assert_eq!(all.events[3].key, "h3");
        assert_eq!(all.events[3].summary, "collector on h3 silent for 35 s");

        let web = events_view(&raw, &EventFilter::parse("container=WEB").unwrap());
        assert_eq!(web.events.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["h1/web", "h2/web"]);
        let h1_web = events_view(&raw, &EventFilter::parse("container=h1%2Fweb").unwrap());
        assert_eq!(h1_web.events.len(), 1);

        let rejected = events_view(&raw, &EventFilter::parse("status=rejected").unwrap());
        assert_eq!(rejected.events.len(), 1);
        assert_eq!(rejected.events[0].container, "api");

        let filter = EventFilter::parse("type=false_alarm&limit=5").unwrap();
        assert_eq!(filter.list_key(), "hemostat:events:false_alarm");
        assert_eq!(filter.limit, 5);
        let alarms = events_view(&raw, &filter);
        assert_eq!(alarms.events.len(), 1);
        assert_eq!(alarms.events[0].kind, "false_alarm");

        let one = events_view(&raw, &EventFilter::parse("limit=1").unwrap());
        assert_eq!(one.events.len(), 1);
    }

    #[test]
    fn bad_filters_are_refused_with_the_reason() {
        for (query, says) in [
            ("type=bogus", "unknown type"),
            ("status=fine", "unknown status"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=x", "limit"),
        ] {
            let err = EventFilter::parse(query).unwrap_err().to_string();
            assert!(err.contains(says), "{query}: {err}");
        }
        // Empty values mean "no filter", unknown parameters are ignored.
        assert_eq!(
            EventFilter::parse("container=&status=&_=123").unwrap(),
            EventFilter { limit: 100, ..EventFilter::default() }
        );
    }
}
