//! TLS for every client HemoStat opens (Redis over `rediss://`, alert
//! webhooks, LLM providers): rustls with its ring provider, which needs no C
//! toolchain for the arm64 cross-compile (aws-lc-rs would).

use std::sync::Once;

/// Installs rustls' ring provider as the process's default, once; call it
/// before building any TLS client. Cheap after the first call.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means another provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_the_ring_provider_once() {
        install_crypto_provider();
        install_crypto_provider();
        let installed = rustls::crypto::CryptoProvider::get_default().expect("a provider is installed");
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(
            installed.cipher_suites.iter().map(|s| s.suite()).collect::<Vec<_>>(),
            ring.cipher_suites.iter().map(|s| s.suite()).collect::<Vec<_>>()
        );
    }
}
