//! Detect: deciding what a container's events and readings mean, as pure
//! functions. Events and readings come in from the watcher and the sampler,
//! decisions go out to the alerts; nothing here reads Docker, Redis or a
//! clock of its own (Docker's event times and the caller's `now` order
//! everything), so every rule is unit-tested here.
//!
//! - `crash`: a die, an OOM kill or an unhealthy status, told apart from
//!   the stops operators and HemoStat itself asked for.
//! - `thresholds`: CPU and memory gauges, sustained breaches with hysteresis.
//! - `leak`: the memory trend, steady growth that reaches the limit soon.
//! - `resources`: one interval of one container through its gauges and
//!   leak window.
//! - `restarts`: restart loops, from Docker's start and die events.

mod crash;
mod leak;
mod resources;
mod restarts;
mod thresholds;

pub use crash::{Detection, Detector, Facts, Finding, FindingKind, Suspect, Trouble, assess};
pub use leak::{Leak, LeakRule};
pub use resources::{Rules, Symptom, Vitals};
pub use restarts::{RestartRule, Restarts};
pub use thresholds::{Breach, Rule};
