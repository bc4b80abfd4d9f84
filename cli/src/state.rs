//! The stack's state folder (`.hemostat/`, or `$HEMOSTAT_STATE_DIR`): where
//! `scripts/stack.sh` and `hemostat keys generate` / `hemostat acl` keep the
//! command keys and Redis passwords, and how a secret file in it is written
//! (with its mode from the first byte) and read (refused if others may read
//! it).

use std::{
    fs::OpenOptions,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use hemostat_protocol::{
    config::DEFAULT_REDIS_URL,
    secret::{RedisUrl, Secret},
};

use crate::error::CliError;

/// The variable naming the stack's state folder.
pub const STATE_DIR_VAR: &str = "HEMOSTAT_STATE_DIR";
/// The state folder's name, at the repository root.
pub const STATE_DIR: &str = ".hemostat";
/// The operator's Redis URL, with its ACL user's password: what
/// `scripts/stack.sh` writes when it runs its own Redis.
pub const REDIS_URL_FILE: &str = "redis.url";

/// `explicit`, else `$HEMOSTAT_STATE_DIR`, else `./.hemostat`.
pub fn folder(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os(STATE_DIR_VAR)
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(STATE_DIR), PathBuf::from),
    }
}

/// The file `name` of the state folder: in `$HEMOSTAT_STATE_DIR` when it is
/// set (only there: a state folder named on purpose is never silently
/// replaced by another one), else in the nearest `.hemostat/` up from `cwd`
/// that has one. Not yet checked or read.
pub fn find(state_dir: Option<&Path>, cwd: &Path, name: &str) -> Option<PathBuf> {
    if let Some(dir) = state_dir.filter(|d| !d.as_os_str().is_empty()) {
        let path = dir.join(name);
        return path.exists().then_some(path);
    }
    cwd.ancestors().map(|dir| dir.join(STATE_DIR).join(name)).find(|path| path.exists())
}

/// [`find`] with this process's `$HEMOSTAT_STATE_DIR` and current directory.
pub fn find_here(name: &str) -> Option<PathBuf> {
    let state_dir = std::env::var_os(STATE_DIR_VAR).map(PathBuf::from);
    // No current directory (deleted under us): no walk, the rest still applies.
    let cwd = std::env::current_dir().unwrap_or_default();
    find(state_dir.as_deref(), &cwd, name)
}

/// The Redis URL when `REDIS_URL` is unset: the state folder's
/// [`REDIS_URL_FILE`] (refused if others may read it), else the default.
pub fn redis_url() -> Result<RedisUrl, CliError> {
    let text = match find_here(REDIS_URL_FILE) {
        Some(path) => read_private(&path, "Redis URL file")?,
        None => Secret::new(DEFAULT_REDIS_URL),
    };
    Ok(RedisUrl::new(text.expose()))
}

fn io(path: &Path, e: std::io::Error) -> CliError {
    CliError::Usage(format!("{}: {e}", path.display()))
}

/// Makes `dir` (mode 0700: only its owner may list the secrets in it).
pub fn create(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    Ok(())
}

/// Writes `text` and a line end to `path`, replacing it, created with
/// `mode`: a secret is never readable by others, even for a moment.
pub fn write(path: &Path, text: &str, mode: u32) -> Result<(), CliError> {
    let _ = std::fs::remove_file(path);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| io(path, e))?;
    file.write_all(format!("{text}\n").as_bytes()).map_err(|e| io(path, e))
}

/// Reads the one-line secret `what` (e.g. "command key file") from `path`
/// after checking it is a regular file no group or other may read. Errors
/// never quote the content.
pub fn read_private(path: &Path, what: &str) -> Result<Secret, CliError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| CliError::Usage(format!("{what} {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(CliError::Usage(format!("{what} {shown} is not a regular file")));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::Usage(format!(
            "{what} {shown} has mode {mode:04o}, open to group or others: refusing it (run `chmod 600 {shown}`)"
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("{what} {shown} is unreadable: {e}")))?;
    let secret = text.trim_end_matches('\n');
    if secret.is_empty() {
        return Err(CliError::Usage(format!("{what} {shown} is empty (delete it to have a new one made)")));
    }
    if !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(CliError::Usage(format!("{what} {shown} must hold one line of printable characters, no spaces")));
    }
    Ok(Secret::new(secret))
}
