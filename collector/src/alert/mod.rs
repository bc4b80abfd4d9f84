//! Alert: turning what the watcher and the sampler found into a
//! `health_alert` and handing it to the outbox. Every alert is built one
//! way, whichever path found the problem, and before it leaves the host it
//! gains what only the host knows: the container's policy from its labels,
//! whether someone else is at work on it (an operator, a deploy, a parent
//! it went down with), the label silences that select it, and its evidence
//! (log lines since its last start, health output, Docker state, recent
//! events and samples), redacted so that no secret leaves the host.
//!
//! - `alerts`: [`Alerts`], building a `health_alert` from a finding, a symptom or a restart loop.
//! - `publish`: what the host adds (policy, holds, silences, evidence), then the outbox.
//! - `facts`: what each alert found, written to the container's facts (the account the gate believes).
//! - `evidence`: gathering one container's evidence from Docker, bounded in time and size.
//! - `redact`: secrets out of container output, before anything leaves the host.
//! - `recent`: per container, the last Docker events and samples that evidence shows.
//! - `grace`: when someone else is at work on a container, and the gate must not act.
//! - `silences`: which operators' label silences select a container, matched on the host.
//! - `awaiting`: crashes waiting for the control plane's decision, which an edge restart may stand in for.

mod alerts;
mod awaiting;
pub mod evidence;
mod facts;
mod grace;
mod publish;
mod recent;
pub mod redact;
mod silences;

pub use alerts::{Alerts, Inspected, Latency};
pub use awaiting::{Awaiting, Crash, Delivery};
pub use facts::FactsWriter;
pub use grace::Graces;
pub use recent::{Measurement, Recent, sample_capacity};
pub use silences::LabelSilences;
