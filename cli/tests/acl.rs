//! `hemostat acl`: one Redis ACL user per role, passwords kept in private
//! files and never printed (only their SHA-256), reused unless `--rotate`,
//! bad roles and base URLs refused before anything is written, and
//! `--urls` writing each role's URL to a private file.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Output},
};

mod support;
use support::TempDir;

fn acl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hemostat"))
        .arg("acl")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run hemostat")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn password(dir: &Path, user: &str) -> String {
    let path = dir.join("redis").join(format!("{user}.password"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

#[test]
fn users_are_printed_with_hashes_and_passwords_kept_private() {
    let dir = TempDir::new();
    let first = acl(&dir.0, &["collector:web-1", "responder"]);
    assert!(first.status.success(), "{}", text(&first));
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("ACL SETUSER hemostat-collector-web-1 ")), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("ACL SETUSER hemostat-responder ")), "{stdout}");
    let collector = password(&dir.0, "hemostat-collector-web-1");
    let responder = password(&dir.0, "hemostat-responder");
    assert!(collector.len() >= 40 && collector != responder);
    for secret in [&collector, &responder] {
        assert!(!text(&first).contains(secret.as_str()), "a password was printed");
    }
    assert!(stdout.contains(" #"), "passwords are given as SHA-256: {stdout}");

    // Again: the same passwords, so the same lines.
    let again = acl(&dir.0, &["collector:web-1", "responder", "--acl-file"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(password(&dir.0, "hemostat-collector-web-1"), collector);
    let again = String::from_utf8_lossy(&again.stdout).into_owned();
    assert_eq!(again.replace("user ", "ACL SETUSER "), stdout, "an ACL file holds the same users");

    // --rotate: new passwords.
    let rotated = acl(&dir.0, &["collector:web-1", "--rotate"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert_ne!(password(&dir.0, "hemostat-collector-web-1"), collector);
    assert_eq!(password(&dir.0, "hemostat-responder"), responder, "only the named roles rotate");
}

#[test]
fn bad_roles_and_urls_are_refused_before_anything_is_written() {
    let dir = TempDir::new();
    for args in [
        &["root"][..],
        &["collector:"][..],
        &["collector:web*"][..],
        &["collector:a/b"][..],
        &["responder", "--urls", "redis://admin:secret@redis:6379"][..],
        &["responder", "--urls", "http://redis:6379"][..],
        &["responder", "--urls", "redis://a:6379,redis://b:6379"][..],
    ] {
        let out = acl(&dir.0, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert_eq!(text(&out).lines().count(), 1, "one line: {}", text(&out));
        assert!(!text(&out).contains("secret"), "the refused URL's password is not repeated");
    }
    assert!(!dir.0.join("redis").exists(), "nothing was written");
}

#[test]
fn urls_gives_each_role_its_url_in_a_private_file() {
    let dir = TempDir::new();
    let out = acl(&dir.0, &["analyzer", "dashboard", "--urls", "rediss://redis.internal:6380"]);
    assert!(out.status.success(), "{}", text(&out));
    let path = dir.0.join("redis/urls.json");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let urls: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let analyzer = password(&dir.0, "hemostat-analyzer");
    assert_eq!(urls["analyzer"], format!("rediss://hemostat-analyzer:{analyzer}@redis.internal:6380"));
    assert!(urls["dashboard"].as_str().unwrap().starts_with("rediss://hemostat-dashboard:"));
    assert!(!text(&out).contains(&analyzer), "the URLs are not printed");
}
