//! Fuzzing of every HemoStat parser of untrusted input, on stable Rust.
//!
//! - `engine`: the loop: seeds, mutation, panics caught, findings saved.
//! - `targets`: one per parser (or check) of input others write, each with
//!   the invariants its results keep; seeds in `fuzz/seeds/<target>/`.

pub mod engine;
pub mod targets;
