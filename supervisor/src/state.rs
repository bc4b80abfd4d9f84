//! The state volume's secrets, made on the first start and reused after:
//! the same files, modes and tools as `scripts/stack.sh` and
//! `scripts/compose.sh` (`hemostat keys generate`, `hemostat acl`), so
//! `hemostat` run in the container finds them as it does beside a stack.
//!
//! | file | made | |
//! |---|---|---|
//! | `command_signing.key`, `.pub` | once (`hemostat keys generate`) | the responder's key, the collector's |
//! | `dashboard.token` | once | the dashboard's password |
//! | `lambda.token` | every start | the emulator's token, the bridge's |
//! | `redis/hemostat-<role>.password` | once (`hemostat acl`) | one Redis user per part |
//! | `redis/users.acl`, `redis/functions.env.json`, `redis.url` | every start | |
//!
//! Nothing here logs a secret: only where it is, and the signing key's id.

use std::{
    fs::{self, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use hemostat_protocol::{command::VerifyingKeys, secret::Secret};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::{error::SupervisorError, settings::Settings};

/// The functions of template.yaml, each a Redis user of its own.
const FUNCTION_ROLES: [&str; 5] = ["analyzer", "responder", "alert", "exporter", "dashboard"];

/// What the parts are started with.
#[derive(Debug)]
pub struct Secrets {
    pub lambda_token: Secret,
    pub dashboard_token: Secret,
    pub signing_key: Secret,
    /// The collector's HEMOSTAT_COMMAND_PUBLIC_KEYS (not secret).
    pub public_keys: String,
    /// Each part's Redis URL, with its user's password; `None`: REDIS_URL for all.
    pub redis: Option<RedisUsers>,
}

#[derive(Debug)]
pub struct RedisUsers {
    pub collector_url: Secret,
    pub bridge_url: Secret,
    /// The emulator's --env-vars: each function's REDIS_URL.
    pub functions_env: PathBuf,
    /// redis-server's --aclfile.
    pub acl_file: PathBuf,
    pub data_dir: PathBuf,
    /// Who redis-server runs as: [`REDIS_USER`] when the supervisor is root.
    pub run_as: Option<(u32, u32)>,
}

/// redis-server's user and group when the supervisor runs as root:
/// `nobody`/`nogroup`, which owns nothing and is in no group, so a Redis
/// turned against HemoStat (a Lua sandbox escape) holds neither the Docker
/// socket (`root:docker`, 0660 on the host, whatever gid `docker` has
/// there) nor the secrets beside its data. Not a low system id, which on
/// the host could be the `docker` group itself.
pub const REDIS_USER: (u32, u32) = (65534, 65534);

pub fn prepare(settings: &Settings, host: &str) -> Result<Secrets, SupervisorError> {
    let dir = &settings.state_dir;
    private_dir(dir)?;
    // The collector's place in Docker's events and its outbox.
    private_dir(&dir.join("collector"))?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).map(Secret::new);

    let lambda_token = match env("HEMOSTAT_LAMBDA_TOKEN") {
        Some(token) => token,
        None => fresh(&dir.join("lambda.token"))?,
    };
    let dashboard_file = dir.join("dashboard.token");
    let dashboard_token = match env("DASHBOARD_AUTH_TOKEN") {
        Some(token) => {
            info!("the dashboard asks for DASHBOARD_AUTH_TOKEN (from the environment) as its password");
            token
        }
        None => {
            let made = !dashboard_file.exists();
            let token = keep(&dashboard_file)?;
            info!(
                file = %dashboard_file.display(),
                "the dashboard asks for the token in this file as its password (any user name){}; read it with: \
                 docker exec <container> cat {}",
                if made { ", generated now" } else { "" },
                dashboard_file.display()
            );
            token
        }
    };

    let (signing_key, public_keys) = match env("HEMOSTAT_COMMAND_SIGNING_KEY") {
        Some(key) => {
            let public = std::env::var("HEMOSTAT_COMMAND_PUBLIC_KEYS").unwrap_or_default();
            if public.trim().is_empty() {
                return Err(SupervisorError::Setting {
                    name: "HEMOSTAT_COMMAND_PUBLIC_KEYS",
                    value: String::new(),
                    why: "HEMOSTAT_COMMAND_SIGNING_KEY is set: give the collector its public key too".to_owned(),
                });
            }
            info!("commands are signed with HEMOSTAT_COMMAND_SIGNING_KEY from the environment");
            (key, public)
        }
        None => signing_pair(settings)?,
    };

    let redis = if settings.external_redis {
        info!("every part uses REDIS_URL; no Redis of its own");
        None
    } else {
        Some(redis_users(settings, host)?)
    };
    Ok(Secrets { lambda_token, dashboard_token, signing_key, public_keys, redis })
}

/// The command signing pair in the state folder, generated the first time.
fn signing_pair(settings: &Settings) -> Result<(Secret, String), SupervisorError> {
    let dir = &settings.state_dir;
    let (key_file, public_file) = (dir.join("command_signing.key"), dir.join("command_signing.pub"));
    let made = !key_file.exists();
    if made {
        // The private key goes to its file only; the output (the public key) is not needed.
        hemostat(settings, &["keys", "generate", "--dir"], &[dir.as_os_str()])?;
    }
    let key = read_private(&key_file)?;
    let public = fs::read_to_string(&public_file)
        .map_err(|e| state_error(&public_file, format!("{e}; delete {} for a new pair", key_file.display())))?;
    let public = public.trim().to_owned();
    let id = VerifyingKeys::parse(&public)
        .map_err(|e| state_error(&public_file, e.to_string()))?
        .ids()
        .first()
        .map(|id| (*id).to_owned())
        .unwrap_or_default();
    info!(
        key_id = %id,
        key_file = %key_file.display(),
        "command signing key {}",
        if made { "generated" } else { "reused" }
    );
    Ok((key, public))
}

/// One Redis ACL user per part (`hemostat acl`), and a default user nobody
/// can log in as (scripts/lib/redis-users.sh says why it is not simply off).
fn redis_users(settings: &Settings, host: &str) -> Result<RedisUsers, SupervisorError> {
    let dir = &settings.state_dir;
    let redis_dir = dir.join("redis");
    private_dir(&redis_dir)?;
    let data_dir = redis_dir.join("data");
    private_dir(&data_dir)?;
    let collector_role = format!("collector:{host}");
    let mut roles: Vec<&str> = vec![&collector_role, "bridge"];
    roles.extend(FUNCTION_ROLES);
    roles.push("operator");
    let mut args: Vec<&std::ffi::OsStr> = vec![dir.as_os_str(), "--acl-file".as_ref()];
    args.extend(roles.iter().map(|r| std::ffi::OsStr::new(*r)));
    let mut acl = hemostat(settings, &["acl", "--dir"], &args)?;
    acl.push_str(&default_user()?);
    let acl_file = redis_dir.join("users.acl");
    write_private(&acl_file, &acl)?;
    let run_as = unprivileged_redis(&redis_dir, &data_dir, &acl_file)?;

    let url = |user: &str| -> Result<Secret, SupervisorError> {
        let password = read_private(&redis_dir.join(format!("{user}.password")))?;
        Ok(Secret::new(format!("redis://{user}:{}@127.0.0.1:{}", password.expose(), settings.redis_port)))
    };
    let operator = url("hemostat-operator")?;
    write_private(&dir.join("redis.url"), &format!("{}\n", operator.expose()))?;
    let mut functions = serde_json::Map::new();
    for role in FUNCTION_ROLES {
        let user = format!("hemostat-{role}");
        functions.insert(user.clone(), serde_json::json!({ "REDIS_URL": url(&user)?.expose() }));
    }
    let functions_env = redis_dir.join("functions.env.json");
    write_private(&functions_env, &serde_json::Value::Object(functions).to_string())?;
    info!(
        folder = %redis_dir.display(),
        "Redis has no user without a password: one ACL user per part, passwords in this folder; `hemostat` in the \
         container logs in as the operator (redis.url)"
    );
    Ok(RedisUsers {
        collector_url: url(&format!("hemostat-collector-{host}"))?,
        bridge_url: url("hemostat-bridge")?,
        functions_env,
        acl_file,
        data_dir,
        run_as,
    })
}

/// As root: hands redis-server what it must read and write (its data, the
/// ACL file of password hashes) and lets it pass through the state folder
/// and `redis/` (0711: through, not list), whose secret files stay root's
/// own (0600).
/// Otherwise Redis runs as the supervisor's user, which owns it all.
fn unprivileged_redis(
    redis_dir: &Path,
    data_dir: &Path,
    acl_file: &Path,
) -> Result<Option<(u32, u32)>, SupervisorError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let (uid, gid) = REDIS_USER;
    // The state folder and `redis/`: through, not list; every secret file
    // in them is its owner's alone (0600).
    for dir in redis_dir.ancestors().take(2) {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o711)).map_err(|e| state_error(dir, e.to_string()))?;
    }
    for path in [data_dir, acl_file] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| state_error(path, e.to_string()))?;
    }
    // What an older image's root Redis wrote there (its append-only files).
    for entry in walk(data_dir) {
        std::os::unix::fs::lchown(&entry, Some(uid), Some(gid)).map_err(|e| state_error(&entry, e.to_string()))?;
    }
    Ok(Some(REDIS_USER))
}

/// Every file and folder under `dir`, not following links.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

/// The default user's ACL line: on (Redis replays an append-only file's
/// transactions as it), with the hash of a password nobody ever knew.
fn default_user() -> Result<String, SupervisorError> {
    let hash = hex::encode(Sha256::digest(random_bytes()?));
    Ok(format!("user default on #{hash} ~* &* +@all\n"))
}

/// Runs `hemostat FIXED... ARGS...`; its stdout. Its stderr (an error
/// message, never a secret) is in the error.
fn hemostat(settings: &Settings, fixed: &[&str], args: &[&std::ffi::OsStr]) -> Result<String, SupervisorError> {
    let program = settings.bin_dir.join("hemostat");
    let command = format!("hemostat {}", fixed.join(" "));
    let output = Command::new(&program).args(fixed).args(args).stdin(Stdio::null()).output().map_err(|e| {
        SupervisorError::Command { command: command.clone(), why: format!("{}: {e}", program.display()) }
    })?;
    if !output.status.success() {
        let why = format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        return Err(SupervisorError::Command { command, why });
    }
    String::from_utf8(output.stdout).map_err(|e| SupervisorError::Command { command, why: e.to_string() })
}

fn state_error(path: &Path, why: impl Into<String>) -> SupervisorError {
    SupervisorError::State { path: path.to_path_buf(), why: why.into() }
}

/// Makes `dir` if needed; only its owner may list it.
fn private_dir(dir: &Path) -> Result<(), SupervisorError> {
    fs::create_dir_all(dir).map_err(|e| state_error(dir, e.to_string()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| state_error(dir, e.to_string()))
}

fn random_bytes() -> Result<[u8; 32], SupervisorError> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| state_error(Path::new("/dev/urandom"), e.to_string()))?;
    Ok(bytes)
}

/// 32 random bytes as 64 hex digits, as scripts/lib/secrets.sh makes them.
fn new_secret() -> Result<Secret, SupervisorError> {
    Ok(Secret::new(hex::encode(random_bytes()?)))
}

/// The secret in `path`, made the first time and kept across starts.
pub fn keep(path: &Path) -> Result<Secret, SupervisorError> {
    if !path.exists() {
        let secret = new_secret()?;
        // create_new: never replaces one another start wrote meanwhile.
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(mut file) => file
                .write_all(format!("{}\n", secret.expose()).as_bytes())
                .map_err(|e| state_error(path, e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(state_error(path, e.to_string())),
        }
    }
    read_private(path)
}

/// A new secret in `path`, replacing the last one.
pub fn fresh(path: &Path) -> Result<Secret, SupervisorError> {
    let secret = new_secret()?;
    write_private(path, &format!("{}\n", secret.expose()))?;
    Ok(secret)
}

/// Replaces `path` with `text`, private (0600) from its first byte.
fn write_private(path: &Path, text: &str) -> Result<(), SupervisorError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| state_error(&tmp, e.to_string()))?;
    file.write_all(text.as_bytes()).map_err(|e| state_error(&tmp, e.to_string()))?;
    fs::rename(&tmp, path).map_err(|e| state_error(path, e.to_string()))
}

/// A secret file: a regular file nobody but its owner may read, one line
/// of printable characters (the line end is not part of it).
pub fn read_private(path: &Path) -> Result<Secret, SupervisorError> {
    let meta = fs::symlink_metadata(path).map_err(|e| state_error(path, e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(state_error(path, "not a regular file; delete it and start again"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(state_error(
            path,
            format!("mode {:o} is open to group or others: chmod 600 it", meta.mode() & 0o777),
        ));
    }
    let text = fs::read_to_string(path).map_err(|e| state_error(path, e.to_string()))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    if line.is_empty() || !line.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(state_error(path, "not one line of printable characters; delete it and start again"));
    }
    Ok(Secret::new(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let dir = std::env::temp_dir().join(format!("hemostat-supervisor-{}", uuid_like()));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn uuid_like() -> String {
        hex::encode(&random_bytes().unwrap()[..8])
    }

    #[test]
    fn a_kept_secret_is_private_and_the_same_next_time() {
        let tmp = TempDir::new();
        let path = tmp.0.join("dashboard.token");
        let first = keep(&path).unwrap();
        assert_eq!(first.expose().len(), 64);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(keep(&path).unwrap().expose(), first.expose());
        let renewed = fresh(&path).unwrap();
        assert_ne!(renewed.expose(), first.expose());
        assert_eq!(read_private(&path).unwrap().expose(), renewed.expose());
    }

    #[test]
    fn an_open_or_garbled_secret_file_is_refused() {
        let tmp = TempDir::new();
        let path = tmp.0.join("token");
        fs::write(&path, "abc\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_private(&path).unwrap_err().to_string().contains("chmod 600"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "two\nlines\n").unwrap();
        assert!(read_private(&path).is_err());
        fs::write(&path, "").unwrap();
        assert!(read_private(&path).is_err());
    }

    #[test]
    fn the_default_user_has_a_hash_only() {
        let line = default_user().unwrap();
        let hash = line.split_whitespace().nth(3).unwrap();
        assert!(hash.starts_with('#') && hash.len() == 65, "{line}");
        assert_ne!(default_user().unwrap(), line, "a new password every time");
    }
}
