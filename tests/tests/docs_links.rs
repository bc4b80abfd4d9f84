//! The README and the book (`docs/src/*.md`) link only to what exists:
//! every relative link names a file or folder of the repository, every
//! `#anchor` a heading of the file it points into (mdBook's rule, which
//! GitHub's matches for these headings: lowercase, spaces become `-`, other
//! punctuation is dropped, a repeated heading gets `-1`, `-2`, ...), and
//! every chapter is in `SUMMARY.md` (mdBook builds only those). Needs no
//! network: links with a scheme (`https:`, `mailto:`) are not followed.
//! `scripts/docs.sh check` builds the book and runs this.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use hemostat_e2e::{documentation, workspace_root};

/// A heading's anchor as mdBook makes it (`normalize_id`), from the
/// heading's text as written: code spans keep their text, a link its text.
fn anchor(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](target)` reads as `text`.
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](").map(|m| open + m) else { break };
        let Some(close) = rest[mid..].find(')').map(|c| mid + c) else { break };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..mid]);
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    text.trim()
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_ascii_lowercase()),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

/// The lines of a Markdown file outside fenced code blocks, numbered from 1.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((n + 1, line));
        }
    }
    lines
}

/// The anchors of a file's headings (ATX headings, outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = anchor(&line[hashes..]);
        let mut id = base.clone();
        let mut n = 0;
        while found.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        found.insert(id);
    }
    found
}

/// The targets of a file's inline links (`[text](target)`, `![alt](target)`)
/// with their line, outside code blocks and code spans.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in prose(text) {
        let mut in_code = false;
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'`' => in_code = !in_code,
                b']' if !in_code && bytes.get(i + 1) == Some(&b'(') => {
                    let start = i + 2;
                    let mut depth = 1;
                    let mut end = start;
                    while end < bytes.len() {
                        match bytes[end] {
                            b'(' => depth += 1,
                            b')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        end += 1;
                    }
                    // `(target "title")`: the target is the first word.
                    let target = line[start..end].split_whitespace().next().unwrap_or("");
                    found.push((n, target.trim_matches(['<', '>']).to_owned()));
                    i = end;
                }
                _ => {}
            }
            i += 1;
        }
    }
    found
}

/// What is wrong with the links of `file` (whose text is `text`): one line
/// per broken link. `root` bounds where a link may point.
fn problems(root: &Path, file: &Path, text: &str) -> Vec<String> {
    let shown = file.strip_prefix(root).unwrap_or(file).display().to_string();
    let mut problems = Vec::new();
    for (line, target) in links(text) {
        if target.is_empty() {
            problems.push(format!("{shown}:{line}: an empty link"));
            continue;
        }
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (target.as_str(), None),
        };
        let resolved: PathBuf = if path.is_empty() {
            file.to_path_buf()
        } else if path.starts_with('/') {
            problems.push(format!("{shown}:{line}: {target}: an absolute path (write it relative to the file)"));
            continue;
        } else {
            file.parent().unwrap_or(root).join(path)
        };
        let Ok(resolved) = resolved.canonicalize() else {
            problems.push(format!("{shown}:{line}: {target}: no such file"));
            continue;
        };
        if !resolved.starts_with(root) {
            problems.push(format!("{shown}:{line}: {target}: outside the repository"));
            continue;
        }
        let Some(fragment) = fragment else { continue };
        if resolved.extension().is_none_or(|e| e != "md") {
            problems.push(format!("{shown}:{line}: {target}: an anchor into a file that is not Markdown"));
            continue;
        }
        let target_text =
            if resolved == file { text.to_owned() } else { std::fs::read_to_string(&resolved).unwrap_or_default() };
        if !anchors(&target_text).contains(fragment) {
            problems.push(format!("{shown}:{line}: {target}: no heading has the anchor #{fragment}"));
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_of_the_readme_and_the_book_resolves() {
    let root = workspace_root().canonicalize().expect("workspace root");
    let files = documentation();
    assert!(files.len() >= 15, "too few chapters found: {files:?}");
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in &files {
        let file = file.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        checked += links(&text).len();
        broken.extend(problems(&root, &file, &text));
    }
    // The README alone links into a dozen chapters: a parser that finds no
    // links would make this test pass on anything.
    assert!(checked >= 60, "too few links found ({checked})");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_chapter_is_in_the_summary() {
    let root = workspace_root().canonicalize().expect("workspace root");
    let summary = std::fs::read_to_string(root.join("docs/src/SUMMARY.md")).expect("docs/src/SUMMARY.md");
    let listed: BTreeSet<String> = links(&summary).into_iter().map(|(_, target)| target).collect();
    let missing: Vec<String> = documentation()
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("docs/src")))
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .filter(|name| name != "SUMMARY.md" && !listed.contains(name))
        .collect();
    assert!(missing.is_empty(), "chapters mdBook would not build (not in SUMMARY.md): {missing:?}");
}

#[test]
fn anchors_follow_mdbooks_rule() {
    assert_eq!(anchor(" Redis: one node or a cluster"), "redis-one-node-or-a-cluster");
    assert_eq!(anchor(" The Docker engine: socket, TLS, ssh, Podman"), "the-docker-engine-socket-tls-ssh-podman");
    assert_eq!(anchor(" The `hemostat` command"), "the-hemostat-command");
    assert_eq!(anchor(" See [Metrics](metrics.md) now"), "see-metrics-now");
    assert_eq!(anchor(" snake_case and 4.2 ms"), "snake_case-and-42-ms");
    let text = "# A\n\n## Figures\n\n```\n# not a heading\n```\n\n### Figures\n";
    assert_eq!(anchors(text), BTreeSet::from(["a".into(), "figures".into(), "figures-1".into()]));
}

#[test]
fn links_are_found_outside_code_only() {
    let text = "see [a](a.md#x) and `[b](b.md)`, [`c`](c.md \"title\") ![d](<d.png>)\n\
                ```\n[e](e.md)\n```\n<https://example.com> [f](https://example.com/x)\n";
    let found: Vec<String> = links(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(found, ["a.md#x", "c.md", "d.png", "https://example.com/x"]);
}

/// A broken link of each kind is reported, and a good one is not: the
/// check can fail.
#[test]
fn broken_links_are_reported() {
    let dir = std::env::temp_dir().join(format!("hemostat-docs-links-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).expect("temp dir");
    let root = dir.canonicalize().expect("temp dir");
    std::fs::write(root.join("src/other.md"), "# Other\n\n## Second part\n").expect("write");
    std::fs::write(root.join("script.sh"), "").expect("write");
    let text = "# Here\n\n[ok](other.md) [ok](other.md#second-part) [ok](#here) [ok](../script.sh)\n\
                [ok](https://example.com/#nowhere)\n\
                [no file](missing.md) [no anchor](other.md#third-part) [no local anchor](#there)\n\
                [not markdown](../script.sh#top) [gone](../../no-such-x) [outside](../..) [empty]()\n";
    let file = root.join("src/chapter.md");
    std::fs::write(&file, text).expect("write");
    let found = problems(&root, &file, text);
    std::fs::remove_dir_all(&root).expect("remove temp dir");
    let expected = [
        "src/chapter.md:5: missing.md: no such file",
        "src/chapter.md:5: other.md#third-part: no heading has the anchor #third-part",
        "src/chapter.md:5: #there: no heading has the anchor #there",
        "src/chapter.md:6: ../script.sh#top: an anchor into a file that is not Markdown",
        "src/chapter.md:6: ../../no-such-x: no such file",
        "src/chapter.md:6: ../..: outside the repository",
        "src/chapter.md:6: an empty link",
    ];
    assert_eq!(found, expected);
}
