//! Connecting to Redis: `redis://` and `rediss://` URLs with AUTH.

use std::{sync::Once, time::Duration};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::ProtocolError;

/// How long one ordinary command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for `url`, after checking its scheme. TLS (`rediss://`) uses
/// rustls with the ring provider, installed once per process, and trusts
/// the system's CAs, or only the PEM file named by `REDIS_CA_CERT` (a
/// self-hosted Redis behind a private CA).
pub fn client(url: &str) -> Result<redis::Client, ProtocolError> {
    let ca = match std::env::var_os("REDIS_CA_CERT").filter(|p| !p.is_empty()) {
        Some(path) => Some(std::fs::read(&path).map_err(|e| {
            ProtocolError::RedisUrl(format!("cannot read REDIS_CA_CERT {}: {e}", std::path::Path::new(&path).display()))
        })?),
        None => None,
    };
    client_with_ca(url, ca)
}

/// [`client`] with the CA given explicitly (PEM bytes) instead of from the
/// environment.
pub fn client_with_ca(url: &str, ca_pem: Option<Vec<u8>>) -> Result<redis::Client, ProtocolError> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "redis" | "redis+unix" | "unix" => {}
        "rediss" => install_crypto_provider(),
        _ => {
            return Err(ProtocolError::RedisUrl(format!(
                "scheme {scheme:?} is not redis:// or rediss:// (URL: {})",
                redact(url)
            )));
        }
    }
    let bad = |e: redis::RedisError| ProtocolError::RedisUrl(format!("{} ({e})", redact(url)));
    match ca_pem {
        Some(root_cert) if scheme == "rediss" => {
            let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
            redis::Client::build_with_tls(url, certs).map_err(bad)
        }
        _ => redis::Client::open(url).map_err(bad),
    }
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means another provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A self-reconnecting connection for ordinary commands.
pub async fn connect(url: &str) -> Result<ConnectionManager, ProtocolError> {
    connect_client(client(url)?).await
}

/// [`connect`] for a client built elsewhere (e.g. [`client_with_ca`]).
pub async fn connect_client(client: redis::Client) -> Result<ConnectionManager, ProtocolError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

/// A connection for blocking reads (`XREADGROUP ... BLOCK`): its own socket,
/// because a blocked command stalls every other command sharing the socket,
/// and a response timeout longer than any block the caller uses.
pub async fn connect_blocking(url: &str, longest_block: Duration) -> Result<ConnectionManager, ProtocolError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(longest_block + RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    Ok(ConnectionManager::new_with_config(client(url)?, config).await?)
}

/// The URL with its password (and username) replaced, safe for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable URL>".into();
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => format!("{scheme}://{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact("redis://:s3cret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact("rediss://user:p%40ss@h:1"), "rediss://***@h:1");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(!redact("nonsense:s3cret").contains("s3cret"));
    }

    #[test]
    fn accepts_redis_and_rediss_refuses_others_without_leaking() {
        assert!(client("redis://:pw@127.0.0.1:6379").is_ok());
        assert!(client("rediss://user:pw@example.invalid:6380").is_ok());
        let err = client("http://user:topsecret@h").unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
