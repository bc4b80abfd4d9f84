//! Reading a container's counters straight from its cgroup (v1 or v2) and
//! `/proc/<pid>/net/dev`.
//!
//! This is what dockerd itself does for `docker stats`, minus an HTTP round
//! trip, JSON, and dockerd's own per-container goroutines: a few `pread`s of
//! kernel pseudo-files per container and interval. The files are opened
//! once and re-read at offset 0, so a steady-state sample costs no path
//! lookups. The roots are configurable so a collector running in a
//! container can read the host's `/proc` and `/sys/fs/cgroup` mounted
//! elsewhere.
//!
//! - `layout`: where the host's cgroup hierarchy is, and a container's place in it.
//! - `files`: the counter files' formats, parsed.
//! - `probe`: one container's files, kept open and re-read each interval.

mod files;
mod layout;
mod probe;

pub use files::host_memory;
pub use layout::{Roots, Version};
pub use probe::{Probe, ReadBuffer, raise_fd_limit};
