//! Public request and response types, shaped after etcd's v3 API.

/// etcd's revision type: a signed 64-bit counter. A new store is at revision 1; every write
/// transaction that changes something increments it by one.
pub type Revision = i64;

/// A key with its value and metadata, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for `keys_only` reads).
    pub value: Vec<u8>,
    /// Revision of the last creation of this key.
    pub create_revision: Revision,
    /// Revision of the last modification of this key.
    pub mod_revision: Revision,
    /// Number of modifications since creation (1 after creation; reset by deletion).
    pub version: i64,
    /// Lease attached to the key, 0 for none.
    pub lease: i64,
}

/// A key with its value and metadata borrowed from a read transaction's snapshot: no copy, as
/// LMDB's `mdb_get`. Valid while the [`ReadTxn`](crate::ReadTxn) it came from is borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyValueRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Revision of the last creation of this key.
    pub create_revision: Revision,
    /// Revision of the last modification of this key.
    pub mod_revision: Revision,
    /// Number of modifications since creation (1 after creation; reset by deletion).
    pub version: i64,
    /// Lease attached to the key, 0 for none.
    pub lease: i64,
}

impl KeyValueRef<'_> {
    /// An owned copy.
    pub fn to_key_value(&self) -> KeyValue {
        KeyValue {
            key: self.key.to_vec(),
            value: self.value.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// A set of keys: one key, or the half-open interval `[start, end)` in byte order.
///
/// Follows etcd's encoding: an empty `end` means the single key `start`; `end == [0]` means
/// every key >= `start`; `start == [0]` with `end == [0]` means all keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub(crate) start: Vec<u8>,
    pub(crate) end: Vec<u8>,
}

impl Range {
    /// Exactly one key.
    pub fn key(key: impl AsRef<[u8]>) -> Range {
        Range {
            start: key.as_ref().to_vec(),
            end: Vec::new(),
        }
    }

    /// Every key starting with `prefix` (all keys for an empty prefix).
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Range {
        let start = prefix.as_ref().to_vec();
        if start.is_empty() {
            return Range::all();
        }
        let end = prefix_end(&start);
        Range { start, end }
    }

    /// Keys in `[start, end)`.
    pub fn between(start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Range {
        Range {
            start: start.as_ref().to_vec(),
            end: end.as_ref().to_vec(),
        }
    }

    /// Every key >= `start` (etcd's `--from-key`).
    pub fn from_key(start: impl AsRef<[u8]>) -> Range {
        Range {
            start: start.as_ref().to_vec(),
            end: vec![0],
        }
    }

    /// Every key.
    pub fn all() -> Range {
        Range {
            start: vec![0],
            end: vec![0],
        }
    }

    /// Builds a range from etcd's raw `(key, range_end)` pair.
    pub fn from_raw(key: impl AsRef<[u8]>, range_end: impl AsRef<[u8]>) -> Range {
        Range {
            start: key.as_ref().to_vec(),
            end: range_end.as_ref().to_vec(),
        }
    }

    /// The start key.
    pub fn start(&self) -> &[u8] {
        &self.start
    }

    /// The raw end key, in etcd's encoding (empty = single key, `[0]` = to the end).
    pub fn end(&self) -> &[u8] {
        &self.end
    }

    /// True if the range names a single key.
    pub fn is_single(&self) -> bool {
        self.end.is_empty()
    }

    /// True if `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        if self.end.is_empty() {
            return key == self.start.as_slice();
        }
        let lower = self.start.as_slice() == [0] && self.end.as_slice() == [0]
            || key >= self.start.as_slice();
        lower && (self.end.as_slice() == [0] || key < self.end.as_slice())
    }

    /// Lower bound for scans: the start key, or the empty key for "all keys".
    pub(crate) fn scan_start(&self) -> &[u8] {
        if self.start.as_slice() == [0] && self.end.as_slice() == [0] {
            &[]
        } else {
            &self.start
        }
    }

    /// Exclusive upper bound for scans, `None` for unbounded.
    pub(crate) fn scan_end(&self) -> Option<&[u8]> {
        if self.end.as_slice() == [0] {
            None
        } else {
            Some(&self.end)
        }
    }
}

/// The smallest key greater than every key with this prefix (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte incremented after dropping trailing 0xff bytes; `[0]` (to the
/// end) if the prefix is all 0xff.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().unwrap_or(&mut 0) += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// What to sort a range result by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortTarget {
    /// By key (the natural order).
    #[default]
    Key,
    /// By version.
    Version,
    /// By create revision.
    Create,
    /// By mod revision.
    Mod,
    /// By value bytes.
    Value,
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// No sorting (key order).
    #[default]
    None,
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

/// Options of a range read, as etcd's `RangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Maximum number of keys returned; 0 for no limit. `more` tells whether keys were left out.
    pub limit: i64,
    /// Read at this revision; 0 (or less) for the current one.
    pub revision: Revision,
    /// Sort order.
    pub sort_order: SortOrder,
    /// Sort target.
    pub sort_target: SortTarget,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Only keys with mod_revision >= this (0 = no bound).
    pub min_mod_revision: Revision,
    /// Only keys with mod_revision <= this (0 = no bound).
    pub max_mod_revision: Revision,
    /// Only keys with create_revision >= this (0 = no bound).
    pub min_create_revision: Revision,
    /// Only keys with create_revision <= this (0 = no bound).
    pub max_create_revision: Revision,
}

/// Result of a range read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// Revision of the store the read saw (the current revision, even when reading an older one,
    /// as etcd's response header).
    pub header_revision: Revision,
    /// Matching keys (empty for `count_only`).
    pub kvs: Vec<KeyValue>,
    /// True if `limit` cut the result short.
    pub more: bool,
    /// Number of keys matching the range and filters, ignoring `limit`.
    pub count: i64,
}

/// A put, with etcd's `PutRequest` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutOp {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Lease to attach (0 for none).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist; `value` must be empty).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist; `lease` must be 0).
    pub ignore_lease: bool,
}

/// One write in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Put a key.
    Put(PutOp),
    /// Delete every key in a range.
    DeleteRange {
        /// Keys to delete.
        range: Range,
        /// Return the deleted key-values.
        prev_kv: bool,
    },
}

impl WriteOp {
    /// A plain put.
    pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> WriteOp {
        WriteOp::Put(PutOp {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
            ..Default::default()
        })
    }

    /// Delete the keys of a range.
    pub fn delete(range: Range) -> WriteOp {
        WriteOp::DeleteRange {
            range,
            prev_kv: false,
        }
    }
}

/// Result of one put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// Revision of the store after the write.
    pub header_revision: Revision,
    /// The previous key-value, if requested and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// Result of one delete-range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteResponse {
    /// Revision of the store after the write.
    pub header_revision: Revision,
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted key-values, if requested.
    pub prev_kvs: Vec<KeyValue>,
}

/// Result of one operation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// Result of a put.
    Put(PutResponse),
    /// Result of a delete-range.
    Delete(DeleteResponse),
}

/// Result of a batch: all its writes happened at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchResponse {
    /// Revision of the store after the batch (unchanged if the batch changed nothing).
    pub header_revision: Revision,
    /// One response per operation, in order.
    pub responses: Vec<OpResponse>,
}

/// Store status, as etcd's `StatusResponse` plus engine figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Current revision.
    pub revision: Revision,
    /// Compact revision (history below it is gone).
    pub compact_revision: Revision,
    /// Number of live keys.
    pub key_count: u64,
    /// Size of the main file in bytes.
    pub file_size: u64,
    /// Bytes of the main file holding live pages (file size minus free pages and slack).
    pub size_in_use: u64,
    /// Bytes of records in the WAL not yet checkpointed.
    pub wal_size: u64,
    /// Page size in bytes.
    pub page_size: u32,
    /// Last applied WAL sequence number.
    pub applied_index: u64,
}

/// What `check()` examined.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Tree pages visited (all verified).
    pub tree_pages: u64,
    /// Overflow pages visited.
    pub overflow_pages: u64,
    /// Pages not in use (free or waiting for reuse).
    pub free_pages: u64,
    /// Live keys.
    pub keys: u64,
    /// History records (superseded versions and tombstones).
    pub history_records: u64,
    /// Change-log records.
    pub log_records: u64,
}
