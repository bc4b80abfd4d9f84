//! Workspace binaries run as child processes, with their output in a log file.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::paths::{bin_dir, log_dir};
use crate::polling::wait_for;

/// Spawns `cmd` with stdout+stderr appended to `log` and the child tied to
/// the spawning thread's lifetime (see the crate docs).
pub(crate) fn spawn_logged(cmd: &mut Command, log: &Path) -> std::io::Result<Child> {
    let out = OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // A SIGKILLed or aborted test binary never runs Drop; without this
            // its servers would outlive it and hold ports.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Kills and reaps `child` if it still runs.
pub(crate) fn kill_and_reap(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Sends `signal` and waits up to `grace` for the child to exit, then SIGKILL.
pub(crate) fn terminate(child: &mut Child, signal: i32, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain syscall; the pid is our unreaped child, so it cannot
        // have been recycled for another process.
        unsafe { libc::kill(pid, signal) };
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_and_reap(child)
}

/// Last `lines` lines of the file at `path` (empty if unreadable).
pub fn file_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Builder for [`Process`]; see [`Process::builder`].
#[derive(Debug, Clone)]
pub struct ProcessBuilder {
    bin: String,
    program: Option<PathBuf>,
    name: Option<String>,
    test: Option<String>,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
}

impl ProcessBuilder {
    /// Label used in the log file name; defaults to the binary name. Set it
    /// when a test runs several instances of the same binary.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Test name used in the log file name; defaults to
    /// [`crate::current_test_name`].
    pub fn test(mut self, test: impl Into<String>) -> Self {
        self.test = Some(test.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), Some(value.into())));
        self
    }

    /// Removes an inherited variable (e.g. the global `REDIS_URL` when a test
    /// wants the binary to use its own server).
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Runs `path` instead of the workspace binary in [`bin_dir`]: another
    /// build of it (a static one), or an emulator such as qemu-user given
    /// that build as its first [`arg`](Self::arg). The log keeps the binary's name.
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// Starts the process. Panics if the binary was not built.
    pub fn spawn(self) -> Process {
        let path = self.program.clone().unwrap_or_else(|| bin_dir().join(&self.bin));
        if let Some(program) = &self.program {
            assert!(program.is_file(), "{} (to run {}) not found", program.display(), self.bin);
        } else if !path.is_file() {
            panic!(
                "binary {} not found: run `cargo build --workspace --bins` first \
                 (or set HEMOSTAT_BIN_DIR)",
                path.display()
            );
        }
        let name = self.name.unwrap_or_else(|| self.bin.clone());
        let test = self.test.unwrap_or_else(crate::current_test_name);
        let log_path = log_dir().join(format!("{test}-{name}.log"));

        // Appending keeps the history of a restarted process in one file; the
        // cursor makes wait_for_line ignore what earlier runs wrote.
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot open log {}: {e}", log_path.display()));
        let spawned_at = log.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(log, "=== {} spawn {} {:?} ===", chrono::Utc::now().to_rfc3339(), path.display(), self.args);
        let cursor = log.metadata().map(|m| m.len()).unwrap_or(0);
        drop(log);

        let mut cmd = Command::new(&path);
        cmd.args(&self.args);
        for (key, value) in &self.envs {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        let child =
            spawn_logged(&mut cmd, &log_path).unwrap_or_else(|e| panic!("spawning {} failed: {e}", path.display()));
        Process { name, log_path, spawned_at, child: Mutex::new(child), cursor: Mutex::new(cursor) }
    }
}

/// A running workspace binary; killed when dropped.
pub struct Process {
    name: String,
    log_path: PathBuf,
    /// Offset of this run's header in the shared log file.
    spawned_at: u64,
    child: Mutex<Child>,
    cursor: Mutex<u64>,
}

impl Process {
    /// Starts describing a run of workspace binary `bin` (a file in
    /// [`bin_dir`]).
    pub fn builder(bin: impl Into<String>) -> ProcessBuilder {
        ProcessBuilder {
            bin: bin.into(),
            program: None,
            name: None,
            test: None,
            args: Vec::new(),
            envs: Vec::new(),
            current_dir: None,
        }
    }

    /// Shorthand for `builder(bin).args(args).env(..)..spawn()`.
    pub fn spawn(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Process {
        envs.iter().fold(Self::builder(bin).args(args), |b, (k, v)| b.env(k, v)).spawn()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// `None` while running, the exit status once it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Waits for a line containing `needle` written after the previous match
    /// (or after spawn), and returns it. Successive calls therefore find
    /// successive occurrences. Panics with the log tail on timeout or if the
    /// process exits first.
    pub async fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let mut exited = None;
        let found = wait_for(timeout, || {
            let status = self.exit_status();
            // Read after sampling the status, so output written just before
            // exiting is still seen.
            let hit = self.find_after_cursor(needle);
            if hit.is_none() && status.is_some() {
                exited = status;
            }
            async move { hit.or(status.map(|_| String::new())) }
        })
        .await;
        match found {
            Some(line) if exited.is_none() => line,
            _ => {
                let why = match exited {
                    Some(status) => format!("exited ({status}) before printing"),
                    None => format!("did not print within {timeout:?}"),
                };
                panic!(
                    "{} {why} a line containing {needle:?}\n--- {} (tail) ---\n{}\n---",
                    self.name,
                    self.log_path.display(),
                    self.log_tail(40)
                );
            }
        }
    }

    fn find_after_cursor(&self, needle: &str) -> Option<String> {
        let mut cursor = self.cursor.lock().unwrap();
        let mut file = File::open(&self.log_path).ok()?;
        file.seek(SeekFrom::Start(*cursor)).ok()?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).ok()?;
        let mut offset = 0usize;
        // Only complete lines count, so the caller never gets a line cut in
        // half by a concurrent write.
        while let Some(nl) = buf[offset..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&buf[offset..offset + nl]);
            offset += nl + 1;
            if line.contains(needle) {
                *cursor += offset as u64;
                return Some(line.into_owned());
            }
        }
        None
    }

    /// Output of this run (the file also keeps earlier runs under the same
    /// name, which would only confuse a failure message).
    pub fn log(&self) -> String {
        let read = || -> std::io::Result<Vec<u8>> {
            let mut file = File::open(&self.log_path)?;
            file.seek(SeekFrom::Start(self.spawned_at))?;
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)?;
            Ok(buf)
        };
        read().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Last `lines` lines of this run's output, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) without waiting.
    pub fn signal(&self, signal: i32) {
        let mut child = self.child.lock().unwrap();
        if let (Ok(None), Ok(pid)) = (child.try_wait(), i32::try_from(child.id())) {
            // SAFETY: plain syscall on our unreaped child.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, || std::future::ready(self.exit_status())).await
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status.
    pub fn stop(&self, grace: Duration) -> Option<ExitStatus> {
        terminate(&mut self.child.lock().unwrap(), libc::SIGTERM, grace)
    }

    /// SIGKILL and reap.
    pub fn kill(&self) -> Option<ExitStatus> {
        kill_and_reap(&mut self.child.lock().unwrap())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        kill_and_reap(child);
    }
}

/// `text` without the terminal colour codes (`ESC [ ... m`) of the
/// processes' log fields.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the built `hemostat` command with `args` against `url`, as
/// operator `tester`.
pub fn hemostat_cli(url: &str, args: &[&str]) -> std::process::Output {
    let path = crate::bin_dir().join("hemostat");
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    std::process::Command::new(&path)
        .args(args)
        .env("REDIS_URL", url)
        .env("USER", "tester")
        .env_remove("RUST_LOG")
        .env_remove("REDIS_CLUSTER")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

/// A finished command for an assertion message: what it was, its status,
/// and both outputs.
pub fn show_output(what: &str, output: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
