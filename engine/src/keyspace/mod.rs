//! etcd's MVCC keyspace on three B+trees.
//!
//! - `current`: user key -> record of the key's live version. A read at the current revision is
//!   one descent of this tree.
//! - `history`: (user key, mod revision) -> superseded versions and tombstones. When a put
//!   replaces a live version, or a delete removes it, the old record moves here unchanged (an
//!   overflow value moves by reference, not by copy); a delete also adds a tombstone at its
//!   revision. Reading key K at revision R: the current record if its mod revision <= R, else the
//!   newest history entry of K at or below R (a tombstone, or none, means absent).
//! - `log`: (revision, sub-revision) -> (event kind, user key): every change in revision order,
//!   for replaying changes since a revision (watch) and for compaction, which walks the log up to
//!   the compact revision and drops the history it no longer needs.
//!
//! Record layout (value of `current` and `history` entries):
//!
//! ```text
//! 0  u8  kind (1 = put, 2 = tombstone)
//! 1  u64 create revision
//! 9  u64 mod revision
//! 17 u64 version
//! 25 i64 lease
//! 33 ..  value
//! ```
//! Log entries: key = u64 big-endian revision | u32 big-endian sub-revision; value = u8 kind | key.

use crate::btree::{AppendFill, KeyOrder};
use crate::meta::Roots;
use crate::page::PageId;

mod apply;
mod compact;
mod encoding;
mod lease;
mod read;
mod validate;

pub(crate) use apply::*;
pub(crate) use compact::*;
pub(crate) use encoding::*;
pub(crate) use lease::*;
pub(crate) use read::*;
pub(crate) use validate::*;

/// Tree tags written into node headers, so `check` can tell the trees apart.
pub(crate) const TAG_CURRENT: u8 = 1;
pub(crate) const TAG_HISTORY: u8 = 2;
pub(crate) const TAG_LOG: u8 = 3;
pub(crate) const TAG_LEASES: u8 = 4;
pub(crate) const TAG_LEASE_KEYS: u8 = 5;

/// Every tree of the keyspace, by tag, with its key order.
pub(crate) const TREES: [(u8, KeyOrder); 5] = [
    (TAG_CURRENT, KeyOrder::Bytes),
    (TAG_HISTORY, KeyOrder::RevSuffix),
    (TAG_LOG, KeyOrder::Bytes),
    (TAG_LEASES, KeyOrder::Bytes),
    (TAG_LEASE_KEYS, KeyOrder::Bytes),
];

/// How right-edge inserts fill the leaves of the tree with `tag`: the change log only ever grows
/// at its right edge, so its leaves are filled; every other tree keeps slack for later inserts
/// between existing keys.
pub(crate) fn append_fill(tag: u8) -> AppendFill {
    if tag == TAG_LOG {
        AppendFill::Full
    } else {
        AppendFill::Slack
    }
}

/// The root of the tree with `tag` (one of [`TREES`]).
pub(crate) fn root(roots: &Roots, tag: u8) -> PageId {
    let mut copy = *roots;
    *root_mut(&mut copy, tag)
}

/// The root slot of the tree with `tag` (one of [`TREES`]).
pub(crate) fn root_mut(roots: &mut Roots, tag: u8) -> &mut PageId {
    match tag {
        TAG_CURRENT => &mut roots.current,
        TAG_HISTORY => &mut roots.history,
        TAG_LOG => &mut roots.log,
        TAG_LEASES => &mut roots.leases,
        _ => &mut roots.lease_keys,
    }
}

/// Logical state of the keyspace at one revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KsState {
    pub(crate) roots: Roots,
    pub(crate) revision: u64,
    pub(crate) compact_revision: u64,
    pub(crate) key_count: u64,
}

/// Request limits, from the options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_key_size: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_txn_ops: usize,
}
