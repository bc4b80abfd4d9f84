//! Microsoft Teams through a Workflows webhook (the successor of Office 365
//! connectors; <https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>):
//! a `message` with one Adaptive Card attachment: a coloured title, the
//! text, the fields as a fact set. Answers: 202 (Workflows) or 200 (legacy
//! connectors); 400 for a card it cannot read; 429 with `Retry-After`.

use hemostat_protocol::secret::Secret;
use serde_json::{Value, json};

use super::{Request, Service};
use crate::notice::{Level, Notice};

#[derive(Debug)]
pub struct Teams {
    pub url: Secret,
}

/// The card: Adaptive Card 1.4, what Teams renders everywhere.
pub fn message(notice: &Notice) -> Value {
    let color = match notice.level() {
        _ if notice.status == "success" || notice.status.ends_with("_recovered") => "Good",
        Level::Info => "Default",
        Level::Warning => "Warning",
        Level::Error | Level::Critical => "Attention",
    };
    let facts: Vec<Value> = notice.fields.iter().map(|f| json!({"title": f.title, "value": f.value})).collect();
    let mut body = vec![
        json!({"type": "TextBlock", "text": notice.title, "weight": "Bolder", "size": "Medium", "color": color, "wrap": true}),
        json!({"type": "TextBlock", "text": notice.text, "wrap": true}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    if !notice.evidence.is_empty() {
        body.push(
            json!({"type": "TextBlock", "text": notice.evidence.join("\n"), "fontType": "Monospace", "wrap": true}),
        );
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

impl Service for Teams {
    fn request(&self, _envelope_json: &str, notice: &Notice) -> Request {
        Request::json(self.url.expose(), &message(notice))
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.url]
    }
}
