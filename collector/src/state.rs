//! The collector's durable state folder (`--state-dir`,
//! `HEMOSTAT_COLLECTOR_STATE_DIR`): what must outlive the process (an upgrade, a
//! crash, `kill -9`), one file per concern, each replaced atomically.
//!
//! The folder is created (mode 0700) and proven writable at start: a
//! collector that could not keep its place would silently forget every
//! exit that happens while it is away, so it refuses to start instead.

use std::{
    ffi::OsString,
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use crate::error::CollectorError;

/// The folder when neither the setting nor systemd names one.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hemostat/collector";

/// Which folder to use: the setting (flag or `HEMOSTAT_COLLECTOR_STATE_DIR`), else
/// systemd's `STATE_DIRECTORY` (set by the unit's `StateDirectory=`; the
/// first one when it lists several), else [`DEFAULT_STATE_DIR`].
pub fn resolve(setting: Option<&Path>, state_directory: Option<OsString>) -> PathBuf {
    if let Some(path) = setting.filter(|p| !p.as_os_str().is_empty()) {
        return path.to_owned();
    }
    let systemd = state_directory
        .as_ref()
        .and_then(|v| v.to_str())
        .and_then(|v| v.split(':').next())
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    systemd.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// An open, writable state folder.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Creates `path` (and its parents, mode 0700) if missing, and checks
    /// that a file can be written there. The error names the setting.
    pub fn open(path: &Path) -> Result<StateDir, CollectorError> {
        let refuse = |what: &str, e: io::Error| {
            CollectorError::Config(format!(
                "state folder {} (HEMOSTAT_COLLECTOR_STATE_DIR, --state-dir): {what}: {e}; the collector keeps its place in \
                 the Docker event stream there, so that exits while it is stopped are still reported. Give it a \
                 folder it can write",
                path.display()
            ))
        };
        DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(|e| refuse("cannot create it", e))?;
        let dir = StateDir { path: path.to_owned() };
        dir.write_atomic(".write-check", b"ok\n").map_err(|e| refuse("cannot write in it", e))?;
        let _ = fs::remove_file(path.join(".write-check"));
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces `name` with `bytes` so that a crash at any moment leaves
    /// either the old file or the new one, never a mix: a temporary file
    /// (0600) written and synced, renamed over `name`, then the folder
    /// synced so the rename itself survives a power loss.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.path.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, self.path.join(name))?;
        File::open(&self.path)?.sync_all()
    }

    /// The contents of `name`, or None when there is no such file.
    pub fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A fresh folder under the system's temporary folder, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            Scratch(std::env::temp_dir().join(format!("hemostat-state-test-{}", uuid::Uuid::new_v4().simple())))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_setting_then_systemd_then_the_default() {
        let set = Path::new("/srv/hemostat");
        assert_eq!(resolve(Some(set), Some("/var/lib/x".into())), set);
        let listed = resolve(None, Some("/var/lib/hemostat-a:/var/lib/other".into()));
        assert_eq!(listed, Path::new("/var/lib/hemostat-a"));
        assert_eq!(resolve(Some(Path::new("")), None), Path::new(DEFAULT_STATE_DIR));
        assert_eq!(resolve(None, Some("".into())), Path::new(DEFAULT_STATE_DIR));
    }

    #[test]
    fn created_private_and_written_atomically() {
        let scratch = Scratch::new();
        let path = scratch.0.join("collector");
        let dir = StateDir::open(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(dir.read("cursor.json").unwrap(), None);
        dir.write_atomic("cursor.json", b"one").unwrap();
        dir.write_atomic("cursor.json", b"two").unwrap();
        assert_eq!(dir.read("cursor.json").unwrap().as_deref(), Some(&b"two"[..]));
        let file_mode = fs::metadata(path.join("cursor.json")).unwrap().permissions().mode() & 0o777;
        assert_eq!(file_mode, 0o600);
        // Neither the write check nor a temporary file is left behind.
        let names: Vec<String> =
            fs::read_dir(&path).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["cursor.json"]);
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_a_clear_error() {
        let scratch = Scratch::new();
        fs::create_dir_all(&scratch.0).unwrap();
        // A file where a parent folder should be: fails as root too.
        let file = scratch.0.join("file");
        fs::write(&file, b"x").unwrap();
        let e = StateDir::open(&file.join("collector")).unwrap_err().to_string();
        assert!(e.contains("HEMOSTAT_COLLECTOR_STATE_DIR") && e.contains("cannot create it"), "{e}");
    }
}
