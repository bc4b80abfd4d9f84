//! The command signing key pair of a test run: generated once per test
//! binary, its private half for the responder (and tests that sign commands
//! themselves), its public half for every collector a test starts.

use std::sync::OnceLock;

use hemostat_protocol::command::SigningKey;

pub struct TestKeys {
    /// Base64 PKCS#8: `HEMOSTAT_COMMAND_SIGNING_KEY`.
    pub private: String,
    /// Base64: `HEMOSTAT_COMMAND_PUBLIC_KEYS`.
    pub public: String,
    /// The private key, to seal commands with.
    pub signing: SigningKey,
}

/// This test binary's key pair.
pub fn test_keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (private, public) = SigningKey::generate().expect("a key pair");
        let signing = SigningKey::from_base64(&private).expect("the pair just made");
        TestKeys { private, public, signing }
    })
}
