//! Published snapshots and read transactions.
//!
//! A [`SnapshotData`] is an immutable description of one sealed state of the store: tree roots,
//! revision, the map to read pages from. The writer publishes a new one after each group commit;
//! readers clone the `Arc` of the newest and read without any lock. The writer learns which
//! snapshots are still alive from weak references (`LiveSnapshots`), which is what the reader
//! rule of page reclamation needs.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::Result;
use crate::keyspace::{self, KsState};
use crate::pager::{MapState, ReadView};
use crate::types::{KeyValue, Range, RangeOptions, RangeResponse, Revision};

/// One sealed state of the store.
pub(crate) struct SnapshotData {
    /// Sequence number of the last commit included.
    pub(crate) version: u64,
    pub(crate) state: KsState,
    pub(crate) map: Arc<MapState>,
    /// Pages [0, page_count) exist in this state.
    pub(crate) page_count: u64,
    /// Pages free or waiting for reuse, at sealing time.
    pub(crate) unused_pages: u64,
    /// WAL bytes not yet checkpointed, at sealing time.
    pub(crate) wal_used: u64,
}

impl SnapshotData {
    pub(crate) fn view(&self) -> ReadView<'_> {
        ReadView {
            map: &self.map,
            page_count: self.page_count,
        }
    }
}

/// Weak references to every snapshot sealed so far that may still be alive, oldest first.
#[derive(Default)]
pub(crate) struct LiveSnapshots {
    list: Mutex<VecDeque<(u64, Weak<SnapshotData>)>>,
}

impl LiveSnapshots {
    /// Registers a snapshot when it is sealed (before it is published, so that pages it needs
    /// are protected from the moment it exists).
    pub(crate) fn register(&self, snap: &Arc<SnapshotData>) {
        self.list
            .lock()
            .push_back((snap.version, Arc::downgrade(snap)));
    }

    /// Version of the oldest snapshot still alive, or `None` if none is.
    pub(crate) fn oldest(&self) -> Option<u64> {
        let mut list = self.list.lock();
        while let Some((_, weak)) = list.front() {
            if weak.strong_count() > 0 {
                break;
            }
            list.pop_front();
        }
        list.front().map(|(v, _)| *v)
    }
}

/// A consistent, read-only view of the store at one revision. Reads through it never block and
/// never see later writes. Holding it keeps the pages it can reach from being reused, so drop it
/// when done (as with LMDB read transactions, a long-lived one makes the file grow).
pub struct ReadTxn {
    pub(crate) snap: Arc<SnapshotData>,
}

impl ReadTxn {
    /// Current revision as seen by this transaction.
    pub fn revision(&self) -> Revision {
        self.snap.state.revision as i64
    }

    /// Compact revision as seen by this transaction.
    pub fn compact_revision(&self) -> Revision {
        self.snap.state.compact_revision as i64
    }

    /// The value and metadata of `key`: one B+tree descent.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        keyspace::get(&self.snap.view(), &self.snap.state, key.as_ref())
    }

    /// Keys of a range, with default options.
    pub fn range(&self, range: Range) -> Result<RangeResponse> {
        self.range_with(&range, &RangeOptions::default())
    }

    /// Keys of a range with etcd's options (limit, revision, sort, filters, count/keys only).
    pub fn range_with(&self, range: &Range, opts: &RangeOptions) -> Result<RangeResponse> {
        keyspace::range(&self.snap.view(), &self.snap.state, range, opts)
    }
}
