//! The HemoStat protocol: what every component says to every other one.
//!
//! The collector, the bridge and every function speak through Redis. This
//! crate is the single definition of that conversation, so that a message
//! written by one component is always readable by the others, and by the
//! custom analyzers and dashboards users wrote against the original seed
//! protocol (`redis-cli SUBSCRIBE "hemostat:*"` keeps working).
//!
//! "Seed", here and across the code, means HemoStat's original system (its
//! Python agents and the documents specifying them); the *seed protocol* is
//! its wire format (envelope, channels, keys and field names), kept exactly
//! so that software written against it keeps working, and only added to.
//!
//! Module map:
//! - [`envelope`]: the seed envelope `{timestamp, agent, type, data}` and
//!   strict parsing (malformed input is an error value, never a panic).
//! - [`event`]: the four seed event kinds, their pub/sub channels and the
//!   durable streams that back them, plus the typed `data` of each.
//! - [`container`]: how a container is named across a fleet (host + name).
//! - [`diagnosis`]: why a container failed (cause, summary, evidence lines, restart or not).
//! - [`evidence`]: what an alert carries about its container (logs, health, state), bounded.
//! - [`stack`]: stack-trace frames in log lines, the first lines to go when a log is cut.
//! - [`attestation`]: which collector vouches for an alert (only the named
//!   host's collector may), checked by the analyzer.
//! - [`exposition`]: the Prometheus text format every `/metrics` writes.
//! - [`facts`]: what a container's collector says about it, the only account the gate believes.
//! - [`keys`]: the Redis key schema and TTLs.
//! - [`liveness`]: what a bridge replica reports of its own progress (its heartbeat).
//! - [`metrics`]: what a collector measured of a container: its stats record, and an alert's figures.
//! - [`policy`]: a container's own policy, from its labels (action, cooldown, thresholds, stop timeout).
//! - [`series`]: the samples of the dashboard's charts.
//! - [`silence`]: operators' silences (maintenance): stored, expiring, matched by the gate.
//! - [`deferred`]: restarts the cooldown refused, asked again when it ends
//!   (a dependency that could not be reached may be back by then).
//! - [`audit`]: the audit trail of a container's gate decisions and resets.
//! - [`gate`]: the responder's safety gate (cooldown, circuit breaker, fleet
//!   brake, audit), atomic Redis scripts, and its read-only preview for
//!   `hemostat explain`.
//! - [`command`]: remediation commands sent to one host's collector, with
//!   ids for idempotency, an expiry and Ed25519 signatures.
//! - [`action`]: what can be done to a container, shared by events and
//!   commands.
//! - [`acl`]: Redis ACL users per role (collector of a host, bridge, each
//!   function, operator, a seed-protocol publisher), least keys and commands.
//! - [`backoff`]: exponential backoff with jitter, for every retry loop.
//! - [`batch`]: the SQS-like batch the bridge hands to a function, and the
//!   partial-failure answer a function gives back.
//! - [`invocation`]: what a function is invoked with (a batch, a function
//!   URL request, its schedule), told apart by shape.
//! - [`publisher`]: publish = pub/sub channel + durable stream, atomically.
//! - [`routes`]: which function consumes which stream (bridge, cloud).
//! - [`retry_after`]: an HTTP server's `Retry-After`, for every HTTP client.
//! - [`connection`]: one node or a Redis Cluster behind one connection
//!   (`redis://` / `rediss://` URLs with AUTH, cluster routing, slot map),
//!   and redaction of credentials for logs.
//! - [`slot`]: Redis Cluster hash slots of keys.
//! - [`stream`]: a consumer group's reads, acks and claims, for the bridge
//!   and the collector's command reader alike.
//! - [`config`]: typed environment variables with clear errors.
//! - [`secret`]: settings whose `Debug` never shows them (keys, Redis URLs).
//! - `function` (feature `lambda`): the start-up every function binary
//!   shares: tracing, one Redis connection, the batch handler loop.
//! - [`telemetry`]: `tracing` setup (JSON inside Lambda).
//! - [`tls`]: the one TLS crypto provider (rustls with ring) every client uses.
//! - [`error`]: the crate's error enum.

pub mod acl;
pub mod action;
pub mod approval;
pub mod attestation;
pub mod audit;
#[cfg(feature = "aws")]
pub mod aws;
pub mod backoff;
pub mod batch;
pub mod command;
pub mod config;
pub mod connection;
pub mod container;
pub mod deferred;
pub mod diagnosis;
pub mod envelope;
pub mod error;
pub mod event;
pub mod evidence;
pub mod exposition;
pub mod facts;
#[cfg(feature = "lambda")]
pub mod function;
pub mod gate;
pub mod invocation;
pub mod keys;
pub mod liveness;
pub mod maintenance;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod publisher;
pub mod retry_after;
pub mod routes;
pub mod secret;
pub mod series;
pub mod silence;
pub mod slot;
pub mod stack;
pub mod stored_secret;
pub mod stream;
pub mod telemetry;
pub mod tls;

pub use action::Action;
pub use command::Command;
pub use container::ContainerRef;
pub use envelope::Envelope;
pub use error::ProtocolError;
pub use event::EventKind;
pub use publisher::{Publisher, RedisPublisher};
