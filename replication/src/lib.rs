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
//! - One store per member: [`engine_log`] keeps the Raft log in the WAL of the member's
//!   replicated engine store (behind the [`log_store`] trait, under openraft's log storage,
//!   [`raft_log`], synced inline or by a [`flush`] thread; [`log_gauge`] shows its figures
//!   to the write path without the store's lock), and [`state_machine`] applies committed entries to the same store's trees
//!   with `Store::apply` and makes and installs its snapshots, as [`snapshot_file`]s on the
//!   store's own storage.
//! - [`network`], [`sim`] and [`local`]: the network as a trait, a deterministic simulated
//!   network, and direct calls between members of one process; [`types`] and [`runtime`]:
//!   openraft's configuration on tokio with seedable election timeouts.
//! - [`quic`]: the QUIC peer transport, with mutual TLS in etcd's vocabulary.
//! - [`check`], [`command`] and [`codec`]: a linearizability checker for etcd's KV model, the
//!   replicated commands and their byte form.

#![deny(missing_docs)]

pub mod blocking;
pub mod check;
pub mod codec;
pub mod command;
pub mod engine_log;
pub mod error;
pub mod flush;
pub mod forward;
pub mod local;
pub mod log_gauge;
pub mod log_store;
pub mod network;
pub mod node;
pub mod quic;
pub mod raft_log;
pub mod runtime;
pub mod sim;
pub mod snapshot_file;
pub mod state_machine;
pub mod types;

pub use blocking::Member;
pub use engine_log::EngineLog;
pub use error::{Error, Result};
pub use node::{NodeConfig, ReadConsistency, ReplicatedStore};
