//! One file per remediation action: how the executor carries it out on
//! Docker, with its dry run, and what it reports. Each takes the
//! [`Executor`](super::executor::Executor) (its Docker client, settings and
//! scope) and the command, and returns its [`Outcome`](super::outcome::Outcome).
//!
//! - `lifecycle`: `restart`, `stop` and `start`, with the target's namespace dependents.
//! - `blueprint`: a container's own configuration as a create body, for a replacement or a replica.
//! - `recreate`: a fresh container from the target's own configuration, and its namespace dependents after it.
//! - `replace`: the one recreate-from-configuration mechanism, never losing the old container.
//! - `leftovers`: replacements a killed collector did not finish, put right at start-up.
//! - `scale_up`: one more replica of a container's service.
//! - `cleanup`: reclaiming disk from exited containers and dangling images.
//! - `exec`: a command inside a container, only if allowlisted.

mod blueprint;
pub(super) mod cleanup;
pub(super) mod exec;
pub(super) mod leftovers;
pub(super) mod lifecycle;
pub(super) mod recreate;
pub(in crate::act) mod replace;
pub(super) mod scale_up;
