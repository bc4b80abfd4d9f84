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
    /// A fresh container from the same configuration (name, labels,
    /// mounts, environment, restart policy) in place of this one: the step
    /// after a restart that did not hold.
    Recreate,
    Stop,
    Start,
    ScaleUp,
    Cleanup,
    Exec,
    None,
}

impl Action {
    /// The actions an operator may run by hand (`hemostat remediate`),
    /// through the same gate: `exec` needs an argv a `remediation_needed`
    /// does not carry, and `none` does nothing.
    pub const MANUAL: [Action; 6] =
        [Action::Restart, Action::Recreate, Action::Stop, Action::Start, Action::ScaleUp, Action::Cleanup];

    /// The actions an LLM verdict may ever carry, in the order its prompt
    /// lists them, if the operator allows them (the analyzer's
    /// `AI_ALLOWED_ACTIONS`). Never `start` (an alert never calls for
    /// starting a running container) nor `exec` (it needs a command line no
    /// verdict carries).
    pub const LLM_CHOICES: [Action; 5] =
        [Action::Restart, Action::None, Action::Stop, Action::ScaleUp, Action::Cleanup];

    /// What an LLM verdict may carry unless the operator says otherwise:
    /// actions on the alert's own container. Never `cleanup` by default: it
    /// reaches every exited container of the host, and a model can be
    /// steered by the very log lines it reads.
    pub const LLM_DEFAULT: [Action; 4] = [Action::Restart, Action::None, Action::Stop, Action::ScaleUp];

    /// [`LLM_DEFAULT`](Action::LLM_DEFAULT) as an operator writes the list:
    /// `restart,none,...` (the analyzer setting's default).
    pub const LLM_DEFAULT_TEXT: &'static str = match std::str::from_utf8(&LLM_DEFAULT_BYTES) {
        Ok(text) => text,
        Err(_) => panic!("action names are ASCII"),
    };

    /// Whether an LLM verdict may carry it ([`LLM_CHOICES`](Action::LLM_CHOICES)).
    pub fn llm_may_choose(self) -> bool {
        Action::LLM_CHOICES.contains(&self)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Recreate => "recreate",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::ScaleUp => "scale_up",
            Action::Cleanup => "cleanup",
            Action::Exec => "exec",
            Action::None => "none",
        }
    }
}

// `LLM_DEFAULT_TEXT`, joined at compile time (a setting's default is a
// `&'static str`).
const LLM_DEFAULT_BYTES: [u8; joined_len(&Action::LLM_DEFAULT)] = joined(&Action::LLM_DEFAULT);

/// The length of `actions`' names joined with commas.
const fn joined_len(actions: &[Action]) -> usize {
    let mut len = actions.len().saturating_sub(1);
    let mut i = 0;
    while i < actions.len() {
        len += actions[i].as_str().len();
        i += 1;
    }
    len
}

/// `actions`' names joined with commas; `N` is their [`joined_len`].
const fn joined<const N: usize>(actions: &[Action]) -> [u8; N] {
    let mut out = [0u8; N];
    let (mut at, mut i) = (0, 0);
    while i < actions.len() {
        if i > 0 {
            out[at] = b',';
            at += 1;
        }
        let name = actions[i].as_str().as_bytes();
        let mut j = 0;
        while j < name.len() {
            out[at] = name[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_choose_what() {
        assert_eq!(Action::LLM_DEFAULT_TEXT, "restart,none,stop,scale_up");
        assert!(Action::Cleanup.llm_may_choose() && !Action::LLM_DEFAULT.contains(&Action::Cleanup));
        for a in [Action::Start, Action::Exec] {
            assert!(!a.llm_may_choose(), "{a}");
        }
        for a in [Action::Exec, Action::None] {
            assert!(!Action::MANUAL.contains(&a), "{a}");
        }
        assert!(Action::MANUAL.contains(&Action::Start) && Action::Restart.llm_may_choose());
        assert!(Action::MANUAL.contains(&Action::Recreate));
    }
}
