//! The responder function: the safety gate between any `remediation_needed`
//! publisher and a Docker host.
//!
//! The gate itself (its atomic Redis scripts) is
//! [`hemostat_protocol::gate`], which `hemostat explain` previews too.
//!
//! Module map:
//! - `store`: what the handler needs from Redis (gate, host lookup,
//!   command dispatch) as a small trait, with the Redis implementation.
//! - `handler`: the Lambda handler: the container's facts into the gate,
//!   then dispatch a signed command to the container's host, or publish the
//!   refusal.
//! - `approvals`: actions that wait for a person's yes: parked before
//!   the gate, executed once approved, notified only past their deadline.
//! - `deferred`: restarts the cooldown refused for a dependency that could
//!   not be reached, asked again when it ends.
//! - `config`: environment variables.

mod approvals;
mod config;
mod deferred;
mod handler;
mod store;

pub use config::{Config, USAGE};
pub use handler::Responder;
pub use store::RedisStore;
