//! PagerDuty Events API v2 (<https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>):
//! a JSON event to `https://events.pagerduty.com/v2/enqueue` with the
//! service's routing key. One incident per container (or per system alert
//! kind and host), named by `dedup_key`: a failure triggers it, a later
//! successful fix or a `*_recovered` system alert resolves it. Answers:
//! 202 `{"status": "success", "dedup_key": ...}`; 400 `{"status": "invalid
//! event", "message": "Event object is invalid", "errors": [...]}` is
//! final; 429 and 5xx are retried.

use hemostat_protocol::{EventKind, secret::Secret};
use reqwest::{StatusCode, header::HeaderMap};
use serde_json::{Map, Value, json};

use super::{Answer, Request, Service, plain_answer};
use crate::notice::{Level, Notice};

#[derive(Debug)]
pub struct PagerDuty {
    pub url: String,
    pub routing_key: Secret,
}

/// PagerDuty's four severities are HemoStat's levels.
pub fn severity(level: Level) -> &'static str {
    level.as_str()
}

/// Whether `notice` ends the incident an earlier one opened.
pub fn resolves(notice: &Notice) -> bool {
    match notice.kind {
        EventKind::RemediationComplete => notice.status == "success",
        EventKind::SystemAlert => notice.status.ends_with("_recovered"),
        _ => false,
    }
}

/// The incident a notice belongs to: the container, or the system alert's
/// kind (without `_recovered`) on its host.
pub fn dedup_key(notice: &Notice) -> String {
    match (&notice.container, notice.kind) {
        (Some(container), _) => format!("hemostat/container/{}/{container}", notice.host),
        (None, _) => {
            let kind = notice.status.strip_suffix("_recovered").unwrap_or(&notice.status);
            format!("hemostat/system/{kind}/{}", notice.host)
        }
    }
}

/// The event for `notice` (with the routing key filled in by the caller).
pub fn event(routing_key: &str, notice: &Notice) -> Value {
    let dedup_key = dedup_key(notice);
    if resolves(notice) {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key});
    }
    let summary: String = notice.title.chars().take(1024).collect();
    let mut details: Map<String, Value> = notice.fields.iter().map(|f| (f.title.to_owned(), json!(f.value))).collect();
    details.insert("Text".into(), json!(notice.text));
    if !notice.evidence.is_empty() {
        details.insert("Evidence".into(), json!(notice.evidence));
    }
    let mut payload = json!({
        "summary": summary,
        "source": if notice.host.is_empty() { "hemostat" } else { &notice.host },
        "severity": severity(notice.level()),
        "class": notice.cause.as_deref().unwrap_or(&notice.status),
        "group": notice.kind.as_str(),
        "custom_details": details,
    });
    if let Some(container) = &notice.container {
        payload["component"] = json!(container);
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&notice.timestamp, "%Y-%m-%dT%H:%M:%S%.f") {
        payload["timestamp"] = json!(t.and_utc().to_rfc3339());
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "HemoStat",
        "payload": payload,
    })
}

impl Service for PagerDuty {
    fn request(&self, _envelope_json: &str, notice: &Notice) -> Request {
        Request::json(&self.url, &event(self.routing_key.expose(), notice))
    }

    fn answer(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Answer {
        plain_answer(status, headers, super::json_text(body, &["message", "errors"]))
    }

    fn closes(&self, notice: &Notice) -> bool {
        resolves(notice)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.routing_key]
    }
}
