//! Records Redis refused for good, kept on the host: `dead-letters.jsonl`
//! in the outbox folder, one JSON object a line (`time`, `seq`, `kind`,
//! `reason`, `attempts`, `envelope`), mode 0600. Past [`MAX_BYTES`] the
//! file becomes `dead-letters.jsonl.1` (replacing the one before) and a
//! new one starts: bounded at twice that.
//!
//! The envelope is what would have gone to Redis (its evidence already
//! redacted on the host); the reason is Redis' answer, redacted too
//! ([`super::refusal::redacted`]). Each line is synced: dead letters are
//! rare, and the record leaves the outbox once it is written.
//!
//! Once the cause is fixed, `hemostat-collector dead-letters replay`
//! publishes them again ([`replay()`]), while the collector may be running
//! and appending. Both sides take an exclusive `flock` on the outbox
//! folder itself (not a lock file: a replay run as root must not leave a
//! file the collector's user cannot open) around every change: the
//! collector for one append (and rotation), the replay for reading the
//! files and, after publishing without the lock, for rewriting them. The
//! rewrite reads the files again under the lock and removes exactly the
//! lines it replayed (by content), so a line appended meanwhile, or moved
//! to `.1` by a rotation, is kept. Renaming the file away and processing
//! it instead would lose a line: an append opened before the rename lands
//! in the renamed file after it was read. One replay runs at a time (a
//! lock file of its own, `dead-letters.replay.lock`).

mod replay;
#[cfg(test)]
mod tests;

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

pub use replay::{Letter, Outcome, list, replay};

pub const FILE: &str = "dead-letters.jsonl";
/// The file before the last rotation: older, replayed first.
pub const ROTATED: &str = "dead-letters.jsonl.1";
pub const MAX_BYTES: u64 = 8 << 20;
/// Held by a replay (see [`Lock::replaying`]).
const REPLAY_LOCK: &str = "dead-letters.replay.lock";

pub struct DeadLetter<'a> {
    pub seq: u64,
    pub kind: Option<&'a str>,
    pub reason: &'a str,
    pub attempts: u64,
    /// The record as it was queued: an envelope's JSON.
    pub record: &'a [u8],
}

/// Appends `letter` to the dead-letter file in `dir`; returns the file's path.
pub fn write(dir: &Path, letter: &DeadLetter<'_>) -> io::Result<PathBuf> {
    let _lock = Lock::take(dir)?;
    let path = dir.join(FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= MAX_BYTES) {
        std::fs::rename(&path, dir.join(ROTATED))?;
    }
    let envelope = serde_json::from_slice::<serde_json::Value>(letter.record)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(letter.record).into_owned()));
    let line = serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "seq": letter.seq,
        "kind": letter.kind,
        "reason": super::refusal::redacted(letter.reason),
        "attempts": letter.attempts,
        "envelope": envelope,
    });
    let mut file = OpenOptions::new().append(true).create(true).mode(0o600).open(&path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()?;
    Ok(path)
}

/// An exclusive `flock` on the outbox folder, released when dropped (see
/// the module's documentation).
struct Lock {
    _held: File,
}

impl Lock {
    fn take(dir: &Path) -> io::Result<Lock> {
        flock(File::open(dir)?, libc::LOCK_EX)
    }

    /// The one replay at a time: two would publish the same letters. Its own
    /// file (which the collector never opens), held for the whole replay
    /// without holding the collector's appends up.
    fn replaying(dir: &Path) -> io::Result<Lock> {
        let file =
            OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(dir.join(REPLAY_LOCK))?;
        flock(file, libc::LOCK_EX | libc::LOCK_NB).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::new(e.kind(), "another replay is running"),
            _ => e,
        })
    }
}

fn flock(file: File, how: libc::c_int) -> io::Result<Lock> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), how) } == 0 {
            return Ok(Lock { _held: file });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
