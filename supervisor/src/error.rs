//! The supervisor's one error type: what stopped it before or instead of
//! supervising, said in one line that never holds a secret.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A setting from the environment that cannot be used (exit 2).
    #[error("{name}={value:?}: {why}")]
    Setting { name: &'static str, value: String, why: String },
    /// A file of the state folder could not be made, read or trusted.
    #[error("{}: {why}", path.display())]
    State { path: PathBuf, why: String },
    /// A helper command (`hemostat keys generate`, `hemostat acl`) failed.
    #[error("{command}: {why}")]
    Command { command: String, why: String },
    /// A part could not be started at all (its binary missing, say).
    #[error("cannot start {part}: {why}")]
    Spawn { part: &'static str, why: String },
    /// A part kept dying: given up so that Docker's restart policy, and the
    /// user reading `docker ps`, see it.
    #[error("{part} died {times} times in a row, each within {stable_secs} s of its start: giving up")]
    GaveUp { part: &'static str, times: u32, stable_secs: u64 },
}

impl SupervisorError {
    /// 2 for what the user must fix in the settings, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            SupervisorError::Setting { .. } => 2,
            _ => 1,
        }
    }
}
