//! Range reads: `etch_range()` and the `etch_iter` that walks its result.

use std::ffi::c_int;

use etch_engine::{KeyValue, RangeOptions, SortOrder, SortTarget};

use crate::boundary::{self, call, call_db, clear, clear_const, flag, object, object_mut, out};
use crate::db::etch_db;
use crate::error::{Failure, FfiResult};
use crate::kv::{etch_kv, raw_range, view};

/// The result of a read: key-values in order, plus the count and `more` of the range.
/// Opaque; created by etch_range(), etch_delete_range(), etch_lease_time_to_live() or
/// etch_txn_result_kvs(), released by etch_iter_free().
///
/// An iterator owns a complete copy of its result (a consistent snapshot taken when it was
/// created), so it stays valid after later writes and even after etch_close() of its handle.
/// Thread safety: not for concurrent use; it may be moved to another thread.
pub struct etch_iter {
    inner: Iter,
}

/// The Rust side of an iterator: owned key-values and C views of them.
pub(crate) struct Iter {
    kvs: Vec<KeyValue>,
    /// `views[i]` points into `kvs[i]`'s buffers; neither Vec changes after construction.
    views: Vec<etch_kv>,
    next: usize,
    count: i64,
    more: bool,
    revision: i64,
}

impl Iter {
    /// An iterator over `kvs`.
    pub(crate) fn new(kvs: Vec<KeyValue>, count: i64, more: bool, revision: i64) -> Iter {
        let views = kvs.iter().map(view).collect();
        Iter {
            kvs,
            views,
            next: 0,
            count,
            more,
            revision,
        }
    }

    /// Hands the iterator to C (freed by etch_iter_free()).
    pub(crate) fn into_raw(self) -> *mut etch_iter {
        Box::into_raw(Box::new(etch_iter { inner: self }))
    }
}

/// `etch_range_opts.sort_order`: key order (no sorting). The default.
pub const ETCH_SORT_NONE: c_int = 0;
/// `etch_range_opts.sort_order`: ascending by sort_target.
pub const ETCH_SORT_ASCEND: c_int = 1;
/// `etch_range_opts.sort_order`: descending by sort_target.
pub const ETCH_SORT_DESCEND: c_int = 2;
/// `etch_range_opts.sort_target`: by key. The default.
pub const ETCH_SORT_KEY: c_int = 0;
/// `etch_range_opts.sort_target`: by version.
pub const ETCH_SORT_VERSION: c_int = 1;
/// `etch_range_opts.sort_target`: by create revision.
pub const ETCH_SORT_CREATE: c_int = 2;
/// `etch_range_opts.sort_target`: by mod revision.
pub const ETCH_SORT_MOD: c_int = 3;
/// `etch_range_opts.sort_target`: by value bytes.
pub const ETCH_SORT_VALUE: c_int = 4;

/// Options of a range read (etcd's RangeRequest). All-zero means the defaults, so
/// `etch_range_opts o = {0};` and etch_range_opts_init() are equivalent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct etch_range_opts {
    /// Read at this revision; 0 for the current one, negative is ETCH_INVALID. Below the
    /// compact revision: ETCH_COMPACTED; above the current one: ETCH_FUTURE_REV.
    pub revision: i64,
    /// At most this many key-values (0: no limit); etch_iter_more() tells if some were left out.
    pub limit: i64,
    /// Non-zero: return keys without values.
    pub keys_only: c_int,
    /// Non-zero: return no key-values, only the count (etch_iter_count()).
    pub count_only: c_int,
    /// ETCH_SORT_NONE, ETCH_SORT_ASCEND or ETCH_SORT_DESCEND.
    pub sort_order: c_int,
    /// ETCH_SORT_KEY, _VERSION, _CREATE, _MOD or _VALUE.
    pub sort_target: c_int,
    /// Only keys with mod_revision >= this (0: no bound).
    pub min_mod_revision: i64,
    /// Only keys with mod_revision <= this (0: no bound).
    pub max_mod_revision: i64,
    /// Only keys with create_revision >= this (0: no bound).
    pub min_create_revision: i64,
    /// Only keys with create_revision <= this (0: no bound).
    pub max_create_revision: i64,
}

impl etch_range_opts {
    /// The engine's options.
    pub(crate) fn to_engine(self) -> FfiResult<RangeOptions> {
        let sort_order = match self.sort_order {
            ETCH_SORT_NONE => SortOrder::None,
            ETCH_SORT_ASCEND => SortOrder::Ascend,
            ETCH_SORT_DESCEND => SortOrder::Descend,
            other => return Err(Failure::invalid(format!("unknown sort_order {other}"))),
        };
        let sort_target = match self.sort_target {
            ETCH_SORT_KEY => SortTarget::Key,
            ETCH_SORT_VERSION => SortTarget::Version,
            ETCH_SORT_CREATE => SortTarget::Create,
            ETCH_SORT_MOD => SortTarget::Mod,
            ETCH_SORT_VALUE => SortTarget::Value,
            other => return Err(Failure::invalid(format!("unknown sort_target {other}"))),
        };
        if self.limit < 0 {
            return Err(Failure::invalid(format!(
                "limit {} is negative",
                self.limit
            )));
        }
        let revision = boundary::revision(self.revision, "revision")?;
        for (value, what) in [
            (self.min_mod_revision, "min_mod_revision"),
            (self.max_mod_revision, "max_mod_revision"),
            (self.min_create_revision, "min_create_revision"),
            (self.max_create_revision, "max_create_revision"),
        ] {
            boundary::revision(value, what)?;
        }
        Ok(RangeOptions {
            limit: self.limit,
            revision,
            sort_order,
            sort_target,
            keys_only: flag(self.keys_only),
            count_only: flag(self.count_only),
            min_mod_revision: self.min_mod_revision,
            max_mod_revision: self.max_mod_revision,
            min_create_revision: self.min_create_revision,
            max_create_revision: self.max_create_revision,
        })
    }
}

/// Fills `*opts` with the defaults (all zero: current revision, no limit, key order).
/// Returns ETCH_OK, or ETCH_INVALID if `opts` is NULL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_range_opts_init(opts: *mut etch_range_opts) -> c_int {
    call(|| {
        // SAFETY: by the header's contract a non-NULL opts is writable.
        unsafe { out(opts, "opts") }?.set(etch_range_opts::default());
        Ok(())
    })
}

/// Reads the keys of a range, at the current or an older revision, into an iterator.
///
/// The range is etcd's `(key, range_end)` pair: `range_end` NULL/empty for the single key
/// `key`; `"\0"` (length 1) for every key >= `key`; key `"\0"` with range_end `"\0"` for every
/// key; otherwise `[key, range_end)` (etch_prefix_end() computes the end of a prefix). `opts`
/// may be NULL for the defaults. On ETCH_OK `*iter` receives an iterator owned by the caller
/// (release it with etch_iter_free()); on failure `*iter` is NULL. An empty result is ETCH_OK
/// with an iterator that yields nothing.
///
/// Returns ETCH_OK, ETCH_INVALID (NULL arguments, empty key, bad options), ETCH_COMPACTED,
/// ETCH_FUTURE_REV. Never waits for writers;
/// may run concurrently with any call on the handle except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_range(
    db: *const etch_db,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    opts: *const etch_range_opts,
    iter: *mut *mut etch_iter,
) -> c_int {
    // SAFETY: by the header's contract `iter` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(iter) };
    call_db(db, |db| {
        // SAFETY: by the header's contract every pointer is NULL or valid for its use.
        let (iter, range, opts) = unsafe {
            let iter = out(iter, "iter")?;
            iter.set(std::ptr::null_mut());
            let range = raw_range(key, key_len, range_end, range_end_len)?;
            (iter, range, opts.as_ref().copied().unwrap_or_default())
        };
        if range.start().is_empty() {
            return Err(Failure::invalid("key is empty (use \"\\0\" for every key)"));
        }
        let resp = db.store.range_with(&range, &opts.to_engine()?)?;
        iter.set(Iter::new(resp.kvs, resp.count, resp.more, resp.header_revision).into_raw());
        Ok(())
    })
}

/// Advances the iterator: on ETCH_OK `*kv` points to the next key-value, borrowed from the
/// iterator and valid until the next etch_iter_next() or etch_iter_free() on it (copy what you
/// keep). Returns ETCH_NOT_FOUND (with `*kv` NULL) when the iterator is exhausted, and
/// ETCH_INVALID for NULL arguments.
#[no_mangle]
pub unsafe extern "C" fn etch_iter_next(iter: *mut etch_iter, kv: *mut *const etch_kv) -> c_int {
    // SAFETY: by the header's contract `kv` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear_const(kv) };
    call(|| {
        // SAFETY: by the header's contract iter is a live iterator not used concurrently and kv
        // is writable.
        let (it, kv) = unsafe { (object_mut(iter, "iter")?, out(kv, "kv")?) };
        kv.set(std::ptr::null());
        let it = &mut it.inner;
        match it.views.get(it.next) {
            Some(v) => {
                kv.set(v);
                it.next += 1;
                Ok(())
            }
            None => Err(Failure::not_found("iterator exhausted")),
        }
    })
}

/// The number of key-values the iterator holds in all (not just the ones left). ETCH_OK or
/// ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_iter_len(iter: *const etch_iter, len: *mut usize) -> c_int {
    call(|| {
        // SAFETY: by the header's contract iter is live and len writable.
        let (it, len) = unsafe { (object(iter, "iter")?, out(len, "len")?) };
        len.set(it.inner.kvs.len());
        Ok(())
    })
}

/// The number of keys that matched the range and filters, ignoring `limit` (etcd's count);
/// the only result of a count_only read. For deleted key-values and lease keys, the number
/// of key-values. ETCH_OK or ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_iter_count(iter: *const etch_iter, count: *mut i64) -> c_int {
    call(|| {
        // SAFETY: by the header's contract iter is live and count writable.
        let (it, count) = unsafe { (object(iter, "iter")?, out(count, "count")?) };
        count.set(it.inner.count);
        Ok(())
    })
}

/// `*more` receives 1 if `limit` cut the result short, else 0. ETCH_OK or ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_iter_more(iter: *const etch_iter, more: *mut c_int) -> c_int {
    call(|| {
        // SAFETY: by the header's contract iter is live and more writable.
        let (it, more) = unsafe { (object(iter, "iter")?, out(more, "more")?) };
        more.set(c_int::from(it.inner.more));
        Ok(())
    })
}

/// `*revision` receives the store revision the read saw (the current revision, even for a read
/// at an older one, as etcd's response header). ETCH_OK or ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_iter_revision(iter: *const etch_iter, revision: *mut i64) -> c_int {
    call(|| {
        // SAFETY: by the header's contract iter is live and revision writable.
        let (it, revision) = unsafe { (object(iter, "iter")?, out(revision, "revision")?) };
        revision.set(it.inner.revision);
        Ok(())
    })
}

/// Releases an iterator and every key-value borrowed from it (exactly once). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn etch_iter_free(iter: *mut etch_iter) {
    if iter.is_null() {
        return;
    }
    // SAFETY: by the header's contract iter came from Iter::into_raw (a leaked Box) and is
    // freed only once.
    drop(unsafe { Box::from_raw(iter) });
}
