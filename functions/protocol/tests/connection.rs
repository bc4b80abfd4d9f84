//! `redis://` and `rediss://` with AUTH against a real redis-server, with
//! a private CA made by openssl for the test.

use std::{path::Path, process::Command, time::Duration};

use hemostat_e2e::free_port;
use hemostat_protocol::connection::{Target, Topology};

const PASSWORD: &str = "s3cret-pw";

struct Server {
    dir: std::path::PathBuf,
    pidfiles: Vec<std::path::PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for pidfile in &self.pidfiles {
            if let Ok(pid) = std::fs::read_to_string(pidfile) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A throwaway CA and a server certificate for localhost and 127.0.0.1, in
/// a new directory.
fn certs() -> std::path::PathBuf {
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
    dir
}

/// A redis-server with `requirepass`, a plain port and a TLS port whose
/// certificate is signed by a throwaway CA.
async fn start() -> (Server, u16, u16, Vec<u8>) {
    let dir = certs();
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
    let server = Server { dir, pidfiles: vec![pidfile] };
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
    let target = Target::new(url, Topology::Node, ca).map_err(|e| e.to_string())?;
    let mut conn = target.connect().await.map_err(|e| e.to_string())?;
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

/// Three TLS-only cluster masters with `requirepass` (the cluster bus and
/// the cluster's own links on TLS too), joined by `redis-cli --cluster create`.
async fn start_cluster() -> (Server, Vec<u16>, Vec<u8>) {
    let dir = certs();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut pidfiles = Vec::new();
    for &port in &ports {
        let pidfile = dir.join(format!("redis-{port}.pid"));
        let status = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", "0", "--tls-port", &port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-port", &free_port().to_string()])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf"), "--dbfilename", &format!("dump-{port}.rdb")])
            .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
            .args(["--tls-cert-file", "server.crt", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt"])
            .args(["--tls-auth-clients", "no", "--requirepass", PASSWORD, "--masterauth", PASSWORD])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "yes", "--pidfile", pidfile.to_str().unwrap()])
            .args(["--logfile", &format!("redis-{port}.log")])
            .current_dir(&dir)
            .status()
            .expect("redis-server is installed");
        assert!(status.success());
        pidfiles.push(pidfile);
    }
    let server = Server { dir: dir.clone(), pidfiles };
    for &port in &ports {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let cli = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["--tls", "--cacert", "ca.crt", "-a", PASSWORD, "--no-auth-warning"])
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("redis-cli is installed")
    };
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(nodes.iter().map(String::as_str));
    create.push("--cluster-yes");
    let out = cli(&create);
    assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
    for _ in 0..200 {
        let ok = ports.iter().all(|p| {
            let info = cli(&["-p", &p.to_string(), "cluster", "info"]);
            String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok")
        });
        if ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    (server, ports, ca)
}

#[tokio::test]
async fn tls_and_auth_work_on_a_cluster_too() {
    let (_cluster, ports, ca) = start_cluster().await;
    // One node's URL, as a user would give it: recognised as a cluster.
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}", ports[0]);
    let target = Target::new(&url, Topology::Auto, Some(ca.clone())).unwrap();
    let conn = target.connect().await.unwrap();
    assert!(conn.is_cluster().await.unwrap());
    // A pipeline over every master, a read of each key, a MULTI in one slot.
    let mut c = conn.clone();
    let mut pipe = redis::pipe();
    for i in 0..60 {
        pipe.set(format!("tls-key-{i}"), i).ignore();
    }
    let () = pipe.query_async(&mut c).await.unwrap();
    for i in 0..60 {
        let v: i64 = redis::cmd("GET").arg(format!("tls-key-{i}")).query_async(&mut c).await.unwrap();
        assert_eq!(v, i);
    }
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("{tls}:a")
        .cmd("INCR")
        .arg("{tls}:b")
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 1);

    // A wrong password or an untrusted CA is refused, and says no password.
    for (url, ca) in [
        (format!("rediss://:wrong-pw@127.0.0.1:{}", ports[1]), Some(ca.clone())),
        (format!("rediss://:{PASSWORD}@127.0.0.1:{}", ports[1]), None),
    ] {
        let result = async { Target::new(&url, Topology::Cluster, ca)?.connect().await }.await;
        let err = result.err().expect("must be refused").to_string();
        assert!(!err.contains(PASSWORD) && !err.contains("wrong-pw"), "leaks a password: {err}");
    }
}
