//! The collector's state folder (`HEMOSTAT_STATE_DIR`): what must outlive
//! the process, each part in a subfolder of its own (`outbox/`).

use std::{os::unix::fs::DirBuilderExt, path::PathBuf};

use crate::{config::Config, error::CollectorError};

/// The state folder, created (mode 0700) if missing. An error names the
/// setting and the folder: the collector does not start without it.
pub fn prepare(config: &Config) -> Result<PathBuf, CollectorError> {
    let dir = config.state_dir();
    let unusable = |why: String| {
        CollectorError::Config(format!(
            "HEMOSTAT_STATE_DIR ({}) cannot be used: {why}; set HEMOSTAT_STATE_DIR (--state-dir) to a folder \
             the collector may write",
            dir.display()
        ))
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| unusable(e.to_string()))?;
    if !dir.is_dir() {
        return Err(unusable("not a folder".into()));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn an_unusable_folder_is_a_clear_error_naming_the_setting() {
        let root = std::env::temp_dir().join(format!("hemostat-state-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).unwrap();
        let file = root.join("a-file");
        std::fs::write(&file, "").unwrap();
        for dir in [file.clone(), file.join("below")] {
            let config = Config::parse_from(["c", "--host", "h", "--state-dir", dir.to_str().unwrap()]);
            let e = prepare(&config).unwrap_err().to_string();
            assert!(e.contains("HEMOSTAT_STATE_DIR") && e.contains("a-file"), "{e}");
        }
        let fresh = root.join("new").join("state");
        let config = Config::parse_from(["c", "--host", "h", "--state-dir", fresh.to_str().unwrap()]);
        assert_eq!(prepare(&config).unwrap(), fresh);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&fresh).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
