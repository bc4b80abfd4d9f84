//! Where the collector reaches Docker and how: a socket, TLS with
//! `DOCKER_CERT_PATH`'s files (checked at start-up), or an ssh forward
//! ([`super::ssh`]); then one connection with the API version negotiated.

use std::path::{Path, PathBuf};

use bollard::Docker;

use super::ssh;
use crate::error::CollectorError;

/// Docker's file names in `DOCKER_CERT_PATH`: the CA the engine's
/// certificate must chain to, and this client's certificate and key.
const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

/// Seconds a request to the engine may take (bollard's own default).
const REQUEST_TIMEOUT: u64 = 120;

/// Where the collector reaches Docker and how, settled once at start-up
/// from `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`: a TLS
/// setting that cannot work stops the collector with a clear error, where
/// retrying would hide it and dropping to plain HTTP (what a client built
/// without TLS does) would hand the engine to anyone on the path.
#[derive(Debug, Clone)]
pub struct Endpoint {
    host: String,
    tls: Option<CertFiles>,
    ssh: Option<ssh::Target>,
}

/// The three PEM files of a mutual-TLS endpoint, each read and parsed once
/// at start-up (bollard reads the key only during the handshake and, if it
/// cannot, sends no certificate: the engine's refusal would name no file).
#[derive(Debug, Clone)]
struct CertFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Endpoint {
    /// `tls_verify`: `DOCKER_TLS_VERIFY` is set to anything non-empty (as
    /// Docker's client reads it, `0` included). `cert_path`:
    /// `DOCKER_CERT_PATH`, else `~/.docker` when TLS is asked for.
    ///
    /// `tcp://` is TLS when `DOCKER_TLS_VERIFY` or `DOCKER_CERT_PATH` is set
    /// (Docker's client also goes TLS on `DOCKER_CERT_PATH` alone, there
    /// without verifying the engine; HemoStat always verifies it), and
    /// `https://` always is. `unix://` ignores both.
    pub fn new(host: &str, tls_verify: bool, cert_path: Option<&Path>) -> Result<Self, CollectorError> {
        let scheme = host.split_once("://").map_or("", |(scheme, _)| scheme);
        let tls = match scheme {
            "unix" => false,
            "tcp" => tls_verify || cert_path.is_some(),
            "https" => true,
            "http" if tls_verify || cert_path.is_some() => {
                return Err(CollectorError::Config(format!(
                    "DOCKER_HOST {host}: http:// is plain HTTP, but DOCKER_TLS_VERIFY or DOCKER_CERT_PATH asks for TLS; use tcp:// or https://"
                )));
            }
            "http" => false,
            "ssh" => {
                return Ok(Endpoint { host: host.to_owned(), tls: None, ssh: Some(ssh::Target::parse(host, None)?) });
            }
            _ => {
                return Err(CollectorError::Config(format!(
                    "DOCKER_HOST {host}: expected unix://, tcp://, https:// or ssh://"
                )));
            }
        };
        if !tls {
            if matches!(scheme, "tcp" | "http") {
                tracing::warn!(
                    docker_host = host,
                    "the Docker engine is reached over plain HTTP: unencrypted and unauthenticated, anyone on the path can drive it; set DOCKER_TLS_VERIFY and DOCKER_CERT_PATH"
                );
            }
            return Ok(Endpoint { host: host.to_owned(), tls: None, ssh: None });
        }
        let dir = match cert_path {
            Some(dir) => dir.to_owned(),
            None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")).ok_or_else(|| {
                CollectorError::Config("DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor HOME is".to_owned())
            })?,
        };
        let files = CertFiles { ca: dir.join(CA_FILE), cert: dir.join(CERT_FILE), key: dir.join(KEY_FILE) };
        files.check().map_err(|e| {
            CollectorError::Config(format!(
                "DOCKER_HOST {host} is TLS (DOCKER_TLS_VERIFY or DOCKER_CERT_PATH, or https://), but {e}; \
                 {} must hold {CA_FILE}, {CERT_FILE} and {KEY_FILE} (PEM); no plain connection is made",
                dir.display()
            ))
        })?;
        Ok(Endpoint { host: host.to_owned(), tls: Some(files), ssh: None })
    }

    /// The ssh client configuration file an `ssh://` endpoint uses instead
    /// of the user's own (`ssh -F`); ignored by the other schemes.
    pub fn ssh_config(mut self, file: Option<&Path>) -> Self {
        self.ssh = self.ssh.map(|target| target.with_config(file));
        self
    }

    /// Makes the endpoint reachable: for `ssh://`, starts the forward (kept
    /// up until `cancel`) and answers the local socket it listens on; any
    /// other endpoint is reachable as it is. An ssh that cannot log in is
    /// an error at once, in ssh's own words.
    pub async fn reach(self, cancel: &tokio_util::sync::CancellationToken) -> Result<Self, CollectorError> {
        let Some(target) = self.ssh else { return Ok(self) };
        let socket = ssh::open(target, cancel.clone()).await?;
        Ok(Endpoint { host: format!("unix://{}", socket.display()), tls: None, ssh: None })
    }
}

impl CertFiles {
    fn check(&self) -> Result<(), String> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        for path in [&self.ca, &self.cert] {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{} cannot be read as PEM certificates: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{} holds no certificate", path.display()));
            }
        }
        // The key's own text is never part of the message.
        PrivateKeyDer::from_pem_file(&self.key)
            .map(drop)
            .map_err(|e| format!("{} cannot be read as a PEM private key: {e}", self.key.display()))
    }
}

/// Connects and negotiates the API version down to the engine's: bollard
/// speaks a newer API than older engines (Docker 20.10 is 1.41) accept.
pub async fn connect(endpoint: &Endpoint) -> Result<Docker, CollectorError> {
    let docker = match &endpoint.tls {
        Some(files) => {
            // bollard's TLS client takes rustls' process-wide provider.
            hemostat_protocol::tls::install_crypto_provider();
            Docker::connect_with_ssl(
                &endpoint.host,
                &files.key,
                &files.cert,
                &files.ca,
                REQUEST_TIMEOUT,
                bollard::API_DEFAULT_VERSION,
            )?
        }
        // Plain: bollard's own TLS choice (it reads DOCKER_TLS_VERIFY
        // itself) never comes into it, the endpoint above decided.
        None if endpoint.host.starts_with("unix://") => {
            Docker::connect_with_unix(&endpoint.host, REQUEST_TIMEOUT, bollard::API_DEFAULT_VERSION)?
        }
        None => Docker::connect_with_http(&endpoint.host, REQUEST_TIMEOUT, bollard::API_DEFAULT_VERSION)?,
    };
    Ok(docker.negotiate_version().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the temporary directory with `files` in it.
    fn cert_dir(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hemostat-certs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn config_error(r: Result<Endpoint, CollectorError>) -> String {
        match r {
            Err(CollectorError::Config(e)) => e,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn tls_asked_for_without_certificates_is_a_start_up_error_not_a_plain_connection() {
        let empty = cert_dir(&[]);
        let e = config_error(Endpoint::new("tcp://127.0.0.1:2376", true, Some(&empty)));
        assert!(e.contains("ca.pem") && e.contains("no plain connection"), "{e}");
        // DOCKER_CERT_PATH alone asks for TLS too, and https:// always does.
        let e = config_error(Endpoint::new("tcp://127.0.0.1:2376", false, Some(&empty)));
        assert!(e.contains("ca.pem"), "{e}");
        let e = config_error(Endpoint::new("https://127.0.0.1:2376", false, Some(&empty)));
        assert!(e.contains("ca.pem"), "{e}");
        std::fs::remove_dir_all(empty).unwrap();
    }

    #[test]
    fn a_certificate_file_that_is_not_pem_is_named() {
        let dir = cert_dir(&[("ca.pem", "not a certificate"), ("cert.pem", "x"), ("key.pem", "secret text")]);
        let e = config_error(Endpoint::new("tcp://127.0.0.1:2376", true, Some(&dir)));
        assert!(e.contains(&dir.join("ca.pem").display().to_string()) && e.contains("no certificate"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn plain_endpoints_and_schemes_that_cannot_be_tls() {
        let plain = Endpoint::new("tcp://127.0.0.1:2375", false, None).unwrap();
        assert!(plain.tls.is_none());
        // A socket is local: the TLS settings do not apply to it.
        let socket = Endpoint::new("unix:///var/run/docker.sock", true, None).unwrap();
        assert!(socket.tls.is_none());
        let e = config_error(Endpoint::new("http://127.0.0.1:2376", true, None));
        assert!(e.contains("tcp:// or https://"), "{e}");
        let ssh = Endpoint::new("ssh://root@127.0.0.1", true, None).unwrap();
        assert!(ssh.tls.is_none() && ssh.ssh.is_some());
        let e = config_error(Endpoint::new("ssh://-oProxyCommand=sh", false, None));
        assert!(e.contains("host name"), "{e}");
        let e = config_error(Endpoint::new("127.0.0.1:2375", false, None));
        assert!(e.contains("expected unix://"), "{e}");
    }
}
