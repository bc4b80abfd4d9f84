//! What `hemostat-fuzz` (fuzz/) calls: the collector's readers of input
//! others write, without Docker or Redis. A command stream entry is written
//! by whoever can reach Redis, and a container's output by the container.

use chrono::{DateTime, Utc};
use hemostat_protocol::evidence::LogLine;

pub use crate::act::{Admission, Claimed, admit};
use crate::alert::redact::Redactor;

/// The logs API's frames (`(stderr, bytes)`) as evidence lines, whether
/// reading was cut short, and how many secrets were redacted.
pub fn log_lines(
    frames: &[(bool, Vec<u8>)],
    since: Option<DateTime<Utc>>,
    tail: usize,
    redactor: &Redactor,
) -> (Vec<LogLine>, bool, u32) {
    crate::alert::evidence::lines_of(frames, since, tail, redactor)
}
