//! The names removed containers had, by id: how a dependent whose
//! `container:<id>` names a container that no longer exists is tied to the
//! container that took that one's name (a `docker compose up` after a
//! change, an image updater, `docker rm -f` and `run` by hand).
//!
//! Fed by the watcher's `destroy` events, which carry the name; after a
//! collector restart the watcher replays the engine's event log from its
//! saved cursor, so a removal while it was away is remembered too, as far
//! as the engine's log reaches (its last 256 events). Compose's own labels
//! are the fallback beyond that (see [`Recovery`](super::Recovery)).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

/// Removals remembered before the oldest are forgotten: a parent is
/// recreated moments before its new container starts.
const REMEMBERED: usize = 4096;

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Gone {
    removed: Arc<Mutex<VecDeque<(String, String)>>>,
}

impl Gone {
    /// Container `id`, named `name`, was removed.
    pub fn note(&self, id: &str, name: &str) {
        let mut removed = self.removed.lock().unwrap_or_else(|e| e.into_inner());
        if removed.len() >= REMEMBERED {
            removed.pop_front();
        }
        removed.push_back((id.to_owned(), name.trim_start_matches('/').to_owned()));
    }

    /// Whether a removed container had this name.
    pub fn had_name(&self, name: &str) -> bool {
        let name = name.trim_start_matches('/');
        self.removed.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|(_, n)| n == name)
    }

    /// The name the removed container `id` (a full id, or a prefix of at
    /// least 12 digits) had, if it is remembered.
    pub fn name_of(&self, id: &str) -> Option<String> {
        if id.len() < 12 {
            return None;
        }
        let removed = self.removed.lock().unwrap_or_else(|e| e.into_inner());
        removed.iter().rev().find(|(gone, _)| gone.starts_with(id)).map(|(_, name)| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_containers_name_is_found_by_its_id() {
        let gone = Gone::default();
        let id = "ab".repeat(32);
        assert_eq!(gone.name_of(&id), None);
        gone.note(&id, "/vpn");
        assert_eq!(gone.name_of(&id).as_deref(), Some("vpn"));
        assert!(gone.had_name("vpn") && !gone.had_name("app"));
        assert_eq!(gone.name_of(&id[..12]).as_deref(), Some("vpn"));
        assert_eq!(gone.name_of("abab"), None, "too short a prefix to be sure");
        for i in 0..REMEMBERED {
            gone.note(&format!("{i:064}"), "other");
        }
        assert_eq!(gone.name_of(&id), None, "bounded: the oldest is forgotten");
    }
}
