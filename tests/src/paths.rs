//! Filesystem locations shared by the harness.

use std::path::PathBuf;

/// Root of the Cargo workspace (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The documentation: `README.md`, then the book's chapters
/// (`docs/src/*.md`, `SUMMARY.md` among them) by file name. What the tests
/// that hold the text to the code read, wherever a section moves.
pub fn documentation() -> Vec<PathBuf> {
    let root = workspace_root();
    let src = root.join("docs/src");
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("the book's chapters, {}: {e}", src.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("{}: {e}", src.display())).path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    let mut files = vec![root.join("README.md")];
    files.extend(chapters);
    files
}

/// Cargo's target directory; honours `CARGO_TARGET_DIR` so the tests find the
/// binaries wherever `cargo build` put them.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        _ => workspace_root().join("target"),
    }
}

/// Directory holding the workspace binaries: `HEMOSTAT_BIN_DIR`, else
/// `<target>/debug`.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("HEMOSTAT_BIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("debug"),
    }
}

/// Directory for per-test process logs (`<target>/e2e-logs`), created on demand.
pub fn log_dir() -> PathBuf {
    let dir = target_dir().join("e2e-logs");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create log dir {}: {e}", dir.display()));
    dir
}

/// A collector's state folder (`HEMOSTAT_COLLECTOR_STATE_DIR`) for the running test:
/// `<target>/e2e-state/{test}-{name}`, one per test and collector (name it
/// after the collector's host: hosts are unique per run). Not created: the
/// collector creates it, as it must on a real host. A collector started
/// again under the same name in the same test finds the place it kept.
pub fn state_dir(name: &str) -> PathBuf {
    target_dir().join("e2e-state").join(format!("{}-{name}", crate::current_test_name()))
}
