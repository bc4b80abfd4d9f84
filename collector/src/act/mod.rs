//! Act: carrying out the remediation commands addressed to this host, the
//! last step of a crash's path. Commands are read from this host's stream,
//! checked (signature, host, age), run at most once each (a marker in
//! Redis), concurrently across containers but in order per container,
//! verified (the container must stay up, not just start), and reported as
//! a `remediation_complete`; the containers that follow the target (its
//! network namespace's dependents, compose services that restart with it)
//! are handled after it.
//!
//! - `admission`: the signature, host and age checks on a command, before anything runs.
//! - `consumer`: the consumer of this host's command stream, one task per command.
//! - `lanes`: commands run concurrently, in order per container.
//! - `limits`: a container's own labels (action, hourly cap, cooldown), enforced again on the host.
//! - `marker`: the per-command marker (executing / done) behind at-most-once execution.
//! - `report`: what a command came to, as the `remediation_complete` its sender reads.
//! - `executor`: a command's dispatch to its action, one file per action in `actions/`.
//! - `target`: what every action works with, and the container it aims at (the scope check).
//! - `verify`: the closed loop that watches a container after a fix.
//! - `outcome`: what one action came to, built by the actions and `verify` alike.
//! - `edge`: restarting crashes on its own while the control plane is away, under its own limits.
//! - `dependents`: containers that follow another: found at action time,
//!   handled after it, recovered after someone else restarts it.

mod actions;
mod admission;
mod consumer;
mod dependents;
mod edge;
mod executor;
mod lanes;
mod limits;
mod marker;
mod outcome;
mod report;
mod target;
mod verify;

pub use actions::leftovers::put_right as put_right_replacements;
#[cfg(feature = "fuzzing")]
pub use admission::{Admission, admit};
pub use consumer::{BLOCK, Consumer};
pub use dependents::Recovery;
pub use edge::{Edge, Settings as EdgeSettings};
pub use executor::Executor;
#[cfg(feature = "fuzzing")]
pub use report::Claimed;
