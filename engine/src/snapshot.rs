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

use crate::btree::{compare_bytes, Cursor, KeyOrder, NodeSource};
use crate::error::{Error, Result};
use crate::keyspace::{self, KsState};
use crate::node::NodeRef;
use crate::page::PageId;
use crate::pager::{MapState, ReadView};
use crate::types::{KeyValue, KeyValueRef, Range, RangeOptions, RangeResponse, Revision};

/// One sealed state of the store.
pub(crate) struct SnapshotData {
    /// Order in which the writer made its snapshots (see `store::make_snapshot`): what page
    /// reclamation counts in, and what orders snapshots of one version.
    pub(crate) generation: u64,
    /// Sequence number of the last commit included.
    pub(crate) version: u64,
    /// Term of that commit (0 for local commits).
    pub(crate) term: u64,
    /// Database id of the file this state belongs to (an installed snapshot can change it).
    pub(crate) db_id: u64,
    pub(crate) state: KsState,
    pub(crate) map: Arc<MapState>,
    /// Pages [0, page_count) exist in this state.
    pub(crate) page_count: u64,
    /// Pages free or waiting for reuse, at sealing time.
    pub(crate) unused_pages: u64,
    /// WAL bytes not yet checkpointed, at sealing time.
    pub(crate) wal_used: u64,
    /// A replicated store's applied membership as of `version` (index, term, bytes).
    pub(crate) membership: Option<(u64, u64, Vec<u8>)>,
}

impl SnapshotData {
    pub(crate) fn view(&self) -> ReadView<'_> {
        ReadView {
            map: &self.map,
            page_count: self.page_count,
        }
    }
}

/// Nodes borrowed for as long as the snapshot is: what lets read transactions hand out borrowed
/// keys and values.
impl NodeSource for SnapshotData {
    fn node(&self, id: PageId) -> Result<NodeRef<'_>> {
        self.view().node_at(id)
    }

    fn overflow(&self, page: PageId, len: u32, crc: u32) -> Result<&[u8]> {
        self.view().overflow_at(page, len, crc)
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
            .push_back((snap.generation, Arc::downgrade(snap)));
    }

    /// Generation of the oldest snapshot still alive, or `None` if none is.
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

    /// The value and metadata of `key`: one B+tree descent. An empty key is
    /// [`Error::EmptyKey`], as etcd answers "key is not provided" (no key can be empty).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        let key = non_empty(key.as_ref())?;
        keyspace::get(&self.snap.view(), &self.snap.state, key)
    }

    /// The value and metadata of `key`, borrowed from the snapshot instead of copied: the
    /// fastest point read (no allocation).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let db = etch_engine::Store::open(dir.path().join("doc.etch"))?;
    /// db.put("k", "v")?;
    /// let txn = db.read()?;
    /// let kv = txn.get_ref("k")?.expect("present");
    /// assert_eq!((kv.value, kv.version), (&b"v"[..], 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_ref(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValueRef<'_>>> {
        let key = non_empty(key.as_ref())?;
        keyspace::get_ref(&*self.snap, &self.snap.state, key)
    }

    /// The live keys of `range` at this transaction's revision, in key order, borrowed from
    /// the snapshot: a cursor, as LMDB's and redb's range iterators. Unlike
    /// [`range_with`](Self::range_with) it computes no count and allocates nothing per entry;
    /// stop early by dropping it (`take(n)`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let db = etch_engine::Store::open(dir.path().join("doc.etch"))?;
    /// for k in ["a/1", "a/2", "b/1"] {
    ///     db.put(k, "x")?;
    /// }
    /// let txn = db.read()?;
    /// let keys: Vec<&[u8]> = txn
    ///     .iter(&etch_engine::Range::prefix("a/"))?
    ///     .map(|kv| kv.map(|kv| kv.key))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(keys, [&b"a/1"[..], &b"a/2"[..]]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self, range: &Range) -> Result<RangeIter<'_>> {
        let src: &SnapshotData = &self.snap;
        let mut cursor = Cursor::new(src, src.state.roots.current, KeyOrder::Bytes);
        let end = if range.is_single() {
            // The smallest key after `start` is `start ++ 0x00`.
            let mut end = range.start().to_vec();
            end.push(0);
            Some(end)
        } else {
            range.scan_end().map(<[u8]>::to_vec)
        };
        let start = if range.is_single() {
            range.start()
        } else {
            range.scan_start()
        };
        cursor.seek_ge(start)?;
        Ok(RangeIter {
            src,
            cursor,
            end,
            advance: false,
            done: false,
        })
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

/// `key`, or [`Error::EmptyKey`]: the one check every single-key read makes.
pub(crate) fn non_empty(key: &[u8]) -> Result<&[u8]> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(key)
}

/// Iterator over the live keys of a range in a [`ReadTxn`], from [`ReadTxn::iter`].
pub struct RangeIter<'t> {
    src: &'t SnapshotData,
    cursor: Cursor<'t, SnapshotData>,
    /// Exclusive upper bound, `None` for none.
    end: Option<Vec<u8>>,
    /// The cursor is still on the entry returned last; move before reading.
    advance: bool,
    done: bool,
}

impl<'t> Iterator for RangeIter<'t> {
    type Item = Result<KeyValueRef<'t>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if std::mem::take(&mut self.advance) {
            if let Err(e) = self.cursor.next() {
                self.done = true;
                return Some(Err(e));
            }
        }
        let Some((key, value)) = self.cursor.current() else {
            self.done = true;
            return None;
        };
        if let Some(end) = &self.end {
            if compare_bytes(key, end) != std::cmp::Ordering::Less {
                self.done = true;
                return None;
            }
        }
        self.advance = true;
        let item = keyspace::to_kv_ref(self.src, key, value);
        self.done = item.is_err();
        Some(item)
    }
}

impl std::fmt::Debug for RangeIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeIter")
            .field("end", &self.end)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
