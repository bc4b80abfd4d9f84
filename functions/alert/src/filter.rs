//! Which notices a sink wants (`ALERT_<SINK>_EVENTS`,
//! `ALERT_<SINK>_MIN_SEVERITY`): a setting the configuration reads and the
//! sinks apply. A leaf: it reads notices alone.

use hemostat_protocol::EventKind;

use crate::notice::{Level, Notice};

/// Which notices a sink wants: the event kinds (all when unset) and the
/// lowest [`Level`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub kinds: Option<Vec<EventKind>>,
    pub min_level: Level,
}

impl Default for Filter {
    fn default() -> Self {
        Filter { kinds: None, min_level: Level::Info }
    }
}

impl Filter {
    /// Whether a sink with this filter wants `notice`; `closing`: the
    /// notice closes an earlier one ([`crate::sinks::Service::closes`]).
    pub fn admits(&self, notice: &Notice, closing: bool) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&notice.kind)) && (closing || notice.level() >= self.min_level)
    }
}
