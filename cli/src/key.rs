//! The command key: the HMAC key the responder signs commands with and the
//! collectors verify them with. `hemostat` checks the newest command of
//! each host's stream with it (`status`), so an operator sees whether the
//! stack signs and whether every part has the same key.
//!
//! Where it comes from, first match wins:
//! 1. `HEMOSTAT_COMMAND_KEY`, when set and not empty;
//! 2. `$HEMOSTAT_STATE_DIR/command.key`, when `HEMOSTAT_STATE_DIR` is set
//!    (only there: a state folder named on purpose is never silently
//!    replaced by another one);
//! 3. `.hemostat/command.key` in the current directory or the nearest
//!    parent that has one (the repository root, where `scripts/stack.sh`
//!    generates it).
//!
//! A key file must be a regular file with no group or other permission
//! bits (what `scripts/stack.sh` writes: mode 0600); anything else is
//! refused before the key is read. Its content is the key, one line of
//! printable characters; the line end is not part of it (as for the
//! shell's `$(<file)`, which the stack's processes are started with).

use std::{
    fmt,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use hemostat_protocol::secret::Secret;

use crate::error::CliError;

/// The variable holding the key itself.
pub const KEY_VAR: &str = "HEMOSTAT_COMMAND_KEY";
/// The variable naming the stack's state folder.
pub const STATE_DIR_VAR: &str = "HEMOSTAT_STATE_DIR";
/// The state folder's name, at the repository root.
pub const STATE_DIR: &str = ".hemostat";
/// The key file's name in the state folder.
pub const KEY_FILE: &str = "command.key";

/// Where the key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Env,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env => write!(f, "${KEY_VAR}"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A key and where it came from. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct CommandKey {
    pub secret: Secret,
    pub source: Source,
}

impl CommandKey {
    pub fn bytes(&self) -> &[u8] {
        self.secret.expose().as_bytes()
    }
}

/// What the lookup depends on, passed in so tests need no process state.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// `HEMOSTAT_COMMAND_KEY`'s value, if set.
    pub env_key: Option<&'a str>,
    /// `HEMOSTAT_STATE_DIR`'s value, if set.
    pub state_dir: Option<&'a Path>,
    /// Where the walk up for `.hemostat/command.key` starts.
    pub cwd: &'a Path,
}

/// The key file the rules above pick, if any (not yet checked or read).
pub fn find_file(lookup: &Lookup<'_>) -> Option<PathBuf> {
    if let Some(dir) = lookup.state_dir.filter(|d| !d.as_os_str().is_empty()) {
        let path = dir.join(KEY_FILE);
        return path.exists().then_some(path);
    }
    lookup.cwd.ancestors().map(|dir| dir.join(STATE_DIR).join(KEY_FILE)).find(|path| path.exists())
}

/// The command key by the rules above; `None` when there is none (commands
/// are then expected unsigned). A key file that is not private, not a
/// file, unreadable or malformed is an error (exit 2).
pub fn resolve(lookup: &Lookup<'_>) -> Result<Option<CommandKey>, CliError> {
    if let Some(value) = lookup.env_key.filter(|v| !v.is_empty()) {
        return Ok(Some(CommandKey { secret: Secret::new(value), source: Source::Env }));
    }
    let Some(path) = find_file(lookup) else { return Ok(None) };
    let secret = read_file(&path)?;
    Ok(Some(CommandKey { secret, source: Source::File(path) }))
}

/// The process's own lookup: its environment and current directory.
pub fn from_process() -> Result<Option<CommandKey>, CliError> {
    let env_key = std::env::var(KEY_VAR).ok();
    let state_dir = std::env::var_os(STATE_DIR_VAR).map(PathBuf::from);
    // No current directory (deleted under us): no walk, the rest still applies.
    let cwd = std::env::current_dir().unwrap_or_default();
    resolve(&Lookup { env_key: env_key.as_deref(), state_dir: state_dir.as_deref(), cwd: &cwd })
}

/// Reads a key file after checking it is a private regular file.
pub fn read_file(path: &Path) -> Result<Secret, CliError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| CliError::Usage(format!("command key file {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(CliError::Usage(format!("command key file {shown} is not a regular file")));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::Usage(format!(
            "command key file {shown} has mode {mode:04o}, open to group or others: refusing it (run `chmod 600 {shown}`)"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("command key file {shown} is unreadable: {e}")))?;
    let key = text.trim_end_matches('\n');
    if key.is_empty() {
        return Err(CliError::Usage(format!(
            "command key file {shown} is empty (delete it and restart scripts/stack.sh for a new one)"
        )));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(CliError::Usage(format!(
            "command key file {shown} must hold one line of printable characters, no spaces"
        )));
    }
    Ok(Secret::new(key))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A fresh directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("hemostat-cli-key-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_key(dir: &Path, content: &str, mode: u32) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(KEY_FILE);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn lookup<'a>(env_key: Option<&'a str>, state_dir: Option<&'a Path>, cwd: &'a Path) -> Lookup<'a> {
        Lookup { env_key, state_dir, cwd }
    }

    #[test]
    fn the_variable_wins_over_any_file() {
        let tmp = TempDir::new();
        write_key(&tmp.0.join(STATE_DIR), "from-file\n", 0o644);
        let key = resolve(&lookup(Some("from-env"), None, &tmp.0)).unwrap().unwrap();
        assert_eq!((key.secret.expose(), &key.source), ("from-env", &Source::Env));
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let tmp = TempDir::new();
        let path = write_key(&tmp.0.join(STATE_DIR), "abc123\n", 0o600);
        let key = resolve(&lookup(Some(""), None, &tmp.0)).unwrap().unwrap();
        assert_eq!((key.secret.expose(), key.source), ("abc123", Source::File(path)));
    }

    #[test]
    fn the_walk_finds_the_nearest_state_folder_up_from_the_current_directory() {
        let tmp = TempDir::new();
        let root_key = write_key(&tmp.0.join(STATE_DIR), "root-key\n", 0o600);
        let deep = tmp.0.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        let key = resolve(&lookup(None, None, &deep)).unwrap().unwrap();
        assert_eq!((key.secret.expose(), key.source), ("root-key", Source::File(root_key)));

        // A nearer one wins.
        let nearer = write_key(&tmp.0.join("a").join(STATE_DIR), "nearer-key", 0o400);
        let key = resolve(&lookup(None, None, &deep)).unwrap().unwrap();
        assert_eq!((key.secret.expose(), key.source), ("nearer-key", Source::File(nearer)));
    }

    #[test]
    fn a_state_dir_variable_is_the_only_place_looked_at() {
        let tmp = TempDir::new();
        write_key(&tmp.0.join(STATE_DIR), "walked\n", 0o600);
        let state = tmp.0.join("elsewhere");
        std::fs::create_dir_all(&state).unwrap();
        assert!(resolve(&lookup(None, Some(&state), &tmp.0)).unwrap().is_none(), "no fallback to the walk");
        let path = write_key(&state, "stated\n", 0o600);
        let key = resolve(&lookup(None, Some(&state), &tmp.0)).unwrap().unwrap();
        assert_eq!((key.secret.expose(), key.source), ("stated", Source::File(path)));
    }

    #[test]
    fn no_key_anywhere_is_none() {
        let tmp = TempDir::new();
        assert!(resolve(&lookup(None, None, &tmp.0)).unwrap().is_none());
    }

    #[test]
    fn a_key_file_open_to_group_or_others_is_refused() {
        let tmp = TempDir::new();
        for mode in [0o640, 0o604, 0o644, 0o660, 0o666, 0o610, 0o601] {
            let path = write_key(&tmp.0.join(STATE_DIR), "s3cr3t-value\n", mode);
            let err = resolve(&lookup(None, None, &tmp.0)).unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.exit_code(), 2, "{mode:o}: {msg}");
            assert!(msg.contains(&format!("{mode:04o}")) && msg.contains("chmod 600"), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(!msg.contains("s3cr3t"), "the key leaked: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        for mode in [0o600, 0o400] {
            write_key(&tmp.0.join(STATE_DIR), "s3cr3t-value\n", mode);
            assert!(resolve(&lookup(None, None, &tmp.0)).unwrap().is_some(), "{mode:o}");
        }
    }

    #[test]
    fn malformed_key_files_are_refused_without_showing_them() {
        let tmp = TempDir::new();
        for content in ["", "\n", "two words\n", "line1\nline2\n", "tab\tkey", "crlf-key\r\n"] {
            write_key(&tmp.0.join(STATE_DIR), content, 0o600);
            let err = resolve(&lookup(None, None, &tmp.0)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{content:?}");
            assert!(!err.to_string().contains("words") && !err.to_string().contains("line2"), "{err}");
        }
        // A directory where the file should be.
        let dir = tmp.0.join("dir-state");
        std::fs::create_dir_all(dir.join(KEY_FILE)).unwrap();
        let err = resolve(&lookup(None, Some(&dir), &tmp.0)).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn the_key_is_the_line_without_its_end_and_is_never_debug_printed() {
        let tmp = TempDir::new();
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        write_key(&tmp.0.join(STATE_DIR), &format!("{hex}\n"), 0o600);
        let key = resolve(&lookup(None, None, &tmp.0)).unwrap().unwrap();
        assert_eq!(key.bytes(), hex.as_bytes());
        assert!(!format!("{key:?}").contains(hex));
    }
}
