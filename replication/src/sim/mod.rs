//! Deterministic simulation: the pieces a seeded cluster test is built from.

mod net;

pub use net::{Delivery, Fate, Faults, SimNetwork};
