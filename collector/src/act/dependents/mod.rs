//! Containers that share another's network namespace
//! (`network_mode: container:<parent>`, which compose writes for
//! `service:<parent>`): they lose their network when the parent restarts,
//! and cannot start while it is down.
//!
//! Found at action time, never from a cache: one list of every container
//! (its summary carries `HostConfig.NetworkMode`), then an inspect of each
//! container that names the parent, by full id or name (Docker stores the
//! id even when the name was given). Handled in the order they were
//! created (compose's start order), after the parent:
//!
//! - the parent restarted (or started from stopped): each running
//!   dependent is restarted, so it joins the parent's new namespace; one
//!   that exited when the parent went down ([`recoverable`]) is started;
//! - the parent stopped: each running dependent is stopped after it;
//! - a dependent outside the collector's scope, or whose owner said
//!   `hemostat.action=notify` or `none`, is left alone and listed as
//!   skipped.
//!
//! Dependents of dependents are found too, level by level (at most
//! [`crate::namespace::MAX_DEPTH`]): Docker records `container:<B>` for a container started
//! in B's namespace, which is really B's parent A's, and the engine does
//! not follow a restart of A into it. C stays in A's old namespace, with
//! only loopback, until it is restarted after B has joined A's new one;
//! so C is handled after B, and left alone with B when B is.
//!
//! Compose services that say `depends_on: {<parent's service>: {restart:
//! true}}` follow the parent too, as compose itself restarts them after it
//! restarts their dependency: once the parent runs (and, for `condition:
//! service_healthy`, is healthy), each running one is restarted. They keep
//! their own network, so a stop of the parent leaves them running.
//!
//! [`Recovery`] does the same for a parent restarted by someone else (an
//! operator, another tool, its restart policy): on the parent's `start`,
//! its dependents that exited within a few seconds of its going down are
//! started, and those still running in its old namespace (loopback only:
//! a VPN client's app that lost its tunnel) are restarted into the new
//! one, and those that join such a stranded one wait for its restart (a
//! start before it would join the old namespace); each verified and
//! reported in a `remediation_complete`.
//!
//! - `dependent`: a dependent, its tie to what it follows, and when it went down with it.
//! - `find`: the dependents of a container, found at action time.
//! - `cascade`: handling them after the executor's restart, stop or start.
//! - `recovery`: after someone else restarts a parent.
//! - `rejoin`: recreating the namespace dependents of a recreated parent in its new namespace.

mod cascade;
mod dependent;
mod find;
mod gone;
mod recovery;
mod rejoin;

pub use cascade::Cascade;
pub use dependent::{Dependent, summary};
pub use find::find;
pub use recovery::Recovery;
pub use rejoin::rejoin;
