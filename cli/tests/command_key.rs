//! `hemostat` finds the command signing key as docs/src/cli.md says (the
//! variable, then `$HEMOSTAT_STATE_DIR/command_signing.key`, then the nearest
//! `.hemostat/command_signing.key` up from the current directory), refuses a
//! key file open to group or others with one line and exit 2 before it even
//! reaches for Redis, never prints the key, checks the hosts' newest commands
//! with it (`status`, on a real redis-server of its own), and makes a key
//! pair (`keys generate`).

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use hemostat_protocol::command::SigningKey;

mod support;
use support::TempDir;

/// This test binary's signing key (base64 PKCS#8), and its public half.
fn pair() -> &'static (String, String) {
    static PAIR: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| SigningKey::generate().unwrap())
}

fn key() -> &'static str {
    &pair().0
}
/// Nothing listens there: a verb that got past the key fails on Redis (exit 1).
const NO_REDIS: &str = "redis://127.0.0.1:1";

fn write_key(dir: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("command_signing.key");
    std::fs::write(&path, format!("{}\n", key())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `hemostat args...` in `cwd` with only `env` (and PATH) in its environment.
fn hemostat(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hemostat"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("hemostat runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_no_key(out: &Output) {
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    assert!(!all.contains(key()) && !all.contains(&key()[..24]), "the key was printed:\n{all}");
}

#[test]
fn a_key_file_open_to_others_is_refused_with_one_line_and_exit_2() {
    let tmp = TempDir::new();
    let path = write_key(&tmp.0.join(".hemostat"), 0o644);
    let deep = tmp.0.join("sub/dir");
    std::fs::create_dir_all(&deep).unwrap();
    for verb in [&["status"][..], &["events"], &["dlq", "ls"]] {
        let out = hemostat(&deep, &[("REDIS_URL", NO_REDIS)], verb);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{verb:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("hemostat: command key file "), "{err}");
        assert!(err.contains(&path.display().to_string()) && err.contains("0644"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("cannot reach Redis"), "refused before Redis: {err}");
        assert_no_key(&out);
    }

    // Fixed as the message says, it is accepted: the verb gets as far as Redis.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = hemostat(&deep, &[("REDIS_URL", NO_REDIS)], &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot reach Redis"), "{}", stderr(&out));
    assert_no_key(&out);
}

#[test]
fn the_variable_wins_and_the_state_dir_variable_is_looked_at_alone() {
    let tmp = TempDir::new();
    write_key(&tmp.0.join(".hemostat"), 0o666);
    // The variable: the bad file is never read.
    let out = hemostat(&tmp.0, &[("REDIS_URL", NO_REDIS), ("HEMOSTAT_COMMAND_SIGNING_KEY", key())], &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // HEMOSTAT_STATE_DIR: its file only, so the walk's bad file does not matter...
    let state = tmp.0.join("state");
    write_key(&state, 0o600);
    let state_str = state.to_str().unwrap();
    let out = hemostat(&tmp.0, &[("REDIS_URL", NO_REDIS), ("HEMOSTAT_STATE_DIR", state_str)], &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // ...and its own bad file is refused.
    std::fs::set_permissions(state.join("command_signing.key"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = hemostat(&tmp.0, &[("REDIS_URL", NO_REDIS), ("HEMOSTAT_STATE_DIR", state_str)], &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&state.join("command_signing.key").display().to_string()), "{}", stderr(&out));
}

#[test]
fn help_says_where_the_key_comes_from() {
    let tmp = TempDir::new();
    let out = hemostat(&tmp.0, &[], &["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    for word in ["HEMOSTAT_COMMAND_SIGNING_KEY", "HEMOSTAT_STATE_DIR", ".hemostat/command_signing.key", "0600"] {
        assert!(help.contains(word), "--help does not mention {word}:\n{help}");
    }
}

/// A redis-server of the test's own on a free port, stopped when dropped.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test-env.sh install)");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get_connection().and_then(|mut c| redis::cmd("PING").query::<String>(&mut c)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not answer on {url}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, url }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn add_command(conn: &mut redis::Connection, host: &str, key: Option<&SigningKey>) {
    let command = hemostat_protocol::Command {
        id: uuid::Uuid::new_v4().to_string(),
        host: host.into(),
        container: "api".into(),
        container_id: None,
        action: hemostat_protocol::Action::Restart,
        reason: "test".into(),
        confidence: 1.0,
        issued_at: chrono::Utc::now().to_rfc3339(),
        expires_at: None,
        dry_run: false,
        args: Vec::new(),
        context: Default::default(),
    };
    let sealed = command.seal(key);
    let now = chrono::Utc::now().timestamp_millis() as f64;
    let _: () = redis::cmd("ZADD").arg(hemostat_protocol::keys::COLLECTORS).arg(now).arg(host).query(conn).unwrap();
    let _: String = redis::cmd("XADD")
        .arg(hemostat_protocol::keys::commands(host))
        .arg("*")
        .arg(sealed.to_fields())
        .query(conn)
        .unwrap();
}

#[test]
fn status_checks_each_hosts_newest_command_with_the_found_key() {
    let tmp = TempDir::new();
    let redis = Redis::start(&tmp.0);
    let mut conn = redis::Client::open(redis.url.as_str()).unwrap().get_connection().unwrap();
    add_command(&mut conn, "good-host", Some(&SigningKey::from_base64(key()).unwrap()));
    let (other, _) = SigningKey::generate().unwrap();
    add_command(&mut conn, "other-host", Some(&SigningKey::from_base64(&other).unwrap()));
    add_command(&mut conn, "plain-host", None);
    let path = write_key(&tmp.0.join(".hemostat"), 0o600);

    let out = hemostat(&tmp.0, &[("REDIS_URL", &redis.url)], &["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_key(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signing = &doc["command_signing"];
    assert_eq!(signing["key"], path.display().to_string(), "{doc}");
    let of = |host: &str| {
        signing["hosts"].as_array().unwrap().iter().find(|h| h["host"] == host).map(|h| h["signature"].clone())
    };
    assert_eq!(of("good-host"), Some("valid".into()), "{doc}");
    assert_eq!(of("other-host"), Some("another_key".into()), "{doc}");
    assert_eq!(of("plain-host"), Some("unsigned".into()), "{doc}");

    // Text, and without any key: signatures are seen but not checked.
    let bare = TempDir::new();
    let out = hemostat(&bare.0, &[("REDIS_URL", &redis.url)], &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("COMMAND SIGNING (no key here"), "{text}");
    assert!(text.lines().any(|l| l.contains("good-host") && l.contains("signed (no key here to check it)")), "{text}");
    assert!(text.lines().any(|l| l.contains("plain-host") && l.contains("UNSIGNED")), "{text}");
}

#[test]
fn keys_generate_writes_a_private_key_and_prints_only_its_public_half() {
    let tmp = TempDir::new();
    let dir = tmp.0.join("keys");
    let out = hemostat(&tmp.0, &[], &["--json", "keys", "generate", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let private_path = dir.join("command_signing.key");
    let private = std::fs::read_to_string(&private_path).unwrap();
    assert_eq!(std::fs::metadata(&private_path).unwrap().permissions().mode() & 0o777, 0o600);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!all.contains(private.trim()), "the private key was printed");
    let signing = SigningKey::from_base64(&private).unwrap();
    assert_eq!(doc["public_key"], signing.public_base64());
    assert_eq!(doc["key_id"], signing.id());
    let public = std::fs::read_to_string(dir.join("command_signing.pub")).unwrap();
    assert_eq!(public.trim(), signing.public_base64());
    // Not replaced unless asked: commands signed with it would be refused.
    let again = hemostat(&tmp.0, &[], &["keys", "generate", "--dir", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&private_path).unwrap(), private);
    let forced = hemostat(&tmp.0, &[], &["keys", "generate", "--dir", dir.to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read_to_string(&private_path).unwrap(), private);
}
