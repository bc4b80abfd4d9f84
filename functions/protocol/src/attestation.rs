//! Which collector vouches for an alert.
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
/// `host`, if it is a valid host name. Other kinds are not attested.
pub fn host(env: &Envelope) -> Option<&str> {
    if env.kind != EventKind::HealthAlert {
        return None;
    }
    env.data.get("host").and_then(|h| h.as_str()).filter(|h| check_host(h).is_ok())
}

/// The attestation key of `env`, when it has one.
pub fn key(env: &Envelope) -> Option<String> {
    host(env).map(|h| keys::attestation(h, &digest(env)))
}

/// Attests `env` (before it is published). A credential that may not
/// write the named host's keys is refused here, and so the alert is not
/// published.
pub(crate) async fn attest(conn: &Connection, key: &str) -> Result<(), ProtocolError> {
    let mut conn = conn.clone();
    let () = conn.set_ex(key, 1, keys::ATTESTATION_TTL.as_secs()).await?;
    Ok(())
}

/// Whether the host `env` names attested it. `false` for an envelope that
/// cannot be attested (not an alert, no valid host).
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
        // Not an alert, or a host that is no host name: nothing to attest.
        let needed = Envelope::new("x", EventKind::RemediationNeeded, &serde_json::json!({"host": "web-1"})).unwrap();
        assert_eq!(key(&needed), None);
        assert_eq!(key(&alert("web-1/../x", 90.0)), None);
        assert_eq!(key(&alert("a*", 90.0)), None);
    }
}
