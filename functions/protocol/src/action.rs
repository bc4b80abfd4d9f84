//! What can be done to a container: named by the analyzer's and the
//! responder's events and carried out by the collector's commands. A leaf,
//! so that [`crate::event`] and [`crate::command`] need not import each
//! other for it.

use serde::{Deserialize, Serialize};

/// What can be done to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Restart,
    Stop,
    Start,
    ScaleUp,
    Cleanup,
    Exec,
    None,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::ScaleUp => "scale_up",
            Action::Cleanup => "cleanup",
            Action::Exec => "exec",
            Action::None => "none",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
