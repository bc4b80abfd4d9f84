//! One probe: a TCP connection, or an HTTP(S) GET whose status line alone
//! matters, made inside the container's network namespace.
//!
//! HTTPS accepts any certificate: a probe checks that the service answers,
//! not who it is (the address is the container's own loopback, and its
//! certificate is usually for a public name, or self-signed). Redirects are
//! not followed: a 3xx passes as it is.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use hemostat_protocol::probe::{Probe, Target};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::netns::{self, ConnectError};
pub use netns::Owner;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    /// It answered: what (`HTTP 200`, `connected`).
    Healthy(String),
    /// It did not: why (`HTTP 503`, `connection refused`, a time-out).
    Failing(String),
    /// The container's process is gone: nothing to probe until it is back.
    Gone(String),
    /// The collector could not probe at all (see [`ConnectError::Unavailable`]).
    Unavailable(String),
}

/// Runs probes; holds the TLS client every HTTPS probe shares.
#[derive(Clone)]
pub struct Checker {
    tls: TlsConnector,
    /// The host's /proc (`HEMOSTAT_PROC_ROOT`), where a container's
    /// namespace is found by its pid.
    proc: Arc<PathBuf>,
}

impl Checker {
    /// `proc`: the host's /proc as the collector sees it.
    pub fn new(proc: PathBuf) -> Result<Checker, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Checker { tls: TlsConnector::from(Arc::new(config)), proc: Arc::new(proc) })
    }

    /// Whether `pid`, in the /proc the collector reads, is the process of
    /// container `container_id` (see [`netns::owner`]).
    pub fn owner(&self, pid: i64, container_id: &str) -> Owner {
        netns::owner(&self.proc, pid, container_id)
    }

    /// Probes the container whose main process is `pid`, within the
    /// probe's timeout.
    pub async fn check(&self, pid: i64, probe: &Probe) -> Probed {
        match tokio::time::timeout(probe.timeout, self.once(pid, probe)).await {
            Ok(probed) => probed,
            Err(_) => Probed::Failing(format!("no answer within {} ms", probe.timeout.as_millis())),
        }
    }

    async fn once(&self, pid: i64, probe: &Probe) -> Probed {
        let addr = SocketAddr::new(probe.target.ip(), probe.target.port());
        let stream = match netns::connect(&self.proc, pid, addr, probe.timeout).await {
            Ok(stream) => stream,
            Err(ConnectError::Unavailable(why)) => return Probed::Unavailable(why),
            Err(ConnectError::Gone(why)) => return Probed::Gone(why),
            Err(ConnectError::Refused(e)) => return Probed::Failing(format!("connect to {addr}: {e}")),
        };
        let Target::Http { tls, path, .. } = &probe.target else {
            return Probed::Healthy(format!("connected to {addr}"));
        };
        let host = match addr {
            SocketAddr::V4(a) => format!("localhost:{}", a.port()),
            SocketAddr::V6(a) => format!("[::1]:{}", a.port()),
        };
        if !tls {
            return get(stream, &host, path).await;
        }
        let name = ServerName::IpAddress(addr.ip().into());
        match self.tls.connect(name, stream).await {
            Ok(stream) => get(stream, &host, path).await,
            Err(e) => Probed::Failing(format!("TLS handshake with {addr}: {e}")),
        }
    }
}

/// Status lines longer than this are not HTTP.
const MAX_STATUS_LINE: usize = 1024;

/// A GET of `path`; 2xx and 3xx pass. Only the status code is kept: the
/// rest of the answer is the container's and never leaves the host.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, host: &str, path: &str) -> Probed {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hemostat-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return Probed::Failing(format!("sending the request: {e}"));
    }
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < MAX_STATUS_LINE {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Probed::Failing(format!("reading the answer: {e}")),
        }
    }
    match status(&head) {
        Some(code @ 200..=399) => Probed::Healthy(format!("HTTP {code}")),
        Some(code) => Probed::Failing(format!("HTTP {code}")),
        None if head.is_empty() => Probed::Failing("closed without an answer".into()),
        None => Probed::Failing("not an HTTP answer".into()),
    }
}

/// The code of an `HTTP/1.x NNN ...` status line.
fn status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/") && code.len() == 3).then(|| code.parse().ok()).flatten()
}

/// Accepts any server certificate; signatures are still checked, so the
/// handshake itself is a real one.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;

    const TEST_TIMEOUT: Duration = Duration::from_secs(2);

    #[test]
    fn status_lines_are_read() {
        assert_eq!(status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status(b"HTTP/1.0 503 Service Unavailable\r\nX: y"), Some(503));
        assert_eq!(status(b"HTTP/1.1 301\r\n"), Some(301));
        assert_eq!(status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(status(b""), None);
    }

    fn probe(url: &str) -> Probe {
        let labels = HashMap::from([("hemostat.probe".to_owned(), url.to_owned())]);
        let mut p = Probe::from_labels(&labels).unwrap().unwrap();
        p.timeout = TEST_TIMEOUT;
        p
    }

    /// An HTTP server on this namespace's loopback answering `answer` once.
    async fn serve(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                // Only the request a probe makes is answered.
                if request.starts_with("GET /healthz HTTP/1.1\r\nHost: localhost:") {
                    let _ = s.write_all(answer.as_bytes()).await;
                }
            }
        });
        port
    }

    /// Probes in this process's own namespace (its pid's): needs the
    /// right to setns into it, which root has.
    #[tokio::test]
    async fn http_and_tcp_probes_tell_healthy_from_failing() {
        let me = std::process::id() as i64;
        let checker = Checker::new("/proc".into()).unwrap();
        let ok = serve("HTTP/1.1 204 No Content\r\n\r\n").await;
        let redirect = serve("HTTP/1.1 302 Found\r\nLocation: http://example.com/\r\n\r\n").await;
        let down = serve("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let garbled = serve("hello\r\n").await;
        let check = |url: String| {
            let checker = checker.clone();
            async move { checker.check(me, &probe(&url)).await }
        };
        let unavailable = |p: &Probed| matches!(p, Probed::Unavailable(_));
        let first = check(format!("http://:{ok}/healthz")).await;
        if unavailable(&first) {
            // Not root: the degraded path is what there is to test.
            eprintln!("setns refused here: {first:?}");
            return;
        }
        assert_eq!(first, Probed::Healthy("HTTP 204".into()));
        assert_eq!(check(format!("http://localhost:{redirect}/healthz")).await, Probed::Healthy("HTTP 302".into()));
        assert_eq!(check(format!("http://:{down}/healthz")).await, Probed::Failing("HTTP 503".into()));
        assert_eq!(check(format!("http://:{garbled}/healthz")).await, Probed::Failing("not an HTTP answer".into()));
        assert!(matches!(check(format!("tcp://:{ok}")).await, Probed::Healthy(_)));
        // A port nobody listens on.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let refused = check(format!("tcp://:{closed}")).await;
        assert!(matches!(&refused, Probed::Failing(why) if why.contains("refused")), "{refused:?}");
        // A listener that never answers: the time-out.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let mut p = probe(&format!("http://:{port}/healthz"));
        p.timeout = Duration::from_millis(300);
        assert_eq!(checker.check(me, &p).await, Probed::Failing("no answer within 300 ms".into()));
        // HTTPS to a plain listener: the handshake fails, no panic.
        let tls = check(format!("https://:{ok}/healthz")).await;
        assert!(matches!(&tls, Probed::Failing(why) if why.starts_with("TLS handshake")), "{tls:?}");
        // A process that does not exist.
        assert!(matches!(checker.check(i32::MAX as i64, &probe("tcp://:1")).await, Probed::Gone(_)));
    }
}
