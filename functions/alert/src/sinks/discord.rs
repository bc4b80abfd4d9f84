//! Discord webhooks (<https://discord.com/developers/docs/resources/webhook>):
//! JSON with one embed (title, description, colour, fields), mentions
//! disabled so text from a container cannot ping `@everyone`. Answers: 204
//! (200 with `?wait=true`); 429 with JSON `{"message": "You are being rate
//! limited.", "retry_after": 0.5, "global": false}` (seconds, fractional)
//! and a `Retry-After` header; 400 `{"code": 50006, "message": "Cannot send
//! an empty message"}` and 404 `{"code": 10015, "message": "Unknown
//! Webhook"}` are final.

use std::time::Duration;

use hemostat_protocol::{retry_after, secret::Secret};
use reqwest::{StatusCode, header::HeaderMap};
use serde_json::{Value, json};

use super::{Answer, Request, Service, plain_answer};
use crate::notice::Notice;

#[derive(Debug)]
pub struct Discord {
    pub url: Secret,
}

/// `text` cut to `max` characters, Discord's limit for that part (a longer
/// one gets the whole message refused with a 400).
fn fit(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if text.chars().count() > max => format!("{}…", &text[..i]),
        _ => text.to_owned(),
    }
}

/// The embed: Discord's limits are 256 for a title, 4096 for the
/// description, 25 fields of 256 (name) and 1024 (value) characters.
pub fn message(notice: &Notice) -> Value {
    let color = u32::from_str_radix(notice.color.trim_start_matches('#'), 16).unwrap_or(0);
    let mut fields: Vec<Value> = notice
        .fields
        .iter()
        .take(24)
        .map(|f| json!({"name": fit(f.title, 256), "value": fit(if f.value.is_empty() { "-" } else { &f.value }, 1024), "inline": f.short}))
        .collect();
    if !notice.evidence.is_empty() {
        let lines = notice.evidence.join("\n").replace("```", "'''");
        fields.push(json!({"name": "Evidence", "value": fit(&format!("```\n{lines}\n```"), 1024), "inline": false}));
    }
    let mut embed = json!({
        "title": fit(&notice.title, 256),
        "description": fit(&notice.text, 4096),
        "color": color,
        "fields": fields,
        "footer": {"text": format!("HemoStat · {}", notice.kind)},
    });
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&notice.timestamp, "%Y-%m-%dT%H:%M:%S%.f") {
        embed["timestamp"] = json!(t.and_utc().to_rfc3339());
    }
    json!({
        "username": "HemoStat",
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    })
}

impl Service for Discord {
    fn request(&self, _envelope_json: &str, notice: &Notice) -> Request {
        Request::json(self.url.expose(), &message(notice))
    }

    fn answer(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Answer {
        let detail = super::json_text(body, &["message"]);
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The body's `retry_after` is finer than the header's seconds.
            let asked = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("retry_after").map(Value::to_string))
                .and_then(|s| retry_after::parse(&s));
            if let Some(after) = asked {
                return Answer::Retry {
                    after: Some(after.max(Duration::from_millis(1))),
                    why: format!("HTTP 429: {detail}"),
                };
            }
        }
        plain_answer(status, headers, detail)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.url]
    }
}
