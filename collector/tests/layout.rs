//! The collector's layout stays readable (the book's Contributing
//! chapter, docs/src/contributing.md, relies on it): no source file over 500 lines, and every folder's
//! `mod.rs` opens with a paragraph saying its step.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 500;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_500_lines_and_every_folder_says_its_role() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 50, "collector sources not found under {}", src.display());
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines = text.lines().count();
        let name = file.strip_prefix(&src).unwrap().display().to_string();
        if lines > MAX_LINES {
            problems.push(format!("{name}: {lines} lines (at most {MAX_LINES}: split it by concern)"));
        }
        if file.file_name().is_some_and(|n| n == "mod.rs") && !text.starts_with("//! ") {
            problems.push(format!("{name}: does not open with a `//!` paragraph saying the folder's role"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
