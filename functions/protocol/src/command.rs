//! Remediation commands: from the responder to one host's collector.
//!
//! A command travels as a stream entry with two fields: `command` (the JSON
//! below) and `signature`: `ed25519:<key id>:<base64 signature>` of exactly
//! those JSON bytes. Signing the bytes rather than a re-serialisation keeps
//! verification independent of field order and of fields a newer responder
//! may add.
//!
//! Ed25519, asymmetric: only the responder (and an operator's `hemostat`)
//! holds the [`SigningKey`]; collectors hold [`VerifyingKeys`], public keys
//! that cannot sign, so root on one Docker host cannot command another.
//! The signed JSON names the host, the container and its id, the action
//! and its arguments, the command's id, when it was issued and when it
//! expires: a command is valid for that host and container, once (the id),
//! until then. A collector accepts any of its public keys, so a new key is
//! rolled out by adding its public key to the collectors first, then
//! switching the responder, then removing the old one.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use ring::{
    rand::SystemRandom,
    signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

// Re-exported: an action is part of every command, and this was its path.
pub use crate::action::Action;
use crate::{error::ProtocolError, event::IncidentContext};

/// How long a command is valid after it is issued (`expires_at`).
pub const LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

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
    /// RFC 3339; a collector refuses the command after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// `exec` only: the command line to run in the container, as argv (no
    /// shell). Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Context the collector copies into its `remediation_complete`, so the
    /// alert can say how the decision was taken and how long the fix took.
    /// Flattened, its fields omitted when unknown.
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
/// The field that holds the signature; absent when unsigned.
pub const SIGNATURE_FIELD: &str = "signature";

/// The scheme a signature's value starts with.
const SCHEME: &str = "ed25519";

/// A public key's id: the first 8 hex digits of its SHA-256, so that a
/// collector with several keys (during a rotation) knows which one, and an
/// operator can tell keys apart without seeing them.
fn key_id(public: &[u8]) -> String {
    hex::encode(&Sha256::digest(public)[..4])
}

/// The responder's private key, from its base64 PKCS#8 form. `Debug`
/// shows only its id.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

impl SigningKey {
    /// A new key pair: (the private key as base64 PKCS#8, the public key as
    /// base64), for a key file and the collectors' setting.
    pub fn generate() -> Result<(String, String), ProtocolError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| ProtocolError::BadKey("the system's random source failed".into()))?;
        let key = SigningKey::from_pkcs8(pkcs8.as_ref())?;
        Ok((BASE64.encode(pkcs8.as_ref()), key.public_base64()))
    }

    /// From the base64 text a key file or setting holds (surrounding white
    /// space ignored). The error never repeats the text.
    pub fn from_base64(text: &str) -> Result<SigningKey, ProtocolError> {
        let der = BASE64
            .decode(text.trim())
            .map_err(|_| ProtocolError::BadKey("a signing key is base64 (PKCS#8), this is not".into()))?;
        SigningKey::from_pkcs8(&der)
    }

    fn from_pkcs8(der: &[u8]) -> Result<SigningKey, ProtocolError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| ProtocolError::BadKey(format!("not an Ed25519 private key (PKCS#8): {e}")))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(SigningKey { pair, id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its public key, base64: what collectors are given.
    pub fn public_base64(&self) -> String {
        BASE64.encode(self.pair.public_key().as_ref())
    }
}

/// The public keys a collector accepts commands signed with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyingKeys {
    /// (id, the 32 bytes).
    keys: Vec<(String, Vec<u8>)>,
}

impl VerifyingKeys {
    /// Comma-separated base64 public keys (empty entries ignored).
    pub fn parse(list: &str) -> Result<VerifyingKeys, ProtocolError> {
        let mut keys = Vec::new();
        for (i, entry) in list.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let bytes = BASE64
                .decode(entry)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| ProtocolError::BadKey(format!("public key #{}: not 32 bytes of base64", i + 1)))?;
            keys.push((key_id(&bytes), bytes));
        }
        Ok(VerifyingKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys' ids, for the log.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }
}

impl Command {
    /// Serialises and, with a key, signs.
    pub fn seal(&self, key: Option<&SigningKey>) -> SignedCommand {
        let json = serde_json::to_string(self).unwrap_or_default();
        let signature = key.map(|k| format!("{SCHEME}:{}:{}", k.id, BASE64.encode(k.pair.sign(json.as_bytes()))));
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

    /// The id of the key it says it is signed with, if signed.
    pub fn key_id(&self) -> Option<&str> {
        let mut parts = self.signature.as_deref()?.splitn(3, ':');
        (parts.next()? == SCHEME).then_some(())?;
        parts.next()
    }

    /// Verifies against `keys` and parses; `None` accepts unsigned commands
    /// (only a collector told so in as many words). With keys, an unsigned,
    /// forged or foreign command is refused before its JSON is even read.
    pub fn open(&self, keys: Option<&VerifyingKeys>) -> Result<Command, ProtocolError> {
        if let Some(keys) = keys {
            let sig = self.signature.as_deref().ok_or(ProtocolError::BadSignature("unsigned"))?;
            let mut parts = sig.splitn(3, ':');
            let (scheme, id, value) = (parts.next(), parts.next(), parts.next());
            if scheme != Some(SCHEME) {
                return Err(ProtocolError::BadSignature("not an ed25519 signature"));
            }
            let public = keys
                .keys
                .iter()
                .find(|(k, _)| Some(k.as_str()) == id)
                .map(|(_, bytes)| bytes)
                .ok_or(ProtocolError::BadSignature("signed with a key this collector does not hold"))?;
            let value = value.and_then(|v| BASE64.decode(v).ok()).ok_or(ProtocolError::BadSignature("not base64"))?;
            UnparsedPublicKey::new(&ED25519, public)
                .verify(self.json.as_bytes(), &value)
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
            expires_at: Some("2026-01-01T00:05:00Z".into()),
            dry_run: false,
            context: Default::default(),
            args: Vec::new(),
        }
    }

    fn keys() -> (SigningKey, VerifyingKeys) {
        let (private, public) = SigningKey::generate().unwrap();
        (SigningKey::from_base64(&private).unwrap(), VerifyingKeys::parse(&public).unwrap())
    }

    #[test]
    fn signed_commands_verify_and_forgeries_do_not() {
        let (key, public) = keys();
        let sealed = command().seal(Some(&key));
        assert_eq!(sealed.open(Some(&public)).unwrap(), command());
        assert_eq!(sealed.key_id(), Some(key.id()));

        let unsigned = command().seal(None);
        assert!(matches!(unsigned.open(Some(&public)), Err(ProtocolError::BadSignature("unsigned"))));

        // Any byte changed (another action, host, container, expiry): refused.
        for (from, to) in [("restart", "cleanup"), ("\"h1\"", "\"h2\""), ("web", "db"), ("2026", "2027")] {
            let mut forged = sealed.clone();
            forged.json = forged.json.replace(from, to);
            assert!(matches!(forged.open(Some(&public)), Err(ProtocolError::BadSignature(_))), "{from}");
        }

        // Another key pair: a key this collector does not hold.
        let (other, _) = keys();
        let foreign = command().seal(Some(&other));
        assert!(matches!(foreign.open(Some(&public)), Err(ProtocolError::BadSignature(_))));
        // The old HMAC form, or garbage: refused.
        let mut hmac = sealed.clone();
        hmac.signature = Some("a3f1".repeat(16));
        assert!(hmac.open(Some(&public)).is_err());
        // Told to accept unsigned commands: accepted.
        assert_eq!(unsigned.open(None).unwrap(), command());
    }

    #[test]
    fn a_rotation_accepts_both_keys_and_keys_parse_strictly() {
        let (old, old_public) = keys();
        let (new, new_public) = keys();
        let both = VerifyingKeys::parse(&format!(" {}, {} ,", old.public_base64(), new.public_base64())).unwrap();
        assert_eq!(both.ids(), [old.id(), new.id()]);
        for k in [&old, &new] {
            assert!(command().seal(Some(k)).open(Some(&both)).is_ok());
        }
        assert!(command().seal(Some(&new)).open(Some(&old_public)).is_err());
        assert!(command().seal(Some(&old)).open(Some(&new_public)).is_err());
        assert!(VerifyingKeys::parse("not base64!").is_err());
        assert!(VerifyingKeys::parse(&BASE64.encode([0u8; 31])).is_err());
        assert!(VerifyingKeys::parse("").unwrap().is_empty());
        let e = SigningKey::from_base64("c2VjcmV0LXBhc3N3b3Jk").unwrap_err().to_string();
        assert!(!e.contains("c2VjcmV0"), "{e}");
        assert_eq!(format!("{old:?}"), format!("SigningKey({})", old.id()));
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
        let (key, _) = keys();
        let sealed = command().seal(Some(&key));
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
