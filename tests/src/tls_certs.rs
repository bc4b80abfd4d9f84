//! Certificates for a TLS Docker endpoint, made with `openssl` as Docker's
//! own guide makes them: a CA, a server certificate for 127.0.0.1 and
//! client certificates, each client in a folder laid out as
//! `DOCKER_CERT_PATH` expects (`ca.pem`, `cert.pem`, `key.pem`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{TempDir, dockerd::TlsListener, port::free_port};

/// A CA and what it signed, under one folder removed when dropped.
pub struct TestCerts {
    dir: TempDir,
}

impl TestCerts {
    /// A CA named `name` and a server certificate for 127.0.0.1.
    pub fn new(name: &str) -> Self {
        let certs = TestCerts { dir: TempDir::new() };
        openssl(
            certs.dir(),
            "req -x509 -nodes -days 2 -keyout ca-key.pem -out ca.pem",
            &[
                &format!("-subj=/CN={name}"),
                "-addext=basicConstraints=critical,CA:TRUE",
                "-addext=keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        certs.sign("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        certs
    }

    fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// `name`-key.pem and `name`-cert.pem, signed by this CA.
    fn sign(&self, name: &str, cn: &str, extensions: &str) {
        let d = self.dir();
        std::fs::write(d.join(format!("{name}.ext")), format!("basicConstraints=CA:FALSE\n{extensions}"))
            .expect("write extensions");
        openssl(d, &format!("req -nodes -keyout {name}-key.pem -out {name}.csr"), &[&format!("-subj=/CN={cn}")]);
        openssl(
            d,
            &format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
                 -out {name}-cert.pem -extfile {name}.ext"
            ),
            &[],
        );
    }

    /// A `DOCKER_CERT_PATH` folder for a client certificate of this CA:
    /// `trusting`'s CA as its ca.pem (whom the client trusts), this CA's
    /// client certificate and key.
    pub fn client(&self, name: &str, trusting: &TestCerts) -> PathBuf {
        self.sign(name, name, "extendedKeyUsage=clientAuth\n");
        let folder = self.dir().join(format!("{name}.d"));
        std::fs::create_dir_all(&folder).expect("create the client's folder");
        let copy = |from: &Path, to: &str| {
            std::fs::copy(from, folder.join(to)).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        };
        copy(&trusting.dir().join("ca.pem"), "ca.pem");
        copy(&self.dir().join(format!("{name}-cert.pem")), "cert.pem");
        copy(&self.dir().join(format!("{name}-key.pem")), "key.pem");
        folder
    }

    /// `--tlsverify` on a free 127.0.0.1 port with this CA's server
    /// certificate, checking clients against this CA.
    pub fn listener(&self) -> TlsListener {
        let d = self.dir();
        TlsListener {
            port: free_port(),
            ca: d.join("ca.pem"),
            cert: d.join("server-cert.pem"),
            key: d.join("server-key.pem"),
        }
    }

    /// This CA's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }
}

/// `openssl` with the words of `args`, then `extra` (which may hold
/// spaces), in `dir`. New keys are EC P-256: quick to make.
fn openssl(dir: &Path, args: &str, extra: &[&str]) {
    let mut words: Vec<&str> = args.split_whitespace().collect();
    if words[0] == "req" {
        words.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    }
    let out = Command::new("openssl")
        .args(&words)
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl failed: {e} (is it installed?)"));
    assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
}
