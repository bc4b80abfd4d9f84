//! The command signing key: the Ed25519 private key the responder signs
//! commands with (collectors verify them with its public key). `hemostat`
//! checks the newest command of each host's stream with it (`status`), so
//! an operator sees whether the stack signs and with which key, and
//! `hemostat keys generate` makes a pair.
//!
//! Where it comes from, first match wins:
//! 1. `HEMOSTAT_COMMAND_SIGNING_KEY`, when set and not empty;
//! 2. `$HEMOSTAT_STATE_DIR/command_signing.key`, when `HEMOSTAT_STATE_DIR` is
//!    set (only there: a state folder named on purpose is never silently
//!    replaced by another one);
//! 3. `.hemostat/command_signing.key` in the current directory or the
//!    nearest parent that has one (the repository root, where
//!    `scripts/stack.sh` generates it).
//!
//! A key file must be a regular file with no group or other permission
//! bits (what `scripts/stack.sh` writes: mode 0600); anything else is
//! refused before the key is read. Its content is the key, one line of
//! base64 (PKCS#8); the line end is not part of it (as for the shell's
//! `$(<file)`, which the stack's processes are started with).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use hemostat_protocol::{
    command::{SigningKey, VerifyingKeys},
    secret::Secret,
};

use crate::{
    error::CliError,
    state::{self, STATE_DIR_VAR},
};

/// The variable holding the key itself.
pub const KEY_VAR: &str = "HEMOSTAT_COMMAND_SIGNING_KEY";
/// The key file's name in the state folder.
pub const KEY_FILE: &str = "command_signing.key";
/// The public key's file, beside it (`hemostat keys generate`).
pub const PUBLIC_FILE: &str = "command_signing.pub";

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

/// A key and where it came from. `Debug` shows only the key's id.
#[derive(Debug, Clone)]
pub struct CommandKey {
    pub key: Arc<SigningKey>,
    pub source: Source,
}

impl CommandKey {
    /// Its public key, as a collector holds it.
    pub fn public(&self) -> VerifyingKeys {
        VerifyingKeys::parse(&self.key.public_base64()).unwrap_or_default()
    }
}

/// What the lookup depends on, passed in so tests need no process state.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// `HEMOSTAT_COMMAND_SIGNING_KEY`'s value, if set.
    pub env_key: Option<&'a str>,
    /// `HEMOSTAT_STATE_DIR`'s value, if set.
    pub state_dir: Option<&'a Path>,
    /// Where the walk up for `.hemostat/command_signing.key` starts.
    pub cwd: &'a Path,
}

/// The key file the rules above pick, if any (not yet checked or read).
pub fn find_file(lookup: &Lookup<'_>) -> Option<PathBuf> {
    state::find(lookup.state_dir, lookup.cwd, KEY_FILE)
}

/// The command key by the rules above; `None` when there is none (commands
/// are then expected unsigned). A key file that is not private, not a
/// file, unreadable or malformed is an error (exit 2).
pub fn resolve(lookup: &Lookup<'_>) -> Result<Option<CommandKey>, CliError> {
    let (secret, source) = match lookup.env_key.filter(|v| !v.is_empty()) {
        Some(value) => (Secret::new(value), Source::Env),
        None => {
            let Some(path) = find_file(lookup) else { return Ok(None) };
            (read_file(&path)?, Source::File(path))
        }
    };
    // The parse error never quotes the key.
    let key = SigningKey::from_base64(secret.expose())
        .map_err(|e| CliError::Usage(format!("command signing key {source}: {e}")))?;
    Ok(Some(CommandKey { key: Arc::new(key), source }))
}

/// The process's own lookup: its environment and current directory.
pub fn from_process() -> Result<Option<CommandKey>, CliError> {
    let env_key = std::env::var(KEY_VAR).ok();
    let state_dir = std::env::var_os(STATE_DIR_VAR).map(PathBuf::from);
    // No current directory (deleted under us): no walk, the rest still applies.
    let cwd = std::env::current_dir().unwrap_or_default();
    resolve(&Lookup { env_key: env_key.as_deref(), state_dir: state_dir.as_deref(), cwd: &cwd })
}

/// `hemostat keys generate`: a new key pair in `dir` (default: the state
/// folder), the private key 0600 and never printed, the public key printed.
pub fn generate(dir: Option<&Path>, force: bool, json: bool) -> Result<(), CliError> {
    let dir = state::folder(dir);
    let (private_path, public_path) = (dir.join(KEY_FILE), dir.join(PUBLIC_FILE));
    if private_path.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} exists: keep it, or replace it with --force (collectors then need the new public key)",
            private_path.display()
        )));
    }
    let (private, public) = SigningKey::generate().map_err(|e| CliError::Usage(e.to_string()))?;
    let id = SigningKey::from_base64(&private).map_err(|e| CliError::Usage(e.to_string()))?.id().to_owned();
    state::create(&dir)?;
    state::write(&private_path, &private, 0o600)?;
    state::write(&public_path, &public, 0o644)?;
    if json {
        crate::show::json(&serde_json::json!({
            "signing_key_file": private_path, "public_key_file": public_path, "public_key": public, "key_id": id,
        }));
    } else {
        println!("signing key {id}: {} (mode 0600; the responder's {KEY_VAR})", private_path.display());
        println!("public key {id}: {public}");
        println!("  also in {}; every collector's HEMOSTAT_COMMAND_PUBLIC_KEYS", public_path.display());
    }
    Ok(())
}

/// Reads a key file after checking it is a private regular file.
pub fn read_file(path: &Path) -> Result<Secret, CliError> {
    state::read_private(path, "command key file")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::state::STATE_DIR;

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

    /// A new key: its text (as a key file holds it) and its id.
    fn key() -> (String, String) {
        let (private, _) = SigningKey::generate().unwrap();
        let id = SigningKey::from_base64(&private).unwrap().id().to_owned();
        (private, id)
    }

    #[test]
    fn the_variable_wins_over_any_file() {
        let tmp = TempDir::new();
        let ((file, _), (env, env_id)) = (key(), key());
        write_key(&tmp.0.join(STATE_DIR), &format!("{file}\n"), 0o644);
        let found = resolve(&lookup(Some(&env), None, &tmp.0)).unwrap().unwrap();
        assert_eq!((found.key.id(), &found.source), (env_id.as_str(), &Source::Env));
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let tmp = TempDir::new();
        let (text, id) = key();
        let path = write_key(&tmp.0.join(STATE_DIR), &format!("{text}\n"), 0o600);
        let found = resolve(&lookup(Some(""), None, &tmp.0)).unwrap().unwrap();
        assert_eq!((found.key.id(), found.source), (id.as_str(), Source::File(path)));
    }

    #[test]
    fn the_walk_finds_the_nearest_state_folder_up_from_the_current_directory() {
        let tmp = TempDir::new();
        let ((root, root_id), (near, near_id)) = (key(), key());
        let root_key = write_key(&tmp.0.join(STATE_DIR), &format!("{root}\n"), 0o600);
        let deep = tmp.0.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        let found = resolve(&lookup(None, None, &deep)).unwrap().unwrap();
        assert_eq!((found.key.id(), found.source), (root_id.as_str(), Source::File(root_key)));

        // A nearer one wins.
        let nearer = write_key(&tmp.0.join("a").join(STATE_DIR), &near, 0o400);
        let found = resolve(&lookup(None, None, &deep)).unwrap().unwrap();
        assert_eq!((found.key.id(), found.source), (near_id.as_str(), Source::File(nearer)));
    }

    #[test]
    fn a_state_dir_variable_is_the_only_place_looked_at() {
        let tmp = TempDir::new();
        let ((walked, _), (stated, stated_id)) = (key(), key());
        write_key(&tmp.0.join(STATE_DIR), &walked, 0o600);
        let state = tmp.0.join("elsewhere");
        std::fs::create_dir_all(&state).unwrap();
        assert!(resolve(&lookup(None, Some(&state), &tmp.0)).unwrap().is_none(), "no fallback to the walk");
        let path = write_key(&state, &stated, 0o600);
        let found = resolve(&lookup(None, Some(&state), &tmp.0)).unwrap().unwrap();
        assert_eq!((found.key.id(), found.source), (stated_id.as_str(), Source::File(path)));
    }

    #[test]
    fn no_key_anywhere_is_none() {
        let tmp = TempDir::new();
        assert!(resolve(&lookup(None, None, &tmp.0)).unwrap().is_none());
    }

    #[test]
    fn a_key_file_open_to_group_or_others_is_refused() {
        let tmp = TempDir::new();
        let (text, _) = key();
        for mode in [0o640, 0o604, 0o644, 0o660, 0o666, 0o610, 0o601] {
            let path = write_key(&tmp.0.join(STATE_DIR), &text, mode);
            let err = resolve(&lookup(None, None, &tmp.0)).unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.exit_code(), 2, "{mode:o}: {msg}");
            assert!(msg.contains(&format!("{mode:04o}")) && msg.contains("chmod 600"), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(!msg.contains(&text[..16]), "the key leaked: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        for mode in [0o600, 0o400] {
            write_key(&tmp.0.join(STATE_DIR), &text, mode);
            assert!(resolve(&lookup(None, None, &tmp.0)).unwrap().is_some(), "{mode:o}");
        }
    }

    #[test]
    fn malformed_key_files_are_refused_without_showing_them() {
        let tmp = TempDir::new();
        for content in ["", "\n", "two words\n", "line1\nline2\n", "tab\tkey", "crlf-key\r\n", "aGVsbG8gd29ybGQ=\n"] {
            write_key(&tmp.0.join(STATE_DIR), content, 0o600);
            let err = resolve(&lookup(None, None, &tmp.0)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{content:?}");
            let msg = err.to_string();
            assert!(!msg.contains("words") && !msg.contains("line2") && !msg.contains("aGVsbG8"), "{msg}");
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
        let (text, id) = key();
        write_key(&tmp.0.join(STATE_DIR), &format!("{text}\n"), 0o600);
        let found = resolve(&lookup(None, None, &tmp.0)).unwrap().unwrap();
        assert_eq!(found.key.id(), id);
        assert!(!format!("{found:?}").contains(&text[..16]));
        assert_eq!(found.public().ids(), [id.as_str()]);
    }
}
