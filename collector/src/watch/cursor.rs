//! The watcher's place in the Docker event stream, kept in the state
//! folder (`cursor.json`) so that a collector that was away (an upgrade, a
//! crash, `kill -9`) catches up on what happened meanwhile instead of
//! starting from "now".
//!
//! The file holds the time of the last event handled, and the least of
//! the watcher's memory that keeps a restart from reporting an exit twice:
//! per container, its last event handled near that time (a replay starts a
//! little before it, [`MARGIN_NANOS`]); the exits reported from state
//! (their `die` may still be replayed); the API kills a later die may be
//! the requested stop of. Each list is bounded.
//!
//! "Handled" means the event's alert, if it raised one, is in the outbox:
//! while an alert is still being gathered, the cursor stays short of its
//! event and forgets its container, so a crash at that moment replays it
//! (at least once, never lost to the cursor). A catch-up in progress holds
//! the cursor at its start for the same reason.
//!
//! Written at most every [`SAVE_EVERY`] when something changed, off the
//! event loop (a write is a file write, an fsync, a rename and a folder
//! fsync), and once more at shutdown.

use std::{
    collections::{HashMap, HashSet},
    io,
    time::{Duration, Instant},
};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::state::StateDir;

/// The file in the state folder.
pub const FILE: &str = "cursor.json";
/// Its format; another is read as no cursor (and said so).
const VERSION: u32 = 1;
/// A catch-up replays from this long before the cursor: two containers'
/// events can reach the watcher a hair out of time order, so one stamped
/// just before the last event handled may not have been handled yet.
pub const MARGIN_NANOS: i64 = 1_000_000_000;
/// Kills older than this before the cursor cannot make a die a requested
/// stop (the detector's window).
const KILL_WINDOW_NANOS: i64 = 30_000_000_000;
/// Bounds of the file's lists (newest kept).
const SEEN_KEPT: usize = 1_000;
const REPORTED_KEPT: usize = 1_000;
const KILLS_KEPT: usize = 1_000;
/// How often, at most, the cursor is written.
pub const SAVE_EVERY: Duration = Duration::from_millis(200);

/// What `cursor.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub version: u32,
    /// The time (Unix ns, the engine's clock) up to which every event was
    /// handled: a catch-up reconciles exits after it.
    pub time_nano: i64,
    /// The same, for people reading the file.
    pub time: String,
    /// Per container, the last event handled at or after `time_nano -
    /// MARGIN_NANOS`, newest first: the first is the last event handled.
    pub seen: Vec<Seen>,
    /// Exits reported from state (their container, `FinishedAt`).
    pub reported: Vec<Reported>,
    /// API kills within the requested-stop window before `time_nano`.
    pub kills: Vec<Kill>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub id: String,
    pub time_nano: i64,
    /// [`crate::event::Happening::identity`].
    pub event: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    pub id: String,
    pub finished_nano: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    pub id: String,
    pub signal: i32,
    pub time_nano: i64,
}

/// The watcher's memory a [`Cursor`] is made of.
pub struct Memory<'a> {
    /// Time of the latest event handled.
    pub last: i64,
    /// Container id -> time and identity of its last event handled.
    pub seen: &'a HashMap<String, (i64, String)>,
    /// Container id -> `FinishedAt` of an exit reported from state.
    pub reported: &'a HashMap<String, i64>,
    /// (container id, signal, time) of recent API kills.
    pub kills: Vec<(&'a str, i32, i64)>,
    /// (container id, event time) of alerts not yet in the outbox.
    pub pending: Vec<(&'a str, i64)>,
    /// Where an unfinished catch-up started: nothing after it is settled.
    pub catching_up_from: Option<i64>,
}

impl Cursor {
    /// The cursor to write for the watcher's `memory`.
    pub fn of(memory: &Memory<'_>) -> Cursor {
        // Short of every alert still being gathered, and of an unfinished
        // catch-up's start (its exits from state are not reported yet).
        let held = memory.pending.iter().map(|(_, t)| t.saturating_sub(1)).chain(memory.catching_up_from).min();
        let time_nano = held.map_or(memory.last, |h| h.min(memory.last));
        let forget: HashSet<&str> = memory.pending.iter().map(|(id, _)| *id).collect();
        let from = time_nano.saturating_sub(MARGIN_NANOS);

        let mut seen: Vec<Seen> = memory
            .seen
            .iter()
            .filter(|(id, (t, _))| *t >= from && !forget.contains(id.as_str()))
            .map(|(id, (t, event))| Seen { id: id.clone(), time_nano: *t, event: event.clone() })
            .collect();
        seen.sort_by(|a, b| b.time_nano.cmp(&a.time_nano).then_with(|| a.id.cmp(&b.id)));
        seen.truncate(SEEN_KEPT);

        let mut reported: Vec<Reported> = memory
            .reported
            .iter()
            .filter(|(id, _)| !forget.contains(id.as_str()))
            .map(|(id, f)| Reported { id: id.clone(), finished_nano: *f })
            .collect();
        reported.sort_by(|a, b| b.finished_nano.cmp(&a.finished_nano).then_with(|| a.id.cmp(&b.id)));
        reported.truncate(REPORTED_KEPT);

        let mut kills: Vec<Kill> = memory
            .kills
            .iter()
            .filter(|(_, _, t)| *t >= time_nano.saturating_sub(KILL_WINDOW_NANOS))
            .map(|(id, signal, t)| Kill { id: (*id).to_owned(), signal: *signal, time_nano: *t })
            .collect();
        kills.sort_by(|a, b| b.time_nano.cmp(&a.time_nano).then_with(|| a.id.cmp(&b.id)));
        kills.truncate(KILLS_KEPT);

        Cursor {
            version: VERSION,
            time_nano,
            time: DateTime::<Utc>::from_timestamp_nanos(time_nano).to_rfc3339_opts(SecondsFormat::Nanos, true),
            seen,
            reported,
            kills,
        }
    }

    /// Reads a cursor file; an error says why it cannot be used.
    pub fn parse(bytes: &[u8]) -> Result<Cursor, String> {
        let cursor: Cursor = serde_json::from_slice(bytes).map_err(|e| format!("unreadable: {e}"))?;
        if cursor.version != VERSION {
            return Err(format!("version {} (this collector reads {VERSION})", cursor.version));
        }
        if cursor.time_nano <= 0 {
            return Err(format!("time {} is not a time", cursor.time_nano));
        }
        Ok(cursor)
    }

    /// The cursor in `dir`: None on a first start, and when the file
    /// cannot be used (logged: the collector then starts from now).
    pub fn load(dir: &StateDir) -> Option<Cursor> {
        let path = dir.path().join(FILE);
        match dir.read(FILE) {
            Ok(None) => {
                tracing::info!(path = %path.display(), "no cursor yet: first start, following Docker events from now");
                None
            }
            Ok(Some(bytes)) => match Cursor::parse(&bytes) {
                Ok(cursor) => Some(cursor),
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "cursor cannot be used: following Docker events from now (exits while the collector was away are not reported)");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cursor cannot be read: following Docker events from now (exits while the collector was away are not reported)");
                None
            }
        }
    }
}

/// Writes cursors to the state folder, one at a time, off the caller's task.
pub struct Saver {
    dir: StateDir,
    /// The write under way, with the bytes it writes.
    writing: Option<(JoinHandle<io::Result<Duration>>, Vec<u8>)>,
    /// The bytes last written: an unchanged cursor is not written again.
    written: Option<Vec<u8>>,
    stats: Stats,
    /// The last write failed: failures are logged once per spell.
    failing: bool,
}

/// What writing the cursor cost, for the log at shutdown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub writes: u64,
    pub failures: u64,
    pub total: Duration,
    pub max: Duration,
}

impl Saver {
    pub fn new(dir: StateDir) -> Saver {
        Saver { dir, writing: None, written: None, stats: Stats::default(), failing: false }
    }

    /// Starts writing `cursor` unless it is what was written last. False
    /// when a write is still under way: offer it again later.
    pub fn offer(&mut self, cursor: &Cursor) -> bool {
        if let Some((task, _)) = &mut self.writing {
            match task.now_or_never() {
                Some(done) => {
                    let (_, bytes) = self.writing.take().expect("a write under way");
                    self.finished(done, bytes);
                }
                None => return false,
            }
        }
        let bytes = match serde_json::to_vec_pretty(cursor) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "cursor not written: cannot encode it");
                return true;
            }
        };
        if self.written.as_ref() == Some(&bytes) {
            return true;
        }
        let dir = self.dir.clone();
        let payload = bytes.clone();
        let task = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            dir.write_atomic(FILE, &payload).map(|()| started.elapsed())
        });
        self.writing = Some((task, bytes));
        true
    }

    /// Waits for the write under way, then writes `cursor` and waits for it.
    pub async fn flush(&mut self, cursor: &Cursor) {
        if let Some((task, bytes)) = self.writing.take() {
            let done = task.await;
            self.finished(done, bytes);
        }
        self.offer(cursor);
        if let Some((task, bytes)) = self.writing.take() {
            let done = task.await;
            self.finished(done, bytes);
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn finished(&mut self, done: Result<io::Result<Duration>, tokio::task::JoinError>, bytes: Vec<u8>) {
        let path = self.dir.path().join(FILE);
        match done {
            Ok(Ok(took)) => {
                self.stats.writes += 1;
                self.stats.total += took;
                self.stats.max = self.stats.max.max(took);
                self.written = Some(bytes);
                if std::mem::replace(&mut self.failing, false) {
                    tracing::info!(path = %path.display(), "cursor written again");
                }
            }
            Ok(Err(e)) => self.failed(&path, &e.to_string()),
            Err(e) => self.failed(&path, &e.to_string()),
        }
    }

    fn failed(&mut self, path: &std::path::Path, error: &str) {
        self.stats.failures += 1;
        if !std::mem::replace(&mut self.failing, true) {
            tracing::warn!(path = %path.display(), %error, "cursor not written; retrying (a restart meanwhile would catch up from an older place)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * SEC;

    fn memory<'a>(
        last: i64,
        seen: &'a HashMap<String, (i64, String)>,
        reported: &'a HashMap<String, i64>,
    ) -> Memory<'a> {
        Memory { last, seen, reported, kills: Vec::new(), pending: Vec::new(), catching_up_from: None }
    }

    fn seen(entries: &[(&str, i64, &str)]) -> HashMap<String, (i64, String)> {
        entries.iter().map(|(id, t, e)| (id.to_string(), (*t, e.to_string()))).collect()
    }

    #[test]
    fn keeps_the_last_event_and_its_neighbours_only() {
        let seen = seen(&[("a", T0, "die:1"), ("b", T0 - SEC / 2, "start"), ("old", T0 - 5 * SEC, "start")]);
        let reported = HashMap::from([("r".to_owned(), T0 - SEC)]);
        let c = Cursor::of(&memory(T0, &seen, &reported));
        assert_eq!(c.time_nano, T0);
        assert_eq!(c.time, "2023-11-14T22:13:20.000000000Z");
        let ids: Vec<&str> = c.seen.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(c.seen[0], Seen { id: "a".into(), time_nano: T0, event: "die:1".into() });
        assert_eq!(c.reported, [Reported { id: "r".into(), finished_nano: T0 - SEC }]);
    }

    #[test]
    fn an_alert_not_yet_in_the_outbox_holds_the_cursor_and_its_container_is_forgotten() {
        let seen = seen(&[("a", T0, "die:1"), ("b", T0 + SEC, "start")]);
        let reported = HashMap::from([("a".to_owned(), T0 - 1)]);
        let mut m = memory(T0 + SEC, &seen, &reported);
        m.pending = vec![("a", T0)];
        let c = Cursor::of(&m);
        // Replayed from before the alert's event, which is not marked seen.
        assert_eq!(c.time_nano, T0 - 1);
        assert_eq!(c.seen.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(c.reported.is_empty());
        // Once it is handed over, the cursor moves on.
        m.pending.clear();
        assert_eq!(Cursor::of(&m).time_nano, T0 + SEC);
    }

    #[test]
    fn an_unfinished_catch_up_holds_the_cursor_at_its_start() {
        let seen = seen(&[("a", T0 + 10 * SEC, "die:1")]);
        let reported = HashMap::new();
        let mut m = memory(T0 + 10 * SEC, &seen, &reported);
        m.catching_up_from = Some(T0);
        let c = Cursor::of(&m);
        assert_eq!(c.time_nano, T0);
        // What the replay handled is still remembered as handled.
        assert_eq!(c.seen.len(), 1);
    }

    #[test]
    fn kills_within_the_stop_window_are_kept() {
        let seen = HashMap::new();
        let reported = HashMap::new();
        let mut m = memory(T0, &seen, &reported);
        m.kills = vec![("a", 15, T0 - 10 * SEC), ("b", 9, T0 - 40 * SEC)];
        let c = Cursor::of(&m);
        assert_eq!(c.kills, [Kill { id: "a".into(), signal: 15, time_nano: T0 - 10 * SEC }]);
    }

    #[test]
    fn lists_are_bounded() {
        let many: HashMap<String, (i64, String)> =
            (0..5_000).map(|i| (format!("c{i}"), (T0 - i, "start".to_owned()))).collect();
        let reported: HashMap<String, i64> = (0..5_000).map(|i| (format!("c{i}"), T0 - i)).collect();
        let c = Cursor::of(&memory(T0, &many, &reported));
        assert_eq!((c.seen.len(), c.reported.len()), (SEEN_KEPT, REPORTED_KEPT));
        // The newest are kept.
        assert_eq!(c.seen[0].id, "c0");
        assert_eq!(c.reported.last().map(|r| r.finished_nano), Some(T0 - REPORTED_KEPT as i64 + 1));
    }

    #[test]
    fn reads_back_what_it_writes_and_refuses_what_it_cannot_use() {
        let seen = seen(&[("a", T0, "die:1")]);
        let reported = HashMap::new();
        let c = Cursor::of(&memory(T0, &seen, &reported));
        let bytes = serde_json::to_vec_pretty(&c).unwrap();
        assert_eq!(Cursor::parse(&bytes).unwrap(), c);
        let mut other = c.clone();
        other.version = 2;
        let e = Cursor::parse(&serde_json::to_vec(&other).unwrap()).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        assert!(Cursor::parse(b"{\"version\":1").unwrap_err().contains("unreadable"));
        assert!(Cursor::parse(b"").is_err());
    }

    #[tokio::test]
    async fn the_saver_writes_changes_only() {
        let dir = std::env::temp_dir().join(format!("hemostat-cursor-test-{}", uuid::Uuid::new_v4().simple()));
        let state = StateDir::open(&dir).unwrap();
        let mut saver = Saver::new(state.clone());
        let seen = seen(&[("a", T0, "die:1")]);
        let reported = HashMap::new();
        let c = Cursor::of(&memory(T0, &seen, &reported));
        saver.flush(&c).await;
        saver.flush(&c).await;
        assert_eq!(saver.stats().writes, 1);
        assert_eq!(Cursor::load(&state), Some(c));
        let later = Cursor::of(&memory(T0 + SEC, &seen, &reported));
        saver.flush(&later).await;
        assert_eq!((saver.stats().writes, saver.stats().failures), (2, 0));
        assert_eq!(Cursor::load(&state).map(|c| c.time_nano), Some(T0 + SEC));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
