//! The generic JSON webhook: the envelope exactly as received plus the
//! notice as a summary, HMAC-signed when a secret is set. Answers: any 2xx
//! accepted; 408, 429 (with `Retry-After`) and 5xx retried; others final.

use hemostat_protocol::secret::Secret;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Request, Service};
use crate::notice::Notice;

/// Header carrying the webhook body's HMAC-SHA256 (`sha256=<hex>`), as
/// GitHub's `X-Hub-Signature-256`, so existing verifiers can be reused.
pub const SIGNATURE_HEADER: &str = "X-HemoStat-Signature-256";
/// Header naming the event type, so a receiver can route before parsing.
pub const EVENT_HEADER: &str = "X-HemoStat-Event";
/// Header with the notice's fingerprint: a receiver's own dedupe key.
pub const FINGERPRINT_HEADER: &str = "X-HemoStat-Fingerprint";

#[derive(Debug)]
pub struct Webhook {
    pub url: Secret,
    pub secret: Option<Secret>,
}

impl Service for Webhook {
    fn request(&self, envelope_json: &str, notice: &Notice) -> Request {
        let mut request = Request::json(self.url.expose(), &webhook(envelope_json, notice));
        request.text_header(EVENT_HEADER, notice.kind.as_str());
        request.text_header(FINGERPRINT_HEADER, &notice.fingerprint);
        if let Some(secret) = &self.secret {
            let sig = signature(secret.expose().as_bytes(), &request.body);
            request.text_header(SIGNATURE_HEADER, &sig);
        }
        request
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.secret.iter().chain([&self.url]).collect()
    }
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

    use crate::sinks::fixture::{BODY, notice};

    #[test]
    fn webhook_carries_the_envelope_verbatim_and_a_summary() {
        let payload = webhook(BODY, &notice());
        assert_eq!(payload["envelope"], serde_json::from_str::<Value>(BODY).unwrap());
        assert_eq!(payload["summary"]["status"], "failed");
        assert_eq!(payload["summary"]["type"], "remediation_complete");
        assert_eq!(payload["summary"]["color"], "#ff0000");
    }

    const DIAGNOSED: &str = r#"{"timestamp":"2025-11-03T10:30:53.789012","agent":"HemoStat-Responder","type":"remediation_complete","data":{"container":"web","host":"h1","action":"restart","reason":"Exited with code 1","result":{"status":"failed","action":"restart","container":"web","error":"exited again"},"diagnosis":{"cause":"port_in_use","summary":"Port 8080 is taken by <another> process.","evidence":["Error: listen EADDRINUSE: address already in use :::8080","<!channel> & ```rm -rf```"],"restart_helps":false,"recommendation":"Free the port & retry."}}}"#;

    #[test]
    fn webhook_summary_carries_the_diagnosis_unescaped() {
        let notice = crate::notice::of(&Envelope::parse(DIAGNOSED.as_bytes()).unwrap()).unwrap();
        let summary = &webhook(DIAGNOSED, &notice)["summary"];
        assert_eq!(summary["cause"], "port_in_use");
        assert_eq!(summary["cause_summary"], "Port 8080 is taken by <another> process.");
        assert_eq!(summary["recommendation"], "Free the port & retry.");
        assert_eq!(
            summary["evidence"],
            json!(["Error: listen EADDRINUSE: address already in use :::8080", "<!channel> & ```rm -rf```"])
        );
    }

    #[test]
    fn signature_is_the_hmac_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
