//! Slack's incoming webhook: a message with one coloured attachment.
//! Answers: 200 `ok`; 429 with `Retry-After` (seconds); 400/403/404 with a
//! plain-text reason (`invalid_payload`, `no_service`) are final.

use hemostat_protocol::{approval::slack, secret::Secret};
use serde_json::{Value, json};

use super::{Request, Service};
use crate::notice::Notice;

#[derive(Debug)]
pub struct Slack {
    pub url: Secret,
    /// `ALERT_SLACK_APPROVAL_BUTTONS`: Approve and Deny buttons on approval requests.
    pub buttons: bool,
}

impl Service for Slack {
    fn request(&self, _envelope_json: &str, notice: &Notice) -> Request {
        let mut body = message(notice);
        if self.buttons
            && let Some(id) = &notice.approval
        {
            body["blocks"] = approval_blocks(notice, id);
        }
        Request::json(self.url.expose(), &body)
    }

    fn answer(&self, status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap, body: &[u8]) -> super::Answer {
        // Slack's errors are one plain word (`invalid_token`, `no_service`).
        let detail: String = String::from_utf8_lossy(body).chars().filter(|c| !c.is_control()).take(100).collect();
        super::plain_answer(status, headers, detail)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.url]
    }
}

/// Slack's control characters escaped as its docs require: `&`, `<` and
/// `>` (and nothing else), so text from containers, logs or an LLM can
/// neither mention `<!channel>` nor forge a link.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The key evidence lines as a Slack code block, escaped; a line's own
/// triple backticks would end the block early, so they are broken up.
fn code_block(lines: &[String]) -> String {
    let body: Vec<String> = lines.iter().map(|l| escape(l).replace("```", "`\u{200b}`\u{200b}`")).collect();
    format!("```\n{}\n```", body.join("\n"))
}

/// Slack's legacy attachments: the only layout with a coloured bar, which
/// is how the seed tells outcomes apart at a glance.
pub fn message(notice: &Notice) -> Value {
    let mut fields: Vec<Value> =
        notice.fields.iter().map(|f| json!({"title": f.title, "value": escape(&f.value), "short": f.short})).collect();
    let has_lines = !notice.evidence.is_empty();
    if has_lines {
        // Right after the diagnosis it supports.
        let at = notice
            .fields
            .iter()
            .rposition(|f| f.title == "Cause" || f.title == "Recommendation")
            .map_or(fields.len(), |i| i + 1);
        fields.insert(at, json!({"title": "Evidence", "value": code_block(&notice.evidence), "short": false}));
    }
    // The top-level text is what the push notification and the channel
    // preview show; a critical alert left alone must stand out there too.
    let title = escape(&notice.title);
    let text = if notice.critical_no_action { format!(":rotating_light: *{title}*") } else { title.clone() };
    let ts = chrono::NaiveDateTime::parse_from_str(&notice.timestamp, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp());
    let mut attachment = json!({
        "color": notice.color,
        "fallback": escape(&format!("{}: {}", notice.title, notice.text)),
        "title": title,
        "text": escape(&notice.text),
        "fields": fields,
        "footer": format!("HemoStat · {}", notice.kind),
        "ts": ts,
    });
    if has_lines {
        // Field values are plain text unless asked; the code block needs mrkdwn.
        attachment["mrkdwn_in"] = json!(["fields"]);
    }
    json!({"text": text, "attachments": [attachment]})
}

/// Approve and Deny buttons carrying the approval's id (Slack's
/// interactivity sends the press to the app's Request URL, the dashboard's
/// `/slack/actions`, which verifies it ([`slack::verify`]) and passes it to
/// the responder, which verifies it again); the text still says how to
/// answer without them.
fn approval_blocks(notice: &Notice, id: &str) -> Value {
    json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", escape(&notice.title), escape(&notice.text))}},
        {"type": "actions", "block_id": "hemostat_approval", "elements": [
            {"type": "button", "action_id": slack::APPROVE_ACTION, "value": id, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": slack::DENY_ACTION, "value": id, "style": "danger",
             "text": {"type": "plain_text", "text": "Deny"}},
        ]},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    use hemostat_protocol::Envelope;

    use crate::sinks::fixture::notice;

    #[test]
    fn slack_message_has_one_coloured_attachment_with_fields() {
        let msg = message(&notice());
        let a = &msg["attachments"][0];
        assert_eq!(a["color"], "#ff0000");
        assert_eq!(a["text"], "no such container");
        assert_eq!(a["ts"], 1_762_165_853);
        let titles: Vec<&str> = a["fields"].as_array().unwrap().iter().map(|f| f["title"].as_str().unwrap()).collect();
        for t in
            ["Host", "Container", "Action", "Status", "Error", "Confidence", "Analysis method", "Duration", "Verified"]
        {
            assert!(titles.contains(&t), "{t} in {titles:?}");
        }
    }

    const DIAGNOSED: &str = r#"{"timestamp":"2025-11-03T10:30:53.789012","agent":"HemoStat-Responder","type":"remediation_complete","data":{"container":"web","host":"h1","action":"restart","reason":"Exited with code 1","result":{"status":"failed","action":"restart","container":"web","error":"exited again"},"diagnosis":{"cause":"port_in_use","summary":"Port 8080 is taken by <another> process.","evidence":["Error: listen EADDRINUSE: address already in use :::8080","<!channel> & ```rm -rf```"],"restart_helps":false,"recommendation":"Free the port & retry."}}}"#;

    #[test]
    fn slack_carries_cause_recommendation_and_escaped_key_lines() {
        let diagnosed = crate::notice::of(&Envelope::parse(DIAGNOSED.as_bytes()).unwrap()).unwrap();
        let msg = message(&diagnosed);
        let a = &msg["attachments"][0];
        let fields = a["fields"].as_array().unwrap();
        let titles: Vec<&str> = fields.iter().map(|f| f["title"].as_str().unwrap()).collect();
        let at = |t: &str| titles.iter().position(|x| *x == t).unwrap_or_else(|| panic!("{t} in {titles:?}"));
        assert_eq!(at("Recommendation") + 1, at("Evidence"), "the lines follow the diagnosis: {titles:?}");
        assert_eq!(fields[at("Cause")]["value"], "port_in_use: Port 8080 is taken by &lt;another&gt; process.");
        assert_eq!(fields[at("Recommendation")]["value"], "Free the port &amp; retry.");
        let block = fields[at("Evidence")]["value"].as_str().unwrap();
        assert!(block.starts_with("```\nError: listen EADDRINUSE") && block.ends_with("\n```"), "{block}");
        assert!(block.contains("&lt;!channel&gt; &amp; "), "{block}");
        assert!(!block.contains('<') && block.matches("```").count() == 2, "{block}");
        assert_eq!(a["mrkdwn_in"], json!(["fields"]));
        // Without a diagnosis: no such fields, no mrkdwn.
        let plain = message(&notice());
        assert!(plain["attachments"][0].get("mrkdwn_in").is_none());
        assert!(plain["attachments"][0]["fields"].as_array().unwrap().iter().all(|f| f["title"] != "Evidence"));
    }

    #[test]
    fn an_approval_request_carries_approve_and_deny_buttons_with_its_id() {
        let id = "0123456789abcdef0123456789abcdef";
        let body = format!(
            r#"{{"timestamp":"2025-11-03T10:30:53.789012","agent":"HemoStat-Responder","type":"system_alert","data":{{"kind":"approval_requested","severity":"high","host":"h1","container":"web","message":"h1/web: restart waits <for> a yes","approval":"{id}"}}}}"#
        );
        let asked = crate::notice::of(&Envelope::parse(body.as_bytes()).unwrap()).unwrap();
        let with = Slack { url: Secret::new("https://hooks.example/T0/X"), buttons: true };
        let msg: Value = serde_json::from_slice(&with.request("", &asked).body).unwrap();
        let buttons = msg["blocks"][1]["elements"].as_array().unwrap();
        let pressed: Vec<(&str, &str)> =
            buttons.iter().map(|b| (b["action_id"].as_str().unwrap(), b["value"].as_str().unwrap())).collect();
        assert_eq!(pressed, [(slack::APPROVE_ACTION, id), (slack::DENY_ACTION, id)]);
        assert!(msg["blocks"][0]["text"]["text"].as_str().unwrap().contains("waits &lt;for&gt; a yes"), "{msg}");
        let body_of = |s: &Slack, n: &Notice| serde_json::from_slice::<Value>(&s.request("", n).body).unwrap();
        assert!(body_of(&with, &notice()).get("blocks").is_none(), "only an approval request has buttons");
        let without = Slack { buttons: false, ..with };
        assert!(body_of(&without, &asked).get("blocks").is_none(), "buttons only when asked for");
        assert!(body_of(&without, &asked)["attachments"][0]["text"].as_str().unwrap().contains("a yes"));
    }

    #[test]
    fn escape_touches_only_the_three_control_characters() {
        assert_eq!(escape("a & b <@U1> > *c*"), "a &amp; b &lt;@U1&gt; &gt; *c*");
    }
}
