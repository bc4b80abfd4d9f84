//! The responder function: the safety gate between any `remediation_needed`
//! publisher and a Docker host.
//!
//! Module map:
//! - `gate`: the atomic Redis decision (cooldown, circuit breaker, audit),
//!   one Lua script over keys sharing a hash tag.
//! - `store`: what the handler needs from Redis (gate, host lookup,
//!   command dispatch) as a small trait, with the Redis implementation.
//! - `handler`: the Lambda handler: gate, then dispatch a signed command
//!   to the container's host, or publish the refusal.
//! - `config`: environment variables.

mod config;
mod gate;
mod handler;
mod store;

pub use config::{Config, USAGE};
pub use gate::{FleetBrake, Gate, GateDecision, GateRequest};
pub use handler::Responder;
pub use store::RedisStore;
