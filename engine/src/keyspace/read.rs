//! Reads: point and range reads at any retained revision, and the change log for watches.

use super::*;
use crate::btree::{self, Cursor, KeyOrder, NodeSource};
use crate::error::{Error, Result};
use crate::node::ValueRef;
use crate::types::{
    KeyValue, KeyValueRef, Range, RangeOptions, RangeResponse, SortOrder, SortTarget,
};

/// Visits the live keys of `range` in the current tree in key order until `f` returns false.
pub(super) fn scan_current<'a, S: NodeSource>(
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
pub(super) struct Collector {
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
pub(super) fn scan_at<S: NodeSource>(
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

/// One change read back from the log (see `watch.rs`).
pub(crate) struct LoggedEvent {
    pub(crate) is_put: bool,
    pub(crate) kv: KeyValue,
    pub(crate) prev_kv: Option<KeyValue>,
}

/// The version of `key` as of revision `rev` (`None` if absent then, or if that history was
/// compacted away).
pub(super) fn version_at<S: NodeSource>(
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
pub(super) fn history_version_at<'a, S: NodeSource>(
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
