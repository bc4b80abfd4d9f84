//! Remediation commands: from the responder to one host's collector.
//!
//! A command travels as a stream entry with two fields: `command` (the JSON
//! below) and `signature` (hex HMAC-SHA256 of exactly those JSON bytes, when
//! a command key is configured). Signing the bytes rather than a
//! re-serialisation keeps verification independent of field order and of
//! fields a newer responder may add.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

// Re-exported: an action is part of every command, and this was its path.
pub use crate::action::Action;
use crate::{error::ProtocolError, event::IncidentContext};

/// One instruction to a collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique id; a collector executes each id at most once.
    pub id: String,
    pub host: String,
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub confidence: f64,
    /// RFC 3339.
    pub issued_at: String,
    #[serde(default)]
    pub dry_run: bool,
    /// `exec` only: the command line to run in the container, as argv (no
    /// shell). Omitted when empty, so commands without it serialise (and
    /// sign) exactly as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Context the collector copies into its `remediation_complete`, so the
    /// alert can say how the decision was taken and how long the fix took.
    /// Flattened, its fields omitted when unknown, so commands without them
    /// serialise (and sign) exactly as before.
    #[serde(flatten)]
    pub context: IncidentContext,
}

/// A command as it sits in a host's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCommand {
    pub json: String,
    pub signature: Option<String>,
}

/// The field of a command stream entry that holds the command JSON.
pub const COMMAND_FIELD: &str = "command";
/// The field that holds the hex signature; absent when unsigned.
pub const SIGNATURE_FIELD: &str = "signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], bytes: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(bytes);
    mac
}

impl Command {
    /// Serialises and, with a key, signs.
    pub fn seal(&self, key: Option<&[u8]>) -> SignedCommand {
        let json = serde_json::to_string(self).unwrap_or_default();
        let signature = key.map(|k| hex::encode(mac(k, json.as_bytes()).finalize().into_bytes()));
        SignedCommand { json, signature }
    }
}

impl SignedCommand {
    /// The fields of its stream entry: the command, then the signature if any.
    pub fn to_fields(&self) -> Vec<(&'static str, &str)> {
        let mut fields = vec![(COMMAND_FIELD, self.json.as_str())];
        if let Some(sig) = &self.signature {
            fields.push((SIGNATURE_FIELD, sig.as_str()));
        }
        fields
    }

    /// Reads a stream entry's fields; `None` without a command field.
    pub fn from_fields(fields: &HashMap<String, String>) -> Option<SignedCommand> {
        Some(SignedCommand {
            json: fields.get(COMMAND_FIELD)?.clone(),
            signature: fields.get(SIGNATURE_FIELD).cloned(),
        })
    }

    /// Verifies (when a key is configured) and parses. With a key, an
    /// unsigned or forged command is refused before its JSON is even read.
    pub fn open(&self, key: Option<&[u8]>) -> Result<Command, ProtocolError> {
        if let Some(key) = key {
            let sig = self.signature.as_deref().ok_or(ProtocolError::BadSignature("unsigned"))?;
            let sig = hex::decode(sig).map_err(|_| ProtocolError::BadSignature("not hex"))?;
            // verify_slice compares in constant time.
            mac(key, self.json.as_bytes())
                .verify_slice(&sig)
                .map_err(|_| ProtocolError::BadSignature("does not match"))?;
        }
        serde_json::from_str(&self.json).map_err(|e| ProtocolError::MalformedCommand(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        Command {
            id: "c1".into(),
            host: "h1".into(),
            container: "web".into(),
            container_id: None,
            action: Action::Restart,
            reason: "exit 1".into(),
            confidence: 0.9,
            issued_at: "2026-01-01T00:00:00Z".into(),
            dry_run: false,
            context: Default::default(),
            args: Vec::new(),
        }
    }

    #[test]
    fn signed_commands_verify_and_forgeries_do_not() {
        let key = b"secret-key";
        let sealed = command().seal(Some(key));
        assert_eq!(sealed.open(Some(key)).unwrap(), command());

        let unsigned = command().seal(None);
        assert!(matches!(unsigned.open(Some(key)), Err(ProtocolError::BadSignature("unsigned"))));

        let mut forged = sealed.clone();
        forged.json = forged.json.replace("restart", "cleanup");
        assert!(matches!(forged.open(Some(key)), Err(ProtocolError::BadSignature(_))));

        let wrong_key = command().seal(Some(b"other"));
        assert!(wrong_key.open(Some(key)).is_err());
        // Without a key configured, unsigned commands are accepted.
        assert_eq!(unsigned.open(None).unwrap(), command());
    }

    #[test]
    fn args_are_optional_and_omitted_when_empty() {
        let json = command().seal(None).json;
        assert!(!json.contains("args"), "{json}");
        let mut exec = command();
        exec.action = Action::Exec;
        exec.args = vec!["nginx".into(), "-s".into(), "reload".into()];
        assert_eq!(exec.seal(None).open(None).unwrap(), exec);
    }

    #[test]
    fn stream_fields_round_trip() {
        let sealed = command().seal(Some(b"k"));
        let fields = sealed.to_fields();
        assert_eq!(fields[0], ("command", sealed.json.as_str()));
        assert_eq!(fields[1], ("signature", sealed.signature.as_deref().unwrap()));
        let map: HashMap<String, String> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(SignedCommand::from_fields(&map), Some(sealed));

        let unsigned = command().seal(None);
        assert_eq!(unsigned.to_fields().len(), 1);
        let map: HashMap<String, String> =
            unsigned.to_fields().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(SignedCommand::from_fields(&map), Some(unsigned));
        assert_eq!(SignedCommand::from_fields(&HashMap::new()), None);
    }

    #[test]
    fn malformed_command_is_an_error() {
        let bad = SignedCommand { json: "{\"id\":1}".into(), signature: None };
        assert!(matches!(bad.open(None), Err(ProtocolError::MalformedCommand(_))));
    }
}
