//! etch-engine: etcd's data model in one file.
//!
//! A paged, copy-on-write B+tree file read through a memory map, a write-ahead log with group
//! commit, and etcd's MVCC keyspace (revisions, create/mod revision, version, lease; range reads
//! at past revisions). Users normally depend on the `etch` facade crate, which re-exports this.
//!
//! ```no_run
//! use etch_engine::{Range, RangeOptions, Store};
//! let db = Store::open("app.etch")?;
//! let first = db.put("cfg/mode", "fast")?.header_revision;
//! db.put("cfg/mode", "safe")?;
//! assert_eq!(db.get("cfg/mode")?.unwrap().value, b"safe");
//! let old = db.range_with(&Range::key("cfg/mode"), &RangeOptions { revision: first, ..Default::default() })?;
//! assert_eq!(old.kvs[0].value, b"fast");
//! # Ok::<(), etch_engine::Error>(())
//! ```
//!
//! The file format, commit protocol and recovery argument are in `docs/design.md`.

#![deny(missing_docs)]

mod alloc;
mod btree;
mod check;
mod checkpoint;
mod clock;
mod command;
mod copy;
mod error;
mod file;
mod file_lock;
mod idhash;
mod keyspace;
mod meta;
mod node;
mod options;
mod page;
mod pager;
mod profile;
mod raftlog;
mod recipes;
mod record;
pub mod sim;
mod snapshot;
mod stm;
pub mod storage;
mod store;
mod txn;
mod types;
mod wal;
mod watch;

pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Command, CommandResponse};
pub use error::{Error, OpenAction, Result};
pub use options::{AutoCompaction, Durability, Options};
pub use profile::CommitProfile;
pub use raftlog::{LogEntry, LogState};
pub use recipes::{Election, Leadership, Mutex, MutexGuard};
pub use snapshot::{RangeIter, ReadTxn};
pub use stm::{guarded_txn, WriteTxn};
pub use store::{AppliedMembership, LeaseGrant, LeaseInfo, SnapshotInfo, Store, WalRepair};
pub use txn::{Compare, CompareOp, CompareTarget, Txn, TxnOp, TxnOpResponse, TxnResponse};
pub use types::{
    prefix_end, BatchResponse, CheckReport, DeleteResponse, KeyValue, KeyValueRef, OpResponse,
    PutOp, PutResponse, Range, RangeOptions, RangeResponse, Revision, SortOrder, SortTarget,
    Status, WriteOp,
};
pub use wal::Damage as WalDamage;
pub use watch::{Event, EventKind, WatchCanceller, WatchOptions, WatchResponse, Watcher};
