//! Raft replication for etch: a store that is a member of a cluster.
//!
//! [`ReplicatedStore`] has `etch_engine::Store`'s methods (async) over openraft 0.9: writes are
//! proposed through Raft (forwarded to the leader from a follower) and answered once applied on
//! the member that took them; reads are linearizable (ReadIndex) unless asked serializable;
//! leases are counted down by the leader; watches are every member's own, with the same
//! revisions everywhere. The design, its guarantees and what is missing are in
//! `docs/design.md` ("Replication").
//!
//! - [`blocking`]: [`Member`], the same store with blocking methods (its own runtime).
//! - [`node`]: [`ReplicatedStore`], its settings and errors ([`error`]), and the
//!   requests members [`forward`] to each other.
//! - [`log_store`] and [`raft_log`]: the Raft log behind a small trait (in memory, or the
//!   engine's WAL with [`engine_log`]) and openraft's log storage over it.
//! - [`state_machine`] and [`snapshot_files`]: committed entries applied with `Store::apply`,
//!   snapshots as store files.
//! - [`network`], [`sim`] and [`local`]: the network as a trait (the simulation here, QUIC
//!   next), a deterministic simulated network, and direct calls between members of one process; [`types`] and [`runtime`]: openraft's configuration on
//!   tokio with seedable election timeouts.
//! - [`check`], [`command`] and [`codec`]: a linearizability checker for etcd's KV model, the
//!   replicated commands and their byte form.

#![deny(missing_docs)]

pub mod blocking;
pub mod check;
pub mod codec;
pub mod command;
pub mod engine_log;
pub mod error;
pub mod forward;
pub mod local;
pub mod log_store;
pub mod network;
pub mod node;
pub mod raft_log;
pub mod runtime;
pub mod sim;
pub mod snapshot_files;
pub mod state_machine;
pub mod types;

pub use blocking::Member;
pub use engine_log::EngineLog;
pub use error::{Error, Result};
pub use node::{NodeConfig, ReadConsistency, ReplicatedStore};
