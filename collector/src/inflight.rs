//! Containers the collector is acting on, so the die its own restart causes
//! is not reported as a crash.
//!
//! Each action leaves a time window; a Docker event is "ours" when it falls
//! inside the window of its container. Comparing with the event's own time,
//! rather than asking "is an action running right now?", keeps this right
//! when the watcher reads the die after the action already finished, and
//! does not hide a genuine crash moments after the restart.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Windows are kept this long after they close, for a slow event stream.
const KEEP: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Window {
    active: u32,
    start_nano: i64,
    end_nano: i64,
}

#[derive(Debug, Clone, Default)]
pub struct InFlight {
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

/// Closes the window when dropped, so an error path cannot leave a
/// container suppressed forever.
#[must_use]
pub struct Action {
    owner: InFlight,
    keys: Vec<String>,
}

impl InFlight {
    pub fn new() -> Self {
        InFlight::default()
    }

    /// Opens a window for a container, under each of its names (id, name).
    pub fn begin(&self, keys: impl IntoIterator<Item = String>) -> Action {
        let now = now_nanos();
        let keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
        let mut windows = self.lock();
        let horizon = now - KEEP.as_nanos() as i64;
        windows.retain(|_, w| w.active > 0 || w.end_nano >= horizon);
        for key in &keys {
            let w = windows.entry(key.clone()).or_insert(Window { active: 0, start_nano: now, end_nano: now });
            if w.active == 0 {
                w.start_nano = now;
            }
            w.active += 1;
        }
        Action { owner: self.clone(), keys }
    }

    /// Whether an event at `time_nano` for `key` happened during an action.
    pub fn covers(&self, key: &str, time_nano: i64) -> bool {
        self.lock().get(key).is_some_and(|w| time_nano >= w.start_nano && (w.active > 0 || time_nano <= w.end_nano))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Window>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Action {
    fn drop(&mut self) {
        let now = now_nanos();
        let mut windows = self.owner.lock();
        for key in &self.keys {
            if let Some(w) = windows.get_mut(key) {
                w.active = w.active.saturating_sub(1);
                w.end_nano = now;
            }
        }
    }
}

pub fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_events_during_the_action_only() {
        let f = InFlight::new();
        let before = now_nanos() - 1;
        let action = f.begin(["id1".to_string(), "web".to_string()]);
        let during = now_nanos();
        assert!(f.covers("id1", during) && f.covers("web", during));
        assert!(!f.covers("id1", before));
        assert!(f.covers("id1", now_nanos() + 1_000_000_000), "open window covers later events");
        drop(action);
        assert!(f.covers("web", during), "a late-read event of the action is still ours");
        assert!(!f.covers("web", now_nanos() + 1_000_000), "a crash after the action is not");
        assert!(!f.covers("other", during));
    }
}
