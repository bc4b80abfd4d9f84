//! Answers to approvals: the requests that carry one, read and checked
//! (pure functions; the handler publishes what they accept).
//!
//! - `POST /slack/actions`: Slack's Approve and Deny buttons (the Slack
//!   app's Interactivity Request URL). Authenticated by Slack's signature,
//!   verified with `SLACK_SIGNING_SECRET` before anything is read; the
//!   request is passed on as received, so the responder verifies it again
//!   and takes who answered from it.
//! - `POST /api/approvals/<id>/approve|deny`: the page's buttons, with the
//!   dashboard's own authentication and [`crate::auth::same_origin`];
//!   optional JSON body `{"reason": "..."}`.

use http::{HeaderMap, StatusCode};

use hemostat_protocol::approval::{
    self, ApprovalAnswer, Decision, SlackRequest,
    slack::{self, MAX_BODY_BYTES},
};

/// Where Slack sends button presses.
pub const SLACK_PATH: &str = "/slack/actions";

/// The largest body of a dashboard answer (a reason is at most
/// [`approval::MAX_REASON_CHARS`]).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// A Slack request that is not passed on: the status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub reason: String,
}

fn refused(status: StatusCode, reason: impl Into<String>) -> Refused {
    Refused { status, reason: reason.into() }
}

/// The answer a Slack request carries, once its signature verifies with
/// `secret` within [`slack::MAX_AGE_SECONDS`] of `now_secs`: 413 for a body
/// over [`MAX_BODY_BYTES`], 401 for a missing or bad signature or a stale
/// timestamp, 400 for a verified request that is no button press of ours.
pub fn slack_answer(secret: &[u8], headers: &HeaderMap, body: &[u8], now_secs: i64) -> Result<ApprovalAnswer, Refused> {
    if body.len() > MAX_BODY_BYTES {
        return Err(refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a Slack request is at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(timestamp), Some(signature)) = (header("x-slack-request-timestamp"), header("x-slack-signature")) else {
        return Err(refused(StatusCode::UNAUTHORIZED, "no X-Slack-Request-Timestamp or X-Slack-Signature"));
    };
    slack::verify(secret, &timestamp, &signature, body, now_secs)
        .map_err(|e| refused(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let press = slack::press(body).map_err(|e| refused(StatusCode::BAD_REQUEST, e.to_string()))?;
    // Form-encoded, so ASCII; anything else was not Slack's.
    let body = String::from_utf8(body.to_vec()).map_err(|_| refused(StatusCode::BAD_REQUEST, "body is not text"))?;
    Ok(ApprovalAnswer::from_slack(&press, SlackRequest { timestamp, signature, body }))
}

/// `/api/approvals/<id>/approve|deny`: the id and the answer. `None`
/// for any other path under `/api/approvals/` (or an id of another shape).
pub fn answer_route(path: &str) -> Option<(&str, Decision)> {
    let rest = path.strip_prefix("/api/approvals/")?;
    let (id, verb) = rest.split_once('/')?;
    let decision = match verb {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        _ => return None,
    };
    approval::valid_id(id).then_some((id, decision))
}

/// The reason in a dashboard answer's body: empty, or a JSON object with
/// an optional string `reason`.
pub fn reason(body: &[u8]) -> Result<Option<String>, String> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(format!("the body is at most {MAX_ANSWER_BYTES} bytes"));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_owned())?;
    let object = v.as_object().ok_or("the body is not a JSON object")?;
    match object.get("reason") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(r)) => Ok(Some(r.chars().take(approval::MAX_REASON_CHARS).collect())),
        Some(_) => Err("reason is not a string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hemostat_protocol::approval::slack::{APPROVE_ACTION, DENY_ACTION, sign};

    const SECRET: &[u8] = b"s1ack-secret";
    const ID: &str = "0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_765_000_000;

    fn press(action: &str) -> Vec<u8> {
        let payload = serde_json::json!({"type": "block_actions", "user": {"id": "U2CERLKJA"},
            "actions": [{"action_id": action, "value": ID}]});
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    fn signed(body: &[u8], at: i64, secret: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-slack-request-timestamp", at.to_string().parse().unwrap());
        h.insert("x-slack-signature", sign(secret, &at.to_string(), body).parse().unwrap());
        h
    }

    #[test]
    fn a_signed_press_is_passed_on_as_received() {
        let body = press(APPROVE_ACTION);
        let a = slack_answer(SECRET, &signed(&body, NOW - 5, SECRET), &body, NOW).unwrap();
        assert_eq!((a.id.as_str(), a.answer, a.by.as_str()), (ID, Decision::Approve, "slack:U2CERLKJA"));
        let request = a.slack.as_ref().unwrap();
        assert_eq!((request.body.as_bytes(), request.timestamp.as_str()), (body.as_slice(), "1764999995"));
        // What the responder checks again.
        assert!(a.vouched(Some(SECRET), false, NOW).is_ok());
        let body = press(DENY_ACTION);
        assert_eq!(slack_answer(SECRET, &signed(&body, NOW, SECRET), &body, NOW).unwrap().answer, Decision::Deny);
    }

    #[test]
    fn unsigned_forged_stale_or_huge_requests_are_refused() {
        let body = press(APPROVE_ACTION);
        let status = |h: &HeaderMap, b: &[u8]| slack_answer(SECRET, h, b, NOW).unwrap_err().status;
        assert_eq!(status(&HeaderMap::new(), &body), StatusCode::UNAUTHORIZED);
        assert_eq!(status(&signed(&body, NOW, b"other secret"), &body), StatusCode::UNAUTHORIZED);
        assert_eq!(status(&signed(&body, NOW - 301, SECRET), &body), StatusCode::UNAUTHORIZED);
        assert_eq!(status(&signed(&body, NOW + 301, SECRET), &body), StatusCode::UNAUTHORIZED);
        let mut only_timestamp = signed(&body, NOW, SECRET);
        only_timestamp.remove("x-slack-signature");
        assert_eq!(status(&only_timestamp, &body), StatusCode::UNAUTHORIZED);
        // Signed, but a body other than the one signed.
        assert_eq!(status(&signed(&body, NOW, SECRET), &press(DENY_ACTION)), StatusCode::UNAUTHORIZED);
        // Signed, but no press of ours.
        let other = b"payload=%7B%22type%22%3A%22view_submission%22%7D";
        assert_eq!(status(&signed(other, NOW, SECRET), other), StatusCode::BAD_REQUEST);
        let huge = vec![b'a'; MAX_BODY_BYTES + 1];
        assert_eq!(status(&signed(&huge, NOW, SECRET), &huge), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn answer_paths_name_an_id_and_an_answer() {
        assert_eq!(answer_route(&format!("/api/approvals/{ID}/approve")), Some((ID, Decision::Approve)));
        assert_eq!(answer_route(&format!("/api/approvals/{ID}/deny")), Some((ID, Decision::Deny)));
        for bad in [
            format!("/api/approvals/{ID}"),
            format!("/api/approvals/{ID}/delete"),
            format!("/api/approvals/{ID}/approve/x"),
            "/api/approvals/..%2F/approve".to_owned(),
            format!("/api/approvals/{}/approve", ID.to_uppercase()),
        ] {
            assert_eq!(answer_route(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_reason_is_optional_and_bounded() {
        assert_eq!(reason(b""), Ok(None));
        assert_eq!(reason(b"{}"), Ok(None));
        assert_eq!(reason(br#"{"reason": null}"#), Ok(None));
        assert_eq!(reason(br#"{"reason": "not now"}"#), Ok(Some("not now".into())));
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(2000));
        assert_eq!(reason(long.as_bytes()).unwrap().unwrap().len(), approval::MAX_REASON_CHARS);
        for bad in [&b"reason=x"[..], b"[]", br#"{"reason": 1}"#, &vec![b' '; MAX_ANSWER_BYTES + 1]] {
            assert!(reason(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
