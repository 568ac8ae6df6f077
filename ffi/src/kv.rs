//! Key-values across the boundary (`etch_kv`), and the single-key calls: put, get,
//! delete_range, plus the prefix helper.

use std::ffi::c_int;

use etch_engine::{KeyValue, PutOp, Range};

use crate::boundary::{bytes, call, call_db, clear, flag, opt_out, out, Out};
use crate::db::etch_db;
use crate::error::{Failure, FfiResult};
use crate::iter::{etch_iter, Iter};

/// One byte of backing for empty buffers, so no pointer handed to C is ever NULL or dangling.
static EMPTY: [u8; 1] = [0];

/// A key with its value and metadata (etcd's mvccpb.KeyValue).
///
/// `key`/`value` are never NULL (an empty value has `value_len` 0) and are not NUL-terminated.
/// Who owns the bytes depends on where the struct came from: one returned by etch_get() or
/// etch_put() is owned by the caller and released with etch_kv_free(); one reached through an
/// iterator or a watch response is borrowed from that object and valid until it is freed (or,
/// for iterators, until the next etch_iter_next()). Treat every field as read-only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct etch_kv {
    /// The key bytes.
    pub key: *const u8,
    /// Length of the key.
    pub key_len: usize,
    /// The value bytes (empty for keys_only reads).
    pub value: *const u8,
    /// Length of the value.
    pub value_len: usize,
    /// Revision of the key's last creation.
    pub create_revision: i64,
    /// Revision of the key's last modification.
    pub mod_revision: i64,
    /// Modifications since creation (1 after creation).
    pub version: i64,
    /// Attached lease id, 0 for none.
    pub lease: i64,
}

/// A pointer C may read `len` bytes from: the slice's own, or `EMPTY` for an empty slice.
pub(crate) fn c_bytes(b: &[u8]) -> *const u8 {
    if b.is_empty() {
        EMPTY.as_ptr()
    } else {
        b.as_ptr()
    }
}

/// A view of `kv` whose pointers stay valid while `kv`'s buffers live and are not mutated
/// (moving the `KeyValue` itself does not move its heap buffers).
pub(crate) fn view(kv: &KeyValue) -> etch_kv {
    etch_kv {
        key: c_bytes(&kv.key),
        key_len: kv.key.len(),
        value: c_bytes(&kv.value),
        value_len: kv.value.len(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

/// A key-value owned by C: the view first, so a pointer to this is a pointer to the view.
#[repr(C)]
struct OwnedKv {
    view: etch_kv,
    kv: KeyValue,
}

/// Hands an owned key-value to C (freed by etch_kv_free()).
pub(crate) fn into_owned_kv(kv: KeyValue) -> *mut etch_kv {
    let mut owned = Box::new(OwnedKv {
        view: view(&KeyValue::default()),
        kv,
    });
    owned.view = view(&owned.kv);
    Box::into_raw(owned).cast()
}

/// Releases a key-value returned by etch_get() or etch_put() (exactly once). NULL is a no-op.
/// Never pass a key-value borrowed from an iterator or a watch response.
#[no_mangle]
pub unsafe extern "C" fn etch_kv_free(kv: *mut etch_kv) {
    if kv.is_null() {
        return;
    }
    // SAFETY: by the header's contract kv came from into_owned_kv (etch_get/etch_put), which
    // leaked a Box<OwnedKv>; OwnedKv is repr(C) with the view first, so the cast recovers that
    // allocation, and it is freed only once.
    drop(unsafe { Box::from_raw(kv.cast::<OwnedKv>()) });
}

/// Options of etch_put() and of puts in transactions (etcd's PutRequest). Zero-initialise it
/// (`etch_put_opts o = {0};`) for a plain put.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct etch_put_opts {
    /// Lease to attach to the key (0 for none); it must exist (else ETCH_NOT_FOUND).
    pub lease: i64,
    /// Non-zero: keep the key's current value (the key must exist, else ETCH_NOT_FOUND; the
    /// value passed must be empty, else ETCH_INVALID).
    pub ignore_value: c_int,
    /// Non-zero: keep the key's current lease (the key must exist; `lease` must be 0).
    pub ignore_lease: c_int,
}

/// The engine's put from C arguments.
///
/// # Safety
/// Pointers as in etch_put(): each NULL or valid for its length; opts NULL or readable.
pub(crate) unsafe fn put_op(
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    opts: *const etch_put_opts,
    prev_kv: bool,
) -> FfiResult<PutOp> {
    // SAFETY: the caller's guarantee for each pointer.
    let (key, value, opts) = unsafe {
        (
            bytes(key, key_len, "key")?,
            bytes(value, value_len, "value")?,
            opts.as_ref().copied().unwrap_or_default(),
        )
    };
    Ok(PutOp {
        key: key.to_vec(),
        value: value.to_vec(),
        lease: opts.lease,
        prev_kv,
        ignore_value: flag(opts.ignore_value),
        ignore_lease: flag(opts.ignore_lease),
    })
}

/// The engine's range from etcd's raw `(key, range_end)` pair.
///
/// # Safety
/// Each pointer NULL or valid for reads of its length.
pub(crate) unsafe fn raw_range(
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
) -> FfiResult<Range> {
    // SAFETY: the caller's guarantee.
    let (key, end) = unsafe {
        (
            bytes(key, key_len, "key")?,
            bytes(range_end, range_end_len, "range_end")?,
        )
    };
    Ok(Range::from_raw(key, end))
}

/// Puts `key = value` atomically at a new revision.
///
/// `opts` may be NULL (a plain put). `revision` (optional) receives the store's revision after
/// the write. If `prev_kv` is non-NULL it receives the key's previous key-value, owned by the
/// caller (free it with etch_kv_free()), or NULL if the key did not exist. Key and value bytes
/// are copied; the caller keeps ownership of its buffers.
///
/// Returns ETCH_OK, ETCH_INVALID (empty key, NULL with non-zero length, ignore_* misuse),
/// ETCH_NOT_FOUND (lease does not exist, or ignore_* on a missing key), ETCH_TOO_LARGE,
/// ETCH_QUOTA, ETCH_IO, ETCH_NOSPACE, ETCH_POISONED. May run concurrently with any call on
/// the same handle except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_put(
    db: *const etch_db,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    opts: *const etch_put_opts,
    revision: *mut i64,
    prev_kv: *mut *mut etch_kv,
) -> c_int {
    // SAFETY: by the header's contract `prev_kv` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(prev_kv) };
    call_db(db, |db| {
        // SAFETY: by the header's contract every pointer is NULL or valid for its use.
        let (op, revision, prev) = unsafe {
            let prev = opt_out(prev_kv);
            if let Some(p) = &prev {
                p.set(std::ptr::null_mut());
            }
            let op = put_op(key, key_len, value, value_len, opts, prev.is_some())?;
            (op, opt_out(revision), prev)
        };
        let resp = db.store.put_with(op)?;
        if let Some(r) = revision {
            r.set(resp.header_revision);
        }
        if let (Some(p), Some(kv)) = (prev, resp.prev_kv) {
            p.set(into_owned_kv(kv));
        }
        Ok(())
    })
}

/// Reads the current value and metadata of `key`.
///
/// On ETCH_OK `*kv` receives a key-value owned by the caller: release it with etch_kv_free().
/// If the key does not exist, returns ETCH_NOT_FOUND and sets `*kv` to NULL. To read at an
/// older revision use etch_range(). Returns ETCH_INVALID for a NULL/empty key or NULL `kv`,
/// ETCH_TOO_LARGE for a key longer than max_key_size (as etch_put(): no such key can exist).
/// Never waits for writers; may run concurrently with any call on the handle except
/// etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_get(
    db: *const etch_db,
    key: *const u8,
    key_len: usize,
    kv: *mut *mut etch_kv,
) -> c_int {
    // SAFETY: by the header's contract `kv` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(kv) };
    call_db(db, |db| {
        // SAFETY: by the header's contract kv is writable and key valid for key_len bytes.
        let (kv, key) = unsafe {
            let kv = out(kv, "kv")?;
            kv.set(std::ptr::null_mut());
            (kv, bytes(key, key_len, "key")?)
        };
        // The engine refuses an empty or over-long key, as for a put.
        match db.store.get(key)? {
            Some(found) => {
                kv.set(into_owned_kv(found));
                Ok(())
            }
            None => Err(Failure::not_found("key not found")),
        }
    })
}

/// Deletes every key of a range at one revision.
///
/// The range is etcd's `(key, range_end)` pair: `range_end` NULL/empty for the single key
/// `key`; `"\0"` (length 1) for every key >= `key`; otherwise the keys in `[key, range_end)`
/// (use etch_prefix_end() for a prefix). `deleted` (optional) receives the number of keys
/// deleted, `revision` (optional) the store's revision afterwards (unchanged if nothing was
/// deleted). If `prev_kvs` is non-NULL it receives an iterator over the deleted key-values,
/// owned by the caller (free with etch_iter_free()).
///
/// Returns ETCH_OK (also when nothing matched), ETCH_INVALID, ETCH_TOO_LARGE, ETCH_IO,
/// ETCH_NOSPACE, ETCH_POISONED. May run concurrently with any call except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_delete_range(
    db: *const etch_db,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    deleted: *mut i64,
    revision: *mut i64,
    prev_kvs: *mut *mut etch_iter,
) -> c_int {
    // SAFETY: by the header's contract `prev_kvs` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(prev_kvs) };
    call_db(db, |db| {
        // SAFETY: by the header's contract every pointer is NULL or valid for its use.
        let (range, deleted, revision, prev): (_, _, _, Option<Out<*mut etch_iter>>) = unsafe {
            let prev = opt_out(prev_kvs);
            if let Some(p) = &prev {
                p.set(std::ptr::null_mut());
            }
            (
                raw_range(key, key_len, range_end, range_end_len)?,
                opt_out(deleted),
                opt_out(revision),
                prev,
            )
        };
        let resp = db.store.delete_range(range, prev.is_some())?;
        if let Some(d) = deleted {
            d.set(resp.deleted);
        }
        if let Some(r) = revision {
            r.set(resp.header_revision);
        }
        if let Some(p) = prev {
            let count = resp.prev_kvs.len() as i64;
            p.set(Iter::new(resp.prev_kvs, count, false, resp.header_revision).into_raw());
        }
        Ok(())
    })
}

/// Computes the `range_end` that makes `(prefix, range_end)` mean "every key starting with
/// prefix" (etcd's GetPrefixRangeEnd): the prefix with its last byte incremented after
/// dropping trailing 0xff bytes, or `"\0"` if nothing is left.
///
/// `out` is a caller-owned buffer of `out_cap` bytes; it needs `max(prefix_len, 1)` bytes.
/// `out_len` receives the length written. For every key, use etcd's convention instead: key
/// `"\0"` with range_end `"\0"` (both length 1). Returns ETCH_OK,
/// or ETCH_INVALID (NULL pointers, `out_cap` too small). Thread-safe; no allocation.
#[no_mangle]
pub unsafe extern "C" fn etch_prefix_end(
    prefix: *const u8,
    prefix_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract prefix is valid for prefix_len bytes and out_len
        // writable.
        let (prefix, len) = unsafe {
            (
                bytes(prefix, prefix_len, "prefix")?,
                self::out(out_len, "out_len")?,
            )
        };
        let end = etch_engine::prefix_end(prefix);
        if out.is_null() || out_cap < end.len() {
            return Err(Failure::invalid(format!(
                "out needs {} bytes, has {out_cap}",
                end.len()
            )));
        }
        // SAFETY: out is non-NULL and, by the contract, writable for out_cap >= end.len()
        // bytes; the source is a fresh Vec, so the regions do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(end.as_ptr(), out, end.len()) };
        len.set(end.len());
        Ok(())
    })
}
