//! Listing the dead letters and publishing them again, once the cause is
//! fixed: oldest first (`.1` before the current file), each with the
//! publisher the outbox sends with, removed from its file only once Redis
//! took it; one Redis refuses again stays, with the new reason. The files
//! are shared with a running collector (see the folder's documentation).

use std::{
    collections::HashMap,
    fs::{self, OpenOptions},
    io::{self, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::Path,
};

use hemostat_protocol::{Envelope, ProtocolError, Publisher};
use serde_json::Value;

use super::{FILE, Lock, ROTATED};
use crate::outbox::{Refusal, classify, refusal::redacted};

/// One dead letter, as its line says.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The line exactly: how the rewrite finds it again.
    line: String,
    value: Value,
}

impl Letter {
    fn parse(line: &str) -> Letter {
        Letter { line: line.to_owned(), value: serde_json::from_str(line).unwrap_or(Value::Null) }
    }

    /// The event type, as the outbox recorded it.
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().or_else(|| self.value["envelope"]["kind"].as_str()).unwrap_or("unknown")
    }

    pub fn time(&self) -> &str {
        self.value["time"].as_str().unwrap_or("?")
    }

    pub fn reason(&self) -> &str {
        self.value["reason"].as_str().unwrap_or("(a line that is not a dead letter)")
    }

    pub fn attempts(&self) -> u64 {
        self.value["attempts"].as_u64().unwrap_or(0)
    }

    /// The container the event is about, if it names one.
    pub fn container(&self) -> Option<&str> {
        self.value["envelope"]["data"]["container"].as_str()
    }

    /// The line as JSON (what `list --json` prints).
    pub fn json(&self) -> &Value {
        &self.value
    }

    fn envelope(&self) -> Result<Envelope, ProtocolError> {
        match &self.value["envelope"] {
            Value::Null => Err(ProtocolError::MalformedEnvelope("no envelope in this dead letter".into())),
            Value::String(text) => Envelope::parse(text.as_bytes()),
            value => Envelope::parse(value.to_string().as_bytes()),
        }
    }

    /// The line again after Redis refused it once more: the new reason,
    /// one more attempt; a line that is not a dead letter stays as it is.
    fn refused_again(&self, reason: &str) -> String {
        let mut value = self.value.clone();
        let Some(fields) = value.as_object_mut() else { return self.line.clone() };
        fields.insert("reason".into(), Value::String(redacted(reason)));
        fields.insert("attempts".into(), Value::from(self.attempts() + 1));
        value.to_string()
    }
}

/// What became of a dead letter in a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Redis took it, as this stream entry; gone from the file.
    Replayed(String),
    /// Redis refused it again, for this reason; kept with it.
    Refused(String),
    /// Not sent: Redis could not be reached (`--dry-run`: it would be sent).
    NotSent,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub replayed: usize,
    pub refused_again: usize,
    /// Dead letters in the files afterwards: refused again, not sent, not
    /// chosen (`--kind`), and any the collector added meanwhile.
    pub left: usize,
    /// Why the replay stopped early: Redis could not be reached.
    pub stopped: Option<String>,
}

/// The dead letters in `dir` (the outbox folder), oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<Letter>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let _lock = Lock::take(dir)?;
    read(dir)
}

fn read(dir: &Path) -> io::Result<Vec<Letter>> {
    let mut letters = Vec::new();
    for name in [ROTATED, FILE] {
        match fs::read_to_string(dir.join(name)) {
            Ok(text) => letters.extend(text.lines().filter(|l| !l.trim().is_empty()).map(Letter::parse)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(letters)
}

/// Publishes the dead letters in `dir` of type `kind` (all: `None`) in
/// order, one attempt each, and rewrites the files: what Redis took
/// leaves, what it refused again stays with the new reason. Redis
/// unreachable stops the replay (the rest stay). `dry_run`: nothing is
/// sent or changed. Each dead letter chosen comes back with its outcome.
pub async fn replay<P: Publisher>(
    dir: &Path,
    publisher: &P,
    kind: Option<&str>,
    dry_run: bool,
) -> io::Result<(Vec<(Letter, Outcome)>, Summary)> {
    if !dir.is_dir() {
        return Ok((Vec::new(), Summary::default()));
    }
    let _replaying = Lock::replaying(dir)?;
    let letters = list(dir)?;
    let total = letters.len();
    let mut done = Vec::new();
    let mut summary = Summary::default();
    for letter in letters.into_iter().filter(|l| kind.is_none_or(|k| l.kind() == k)) {
        if dry_run || summary.stopped.is_some() {
            done.push((letter, Outcome::NotSent));
            continue;
        }
        // What the outbox's delivery loop does with a record: parse, publish.
        let sent = match letter.envelope() {
            Ok(env) => publisher.publish(&env).await,
            Err(e) => Err(e),
        };
        let outcome = match sent {
            Ok(id) => {
                summary.replayed += 1;
                Outcome::Replayed(id)
            }
            Err(e) if classify(&e) == Refusal::Transient => {
                summary.stopped = Some(redacted(&e.to_string()));
                Outcome::NotSent
            }
            Err(e) => {
                summary.refused_again += 1;
                Outcome::Refused(redacted(&e.to_string()))
            }
        };
        done.push((letter, outcome));
    }
    summary.left = if dry_run { total } else { rewrite(dir, &done)? };
    Ok((done, summary))
}

/// Removes the replayed lines from the files and updates the ones refused
/// again, under the lock, keeping every other line (appended or rotated
/// meanwhile); returns the lines left.
pub(super) fn rewrite(dir: &Path, done: &[(Letter, Outcome)]) -> io::Result<usize> {
    let mut gone: HashMap<&str, usize> = HashMap::new();
    let mut again: HashMap<&str, Vec<String>> = HashMap::new();
    for (letter, outcome) in done {
        match outcome {
            Outcome::Replayed(_) => *gone.entry(&letter.line).or_default() += 1,
            Outcome::Refused(reason) => again.entry(&letter.line).or_default().push(letter.refused_again(reason)),
            Outcome::NotSent => {}
        }
    }
    let _lock = Lock::take(dir)?;
    let mut left = 0;
    for name in [ROTATED, FILE] {
        let path = dir.join(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let (mut kept, mut changed) = (String::with_capacity(text.len()), false);
        for line in text.lines() {
            if line.trim().is_empty() {
                changed = true;
                continue;
            }
            if let Some(n) = gone.get_mut(line).filter(|n| **n > 0) {
                *n -= 1;
                changed = true;
                continue;
            }
            match again.get_mut(line).and_then(Vec::pop) {
                Some(updated) => {
                    kept.push_str(&updated);
                    changed = true;
                }
                None => kept.push_str(line),
            }
            kept.push('\n');
            left += 1;
        }
        if changed {
            replace(dir, name, &kept)?;
        }
    }
    Ok(left)
}

/// Replaces `dir/name` by `text` atomically (a temporary file, synced,
/// renamed over it), mode 0600 and the old file's owner: a replay run as
/// root leaves a file the collector can still append to. Nothing left:
/// the file goes.
fn replace(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    let path = dir.join(name);
    if text.is_empty() {
        fs::remove_file(&path)?;
    } else {
        let owner = fs::metadata(&path)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        if let Err(e) = std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid())) {
            tracing::warn!(error = %e, file = %path.display(), "cannot keep the dead-letter file's owner");
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
    }
    fs::File::open(dir)?.sync_all()
}
