//! The wire payloads of a notice: Slack's incoming-webhook message and the
//! generic JSON webhook.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::notice::Notice;

/// Header carrying the webhook body's HMAC-SHA256 (`sha256=<hex>`), as
/// GitHub's `X-Hub-Signature-256`, so existing verifiers can be reused.
pub const SIGNATURE_HEADER: &str = "X-HemoStat-Signature-256";
/// Header naming the event type, so a receiver can route before parsing.
pub const EVENT_HEADER: &str = "X-HemoStat-Event";
/// Header with the notice's fingerprint: a receiver's own dedupe key.
pub const FINGERPRINT_HEADER: &str = "X-HemoStat-Fingerprint";

/// Slack's legacy attachments: the only layout with a coloured bar, which
/// is how the seed tells outcomes apart at a glance.
pub fn slack(notice: &Notice) -> Value {
    let fields: Vec<Value> =
        notice.fields.iter().map(|f| json!({"title": f.title, "value": f.value, "short": f.short})).collect();
    // The top-level text is what the push notification and the channel
    // preview show; a critical alert left alone must stand out there too.
    let text =
        if notice.critical_no_action { format!(":rotating_light: *{}*", notice.title) } else { notice.title.clone() };
    let ts = chrono::NaiveDateTime::parse_from_str(&notice.timestamp, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp());
    json!({
        "text": text,
        "attachments": [{
            "color": notice.color,
            "fallback": format!("{}: {}", notice.title, notice.text),
            "title": notice.title,
            "text": notice.text,
            "fields": fields,
            "footer": format!("HemoStat · {}", notice.kind),
            "ts": ts,
        }],
    })
}

/// The generic webhook: the envelope exactly as received, plus the summary.
pub fn webhook(envelope_json: &str, notice: &Notice) -> Value {
    // The body was parsed before it got here; Null is unreachable in practice.
    let envelope: Value = serde_json::from_str(envelope_json).unwrap_or(Value::Null);
    json!({"envelope": envelope, "summary": notice})
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hemostat_protocol::Envelope;

    const BODY: &str = r#"{"timestamp":"2025-11-03T10:30:53.789012","agent":"HemoStat-Responder","type":"remediation_complete","data":{"container":"web","host":"h1","action":"restart","result":{"status":"failed","action":"restart","container":"web","error":"no such container"}}}"#;

    fn notice() -> Notice {
        crate::notice::of(&Envelope::parse(BODY.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn slack_message_has_one_coloured_attachment_with_fields() {
        let msg = slack(&notice());
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

    #[test]
    fn webhook_carries_the_envelope_verbatim_and_a_summary() {
        let payload = webhook(BODY, &notice());
        assert_eq!(payload["envelope"], serde_json::from_str::<Value>(BODY).unwrap());
        assert_eq!(payload["summary"]["status"], "failed");
        assert_eq!(payload["summary"]["type"], "remediation_complete");
        assert_eq!(payload["summary"]["color"], "#ff0000");
    }

    #[test]
    fn signature_is_the_hmac_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
