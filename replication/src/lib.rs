//! Raft replication for etch (issue 13, first slices).
//!
//! What is here does not depend on the engine's replication seams yet:
//!
//! - [`check`]: a linearizability checker for etcd's KV model with revisions, used by the cluster
//!   simulation to judge client histories.
//! - [`command`] and [`codec`]: the replicated write commands and their byte form (a version
//!   byte, then postcard).
//! - [`types`] and [`runtime`]: openraft 0.9's type configuration, on tokio with seedable
//!   election timeouts.
//! - [`network`] and [`sim`]: the network as a trait, openraft's adapter over it, and a
//!   deterministic simulated network.
//!
//! The engine's state-machine seam (`Store::apply`) exists; the log-store seam (durable append,
//! truncate, purge and vote in the WAL) and snapshots that keep their identity do not yet, so the
//! cluster tests use an in-memory log and a state machine without snapshots
//! (`tests/support`).

#![deny(missing_docs)]

pub mod admission;
pub mod check;
pub mod codec;
pub mod command;
pub mod error;
pub mod forward;
pub mod log_store;
pub mod network;
pub mod node;
pub mod raft_log;
pub mod runtime;
pub mod sim;
pub mod snapshot_files;
pub mod state_machine;
pub mod types;

pub use error::{Error, Result};
pub use node::{NodeConfig, ReadConsistency, ReplicatedStore};
