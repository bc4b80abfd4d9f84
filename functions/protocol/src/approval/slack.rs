//! Slack's interactive buttons on an `approval_requested` message: the
//! request Slack sends when someone presses Approve or Deny, verified as
//! Slack specifies before anything is read from it.
//!
//! Slack signs each request: `X-Slack-Signature: v0=<hex HMAC-SHA256 of
//! "v0:{X-Slack-Request-Timestamp}:{raw body}" keyed by the app's signing
//! secret>`. A request whose signature does not match (compared in
//! constant time), or whose timestamp is more than [`MAX_AGE_SECONDS`] away
//! from now (a replay of a request once signed), is refused unread. A
//! replay within those minutes finds its approval answered already: an
//! approval moves once.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Setting;

/// How far a request's timestamp may be from now, seconds (Slack's advice).
pub const MAX_AGE_SECONDS: i64 = 5 * 60;

/// The Slack app's signing secret, which the dashboard (it receives the
/// presses) and the responder (it applies them) each verify a press with.
pub const SIGNING_SECRET: Setting = Setting::unset(
    "SLACK_SIGNING_SECRET",
    "the Slack app's signing secret: Slack's Approve and Deny buttons are verified with it (unset: they are refused)",
)
.secret();

/// The largest request accepted from Slack, bytes (a button press is a
/// few KB; anything far larger is not one).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The `action_id`s of the two buttons; each button's `value` is the id.
pub const APPROVE_ACTION: &str = "hemostat_approve";
pub const DENY_ACTION: &str = "hemostat_deny";

/// Why a request was refused (said to the caller without the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no X-Slack-Request-Timestamp, or not a number")]
    NoTimestamp,
    #[error("request timestamp too old or in the future (more than {MAX_AGE_SECONDS} s away): a replay?")]
    Stale,
    #[error("X-Slack-Signature does not match")]
    BadSignature,
    #[error("not an approval button press: {0}")]
    NotAnAnswer(String),
}

/// Checks a request as Slack signs it; `now_secs` is the epoch now.
pub fn verify(secret: &[u8], timestamp: &str, signature: &str, body: &[u8], now_secs: i64) -> Result<(), Refused> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| Refused::NoTimestamp)?;
    if (now_secs - ts).abs() > MAX_AGE_SECONDS {
        return Err(Refused::Stale);
    }
    let expected = sign(secret, timestamp.trim(), body);
    if expected.as_bytes().ct_eq(signature.trim().as_bytes()).into() { Ok(()) } else { Err(Refused::BadSignature) }
}

/// `v0=<hex>`: what Slack sends for `body` at `timestamp` (also how tests
/// and a local trial sign a request).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A button press: which answer, on which approval, by which Slack user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    pub approve: bool,
    pub id: String,
    /// Slack's user id (`U123ABC`): who answered, as audited (`slack:U123ABC`).
    pub user: String,
}

/// Reads a verified request's body: form-encoded `payload=<JSON>` of type
/// `block_actions` with one of the two buttons.
pub fn press(body: &[u8]) -> Result<Press, Refused> {
    let bad = |why: &str| Refused::NotAnAnswer(why.to_owned());
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| bad("no payload"))?;
    let v: serde_json::Value = serde_json::from_str(&payload).map_err(|_| bad("payload is not JSON"))?;
    if v["type"] != "block_actions" {
        return Err(bad("not block_actions"));
    }
    let user = v["user"]["id"].as_str().filter(|u| !u.is_empty()).ok_or_else(|| bad("no user id"))?;
    let action = v["actions"].as_array().and_then(|a| a.first()).ok_or_else(|| bad("no action"))?;
    let approve = match action["action_id"].as_str() {
        Some(APPROVE_ACTION) => true,
        Some(DENY_ACTION) => false,
        _ => return Err(bad("unknown action_id")),
    };
    let id = action["value"].as_str().filter(|id| super::valid_id(id)).ok_or_else(|| bad("no approval id"))?;
    // Slack user ids are letters and digits; anything else is not one.
    if !user.bytes().all(|b| b.is_ascii_alphanumeric()) || user.len() > 32 {
        return Err(bad("malformed user id"));
    }
    Ok(Press { approve, id: id.to_owned(), user: user.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    #[test]
    fn slacks_own_example_verifies_and_anything_else_does_not() {
        // The example of Slack's "Verifying requests from Slack".
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let ts = "1531420618";
        assert_eq!(sign(SECRET, ts, body), sig);
        assert_eq!(verify(SECRET, ts, sig, body, 1_531_420_618 + 10), Ok(()));
        assert_eq!(verify(b"another secret", ts, sig, body, 1_531_420_618), Err(Refused::BadSignature));
        let mut tampered = body.to_vec();
        tampered[6] = b'X';
        assert_eq!(verify(SECRET, ts, sig, &tampered, 1_531_420_618), Err(Refused::BadSignature));
        assert_eq!(verify(SECRET, ts, sig, body, 1_531_420_618 + MAX_AGE_SECONDS + 1), Err(Refused::Stale));
        assert_eq!(verify(SECRET, ts, sig, body, 1_531_420_618 - MAX_AGE_SECONDS - 1), Err(Refused::Stale));
        assert_eq!(verify(SECRET, "soon", sig, body, 0), Err(Refused::NoTimestamp));
        assert_eq!(verify(SECRET, ts, "", body, 1_531_420_618), Err(Refused::BadSignature));
    }

    fn body(action: &str, value: &str, user: &str) -> Vec<u8> {
        let payload = serde_json::json!({"type": "block_actions", "user": {"id": user},
            "actions": [{"action_id": action, "value": value}]});
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    #[test]
    fn a_press_names_the_answer_the_approval_and_the_user() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            press(&body(APPROVE_ACTION, id, "U2CERLKJA")),
            Ok(Press { approve: true, id: id.into(), user: "U2CERLKJA".into() })
        );
        assert!(!press(&body(DENY_ACTION, id, "U1")).unwrap().approve);
        for bad in [body("other", id, "U1"), body(APPROVE_ACTION, "../x", "U1"), body(APPROVE_ACTION, id, "U 1")] {
            assert!(matches!(press(&bad), Err(Refused::NotAnAnswer(_))), "{}", String::from_utf8_lossy(&bad));
        }
        assert!(press(b"payload=%7B").is_err() && press(b"").is_err());
    }
}
