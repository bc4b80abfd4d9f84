//! The responder function: the safety gate between any `remediation_needed`
//! publisher and a Docker host.
//!
//! Module map:
//! - [`gate`]: the atomic Redis decision (cooldown, circuit breaker, audit),
//!   one Lua script over keys sharing a hash tag.
//! - [`store`]: what the handler needs from Redis (gate, host lookup,
//!   command dispatch) as a small trait, with the Redis implementation.
//! - [`handler`]: the Lambda handler: gate, then dispatch a signed command
//!   to the container's host, or publish the refusal.
//! - [`config`]: environment variables.

pub mod config;
pub mod gate;
pub mod handler;
pub mod store;

pub use config::Config;
pub use handler::Responder;
