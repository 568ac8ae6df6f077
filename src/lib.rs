//! etch: etcd's data model as an embeddable, single-file library.
//!
//! Open a file and get revisions, range reads at any retained revision, atomic batches and
//! durable group commit, with no server:
//!
//! ```no_run
//! let db = etch::Store::open("app.etch")?;
//! db.put("svc/api", "10.0.0.7:8080")?;
//! for kv in db.range(etch::Range::prefix("svc/"))?.kvs {
//!     println!("{} = {}", String::from_utf8_lossy(&kv.key), String::from_utf8_lossy(&kv.value));
//! }
//! # Ok::<(), etch::Error>(())
//! ```
//!
//! This crate re-exports the engine (`etch-engine`); see its documentation for the details.
//! [`kv::Kv`] is the API shared by the local store, the remote `Client` of `etch serve` and
//! etcd servers (`client` feature), and `replication::Member`, an in-process member of a Raft
//! cluster (`replication` feature).

#![deny(missing_docs)]

pub use etch_engine::*;

pub mod kv;

/// The remote client (`client` feature): see the `etch-client` crate.
#[cfg(feature = "client")]
pub use etch_client as client;
#[cfg(feature = "client")]
pub use etch_client::{Client, ClientOptions, TlsOptions};

/// Raft replication (`replication` feature): `replication::ReplicatedStore::open(config, path,
/// options, transport)` opens a store file as a member of a cluster; see the
/// `etch-replication` crate.
#[cfg(feature = "replication")]
pub use etch_replication as replication;
