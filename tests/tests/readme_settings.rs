//! The documentation's tables of environment variables (the book's
//! Configuration and `hemostat` chapters, `docs/src/`) and the binaries'
//! `--help` agree: every variable a binary's help lists is in the table of
//! that binary (or the shared one), and every variable of a table is in the
//! help of the binaries it is for, unless an allow-list below says why not.
//!
//! Runs the built binaries (`cargo build --workspace --bins`), with an empty
//! environment: `--help` must need neither Redis nor a Lambda runtime.
//!
//! Also: every `hemostat` verb has an example in the README or the book,
//! every label HemoStat reads is in the book's label table, with an example,
//! and every file either names exists. The documentation is README.md and
//! `docs/src/*.md` (`hemostat_e2e::documentation`), wherever a section moves.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::{Command, Output},
};

use hemostat_e2e::{bin_dir, documentation, workspace_root};

const COLLECTOR: &str = "hemostat-collector";
const BRIDGE: &str = "hemostat-bridge";
const LOCAL: &str = "hemostat-local";
const ANALYZER: &str = "analyzer";
const RESPONDER: &str = "responder";
const ALERT: &str = "alert";
const DASHBOARD: &str = "dashboard";
const EXPORTER: &str = "exporter";
const CLI: &str = "hemostat";
const SUPERVISOR: &str = "hemostat-supervisor";

const FUNCTIONS: [&str; 5] = [ANALYZER, RESPONDER, ALERT, DASHBOARD, EXPORTER];
const BINARIES: [&str; 10] =
    [COLLECTOR, BRIDGE, LOCAL, ANALYZER, RESPONDER, ALERT, DASHBOARD, EXPORTER, CLI, SUPERVISOR];

/// Each table of variables, by the first word of the line that
/// introduces it, and the binaries whose help must list its variables.
const TABLES: &[(&str, &[&str])] = &[
    ("Shared", &[COLLECTOR, BRIDGE, ANALYZER, RESPONDER, ALERT, DASHBOARD, EXPORTER, CLI, SUPERVISOR]),
    ("Collector", &[COLLECTOR]),
    ("Bridge", &[BRIDGE]),
    ("Analyzer", &[ANALYZER]),
    ("Responder", &[RESPONDER]),
    ("Alert", &[ALERT]),
    ("Dashboard", &[DASHBOARD]),
    ("Exporter", &[EXPORTER]),
    ("Emulator", &[LOCAL]),
    ("Operator", &[CLI]),
    // docs/src/all-in-one.md: "The supervisor's own:".
    ("supervisor", &[SUPERVISOR]),
];

/// Variables in a table that no binary reads: the variable, a file
/// (from the repository root) that does read it, and why it is documented
/// next to the binaries. The test checks the file still mentions it.
const READ_BY_FILES: &[(&str, &str, &str)] = &[
    ("HEMOSTAT_REDIS_PORT", "compose.override.yaml", "compose publishes Redis on this 127.0.0.1 port"),
    ("HEMOSTAT_LOCAL_PORT", "compose.yaml", "compose publishes the emulator on this 127.0.0.1 port"),
    ("HEMOSTAT_DEMO_PORT", "compose.override.yaml", "compose publishes the demo target on this 127.0.0.1 port"),
    ("HEMOSTAT_PROMETHEUS_PORT", "compose.yaml", "compose publishes Prometheus on this 127.0.0.1 port"),
    ("DOCKER_SOCKET", "compose.yaml", "compose mounts this socket into the collector"),
    ("COMPOSE_PROJECT_NAME", "compose.yaml", "docker-compose's own project name"),
    ("HEMOSTAT_COLLECTOR_REDIS_URL", "compose.yaml", "the collector's REDIS_URL, its own Redis user"),
    ("HEMOSTAT_BRIDGE_REDIS_URL", "compose.yaml", "the bridge's REDIS_URL, its own Redis user"),
    ("HEMOSTAT_UID", "compose.yaml", "the user compose's Redis runs as"),
    ("HEMOSTAT_GID", "compose.yaml", "the group compose's Redis runs as"),
    ("HEMOSTAT_BIN_DIR", "scripts/compose.sh", "where scripts/compose.sh stages the binaries from"),
    ("HEMOSTAT_PROFILE", "scripts/stack.sh", "the build profile of scripts/stack.sh and scripts/compose.sh"),
    ("HEMOSTAT_SKIP_BUILD", "scripts/stack.sh", "scripts/stack.sh and scripts/compose.sh use target/ as it is"),
    ("HEMOSTAT_IMAGES_DIR", "infra/images/stage.sh", "where the image build contexts are staged"),
    ("HEMOSTAT_BASE_IMAGE", "infra/images/stage.sh", "the staged base image's name"),
    ("HEMOSTAT_LAMBDA_TARGET_DIR", "scripts/lambda-build.sh", "cargo's target dir of the arm64 build"),
    ("HEMOSTAT_SKIP_INIT", "scripts/lambda-build.sh", "skips the cold-start measurement"),
    ("HEMOSTAT_VENV", "scripts/python-tools.sh", "where the Python tools are installed"),
    ("HEMOSTAT_DEMO_IMAGE", "scripts/demo/lib.sh", "the demo target's image"),
    ("HEMOSTAT_DEMO_LABELS", "scripts/demo/lib.sh", "extra labels on the demo target"),
    ("HEMOSTAT_DEMO_KEEP", "scripts/demo/lib.sh", "keeps the demo target afterwards"),
];

/// Variables of the shared table that only some binaries read, with why.
const SHARED_BY_SOME: &[(&str, &[&str], &str)] = &[(
    "HEMOSTAT_COMMAND_SIGNING_KEY",
    &[RESPONDER, CLI],
    "the responder signs commands and hemostat checks them in `status`; collectors hold only the public key \
     (HEMOSTAT_COMMAND_PUBLIC_KEYS), nothing else handles a command",
)];

/// README.md and the book's chapters, each with its path from the
/// repository root.
fn documents() -> Vec<(String, String)> {
    let root = workspace_root();
    documentation()
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.strip_prefix(&root).unwrap_or(&path).display().to_string(), text)
        })
        .collect()
}

/// All of the documentation as one text, a blank line between files (a
/// table's introducing line stays in its file).
fn all_documents() -> String {
    documents().into_iter().map(|(_, text)| text).collect::<Vec<_>>().join("\n\n")
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    path
}

/// `name args...` with only `env` in its environment.
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let path = binary(name);
    Command::new(&path)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

fn help(name: &str) -> String {
    let out = run(name, &["--help"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} --help exited with {}: {stderr}", out.status);
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{name} --help is not UTF-8: {e}"))
}

fn is_variable(s: &str) -> bool {
    s.contains('_')
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The variables a help lists: clap's `[env: NAME=...]` annotations, and the
/// lines `  NAME  default  meaning` of hemostat-protocol's settings tables.
/// Variables merely mentioned in a description are neither.
fn help_variables(help: &str) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for (at, marker) in help.match_indices("[env: ") {
        let rest = &help[at + marker.len()..];
        let end = rest.find(['=', ']']).unwrap_or(rest.len());
        assert!(is_variable(&rest[..end]), "odd clap env annotation: {:?}", &rest[..end.min(60)]);
        vars.insert(rest[..end].to_owned());
    }
    for line in help.lines() {
        let Some(rest) = line.strip_prefix("  ") else { continue };
        let first = rest.split_whitespace().next().unwrap_or("");
        if !rest.starts_with(' ') && is_variable(first) {
            vars.insert(first.to_owned());
        }
    }
    vars
}

/// The documentation's `| variable | default | meaning |` tables: the line that
/// introduces each (its first word), and the variables of its first column.
fn readme_tables(readme: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut tables: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut intro = "";
    let mut in_table = false;
    for line in readme.lines().map(str::trim) {
        if line.starts_with('|') {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let first = cells.get(1).copied().unwrap_or("");
            if !in_table {
                in_table = true;
                if first == "variable" {
                    let word = intro.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
                    tables.push((word.to_owned(), BTreeSet::new()));
                } else {
                    // Another kind of table (keys, metrics, parameters).
                    tables.push((String::new(), BTreeSet::new()));
                }
                continue;
            }
            if first.starts_with("---") {
                continue;
            }
            let Some((title, vars)) = tables.last_mut() else { continue };
            if title.is_empty() {
                continue;
            }
            for (i, token) in first.split('`').enumerate() {
                if i % 2 == 1 {
                    assert!(is_variable(token), "table {title}: {token:?} is not a variable name");
                    vars.insert(token.to_owned());
                }
            }
        } else {
            in_table = false;
            if !line.is_empty() {
                intro = line;
            }
        }
    }
    tables.retain(|(title, _)| !title.is_empty());
    tables
}

#[test]
fn readme_tables_and_help_agree() {
    let tables = readme_tables(&all_documents());
    let mut problems = Vec::new();

    let mut documented: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (title, vars) in &tables {
        match TABLES.iter().find(|(t, _)| t == title) {
            Some((_, binaries)) => {
                for b in *binaries {
                    documented.entry(b).or_default().extend(vars.iter().cloned());
                }
            }
            None => problems.push(format!("table {title:?} is not mapped to binaries in TABLES")),
        }
    }
    for (title, _) in TABLES {
        if !tables.iter().any(|(t, _)| t == title) {
            problems.push(format!("the documentation has no table of variables introduced by {title:?}"));
        }
    }
    let in_readme: BTreeSet<&String> = tables.iter().flat_map(|(_, vars)| vars).collect();

    let helps: BTreeMap<&str, BTreeSet<String>> = BINARIES.iter().map(|b| (*b, help_variables(&help(b)))).collect();
    for (binary, vars) in &helps {
        if vars.is_empty() {
            problems.push(format!("{binary} --help lists no variables"));
        }
        let readme_vars = documented.get(binary).cloned().unwrap_or_default();
        for var in vars.difference(&readme_vars) {
            problems.push(format!("{binary} --help lists {var}, which its tables in docs/src do not"));
        }
    }

    for (title, vars) in &tables {
        let Some((_, binaries)) = TABLES.iter().find(|(t, _)| t == title) else { continue };
        for var in vars {
            if READ_BY_FILES.iter().any(|(v, ..)| v == var) {
                continue;
            }
            let readers = SHARED_BY_SOME.iter().find(|(v, ..)| v == var).map(|(_, readers, _)| *readers);
            for binary in binaries.iter().filter(|b| readers.is_none_or(|r| r.contains(b))) {
                if !helps[binary].contains(var) {
                    problems.push(format!("table {title} lists {var}, which {binary} --help does not"));
                }
            }
        }
    }

    // The allow-lists must not outlive what they excuse.
    for (var, file, _why) in READ_BY_FILES {
        if !in_readme.contains(&var.to_string()) {
            problems.push(format!("READ_BY_FILES: {var} is in no table any more"));
        }
        match std::fs::read_to_string(workspace_root().join(file)) {
            Ok(text) if text.contains(var) => {}
            _ => problems.push(format!("READ_BY_FILES: {file} does not mention {var}")),
        }
        // The all-in-one image's supervisor reads the ports compose publishes,
        // with the same meaning inside its container, and documents them in
        // its own table.
        let own = |binary: &str| binary == SUPERVISOR && documented.get(SUPERVISOR).is_some_and(|d| d.contains(*var));
        if let Some((binary, _)) = helps.iter().find(|(binary, vars)| vars.contains(*var) && !own(binary)) {
            problems.push(format!("READ_BY_FILES: {var} is read by {binary} after all"));
        }
    }
    for (var, readers, _why) in SHARED_BY_SOME {
        if !in_readme.contains(&var.to_string()) {
            problems.push(format!("SHARED_BY_SOME: {var} is in no table any more"));
        }
        for (binary, vars) in &helps {
            if vars.contains(*var) && !readers.contains(binary) {
                problems.push(format!("SHARED_BY_SOME: {binary} reads {var} too"));
            }
        }
    }

    assert!(problems.is_empty(), "the documentation and --help disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn unknown_arguments_are_refused() {
    for binary in BINARIES {
        let out = run(binary, &["--no-such-setting"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{binary} accepted --no-such-setting");
        assert!(stderr.contains("--no-such-setting"), "{binary}: {stderr}");
    }
}

#[test]
fn help_never_shows_a_secret() {
    let env = [
        ("REDIS_URL", "redis://:pw-5ecret@127.0.0.1:1"),
        ("HEMOSTAT_COMMAND_SIGNING_KEY", "key-5ecret"),
        ("OPENAI_API_KEY", "sk-5ecret"),
        ("ANTHROPIC_API_KEY", "sk-ant-5ecret"),
        ("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/5ecret"),
        ("ALERT_WEBHOOK_URL", "https://hook.example/5ecret"),
        ("ALERT_WEBHOOK_SECRET", "hmac-5ecret"),
        ("EXPORTER_BEARER_TOKEN", "token-5ecret"),
        ("HEMOSTAT_LAMBDA_TOKEN", "lambda-5ecret"),
        ("DASHBOARD_AUTH_TOKEN", "dashboard-5ecret"),
    ];
    for binary in BINARIES {
        let out = run(binary, &["--help"], &env);
        assert!(out.status.success(), "{binary} --help exited with {}", out.status);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains("5ecret"), "{binary} --help shows a secret:\n{text}");
    }
    for function in FUNCTIONS {
        let out = run(function, &["--help"], &env);
        assert!(String::from_utf8_lossy(&out.stdout).contains("[secret: set]"), "{function}");
    }
}

#[test]
fn extraction_reads_both_help_styles() {
    let clap = "      --block-ms <BLOCK_MS>\n          How long [env: HEMOSTAT_BRIDGE_BLOCK_MS=] [default: 1000]\n      \
                --redis-url <URL>\n          Redis, not REDIS_CLUSTER [env: REDIS_URL]\n";
    let table = "Settings:\n  ALERT_HTTP_TIMEOUT  5s  one request, see ALERT_NOTIFY_DEADLINE\n  REDIS_URL\n    \
                 NOT_A_ROW  x\n  Usage  y\n";
    let vars: Vec<String> = help_variables(clap).into_iter().chain(help_variables(table)).collect();
    assert_eq!(vars, ["HEMOSTAT_BRIDGE_BLOCK_MS", "REDIS_URL", "ALERT_HTTP_TIMEOUT", "REDIS_URL"]);
    let readme = "Intro.\n\nBridge (host):\n\n| variable | default | meaning |\n|---|---|---|\n\
                  | `A_B`, `C_D` | `1` | x `E_F` |\n\n| key | content |\n|---|---|\n| `G_H` | y |\n";
    let tables = readme_tables(readme);
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].0, "Bridge");
    assert_eq!(tables[0].1.iter().map(String::as_str).collect::<Vec<_>>(), ["A_B", "C_D"]);
}

/// The subcommands a clap help lists under `Commands:` (without `help`).
fn verbs(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_verb_has_an_example_in_the_readme() {
    let docs = all_documents();
    // The examples: lines of the README's and the book's code blocks that run `hemostat`.
    let examples: Vec<&str> = docs.lines().map(str::trim).filter(|l| l.starts_with("hemostat ")).collect();
    let top = verbs(&help(CLI));
    assert!(top.len() >= 8, "hemostat --help lists too few verbs: {top:?}");
    let mut missing = Vec::new();
    for verb in &top {
        let out = run(CLI, &[verb, "--help"], &[]);
        assert!(out.status.success(), "hemostat {verb} --help exited with {}", out.status);
        let subs = verbs(&String::from_utf8_lossy(&out.stdout));
        let wanted: Vec<String> = match subs.is_empty() {
            true => vec![format!("hemostat {verb}")],
            false => subs.iter().map(|sub| format!("hemostat {verb} {sub}")).collect(),
        };
        for want in wanted {
            if !examples.iter().any(|l| *l == want || l.starts_with(&format!("{want} "))) {
                missing.push(want);
            }
        }
    }
    assert!(missing.is_empty(), "verbs without an example in the README or the book: {missing:?}");
}

/// The label names HemoStat's sources define (`pub const ...LABEL...: &str
/// = "hemostat..."` or `"autoheal..."`), with the file that defines each.
fn labels_in_sources() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for dir in ["collector/src", "functions/protocol/src"] {
        for path in rust_files(&workspace_root().join(dir)) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines().map(str::trim) {
                let Some(rest) = line.strip_prefix("pub const ") else { continue };
                let Some((name, value)) = rest.split_once(": &str = \"") else { continue };
                let value = value.trim_end_matches("\";");
                if name.contains("LABEL") && (value.starts_with("hemostat.") || value.starts_with("autoheal")) {
                    found.push((value.to_owned(), path.display().to_string()));
                }
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`, its folders included.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

#[test]
fn every_label_is_in_the_readme_table_with_an_example() {
    let docs = all_documents();
    let rows: BTreeMap<String, String> = docs
        .lines()
        .filter(|l| l.starts_with("| `hemostat.") || l.starts_with("| `autoheal"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cells.get(1)?.trim_matches('`').to_owned(), cells.get(4)?.to_string()))
        })
        .collect();
    let labels = labels_in_sources();
    assert!(labels.len() >= 14, "too few labels found in the sources: {labels:?}");
    let problems: Vec<String> = labels
        .iter()
        .filter_map(|(label, file)| match rows.get(label) {
            None => Some(format!("{label} ({file}) is not in the label table (docs/src/labels.md)")),
            Some(example) if example.is_empty() => Some(format!("{label}: no example")),
            Some(_) => None,
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The folders of this repository a documented path can start with.
const REPO_FOLDERS: [&str; 11] =
    ["bridge/", "cli/", "collector/", "functions/", "local/", "tests/", "scripts/", "infra/", "docs/", ".ci/", "fuzz/"];

/// Every `path` a document names in this repository (in backticks, starting
/// with one of its folders), with the line it is on.
fn repo_paths(readme: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in readme.lines().enumerate() {
        for (i, quoted) in line.split('`').enumerate() {
            // Odd pieces are inside backticks.
            if i % 2 == 1 && REPO_FOLDERS.iter().any(|f| quoted.starts_with(f)) && !quoted.contains(' ') {
                // `file.rs::item` and `file.rs` (`Type::method`) name the file.
                let path = quoted.split("::").next().unwrap_or(quoted);
                found.push((n + 1, path.to_owned()));
            }
        }
    }
    found
}

/// Whether `path` exists; a `*` in its last part matches any characters
/// (`infra/Dockerfile*`: at least one such file).
fn exists(path: &str) -> bool {
    let full = workspace_root().join(path.trim_end_matches('/'));
    let name = full.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return full.exists();
    };
    let Some(dir) = full.parent().and_then(|d| std::fs::read_dir(d).ok()) else {
        return false;
    };
    dir.flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
    })
}

#[test]
fn every_file_the_readme_names_exists() {
    let mut found = 0;
    let mut missing = Vec::new();
    for (file, text) in documents() {
        let paths = repo_paths(&text);
        found += paths.len();
        missing.extend(
            paths.iter().filter(|(_, p)| !exists(p)).map(|(line, p)| format!("{file}:{line}: {p} does not exist")),
        );
    }
    // The Contributing chapter alone names dozens: a parser that finds
    // none would make this test pass on anything.
    assert!(found >= 30, "too few paths found in the README and the book: {found}");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn paths_are_found_in_backticks_only() {
    let text = "see `collector/src/act/executor.rs` (`Executor::execute`) and `functions/x.rs::f`,\n\
                not collector/src/lib.rs nor `target/x` nor `docker run -v collector/x`";
    let paths: Vec<String> = repo_paths(text).into_iter().map(|(_, p)| p).collect();
    assert_eq!(paths, ["collector/src/act/executor.rs", "functions/x.rs"]);
}
