//! Who vouches for an alert, and for a request to act.
//!
//! Pub/sub and streams carry no sender: any client allowed to publish a
//! `health_alert` (every collector is) could name another host's container,
//! and the analyzer would diagnose it and ask the gate to act on that host.
//! So publishing an alert attests it first: the alert's digest is written
//! under the named host's own prefix ([`keys::attestation`]), which Redis's
//! ACL lets only that host's collector (and the operator) write (see
//! [`crate::acl`]). The analyzer diagnoses only alerts whose host attested
//! them; a collector of another host that names it is refused by Redis when
//! it tries to attest.
//!
//! The digest covers the whole envelope (time, host, container, evidence),
//! so an attestation vouches for that alert and no other. An attested alert
//! published again as it was is the same alert: the gate's cooldown and the
//! responder's idempotency treat it as such.
//!
//! A `remediation_needed` is attested the same way, under a prefix only the
//! analyzers (and the operator) may write ([`keys::request_attestation`]):
//! the bridge writes every stream (it delivers, dead-letters and relays
//! their records), so a stolen bridge password, or a dead letter it forged
//! and an operator replayed, could otherwise put a request to act on any
//! container before the responder. The responder acts only on attested
//! requests.
//!
//! An `approval_answer` the dashboard publishes (a person pressed Approve
//! or Deny on its page) is attested under a third prefix, which only the
//! dashboard (and the operator) may write ([`keys::answer_attestation`]):
//! the responder applies an answer only if the dashboard attested it, or
//! if it carries a Slack request whose signature the responder verifies
//! itself ([`crate::approval::ApprovalAnswer`]).

use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::{
    connection::Connection, container::check_host, envelope::Envelope, error::ProtocolError, event::EventKind, keys,
};

/// The envelope's digest: of its JSON as this crate writes it, which a
/// parsed envelope writes again byte for byte (sorted keys, floats that
/// round-trip), so the publisher and the analyzer agree.
pub fn digest(env: &Envelope) -> String {
    let digest = Sha256::digest(env.to_json().as_bytes());
    hex::encode(&digest[..16])
}

/// The host an envelope needs the attestation of: a `health_alert`'s
/// `host`, if it is a valid host name.
pub fn host(env: &Envelope) -> Option<&str> {
    if env.kind != EventKind::HealthAlert {
        return None;
    }
    env.data.get("host").and_then(|h| h.as_str()).filter(|h| check_host(h).is_ok())
}

/// The attestation key of `env`, when it has one: an alert's under its
/// host's prefix, a request's under the analyzers', an approval answer's
/// under the dashboard's. Other kinds are not attested.
pub fn key(env: &Envelope) -> Option<String> {
    match env.kind {
        EventKind::RemediationNeeded => Some(keys::request_attestation(&digest(env))),
        EventKind::ApprovalAnswer => Some(keys::answer_attestation(&digest(env))),
        _ => host(env).map(|h| keys::attestation(h, &digest(env))),
    }
}

/// Attests `env` (before it is published). A credential that may not
/// write the named host's keys is refused here, and so the alert is not
/// published.
pub(crate) async fn attest(conn: &Connection, key: &str) -> Result<(), ProtocolError> {
    let mut conn = conn.clone();
    let () = conn.set_ex(key, 1, keys::ATTESTATION_TTL.as_secs()).await?;
    Ok(())
}

/// Whether `env` was attested: an alert by the host it names, a request by
/// an analyzer. `false` for an envelope that cannot be attested (another
/// kind, an alert without a valid host).
pub async fn is_attested(conn: &Connection, env: &Envelope) -> Result<bool, ProtocolError> {
    let Some(key) = key(env) else { return Ok(false) };
    let mut conn = conn.clone();
    Ok(conn.exists(&key).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::agent;

    fn alert(host: &str, cpu: f64) -> Envelope {
        let data = serde_json::json!({
            "container": "web", "host": host, "timestamp": "2026-12-06T10:00:00.000001",
            "anomalies": [{"type": "high_cpu", "severity": "high", "threshold": 85.0, "value": cpu}],
            "metrics": {"cpu_percent": cpu, "memory_percent": 0.1 + 0.2},
        });
        Envelope::new(agent::MONITOR, EventKind::HealthAlert, &data).unwrap()
    }

    #[test]
    fn a_parsed_alert_has_the_digest_it_was_published_with() {
        for cpu in [97.123_456_789_012_34, 1e-7, 85.0, 0.1 + 0.2] {
            let sent = alert("web-1", cpu);
            let received = Envelope::parse(sent.to_json().as_bytes()).unwrap();
            assert_eq!(digest(&sent), digest(&received), "{}", sent.to_json());
            assert_eq!(key(&sent), key(&received));
        }
    }

    #[test]
    fn the_key_is_under_the_named_host_and_covers_the_whole_alert() {
        let a = alert("web-1", 90.0);
        assert!(key(&a).unwrap().starts_with("hemostat:attested:web-1/"), "{:?}", key(&a));
        assert_ne!(key(&a), key(&alert("web-1", 90.5)), "another alert of the same container");
        assert_ne!(key(&a), key(&alert("web-2", 90.0)).map(|k| k.replace("web-2", "web-1")));
        // Not an alert nor a request, or a host that is no host name: nothing to attest.
        let complete =
            Envelope::new("x", EventKind::RemediationComplete, &serde_json::json!({"host": "web-1"})).unwrap();
        assert_eq!(key(&complete), None);
        assert_eq!(key(&alert("web-1/../x", 90.0)), None);
        assert_eq!(key(&alert("a*", 90.0)), None);
    }

    #[test]
    fn a_request_is_attested_under_the_analyzers_prefix_whatever_host_it_names() {
        let needed = |host: &str| {
            Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, &serde_json::json!({"host": host})).unwrap()
        };
        let key = key(&needed("web-1")).unwrap();
        assert!(key.starts_with("hemostat:requested:") && !key.contains("web-1"), "{key}");
        assert_ne!(Some(key), super::key(&needed("web-2")));
    }

    #[test]
    fn an_approval_answer_is_attested_under_the_dashboards_prefix() {
        let answer = |by: &str| {
            Envelope::new("dashboard", EventKind::ApprovalAnswer, &serde_json::json!({"id": "a", "by": by})).unwrap()
        };
        let key = key(&answer("dashboard")).unwrap();
        assert!(key.starts_with("hemostat:answered:"), "{key}");
        assert_ne!(Some(key), super::key(&answer("dashboard:eve")), "another answer, another key");
    }
}
