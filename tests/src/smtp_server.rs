//! A real SMTP server (aiosmtpd, installed by scripts/python-tools.sh, run
//! from `functions/alert/tests/support/smtp_server.py`): STARTTLS required,
//! with a certificate of a CA made for the test, AUTH for one user, and every
//! message accepted written down for the test to read. The alert crate's
//! email tests and the whole-stack alert test both send to it.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

use crate::{TempDir, TestCerts, free_port, workspace_root};

pub struct SmtpServer {
    child: Child,
    /// The 127.0.0.1 port it listens on.
    pub port: u16,
    out: TempDir,
    certs: TestCerts,
}

impl SmtpServer {
    /// The one user AUTH accepts, and its password.
    pub const USER: &str = "hemostat";
    pub const PASSWORD: &str = "smtp-Pa55word";

    /// Listening once this returns. RCPT answers by the local part:
    /// `refuse@` gets 550, `busy@` 451 the first time.
    pub fn start() -> SmtpServer {
        let venv =
            std::env::var_os("HEMOSTAT_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/hemostat-venv"));
        let python = venv.join("bin/python");
        assert!(python.is_file(), "{} is missing: run scripts/python-tools.sh (installs aiosmtpd)", python.display());
        let certs = TestCerts::new("smtp-test-ca");
        let tls = certs.listener();
        let (port, out) = (free_port(), TempDir::new());
        let script = workspace_root().join("functions/alert/tests/support/smtp_server.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([port.to_string(), tls.cert.display().to_string(), tls.key.display().to_string()])
            .args([out.0.display().to_string(), Self::USER.to_owned(), Self::PASSWORD.to_owned()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start (is aiosmtpd installed?)");
        SmtpServer { child, port, out, certs }
    }

    /// The CA its certificate is signed by (what `ALERT_SMTP_CA_CERT` names).
    pub fn ca(&self) -> PathBuf {
        self.certs.ca()
    }

    /// Every message accepted, in order: `tls`, `auth` (the login),
    /// `mail_from`, `rcpt_tos` and the raw message as `data`.
    pub fn received(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort_by_key(|p| p.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok()));
        files.iter().map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
