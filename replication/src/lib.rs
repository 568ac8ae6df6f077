//! Raft replication for etch.
//!
//! This crate holds the pieces of etch's replication that do not depend on the engine's
//! replication seams yet:
//!
//! - [`check`]: a linearizability checker for etcd's KV model with revisions, used by the cluster
//!   simulation to judge client histories.

#![deny(missing_docs)]

pub mod check;
