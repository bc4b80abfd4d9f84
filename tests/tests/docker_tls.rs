//! The collector on a Docker engine reached over mutual TLS, as Docker's
//! own client reaches one: `DOCKER_HOST=tcp://…`, `DOCKER_TLS_VERIFY`,
//! `DOCKER_CERT_PATH` with `ca.pem`, `cert.pem`, `key.pem`. A private
//! `dockerd` listens with `--tlsverify` on 127.0.0.1 with certificates
//! made by `openssl` for the test:
//!
//! - the collector sees the engine's containers and heals a crash over it;
//! - the engine refuses a client with no certificate and one whose
//!   certificate another CA signed; plain HTTP to it gets nothing;
//! - `DOCKER_TLS_VERIFY` without the certificates stops the collector at
//!   start-up with an error naming the missing file, never a plain
//!   connection.

use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use hemostat_e2e::{PrivateDockerd, RedisServer, TempDir, TestCerts, bin_dir, start_collector, test_host};

/// `hemostat-collector --once` (one snapshot of the engine's containers,
/// as JSON) with `envs`, and no TLS setting from the test's own
/// environment.
fn snapshot(envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin_dir().join("hemostat-collector"));
    cmd.arg("--once").env_remove("DOCKER_TLS_VERIFY").env_remove("DOCKER_CERT_PATH").env("RUST_LOG", "info");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run hemostat-collector --once (cargo build --workspace --bins first)")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `curl` asking the engine's `/_ping` over TLS, trusting `ca`, with a
/// client certificate or none.
fn curl_ping(port: u16, ca: &Path, client: Option<&Path>) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"]).arg(ca);
    if let Some(dir) = client {
        cmd.arg("--cert").arg(dir.join("cert.pem")).arg("--key").arg(dir.join("key.pem"));
    }
    cmd.arg(format!("https://127.0.0.1:{port}/_ping")).output().expect("run curl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_on_a_tls_engine_sees_its_containers_and_heals_a_crash() {
    let certs = TestCerts::new("hemostat-test-ca");
    let client = certs.client("collector", &certs);
    let engine = PrivateDockerd::start_tls(certs.listener()).await;
    let tls_host = engine.tls_host().expect("a TLS listener");
    let docker = engine.docker().await;
    let container = hemostat_e2e::container::start_crash_on_usr1(&docker).await;

    // One snapshot over TLS lists the container.
    let cert_path = client.to_str().expect("a UTF-8 path");
    let tls_env = [("DOCKER_HOST", tls_host.as_str()), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", cert_path)];
    let out = snapshot(&tls_env);
    assert!(out.status.success(), "snapshot over TLS failed:\n{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(container.name()), "{}", text(&out));

    // The collector, alone (no control plane: it heals at the edge), over TLS.
    let redis = RedisServer::start_node().await;
    let conn = redis.connection().await;
    let collector = start_collector(&redis.url(), &test_host(), |b| {
        b.env("DOCKER_HOST", &tls_host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &client)
            .env("HEMOSTAT_EDGE_HEAL_AFTER", "2s")
            .env("HEMOSTAT_VERIFY_SECONDS", "2")
    })
    .await;
    // Past the collector's grace for a container just created.
    tokio::time::sleep(Duration::from_secs(2)).await;
    hemostat_e2e::crash_and_expect_edge_heal(&container, &conn, || collector.log_tail(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_engine_refuses_strangers_and_tls_without_certificates_does_not_start() {
    let certs = TestCerts::new("hemostat-test-ca");
    let client = certs.client("collector", &certs);
    let listener = certs.listener();
    let port = listener.port;
    let engine = PrivateDockerd::start_tls(listener).await;
    let tls_host = engine.tls_host().expect("a TLS listener");

    // The control: with the CA's client certificate the engine answers.
    let ok = curl_ping(port, &certs.ca(), Some(&client));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "OK", "{}", text(&ok));
    // Without a certificate it does not.
    let refused = curl_ping(port, &certs.ca(), None);
    assert!(
        !refused.status.success() && refused.stdout.is_empty(),
        "answered without a certificate: {}",
        text(&refused)
    );

    // A certificate another CA signed: the collector cannot list anything.
    let stranger_ca = TestCerts::new("another-ca");
    let stranger = stranger_ca.client("stranger", &certs);
    let stranger_path = stranger.to_str().expect("a UTF-8 path");
    let out = snapshot(&[("DOCKER_HOST", &tls_host), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", stranger_path)]);
    assert!(!out.status.success(), "a stranger's certificate was accepted:\n{}", text(&out));
    // Plain HTTP to the TLS port (no TLS setting at all) gets no containers.
    let out = snapshot(&[("DOCKER_HOST", &tls_host)]);
    assert!(!out.status.success(), "plain HTTP to the TLS port answered:\n{}", text(&out));
    // Refused by the engine's TLS for the reasons meant, not by chance.
    let log = engine.log_tail(200);
    assert!(log.contains("tls: client didn't provide a certificate"), "{log}");
    assert!(log.contains("certificate signed by unknown authority"), "{log}");

    // DOCKER_TLS_VERIFY with an empty DOCKER_CERT_PATH: the collector stops
    // at once and names the file; nothing plain is tried.
    let empty = TempDir::new();
    let collector = hemostat_e2e::stack::collector("redis://127.0.0.1:1", &test_host())
        .env("DOCKER_HOST", &tls_host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &empty.0)
        .spawn();
    let exit = collector.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.is_some_and(|s| !s.success()), "still running or succeeded ({exit:?}):\n{}", collector.log_tail(20));
    let log = collector.log();
    let ca = empty.0.join("ca.pem").display().to_string();
    assert!(log.contains(&ca) && log.contains("no plain connection is made"), "{log}");
    assert!(!log.contains("collector ready"), "{log}");

    // No DOCKER_CERT_PATH: Docker's default folder, ~/.docker, is named.
    let home = TempDir::new();
    let out = snapshot(&[("DOCKER_HOST", &tls_host), ("DOCKER_TLS_VERIFY", "1"), ("HOME", home.0.to_str().unwrap())]);
    assert!(!out.status.success(), "{}", text(&out));
    let default_ca = home.0.join(".docker").join("ca.pem").display().to_string();
    assert!(text(&out).contains(&default_ca), "{}", text(&out));
}
