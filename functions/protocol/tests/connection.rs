//! `redis://` and `rediss://` with AUTH against a real redis-server, with
//! a private CA made by openssl for the test.

use std::{path::Path, process::Command, time::Duration};

use hemostat_e2e::free_port;
use hemostat_protocol::connection::{client_with_ca, connect_client};

const PASSWORD: &str = "s3cret-pw";

struct Server {
    dir: std::path::PathBuf,
    pidfile: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A redis-server with `requirepass`, a plain port and a TLS port whose
/// certificate is signed by a throwaway CA.
async fn start() -> (Server, u16, u16, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("hemostat-tls-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=hemostat-test-ca",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
    let (plain, tls) = (free_port(), free_port());
    let pidfile = dir.join("redis.pid");
    let status = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &plain.to_string(), "--tls-port", &tls.to_string()])
        .args(["--tls-cert-file", "server.crt", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt"])
        .args(["--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "yes", "--pidfile", pidfile.to_str().unwrap(), "--logfile", "redis.log"])
        .current_dir(&dir)
        .status()
        .expect("redis-server is installed");
    assert!(status.success());
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let server = Server { dir, pidfile };
    // Ready when the plain port accepts connections.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", plain)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, plain, tls, ca)
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

async fn ping(url: &str, ca: Option<Vec<u8>>) -> Result<String, String> {
    let client = client_with_ca(url, ca).map_err(|e| e.to_string())?;
    let mut conn = connect_client(client).await.map_err(|e| e.to_string())?;
    redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn tls_and_auth_work_and_failures_never_show_the_password() {
    let (_server, plain, tls, ca) = start().await;

    assert_eq!(ping(&format!("redis://:{PASSWORD}@127.0.0.1:{plain}"), None).await.unwrap(), "PONG");
    assert_eq!(ping(&format!("rediss://:{PASSWORD}@127.0.0.1:{tls}"), Some(ca.clone())).await.unwrap(), "PONG");
    assert_eq!(ping(&format!("rediss://default:{PASSWORD}@localhost:{tls}"), Some(ca.clone())).await.unwrap(), "PONG");

    // Wrong password, no password, untrusted CA, TLS to the plain port: all
    // refused, and no error text carries a password.
    let failures = [
        ping(&format!("redis://:wrong-pw@127.0.0.1:{plain}"), None).await,
        ping(&format!("redis://127.0.0.1:{plain}"), None).await,
        ping(&format!("rediss://:{PASSWORD}@127.0.0.1:{tls}"), None).await,
        ping(&format!("rediss://:{PASSWORD}@127.0.0.1:{plain}"), Some(ca)).await,
    ];
    for (i, result) in failures.iter().enumerate() {
        let err = result.as_ref().expect_err(&format!("case {i} must fail"));
        assert!(!err.contains(PASSWORD) && !err.contains("wrong-pw"), "case {i} leaks a password: {err}");
    }
}
