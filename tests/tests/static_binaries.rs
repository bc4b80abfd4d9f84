//! The static (musl) binaries a release ships run where there is no libc at
//! all: in an image imported from a tar that holds nothing but them (no
//! loader, no /lib, no shell), on the real engine.
//!
//! scripts/test.sh builds them for x86_64 with the dev profile
//! (`scripts/release.sh --target x86_64-unknown-linux-musl --profile dev
//! --bin hemostat --bin hemostat-collector --no-pack`): the linking, which is
//! what this checks, is the release build's; only the optimisation differs.
//! The glibc build of the CLI (`target/debug/hemostat`) goes into the same
//! image and must not start there, so the image is known to lack a libc.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hemostat_e2e::{TempDir, bin_dir, paths, show_output};

const TARGET: &str = "x86_64-unknown-linux-musl";

/// `HEMOSTAT_STATIC_BIN_DIR`, else `<target>/x86_64-unknown-linux-musl/debug`.
fn static_bin_dir() -> PathBuf {
    match std::env::var_os("HEMOSTAT_STATIC_BIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => paths::target_dir().join(TARGET).join("debug"),
    }
}

fn docker(args: &[&str]) -> Output {
    // No step may hang the suite: a wedged engine fails the test.
    Command::new("timeout")
        .arg("120")
        .arg("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

fn copy_executable(from: &Path, to: &Path) {
    assert!(
        from.is_file(),
        "{} not built: scripts/test.sh builds it (or: scripts/release.sh --target {TARGET} --profile dev \
         --bin hemostat --bin hemostat-collector --no-pack, and cargo build -p hemostat-cli)",
        from.display()
    );
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}

/// The imported image, removed when the test ends (also when it fails).
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "-f", &self.0]);
    }
}

#[test]
fn static_binaries_run_in_an_image_without_libc() {
    let dir = static_bin_dir();
    let stage = TempDir::new();
    let root = stage.0.join("root");
    copy_executable(&dir.join("hemostat"), &root.join("hemostat"));
    copy_executable(&dir.join("hemostat-collector"), &root.join("hemostat-collector"));
    copy_executable(&bin_dir().join("hemostat"), &root.join("glibc/hemostat"));

    let tar = stage.0.join("root.tar");
    let packed = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").output().expect("run tar");
    assert!(packed.status.success(), "{}", show_output("tar", &packed));

    let image = Image(format!("hemostat-static-test:{}", uuid::Uuid::new_v4().simple()));
    let tar_path = tar.to_str().expect("UTF-8 temp path");
    let imported = docker(&["import", tar_path, &image.0]);
    assert!(imported.status.success(), "{}", show_output("docker import", &imported));

    // What the image holds: the tar's three files and their folder, nothing else.
    let listed = Command::new("tar").arg("-tf").arg(&tar).output().expect("run tar -tf");
    let mut entries: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned())
        .filter(|l| !l.is_empty() && l != ".")
        .collect();
    entries.sort();
    assert_eq!(entries, ["glibc", "glibc/hemostat", "hemostat", "hemostat-collector"]);

    let version = env!("CARGO_PKG_VERSION");
    for (binary, expected) in
        [("/hemostat", format!("hemostat {version}")), ("/hemostat-collector", format!("hemostat-collector {version}"))]
    {
        let ran = docker(&["run", "--rm", "--network", "none", &image.0, binary, "--version"]);
        assert!(ran.status.success(), "{}", show_output(&format!("{binary} --version in an empty image"), &ran));
        assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), expected, "{}", show_output(binary, &ran));
    }

    // The control: a glibc binary has no loader to start it here.
    let ran = docker(&["run", "--rm", "--network", "none", &image.0, "/glibc/hemostat", "--version"]);
    assert!(
        !ran.status.success(),
        "a dynamically linked binary ran in the image, so it is not libc-free:\n{}",
        show_output("/glibc/hemostat --version", &ran)
    );
}
