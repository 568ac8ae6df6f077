//! Applying writes: one change (sub-revision) at a time into `current`, `history` and `log`.

use super::*;
use crate::btree::{self, KeyOrder};
use crate::error::{Error, Result};
use crate::node::{max_inline_entry, StoredValue};
use crate::pager::Pager;
use crate::types::{BatchResponse, DeleteResponse, KeyValue, OpResponse, PutResponse, WriteOp};

/// Stores a record as a tree value: inline if the entry fits a quarter page, else overflow.
pub(super) fn store_value(
    pager: &mut Pager,
    key_len: usize,
    record: Vec<u8>,
) -> Result<StoredValue> {
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
pub(super) fn insert_log(
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
        append_fill(TAG_LOG),
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
                            append_fill(TAG_LEASE_KEYS),
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
                    append_fill(TAG_CURRENT),
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
                            append_fill(TAG_HISTORY),
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
                        append_fill(TAG_HISTORY),
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
                        append_fill(TAG_HISTORY),
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

pub(super) fn put_key(op: &WriteOp) -> &[u8] {
    match op {
        WriteOp::Put(p) => &p.key,
        WriteOp::DeleteRange { range, .. } => range.start(),
    }
}
