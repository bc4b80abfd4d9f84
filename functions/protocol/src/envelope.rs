//! The seed envelope: `{"timestamp", "agent", "type", "data"}`.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{error::ProtocolError, event::EventKind};

/// The agent names of the seed's roles. The collector plays the seed's
/// Monitor, and reports the outcome of the commands it executes for the
/// Responder, so consumers that key on these names keep working.
pub mod agent {
    pub const MONITOR: &str = "HemoStat-Monitor";
    pub const ANALYZER: &str = "HemoStat-Analyzer";
    pub const RESPONDER: &str = "HemoStat-Responder";
    pub const ALERT: &str = "HemoStat-Alert";
    /// The bridge, about itself (its lag, records it gave up as stale).
    pub const BRIDGE: &str = "HemoStat-Bridge";
    /// The dashboard, carrying a person's answer to an approval.
    pub const DASHBOARD: &str = "HemoStat-Dashboard";
}

/// One message on a seed channel or durable stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Local-time-free ISO 8601 with microseconds, as the seed writes it
    /// (`2025-11-03T10:30:45.123456`, UTC).
    pub timestamp: String,
    pub agent: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub data: Value,
}

/// Now, in the seed's timestamp format (UTC, no offset, microseconds).
pub fn seed_timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

impl Envelope {
    /// Wraps typed `data` in an envelope stamped now.
    pub fn new<T: Serialize>(agent: &str, kind: EventKind, data: &T) -> Result<Self, ProtocolError> {
        Ok(Envelope { timestamp: seed_timestamp(), agent: agent.to_owned(), kind, data: serde_json::to_value(data)? })
    }

    /// Parses bytes from a channel or stream; anything that is not a seed
    /// envelope is an error value that says why.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ProtocolError::MalformedEnvelope(format!("not JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| ProtocolError::MalformedEnvelope("not a JSON object".into()))?;
        for field in ["timestamp", "agent", "type", "data"] {
            if !obj.contains_key(field) {
                return Err(ProtocolError::MalformedEnvelope(format!("missing field {field:?}")));
            }
        }
        let kind =
            obj["type"].as_str().ok_or_else(|| ProtocolError::MalformedEnvelope("\"type\" is not a string".into()))?;
        // Checked separately so an unknown type is reported as such, not as
        // a generic deserialisation failure.
        kind.parse::<EventKind>()?;
        serde_json::from_value(value).map_err(|e| ProtocolError::MalformedEnvelope(e.to_string()))
    }

    /// The typed `data`, checked against the envelope's kind.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        T::deserialize(&self.data)
            .map_err(|e| ProtocolError::MalformedData { kind: self.kind.to_string(), reason: e.to_string() })
    }

    /// The typed `data`, after checking the envelope is of `kind`: what a
    /// function does first with every record.
    pub fn data_of<T: DeserializeOwned>(&self, kind: EventKind) -> Result<T, ProtocolError> {
        if self.kind != kind {
            return Err(ProtocolError::MalformedData {
                kind: self.kind.to_string(),
                reason: format!("expected a {kind} event"),
            });
        }
        self.data_as()
    }

    pub fn to_json(&self) -> String {
        // An Envelope holds only JSON values and strings: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::HealthAlert;

    const SEED_HEALTH_ALERT: &str = r#"{ "timestamp": "2025-11-03T10:30:45.123456", "agent": "HemoStat-Monitor", "type": "health_alert", "data": { "container": "hemostat-test-api", "issues": ["High CPU: 92.5%"], "metrics": { "name": "hemostat-test-api", "status": "running", "memory_pct": 45.2, "cpu_pct": 92.5, "timestamp": "2025-11-03T10:30:45" } } }"#;

    #[test]
    fn parses_the_seed_example_verbatim() {
        let env = Envelope::parse(SEED_HEALTH_ALERT.as_bytes()).unwrap();
        assert_eq!(env.kind, EventKind::HealthAlert);
        let alert: HealthAlert = env.data_as().unwrap();
        assert_eq!(alert.container, "hemostat-test-api");
        assert_eq!(alert.metrics.cpu_pct, 92.5);
        assert_eq!(alert.issues, vec!["High CPU: 92.5%"]);
    }

    #[test]
    fn round_trips_with_the_seed_field_names() {
        let env = Envelope::parse(SEED_HEALTH_ALERT.as_bytes()).unwrap();
        let v: Value = serde_json::from_str(&env.to_json()).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["agent", "data", "timestamp", "type"]);
        assert_eq!(v["type"], "health_alert");
    }

    #[test]
    fn numbers_survive_a_round_trip_exactly() {
        // Found by hemostat-fuzz (envelope): serde_json's default float parser
        // read the shortest form of this number 1 ULP away.
        let json = br#"{"timestamp":"t","agent":"a","type":"false_alarm","data":{"confidence":2.222222222222222e+44}}"#;
        let env = Envelope::parse(json).unwrap();
        assert_eq!(Envelope::parse(env.to_json().as_bytes()).unwrap(), env);
    }

    #[test]
    fn timestamp_has_the_seed_format() {
        let ts = seed_timestamp();
        assert!(chrono::NaiveDateTime::parse_from_str(&ts, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(), "{ts}");
        assert_eq!(ts.len(), "2025-11-03T10:30:45.123456".len());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            b"",
            b"not json",
            b"[1,2]",
            b"{}",
            b"{\"timestamp\":\"x\",\"agent\":\"a\",\"type\":7,\"data\":{}}",
            b"{\"timestamp\":\"x\",\"agent\":\"a\",\"type\":\"nope\",\"data\":{}}",
            &[0xff, 0xfe, 0x00],
        ];
        for case in cases {
            assert!(Envelope::parse(case).is_err(), "{case:?}");
        }
        let unknown = Envelope::parse(b"{\"timestamp\":\"x\",\"agent\":\"a\",\"type\":\"nope\",\"data\":{}}");
        assert!(matches!(unknown, Err(ProtocolError::UnknownEventType(t)) if t == "nope"));
        // Well-formed envelope, data of the wrong shape: error at data_as.
        let env = Envelope::parse(
            b"{\"timestamp\":\"x\",\"agent\":\"a\",\"type\":\"health_alert\",\"data\":{\"container\":5}}",
        )
        .unwrap();
        assert!(env.data_as::<HealthAlert>().is_err());
    }
}
