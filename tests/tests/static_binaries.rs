//! The static (musl) binaries a release ships run where there is no libc at
//! all, and on the other architecture:
//!
//! - x86_64: every binary a tarball holds (`scripts/release.sh --list-bins`)
//!   starts (`--version`) in an image imported from a tar that holds nothing
//!   but them (no loader, no /lib, no shell), on the real engine. The glibc
//!   build of the CLI (`target/debug/hemostat`) goes into the same image and
//!   must not start there, so the image is known to lack a libc.
//! - x86_64, a real run in such an image (the binaries and `template.yaml`,
//!   no CA certificates: a function builds an HTTP client, which reads them,
//!   only for a destination it is given): the collector, given the
//!   engine's socket, reports a container of the test to Redis; the emulator
//!   starts every function of `template.yaml`, and the exporter's function
//!   URL serves the collector's heartbeat and the container's status; both
//!   stop cleanly on `docker stop`.
//! - aarch64: the CLI and the collector (what a fleet host runs) are static
//!   aarch64 ELF files and run under qemu-user (`qemu-aarch64-static
//!   <binary>`, no binfmt registration): `--version`, a snapshot
//!   (`--once`) of the engine that lists the test's container, and the
//!   collector running against the engine and Redis (qemu-user passes the
//!   syscalls through: the unix socket and loopback TCP work) until it has
//!   reported the container, then a clean stop on SIGTERM.
//!
//! scripts/test.sh builds them with the dev profile (`scripts/release.sh
//! --target x86_64-unknown-linux-musl --profile dev --no-pack`, and
//! `--target aarch64-unknown-linux-musl --bin hemostat --bin
//! hemostat-collector`): the linking, which is what this checks, is the
//! release build's; only the optimisation differs. The Redis is the test's
//! own node: nothing here depends on the Redis mode, so it runs on the first
//! pass only.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use hemostat_e2e::{
    ContainerSpec, RedisServer, TempDir, bin_dir, collector, container::TEST_LABEL, current_test_name, docker,
    free_port, http_get, lambda_token, paths, show_output, strip_ansi, test_host, test_keys, wait_for, wait_until,
    workspace_root,
};
use hemostat_protocol::{ContainerRef, connection::Connection, keys};

const X86_64: &str = "x86_64-unknown-linux-musl";
const AARCH64: &str = "aarch64-unknown-linux-musl";
/// The aarch64 binaries the test command builds: what a fleet host runs.
const AARCH64_BINARIES: [&str; 2] = ["hemostat", "hemostat-collector"];
/// The parts a tarball holds besides template.yaml's functions.
const HOST_PARTS: [&str; 4] = ["hemostat", "hemostat-bridge", "hemostat-collector", "hemostat-local"];
/// A start on a loaded two-core machine, or under qemu.
const START: Duration = Duration::from_secs(120);

/// Where scripts/release.sh puts a target's dev-profile binaries.
fn static_bin_dir(target: &str) -> PathBuf {
    paths::target_dir().join(target).join("debug")
}

/// Every binary a tarball holds: what scripts/release.sh builds by default.
fn release_binaries() -> Vec<String> {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/release.sh"))
        .arg("--list-bins")
        .output()
        .expect("run scripts/release.sh --list-bins");
    assert!(out.status.success(), "{}", show_output("scripts/release.sh --list-bins", &out));
    let binaries: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    for part in HOST_PARTS {
        assert!(binaries.iter().any(|b| b == part), "{part} is not in scripts/release.sh --list-bins: {binaries:?}");
    }
    binaries
}

fn built(path: &Path, target: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "{} not built: scripts/test.sh builds it (or: scripts/release.sh --target {target} --profile dev --no-pack, \
         with --bin hemostat --bin hemostat-collector for aarch64; cargo build -p hemostat-cli for the glibc CLI)",
        path.display()
    );
    path.to_owned()
}

fn docker_cli(args: &[&str]) -> Output {
    // No step may hang the suite: a wedged engine fails the test.
    Command::new("timeout")
        .arg("120")
        .arg("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

/// The test engine's socket (`DOCKER_HOST=unix://...`), to mount into a container.
fn docker_socket() -> String {
    let host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST: run through scripts/test.sh");
    host.strip_prefix("unix://").expect("DOCKER_HOST is a unix:// socket").to_owned()
}

/// An image imported from a tar of exactly the given files (each copied
/// from its source to its path in the image), removed when dropped (also
/// when the test fails).
struct Image {
    name: String,
    _stage: TempDir,
}

impl Image {
    fn import(files: &[(PathBuf, String)]) -> Image {
        let stage = TempDir::new();
        let root = stage.0.join("root");
        let mut expected = BTreeSet::new();
        for (from, to) in files {
            let dest = root.join(to);
            let parent = dest.parent().expect("a path in the image");
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
            std::fs::copy(from, &dest).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), dest.display()));
            // The file and each folder on its way.
            expected.extend(Path::new(to).ancestors().filter(|p| !p.as_os_str().is_empty()).map(Path::to_owned));
        }
        let tar = stage.0.join("root.tar");
        let packed = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").output().expect("run tar");
        assert!(packed.status.success(), "{}", show_output("tar", &packed));

        // What the image holds: those files and their folders, nothing else.
        let listed = Command::new("tar").arg("-tf").arg(&tar).output().expect("run tar -tf");
        let entries: BTreeSet<PathBuf> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(|l| l.trim_start_matches("./").trim_end_matches('/'))
            .filter(|l| !l.is_empty() && *l != ".")
            .map(PathBuf::from)
            .collect();
        assert_eq!(entries, expected);

        let image = Image { name: format!("hemostat-static-test:{}", uuid::Uuid::new_v4().simple()), _stage: stage };
        let imported = docker_cli(&["import", tar.to_str().expect("UTF-8 temp path"), &image.name]);
        assert!(imported.status.success(), "{}", show_output("docker import", &imported));
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker_cli(&["image", "rm", "-f", &self.name]);
    }
}

/// A container started with `docker run -d`: its log printed if the test
/// fails, removed when dropped.
struct Running(String);

impl Running {
    fn start(args: &[&str]) -> Running {
        let name = format!("hemostat-static-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut run = vec!["run", "-d", "--name", &name];
        run.extend_from_slice(args);
        let running = Running(name.clone());
        let out = docker_cli(&run);
        assert!(out.status.success(), "{}", show_output("docker run", &out));
        running
    }

    /// Its output so far, without colour codes.
    fn logs(&self) -> String {
        let out = docker_cli(&["logs", &self.0]);
        strip_ansi(&format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    /// `docker stop` (SIGTERM, SIGKILL after 30 s); the exit code.
    fn stop(&self) -> i64 {
        let out = docker_cli(&["stop", "-t", "30", &self.0]);
        assert!(out.status.success(), "{}", show_output("docker stop", &out));
        let out = docker_cli(&["inspect", "-f", "{{.State.ExitCode}}", &self.0]);
        text(&out.stdout).parse().unwrap_or_else(|_| panic!("{}", show_output("docker inspect", &out)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of {}\n{}", self.0, self.logs());
        }
        let _ = docker_cli(&["rm", "-f", "-v", &self.0]);
    }
}

/// Waits until `host`'s collector has reported its heartbeat and the
/// stats of `container` to Redis.
async fn reported(conn: &Connection, host: &str, container: &str) -> bool {
    let c = ContainerRef::new(host, container);
    let keys = [keys::heartbeat(host), keys::stats(&c)];
    wait_until(START, || {
        let (mut conn, keys) = (conn.clone(), keys.clone());
        async move {
            let found: i64 = redis::cmd("EXISTS").arg(&keys).query_async(&mut conn).await.unwrap_or(0);
            found == 2
        }
    })
    .await
}

#[test]
fn every_static_binary_runs_in_an_image_without_libc() {
    let dir = static_bin_dir(X86_64);
    let binaries = release_binaries();
    let mut files: Vec<(PathBuf, String)> = binaries.iter().map(|b| (built(&dir.join(b), X86_64), b.clone())).collect();
    files.push((built(&bin_dir().join("hemostat"), X86_64), "glibc/hemostat".to_owned()));
    let image = Image::import(&files);

    let version = env!("CARGO_PKG_VERSION");
    for binary in &binaries {
        let path = format!("/{binary}");
        let ran = docker_cli(&["run", "--rm", "--network", "none", &image.name, &path, "--version"]);
        assert!(ran.status.success(), "{}", show_output(&format!("{path} --version in an empty image"), &ran));
        assert_eq!(text(&ran.stdout), format!("{binary} {version}"), "{}", show_output(&path, &ran));
    }

    // The control: a glibc binary has no loader to start it here.
    let ran = docker_cli(&["run", "--rm", "--network", "none", &image.name, "/glibc/hemostat", "--version"]);
    assert!(
        !ran.status.success(),
        "a dynamically linked binary ran in the image, so it is not libc-free:\n{}",
        show_output("/glibc/hemostat --version", &ran)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_collector_and_emulator_work_in_an_image_without_libc() {
    let dir = static_bin_dir(X86_64);
    let functions: Vec<String> = release_binaries().into_iter().filter(|b| !HOST_PARTS.contains(&b.as_str())).collect();
    let mut files: Vec<(PathBuf, String)> = ["hemostat-collector", "hemostat-local"]
        .into_iter()
        .chain(functions.iter().map(String::as_str))
        .map(|b| (built(&dir.join(b), X86_64), b.to_owned()))
        .collect();
    files.push((workspace_root().join("template.yaml"), "template.yaml".to_owned()));
    let image = Image::import(&files);

    let redis = RedisServer::start_node().await;
    let conn = redis.connection().await;
    let engine = docker().await;
    let target = ContainerSpec::new(["sleep", "600"]).start(&engine).await;

    // The collector, with the engine's socket where it looks by default,
    // watching only this test's containers; the host's network, for Redis
    // on loopback (the engine runs with --bridge=none).
    let host = test_host();
    let redis_url = format!("REDIS_URL={}", redis.url());
    let socket = format!("{}:/var/run/docker.sock", docker_socket());
    let (host_env, selector, public_keys) = (
        format!("HEMOSTAT_HOST={host}"),
        format!("HEMOSTAT_LABEL_SELECTOR={TEST_LABEL}={}", current_test_name()),
        format!("HEMOSTAT_COMMAND_PUBLIC_KEYS={}", test_keys().public),
    );
    let collector = Running::start(&[
        "--network",
        "host",
        "-v",
        &socket,
        "--tmpfs",
        "/state",
        "-e",
        "HEMOSTAT_COLLECTOR_STATE_DIR=/state",
        "-e",
        &redis_url,
        "-e",
        &host_env,
        "-e",
        &selector,
        "-e",
        &public_keys,
        "-e",
        "RUST_LOG=info",
        &image.name,
        "/hemostat-collector",
    ]);
    assert!(
        reported(&conn, &host, target.name()).await,
        "the static collector did not report {} within {START:?}\n--- log\n{}",
        target.name(),
        collector.logs()
    );

    // The emulator, running every function of template.yaml from the image.
    let listen = format!("127.0.0.1:{}", free_port());
    let token = format!("HEMOSTAT_LAMBDA_TOKEN={}", lambda_token());
    let emulator = Running::start(&[
        "--network",
        "host",
        "-e",
        &redis_url,
        "-e",
        &token,
        "-e",
        "EXPORTER_CLOUDWATCH_ENABLED=false",
        "-e",
        "RUST_LOG=info",
        &image.name,
        "/hemostat-local",
        "--template",
        "/template.yaml",
        "--listen",
        &listen,
        "--parameter-overrides",
        "ExporterUrlAuthType=NONE",
    ]);
    // Each function loaded (`function loaded function=NAME binary=/BIN`)
    // and its first instance initialized; a failed init ends the wait.
    let started = wait_for(START, || {
        let log = emulator.logs();
        async move {
            if let Some(failed) = log.lines().find(|l| l.contains("exited during init")) {
                return Some(Err(failed.to_owned()));
            }
            let field = |line: &str, name: &str| {
                line.split_whitespace().find_map(|w| w.strip_prefix(name)).map(str::to_owned).unwrap_or_default()
            };
            let loaded: BTreeMap<String, String> = log
                .lines()
                .filter(|l| l.contains("function loaded"))
                .map(|l| (field(l, "function="), field(l, "binary=")))
                .collect();
            let ready = !loaded.is_empty()
                && loaded
                    .keys()
                    .all(|f| log.lines().any(|l| l.contains("instance initialized") && field(l, "function=") == *f));
            ready.then_some(Ok(loaded))
        }
    })
    .await;
    let loaded = match started {
        Some(Ok(loaded)) => loaded,
        Some(Err(failed)) => panic!("a static function did not start: {failed}\n--- log\n{}", emulator.logs()),
        None => panic!("the static functions did not start within {START:?}\n--- log\n{}", emulator.logs()),
    };
    let binaries: BTreeSet<String> = loaded.values().map(|b| b.trim_start_matches('/').to_owned()).collect();
    assert_eq!(binaries, functions.iter().cloned().collect(), "the emulator runs every function's static binary");

    // An invocation through the exporter's function URL: what the static
    // collector reported, read from Redis by the static exporter.
    let exporter = loaded.iter().find(|(_, b)| *b == "/exporter").map(|(f, _)| f.clone()).expect("the exporter");
    let url = format!("http://{listen}/urls/{exporter}/metrics");
    let up = format!("hemostat_collector_up{{host=\"{host}\"}} 1");
    let status =
        format!("hemostat_container_status{{host=\"{host}\",container=\"{}\",status=\"running\"}} 1", target.name());
    let served = wait_for(Duration::from_secs(60), || async {
        let answer = http_get(&url, &[]).await;
        (answer.status == 200 && answer.body.contains(&up) && answer.body.contains(&status)).then_some(answer)
    })
    .await;
    assert!(
        served.is_some(),
        "{url} never showed {up} and {status}\n--- last answer\n{}",
        http_get(&url, &[]).await.body
    );

    // Both stop as on a host: SIGTERM, exit 0.
    assert_eq!(emulator.stop(), 0, "the emulator's exit code\n--- log\n{}", emulator.logs());
    assert_eq!(collector.stop(), 0, "the collector's exit code\n--- log\n{}", collector.logs());
}

/// qemu-user for aarch64: Debian's and Ubuntu's qemu-user-static name it
/// `qemu-aarch64-static`, a qemu-user build `qemu-aarch64`.
fn qemu_aarch64() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["qemu-aarch64-static", "qemu-aarch64"]
        .iter()
        .find_map(|name| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
        .expect("qemu-aarch64-static not found: scripts/test-env.sh install installs qemu-user-static")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aarch64_binaries_run_under_qemu_user() {
    let dir = static_bin_dir(AARCH64);
    let qemu = qemu_aarch64();
    let version = env!("CARGO_PKG_VERSION");
    for binary in AARCH64_BINARIES {
        let path = built(&dir.join(binary), AARCH64);
        // An aarch64 executable, with no interpreter and no shared library.
        let elf = Command::new("readelf").arg("-hldW").arg(&path).output().expect("run readelf");
        let elf = String::from_utf8_lossy(&elf.stdout);
        let machine = elf.lines().find(|l| l.trim_start().starts_with("Machine:")).unwrap_or_default();
        assert!(machine.contains("AArch64"), "{}: {machine}", path.display());
        assert!(!elf.contains("INTERP") && !elf.contains("(NEEDED)"), "{} is not static:\n{elf}", path.display());

        let ran = Command::new("timeout").arg("120").arg(&qemu).arg(&path).arg("--version").output().expect("run qemu");
        assert!(ran.status.success(), "{}", show_output(&format!("qemu {binary} --version"), &ran));
        assert_eq!(text(&ran.stdout), format!("{binary} {version}"), "{}", show_output(binary, &ran));
    }

    // One snapshot of the engine (DOCKER_HOST, its unix socket) lists the
    // test's container.
    let engine = docker().await;
    let target = ContainerSpec::new(["sleep", "600"]).start(&engine).await;
    let collector_bin = dir.join("hemostat-collector");
    let snapshot = Command::new("timeout")
        .arg("120")
        .arg(&qemu)
        .arg(&collector_bin)
        .arg("--once")
        .env("RUST_LOG", "info")
        .output()
        .expect("run qemu hemostat-collector --once");
    assert!(snapshot.status.success(), "{}", show_output("qemu hemostat-collector --once", &snapshot));
    let json: serde_json::Value = serde_json::from_slice(&snapshot.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", show_output("qemu hemostat-collector --once", &snapshot)));
    let names: Vec<&str> =
        json["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&target.name()), "{} not in the snapshot: {json}", target.name());

    // The collector running, on the engine and Redis (loopback TCP), until
    // it has reported the container; then SIGTERM.
    let redis = RedisServer::start_node().await;
    let conn = redis.connection().await;
    let host = test_host();
    let collector =
        collector(&redis.url(), &host).name("hemostat-collector-aarch64").program(&qemu).arg(&collector_bin).spawn();
    collector.wait_for_line("collector ready", START).await;
    assert!(
        reported(&conn, &host, target.name()).await,
        "the aarch64 collector did not report {} within {START:?}\n--- log\n{}",
        target.name(),
        collector.log_tail(40)
    );
    let stopped = collector.stop(Duration::from_secs(30));
    assert!(stopped.is_some_and(|s| s.success()), "SIGTERM: {stopped:?}\n--- log\n{}", collector.log_tail(40));
}
