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

use crate::btree::{self, Cursor, KeyOrder, NodeSource};
use crate::error::{Error, Result};
use crate::meta::Roots;
use crate::node::{max_inline_entry, StoredValue, ValueRef};
use crate::page::PageId;
use crate::pager::Pager;
use crate::types::{
    BatchResponse, DeleteResponse, KeyValue, KeyValueRef, OpResponse, PutResponse, Range,
    RangeOptions, RangeResponse, SortOrder, SortTarget, WriteOp,
};

const RECORD_HEADER: usize = 33;
const KIND_PUT: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;
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

/// Key of the lease-index tree: lease id (big-endian) then user key.
fn lease_index_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&(id as u64).to_be_bytes());
    k.extend_from_slice(key);
    k
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

/// Decoded record header.
#[derive(Clone, Copy, Debug)]
struct RecordHeader {
    kind: u8,
    create: u64,
    modr: u64,
    version: u64,
    lease: i64,
}

fn encode_record(h: RecordHeader, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER + value.len());
    out.push(h.kind);
    out.extend_from_slice(&h.create.to_le_bytes());
    out.extend_from_slice(&h.modr.to_le_bytes());
    out.extend_from_slice(&h.version.to_le_bytes());
    out.extend_from_slice(&h.lease.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_header(b: &[u8]) -> Result<RecordHeader> {
    if b.len() < RECORD_HEADER || !(b[0] == KIND_PUT || b[0] == KIND_TOMBSTONE) {
        return Err(Error::corrupt(format!(
            "key record of {} bytes is malformed",
            b.len()
        )));
    }
    Ok(RecordHeader {
        kind: b[0],
        create: crate::page::get_u64(b, 1),
        modr: crate::page::get_u64(b, 9),
        version: crate::page::get_u64(b, 17),
        lease: crate::page::get_u64(b, 25) as i64,
    })
}

fn to_kv(key: &[u8], h: RecordHeader, value: &[u8], keys_only: bool) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: if keys_only {
            Vec::new()
        } else {
            value.to_vec()
        },
        create_revision: h.create as i64,
        mod_revision: h.modr as i64,
        version: h.version as i64,
        lease: h.lease,
    }
}

/// A borrowed key-value from a `current` entry.
pub(crate) fn to_kv_ref<'a, S: NodeSource>(
    src: &'a S,
    key: &'a [u8],
    v: ValueRef<'a>,
) -> Result<KeyValueRef<'a>> {
    let (h, value) = read_record(src, v)?;
    Ok(KeyValueRef {
        key,
        value,
        create_revision: h.create as i64,
        mod_revision: h.modr as i64,
        version: h.version as i64,
        lease: h.lease,
    })
}

/// Reads a record: header and value bytes.
fn read_record<'a, S: NodeSource>(src: &'a S, v: ValueRef<'a>) -> Result<(RecordHeader, &'a [u8])> {
    let bytes = src.value_bytes(v)?;
    let h = decode_header(bytes)?;
    Ok((h, &bytes[RECORD_HEADER..]))
}

fn history_key(key: &[u8], rev: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 8);
    k.extend_from_slice(key);
    k.extend_from_slice(&rev.to_be_bytes());
    k
}

fn log_key(rev: u64, sub: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&rev.to_be_bytes());
    k[8..].copy_from_slice(&sub.to_be_bytes());
    k
}

/// Static checks of a batch that need no tree access: key sizes, request size, op count,
/// duplicate keys, flag combinations. Runs before anything is changed.
pub(crate) fn validate(ops: &[WriteOp], limits: &Limits) -> Result<()> {
    if ops.len() > limits.max_txn_ops {
        return Err(Error::TooManyOps {
            count: ops.len(),
            max: limits.max_txn_ops,
        });
    }
    let mut size = 0usize;
    let mut put_keys: Vec<&[u8]> = Vec::new();
    for op in ops {
        match op {
            WriteOp::Put(p) => {
                check_key(&p.key, limits)?;
                if p.ignore_value && !p.value.is_empty() {
                    return Err(Error::ValueProvided);
                }
                if p.ignore_lease && p.lease != 0 {
                    return Err(Error::LeaseProvided);
                }
                size += p.key.len() + p.value.len();
                put_keys.push(&p.key);
            }
            WriteOp::DeleteRange { range, .. } => {
                check_key(&range.start, limits)?;
                size += range.start.len() + range.end.len();
            }
        }
    }
    // Sorted, duplicates are neighbours and the keys a delete covers are one run (sorting is
    // cheaper than hashing every key of a large batch).
    put_keys.sort_unstable_by(|a, b| btree::compare_bytes(a, b));
    if let Some(pair) = put_keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::DuplicateKey {
            key: String::from_utf8_lossy(pair[0]).into_owned(),
        });
    }
    // etcd also rejects a put to a key that a delete in the same transaction covers: the first
    // put key at or after the start of the delete's range is in it if any is.
    for op in ops {
        if let WriteOp::DeleteRange { range, .. } = op {
            let from = if range.is_single() {
                range.start()
            } else {
                range.scan_start()
            };
            let at = put_keys.partition_point(|k| btree::compare_bytes(k, from).is_lt());
            if let Some(k) = put_keys.get(at).filter(|k| range.contains(k)) {
                return Err(Error::DuplicateKey {
                    key: String::from_utf8_lossy(k).into_owned(),
                });
            }
        }
    }
    if size > limits.max_request_bytes {
        return Err(Error::RequestTooLarge {
            size,
            max: limits.max_request_bytes,
        });
    }
    Ok(())
}

pub(crate) fn check_key(key: &[u8], limits: &Limits) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if key.len() > limits.max_key_size {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: limits.max_key_size,
        });
    }
    Ok(())
}

/// Checks that depend on the tree but must hold before any change: `ignore_value` and
/// `ignore_lease` need the key to exist. (No earlier op in the batch can change that, since
/// a batch never touches a key twice.)
pub(crate) fn precheck<S: NodeSource>(src: &S, st: &KsState, ops: &[WriteOp]) -> Result<()> {
    for op in ops {
        if let WriteOp::Put(p) = op {
            if (p.ignore_value || p.ignore_lease)
                && btree::get(src, st.roots.current, KeyOrder::Bytes, &p.key)?.is_none()
            {
                return Err(Error::KeyNotFound);
            }
            if p.lease != 0 && lease_ttl(src, st, p.lease)?.is_none() {
                return Err(Error::LeaseNotFound { id: p.lease });
            }
        }
    }
    Ok(())
}

/// Stores a record as a tree value: inline if the entry fits a quarter page, else overflow.
fn store_value(pager: &mut Pager, key_len: usize, record: Vec<u8>) -> Result<StoredValue> {
    if 2 + 7 + key_len + 8 + record.len() <= max_inline_entry(pager.page_size) {
        Ok(StoredValue::Inline(record))
    } else {
        pager.write_overflow(&record)
    }
}

/// Applies write operations at one revision, one change (sub-revision) at a time: the batch
/// path and transactions share it.
pub(crate) struct Applier {
    rev: u64,
    sub: u32,
    /// When set, change-log entries `(sub, value)` are collected here instead of inserted, so
    /// that a batch applied out of order can still append them to the log in order.
    deferred_log: Option<Vec<(u32, Vec<u8>)>>,
}

/// Puts change `sub` of revision `rev` (`value`: kind byte, key) into the change log.
fn insert_log(
    pager: &mut Pager,
    st: &mut KsState,
    rev: u64,
    sub: u32,
    value: Vec<u8>,
) -> Result<()> {
    btree::insert(
        pager,
        &mut st.roots.log,
        KeyOrder::Bytes,
        TAG_LOG,
        &log_key(rev, sub),
        StoredValue::Inline(value),
    )?;
    Ok(())
}

impl Applier {
    /// Records the current change (sub-revision `self.sub`, a `kind` of `key`) in the change log,
    /// or defers it (see `deferred_log`), and moves to the next sub-revision.
    fn log_change(
        &mut self,
        pager: &mut Pager,
        st: &mut KsState,
        kind: u8,
        key: &[u8],
    ) -> Result<()> {
        let mut value = Vec::with_capacity(1 + key.len());
        value.push(kind);
        value.extend_from_slice(key);
        match &mut self.deferred_log {
            Some(deferred) => deferred.push((self.sub, value)),
            None => insert_log(pager, st, self.rev, self.sub, value)?,
        }
        self.sub += 1;
        Ok(())
    }

    /// Starts a write at revision `st.revision + 1`.
    pub(crate) fn new(st: &KsState) -> Applier {
        Applier {
            rev: st.revision + 1,
            sub: 0,
            deferred_log: None,
        }
    }

    /// Applies one validated write. Errors are I/O or corruption errors and poison the writer.
    pub(crate) fn write(
        &mut self,
        pager: &mut Pager,
        st: &mut KsState,
        op: &WriteOp,
    ) -> Result<OpResponse> {
        let rev = self.rev;
        match op {
            WriteOp::Put(p) => {
                let existing = match btree::get(pager, st.roots.current, KeyOrder::Bytes, &p.key)? {
                    Some(v) => {
                        let (h, value) = read_record(pager, v)?;
                        let keep_value = if p.ignore_value {
                            Some(value.to_vec())
                        } else {
                            None
                        };
                        let prev = if p.prev_kv {
                            Some(to_kv(&p.key, h, value, false))
                        } else {
                            None
                        };
                        Some((h, keep_value, prev))
                    }
                    None => None,
                };
                let (create, version, lease, prev_kv) = match &existing {
                    Some((h, _, prev)) => (
                        h.create,
                        h.version + 1,
                        if p.ignore_lease { h.lease } else { p.lease },
                        prev.clone(),
                    ),
                    None => (rev, 1, p.lease, None),
                };
                let value: &[u8] = match &existing {
                    Some((_, Some(v), _)) => v,
                    _ => &p.value,
                };
                let old_lease = existing.as_ref().map_or(0, |(h, _, _)| h.lease);
                if old_lease != lease {
                    if old_lease != 0 {
                        btree::remove(
                            pager,
                            &mut st.roots.lease_keys,
                            KeyOrder::Bytes,
                            TAG_LEASE_KEYS,
                            &lease_index_key(old_lease, &p.key),
                        )?;
                    }
                    if lease != 0 {
                        btree::insert(
                            pager,
                            &mut st.roots.lease_keys,
                            KeyOrder::Bytes,
                            TAG_LEASE_KEYS,
                            &lease_index_key(lease, &p.key),
                            StoredValue::Inline(Vec::new()),
                        )?;
                    }
                }
                let header = RecordHeader {
                    kind: KIND_PUT,
                    create,
                    modr: rev,
                    version,
                    lease,
                };
                let stored = store_value(pager, p.key.len(), encode_record(header, value))?;
                let old = btree::insert(
                    pager,
                    &mut st.roots.current,
                    KeyOrder::Bytes,
                    TAG_CURRENT,
                    &p.key,
                    stored,
                )?;
                match (old, &existing) {
                    (Some(old), Some((h, _, _))) => {
                        // The replaced version moves to history as is.
                        btree::insert(
                            pager,
                            &mut st.roots.history,
                            KeyOrder::RevSuffix,
                            TAG_HISTORY,
                            &history_key(&p.key, h.modr),
                            old,
                        )?;
                    }
                    (None, None) => st.key_count += 1,
                    _ => {
                        return Err(Error::corrupt(
                            "internal: current tree changed during a put",
                        ))
                    }
                }
                self.log_change(pager, st, KIND_PUT, &p.key)?;
                Ok(OpResponse::Put(PutResponse {
                    header_revision: 0,
                    prev_kv,
                }))
            }
            WriteOp::DeleteRange { range, prev_kv } => {
                let mut victims: Vec<(Vec<u8>, RecordHeader, Option<KeyValue>)> = Vec::new();
                scan_current(pager, st.roots.current, range, |key, v| {
                    let (h, value) = read_record(pager, v)?;
                    victims.push((
                        key.to_vec(),
                        h,
                        (*prev_kv).then(|| to_kv(key, h, value, false)),
                    ));
                    Ok(true)
                })?;
                let mut prev_kvs = Vec::new();
                for (key, h, prev) in &victims {
                    if h.lease != 0 {
                        btree::remove(
                            pager,
                            &mut st.roots.lease_keys,
                            KeyOrder::Bytes,
                            TAG_LEASE_KEYS,
                            &lease_index_key(h.lease, key),
                        )?;
                    }
                    let old = btree::remove(
                        pager,
                        &mut st.roots.current,
                        KeyOrder::Bytes,
                        TAG_CURRENT,
                        key,
                    )?
                    .ok_or_else(|| Error::corrupt("internal: key vanished during delete"))?;
                    btree::insert(
                        pager,
                        &mut st.roots.history,
                        KeyOrder::RevSuffix,
                        TAG_HISTORY,
                        &history_key(key, h.modr),
                        old,
                    )?;
                    let tomb = RecordHeader {
                        kind: KIND_TOMBSTONE,
                        create: 0,
                        modr: rev,
                        version: 0,
                        lease: 0,
                    };
                    btree::insert(
                        pager,
                        &mut st.roots.history,
                        KeyOrder::RevSuffix,
                        TAG_HISTORY,
                        &history_key(key, rev),
                        StoredValue::Inline(encode_record(tomb, &[])),
                    )?;
                    self.log_change(pager, st, KIND_TOMBSTONE, key)?;
                    st.key_count -= 1;
                    if let Some(kv) = prev {
                        prev_kvs.push(kv.clone());
                    }
                }
                Ok(OpResponse::Delete(DeleteResponse {
                    header_revision: 0,
                    deleted: victims.len() as i64,
                    prev_kvs,
                }))
            }
        }
    }

    /// Ends the write: the revision moves on only if something changed. Returns the revision.
    pub(crate) fn finish(self, st: &mut KsState) -> i64 {
        if self.sub > 0 {
            st.revision = self.rev;
        }
        st.revision as i64
    }
}

/// Stamps the header revision on write responses.
pub(crate) fn stamp(responses: &mut [OpResponse], header_revision: i64) {
    for r in responses {
        match r {
            OpResponse::Put(p) => p.header_revision = header_revision,
            OpResponse::Delete(d) => d.header_revision = header_revision,
        }
    }
}

/// Applies a validated batch at revision `st.revision + 1`. Bumps the revision only if
/// something changed. Errors here are I/O or corruption errors and poison the writer.
///
/// A batch of puts only is applied to the trees in key order: each put makes exactly one change,
/// so put `i` keeps sub-revision `i` whatever the order, and the result is the same as in batch
/// order; but consecutive inserts then land in neighbouring leaves (an empty tree fills by
/// right-edge appends, with full pages), which makes bulk loads faster and files smaller.
pub(crate) fn apply(pager: &mut Pager, st: &mut KsState, ops: &[WriteOp]) -> Result<BatchResponse> {
    let mut applier = Applier::new(st);
    let puts_only = ops.len() > 1 && ops.iter().all(|op| matches!(op, WriteOp::Put(_)));
    let responses = if puts_only {
        let mut order: Vec<(&[u8], usize)> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| (put_key(op), i))
            .collect();
        order.sort_unstable_by(|a, b| btree::compare_bytes(a.0, b.0));
        let mut responses: Vec<Option<OpResponse>> = (0..ops.len()).map(|_| None).collect();
        applier.deferred_log = Some(Vec::with_capacity(ops.len()));
        for (_, i) in order {
            applier.sub = i as u32;
            responses[i] = Some(applier.write(pager, st, &ops[i])?);
        }
        applier.sub = ops.len() as u32;
        let mut log = applier.deferred_log.take().unwrap_or_default();
        log.sort_unstable_by_key(|(sub, _)| *sub);
        for (sub, value) in log {
            insert_log(pager, st, applier.rev, sub, value)?;
        }
        responses.into_iter().flatten().collect()
    } else {
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(applier.write(pager, st, op)?);
        }
        responses
    };
    let mut responses: Vec<OpResponse> = responses;
    let header_revision = applier.finish(st);
    stamp(&mut responses, header_revision);
    Ok(BatchResponse {
        header_revision,
        responses,
    })
}

fn put_key(op: &WriteOp) -> &[u8] {
    match op {
        WriteOp::Put(p) => &p.key,
        WriteOp::DeleteRange { range, .. } => range.start(),
    }
}

/// Visits the live keys of `range` in the current tree in key order until `f` returns false.
fn scan_current<'a, S: NodeSource>(
    src: &'a S,
    root: u64,
    range: &Range,
    mut f: impl FnMut(&[u8], ValueRef<'a>) -> Result<bool>,
) -> Result<()> {
    if range.is_single() {
        if let Some(v) = btree::get(src, root, KeyOrder::Bytes, &range.start)? {
            f(&range.start, v)?;
        }
        return Ok(());
    }
    let mut c = Cursor::new(src, root, KeyOrder::Bytes);
    c.seek_ge(range.scan_start())?;
    let end = range.scan_end();
    while let Some((k, v)) = c.current() {
        if end.is_some_and(|e| k >= e) || !f(k, v)? {
            break;
        }
        c.next()?;
    }
    Ok(())
}

/// The current version of one key: one descent of the `current` tree.
pub(crate) fn get<S: NodeSource>(src: &S, st: &KsState, key: &[u8]) -> Result<Option<KeyValue>> {
    match btree::get(src, st.roots.current, KeyOrder::Bytes, key)? {
        Some(v) => {
            let (h, value) = read_record(src, v)?;
            Ok(Some(to_kv(key, h, value, false)))
        }
        None => Ok(None),
    }
}

/// The live version of `key`, borrowed from the tree: one descent of `current`.
pub(crate) fn get_ref<'a, S: NodeSource>(
    src: &'a S,
    st: &KsState,
    key: &[u8],
) -> Result<Option<KeyValueRef<'a>>> {
    match btree::get_entry(src, st.roots.current, KeyOrder::Bytes, key)? {
        Some((k, v)) => Ok(Some(to_kv_ref(src, k, v)?)),
        None => Ok(None),
    }
}

/// A range read with etcd's semantics (see `RangeOptions`).
pub(crate) fn range<S: NodeSource>(
    src: &S,
    st: &KsState,
    range: &Range,
    opts: &RangeOptions,
) -> Result<RangeResponse> {
    let current = st.revision as i64;
    let rev = if opts.revision <= 0 {
        current
    } else {
        opts.revision
    };
    if rev > current {
        return Err(Error::FutureRevision {
            requested: rev,
            current,
        });
    }
    if rev < st.compact_revision as i64 {
        return Err(Error::Compacted {
            requested: rev,
            compacted: st.compact_revision as i64,
        });
    }
    let filtered = opts.min_mod_revision != 0
        || opts.max_mod_revision != 0
        || opts.min_create_revision != 0
        || opts.max_create_revision != 0;
    // As etcd (v3 `Range`): with a sort order or a revision filter everything is fetched,
    // sorted and then cut to the limit. Otherwise only the first limit + 1 keys in key order are
    // fetched (the extra one tells whether there are more) — and a sort target without an order
    // then sorts just those, ascending, exactly as etcd does.
    let sorted = opts.sort_order != SortOrder::None;
    let fetch_limit = if opts.limit > 0 && !sorted && !filtered {
        opts.limit as usize + 1
    } else {
        usize::MAX
    };
    let mut out = Collector {
        kvs: Vec::new(),
        count: 0,
        fetch_limit,
        count_only: opts.count_only,
        keys_only: opts.keys_only,
    };
    if rev == current {
        scan_current(src, st.roots.current, range, |key, v| {
            if out.wants_kv() {
                let (h, value) = read_record(src, v)?;
                out.push(key, h, value);
            } else {
                out.count += 1;
            }
            Ok(true)
        })?;
    } else {
        scan_at(src, st, range, rev as u64, |key, h, value| {
            out.push(key, h, value);
            Ok(())
        })?;
    }
    let Collector { mut kvs, count, .. } = out;
    if filtered {
        kvs.retain(|kv| {
            (opts.min_mod_revision == 0 || kv.mod_revision >= opts.min_mod_revision)
                && (opts.max_mod_revision == 0 || kv.mod_revision <= opts.max_mod_revision)
                && (opts.min_create_revision == 0 || kv.create_revision >= opts.min_create_revision)
                && (opts.max_create_revision == 0 || kv.create_revision <= opts.max_create_revision)
        });
    }
    let order = match (opts.sort_order, opts.sort_target) {
        (SortOrder::None, SortTarget::Key) => SortOrder::None,
        (SortOrder::None, _) => SortOrder::Ascend,
        (o, _) => o,
    };
    if order != SortOrder::None {
        let target = opts.sort_target;
        kvs.sort_by(|a, b| {
            let o = match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            if order == SortOrder::Descend {
                o.reverse()
            } else {
                o
            }
        });
    }
    let mut more = false;
    if opts.limit > 0 && kvs.len() > opts.limit as usize {
        kvs.truncate(opts.limit as usize);
        more = true;
    }
    Ok(RangeResponse {
        header_revision: current,
        kvs,
        more,
        count,
    })
}

/// Accumulates a range result: counts every key, keeps key-values up to the fetch limit.
struct Collector {
    kvs: Vec<KeyValue>,
    count: i64,
    fetch_limit: usize,
    count_only: bool,
    keys_only: bool,
}

impl Collector {
    fn wants_kv(&self) -> bool {
        !self.count_only && self.kvs.len() < self.fetch_limit
    }

    fn push(&mut self, key: &[u8], h: RecordHeader, value: &[u8]) {
        self.count += 1;
        if self.wants_kv() {
            self.kvs.push(to_kv(key, h, value, self.keys_only));
        }
    }
}

/// Visits every key of `range` as it was at revision `rev` (< current), in key order.
fn scan_at<S: NodeSource>(
    src: &S,
    st: &KsState,
    range: &Range,
    rev: u64,
    mut f: impl FnMut(&[u8], RecordHeader, &[u8]) -> Result<()>,
) -> Result<()> {
    let end = range.scan_end();
    let in_range = |k: &[u8]| {
        if range.is_single() {
            k == range.start.as_slice()
        } else {
            end.is_none_or(|e| k < e)
        }
    };
    let mut cur = Cursor::new(src, st.roots.current, KeyOrder::Bytes);
    let mut hist = Cursor::new(src, st.roots.history, KeyOrder::RevSuffix);
    let start = range.scan_start();
    cur.seek_ge(start)?;
    hist.seek_ge(&history_key(start, 0))?;
    loop {
        let ck = cur.current().map(|(k, _)| k).filter(|k| in_range(k));
        let hk = hist
            .current()
            .map(|(k, _)| &k[..k.len().saturating_sub(8)])
            .filter(|k| in_range(k));
        let key: Vec<u8> = match (ck, hk) {
            (None, None) => break,
            (Some(c), None) => c.to_vec(),
            (None, Some(h)) => h.to_vec(),
            (Some(c), Some(h)) => c.min(h).to_vec(),
        };
        let mut found = None;
        if ck == Some(key.as_slice()) {
            if let Some((_, v)) = cur.current() {
                let (h, value) = read_record(src, v)?;
                if h.modr <= rev {
                    found = Some((h, value));
                }
            }
            cur.next()?;
        }
        if hk == Some(key.as_slice()) {
            if found.is_none() {
                found = history_version_at(src, st, &key, rev)?;
            }
            hist.seek_ge(&history_key(&key, u64::MAX))?;
        }
        if let Some((h, value)) = found {
            f(&key, h, value)?;
        }
        if range.is_single() {
            break;
        }
    }
    Ok(())
}

/// Compacts history to revision `c`, as etcd: every version superseded at or before `c` is
/// dropped except, per key, the newest one at or before `c` when that is a put and the key's
/// live version is newer (it is the key's value as of `c`); tombstones at or before `c` go too;
/// change-log entries at or before `c` go. Freed pages (overflow values included) are reused
/// under the usual rules. Deterministic, so WAL replay reproduces it.
pub(crate) fn compact(pager: &mut Pager, st: &mut KsState, c: u64) -> Result<()> {
    // Keys changed at or before `c`: only their history can hold droppable versions (a key's
    // older versions were dropped by earlier compactions, or it has no log entry to find).
    let mut log_keys: Vec<[u8; 12]> = Vec::new();
    let mut keys: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
    {
        let mut cur = Cursor::new(&*pager, st.roots.log, KeyOrder::Bytes);
        cur.first()?;
        while let Some((k, v)) = cur.current() {
            let mut lk = [0u8; 12];
            if k.len() != 12 {
                return Err(Error::corrupt("change-log key is not 12 bytes"));
            }
            lk.copy_from_slice(k);
            let mut rev = [0u8; 8];
            rev.copy_from_slice(&k[..8]);
            if u64::from_be_bytes(rev) > c {
                break;
            }
            let entry = pager.value_bytes(v)?;
            keys.insert(entry.get(1..).unwrap_or(&[]).to_vec());
            log_keys.push(lk);
            cur.next()?;
        }
    }
    for key in keys {
        let live_mod = match btree::get(&*pager, st.roots.current, KeyOrder::Bytes, &key)? {
            Some(v) => Some(read_record(&*pager, v)?.0.modr),
            None => None,
        };
        // History entries of this key at or before `c`, oldest first: (tree key, kind).
        let mut entries: Vec<(Vec<u8>, u8)> = Vec::new();
        {
            let mut cur = Cursor::new(&*pager, st.roots.history, KeyOrder::RevSuffix);
            cur.seek_ge(&history_key(&key, 0))?;
            while let Some((k, v)) = cur.current() {
                let (user, rev) = k.split_at(k.len().saturating_sub(8));
                let mut r = [0u8; 8];
                r.copy_from_slice(rev);
                if user != key.as_slice() || u64::from_be_bytes(r) > c {
                    break;
                }
                let kind = read_record(&*pager, v)?.0.kind;
                entries.push((k.to_vec(), kind));
                cur.next()?;
            }
        }
        // The version readers at `c` need, if history must provide it.
        let keep = match live_mod {
            Some(m) if m <= c => None,
            _ => entries
                .last()
                .filter(|(_, kind)| *kind == KIND_PUT)
                .map(|(k, _)| k.clone()),
        };
        for (hk, _) in entries {
            if keep.as_ref() == Some(&hk) {
                continue;
            }
            if let Some(old) = btree::remove(
                pager,
                &mut st.roots.history,
                KeyOrder::RevSuffix,
                TAG_HISTORY,
                &hk,
            )? {
                pager.free_value(&old);
            }
        }
    }
    for lk in log_keys {
        btree::remove(pager, &mut st.roots.log, KeyOrder::Bytes, TAG_LOG, &lk)?;
    }
    st.compact_revision = c;
    Ok(())
}

/// One change read back from the log (see `watch.rs`).
pub(crate) struct LoggedEvent {
    pub(crate) is_put: bool,
    pub(crate) kv: KeyValue,
    pub(crate) prev_kv: Option<KeyValue>,
}

/// The version of `key` as of revision `rev` (`None` if absent then, or if that history was
/// compacted away).
fn version_at<S: NodeSource>(
    src: &S,
    st: &KsState,
    key: &[u8],
    rev: u64,
) -> Result<Option<KeyValue>> {
    if let Some(v) = btree::get(src, st.roots.current, KeyOrder::Bytes, key)? {
        let (h, value) = read_record(src, v)?;
        if h.modr <= rev {
            return Ok(Some(to_kv(key, h, value, false)));
        }
    }
    Ok(history_version_at(src, st, key, rev)?.map(|(h, value)| to_kv(key, h, value, false)))
}

/// The newest superseded version of `key` at or below `rev`, from the history tree (`None` if
/// there is none or it is a tombstone).
fn history_version_at<'a, S: NodeSource>(
    src: &'a S,
    st: &KsState,
    key: &[u8],
    rev: u64,
) -> Result<Option<(RecordHeader, &'a [u8])>> {
    let mut probe = Cursor::new(src, st.roots.history, KeyOrder::RevSuffix);
    probe.seek_le(&history_key(key, rev))?;
    if let Some((k, v)) = probe.current() {
        if &k[..k.len().saturating_sub(8)] == key {
            let (h, value) = read_record(src, v)?;
            if h.kind == KIND_PUT {
                return Ok(Some((h, value)));
            }
        }
    }
    Ok(None)
}

/// Changes to keys of `range` at revisions from `from` up to `st.revision`, in revision order.
/// Stops at a revision boundary once `soft_limit` events are collected, so one revision's
/// events are never split. Returns the events and the next revision to read from.
pub(crate) fn events_since<S: NodeSource>(
    src: &S,
    st: &KsState,
    from: u64,
    range: &Range,
    prev_kv: bool,
    soft_limit: usize,
) -> Result<(Vec<LoggedEvent>, u64)> {
    let mut out = Vec::new();
    let mut cur = Cursor::new(src, st.roots.log, KeyOrder::Bytes);
    cur.seek_ge(&log_key(from, 0))?;
    let mut last_rev = 0;
    let mut stopped_at = None;
    while let Some((k, v)) = cur.current() {
        if k.len() != 12 {
            return Err(Error::corrupt("change-log key is not 12 bytes"));
        }
        let mut r = [0u8; 8];
        r.copy_from_slice(&k[..8]);
        let rev = u64::from_be_bytes(r);
        if rev > st.revision {
            break;
        }
        if rev != last_rev && out.len() >= soft_limit {
            stopped_at = Some(rev); // a new revision begins and the batch is full
            break;
        }
        last_rev = rev;
        let entry = src.value_bytes(v)?;
        let (kind, key) = (
            entry.first().copied().unwrap_or(0),
            entry.get(1..).unwrap_or(&[]),
        );
        if range.contains(key) {
            let is_put = kind == KIND_PUT;
            let kv = if is_put {
                version_at(src, st, key, rev)?
                    .filter(|kv| kv.mod_revision as u64 == rev)
                    .ok_or_else(|| {
                        Error::corrupt(format!("change at revision {rev} has no stored version"))
                    })?
            } else {
                KeyValue {
                    key: key.to_vec(),
                    mod_revision: rev as i64,
                    ..Default::default()
                }
            };
            // Log entries at or below the compact revision are gone, so rev - 1 is readable.
            let prev = if prev_kv {
                version_at(src, st, key, rev - 1)?
            } else {
                None
            };
            out.push(LoggedEvent {
                is_put,
                kv,
                prev_kv: prev,
            });
        }
        cur.next()?;
    }
    let next = stopped_at.unwrap_or(st.revision + 1).max(from);
    Ok((out, next))
}

/// Granted TTL of lease `id`, if it exists.
pub(crate) fn lease_ttl<S: NodeSource>(src: &S, st: &KsState, id: i64) -> Result<Option<i64>> {
    match btree::get(
        src,
        st.roots.leases,
        KeyOrder::Bytes,
        &(id as u64).to_be_bytes(),
    )? {
        Some(v) => {
            let b = src.value_bytes(v)?;
            Ok(Some(crate::page::get_u64(b, 0) as i64))
        }
        None => Ok(None),
    }
}

/// Every lease: (id, granted TTL), by id.
pub(crate) fn lease_list<S: NodeSource>(src: &S, st: &KsState) -> Result<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    let mut cur = Cursor::new(src, st.roots.leases, KeyOrder::Bytes);
    cur.first()?;
    while let Some((k, v)) = cur.current() {
        let mut id = [0u8; 8];
        id.copy_from_slice(
            k.get(..8)
                .ok_or_else(|| Error::corrupt("lease key is short"))?,
        );
        out.push((
            u64::from_be_bytes(id) as i64,
            crate::page::get_u64(src.value_bytes(v)?, 0) as i64,
        ));
        cur.next()?;
    }
    Ok(out)
}

/// Keys attached to lease `id`, in key order.
pub(crate) fn lease_keys<S: NodeSource>(src: &S, st: &KsState, id: i64) -> Result<Vec<Vec<u8>>> {
    let prefix = (id as u64).to_be_bytes();
    let mut out = Vec::new();
    let mut cur = Cursor::new(src, st.roots.lease_keys, KeyOrder::Bytes);
    cur.seek_ge(&prefix)?;
    while let Some((k, _)) = cur.current() {
        if !k.starts_with(&prefix) {
            break;
        }
        out.push(k[8..].to_vec());
        cur.next()?;
    }
    Ok(out)
}

/// Records a new lease (no revision: as in etcd, granting changes no key).
pub(crate) fn lease_grant(pager: &mut Pager, st: &mut KsState, id: i64, ttl: i64) -> Result<()> {
    btree::insert(
        pager,
        &mut st.roots.leases,
        KeyOrder::Bytes,
        TAG_LEASES,
        &(id as u64).to_be_bytes(),
        StoredValue::Inline(ttl.to_le_bytes().to_vec()),
    )?;
    Ok(())
}

/// Revokes lease `id`: deletes every key attached to it at one revision (if there are any) and
/// removes the lease. Deterministic, so WAL replay reproduces it.
pub(crate) fn lease_revoke(pager: &mut Pager, st: &mut KsState, id: i64) -> Result<()> {
    let keys = lease_keys(&*pager, st, id)?;
    let mut applier = Applier::new(st);
    for key in keys {
        applier.write(
            pager,
            st,
            &WriteOp::DeleteRange {
                range: Range::key(key),
                prev_kv: false,
            },
        )?;
    }
    applier.finish(st);
    btree::remove(
        pager,
        &mut st.roots.leases,
        KeyOrder::Bytes,
        TAG_LEASES,
        &(id as u64).to_be_bytes(),
    )?;
    Ok(())
}
