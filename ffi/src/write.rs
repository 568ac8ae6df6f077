//! Optimistic read-write transactions: `etch_write()` runs a C callback against an
//! `etch_wtxn`; its reads are validated at commit and the callback is re-run on a conflict.

use std::cell::Cell;
use std::ffi::{c_int, c_void};

use etch_engine::{Error, Range, WriteTxn};

use crate::boundary::{bytes, call, call_db, clear, object_mut, opt_out, out};
use crate::db::etch_db;
use crate::error::{Failure, FfiResult, ETCH_OK};
use crate::iter::{etch_iter, Iter};
use crate::kv::{into_owned_kv, raw_range};

/// The transaction an etch_write() callback works with. Opaque; valid only during the callback
/// call that received it, and only on that thread. Not freed by the caller.
pub struct etch_wtxn {
    tx: *mut WriteTxn,
}

/// An etch_write() callback: reads and writes through `tx`, then returns ETCH_OK to commit or
/// any other value to abort without writing (etch_write() then returns that value). It may run
/// several times (once per attempt), so it must not have side effects beyond `tx`: reset any
/// state it builds at the start of each call.
pub type etch_write_fn =
    Option<unsafe extern "C" fn(tx: *mut etch_wtxn, ctx: *mut c_void) -> c_int>;

/// The engine transaction behind a C handle.
///
/// # Safety
/// `tx` must be NULL or the handle passed to the running callback on this thread.
unsafe fn inner<'a>(tx: *mut etch_wtxn) -> FfiResult<&'a mut WriteTxn> {
    // SAFETY: the caller's guarantee: a live etch_wtxn on this thread's stack.
    let handle = unsafe { object_mut(tx, "tx") }?;
    // SAFETY: handle.tx was set by etch_write to the WriteTxn it is running the callback for,
    // which outlives the callback and is not otherwise touched while the callback runs.
    Ok(unsafe { &mut *handle.tx })
}

/// Runs `fn(tx, ctx)` as an optimistic read-write transaction: every key read through `tx` is
/// validated at commit (by mod revision) and the buffered writes are applied atomically at one
/// revision. If another writer changed something it read, the callback runs again on a fresh
/// snapshot, up to `etch_options.write_attempts` times, then ETCH_CONFLICT.
///
/// `revision` (optional) receives, on ETCH_OK, the revision the writes were committed at (the
/// store revision right after them), or, if the callback wrote nothing, the revision of the
/// snapshot it read; it is left untouched on failure.
///
/// Returns ETCH_OK once committed (or if the callback wrote nothing), the callback's own
/// non-zero return value if it aborted (nothing is written), ETCH_CONFLICT, ETCH_INVALID
/// (NULL db or fn), or an error code from the commit. The callback runs on the calling thread;
/// it may call any function on `db` except etch_close() (writes it makes directly are not part
/// of the transaction and may themselves cause a conflict). May run concurrently with any call
/// on the handle except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_write(
    db: *const etch_db,
    r#fn: etch_write_fn,
    ctx: *mut c_void,
    revision: *mut i64,
) -> c_int {
    let aborted: Cell<Option<c_int>> = Cell::new(None);
    call_db(db, |db| {
        // SAFETY: by the header's contract revision is NULL or writable.
        let revision = unsafe { opt_out(revision) };
        let f = r#fn.ok_or_else(|| Failure::invalid("fn is NULL"))?;
        let result = db.store.write(|tx| {
            aborted.set(None);
            let mut handle = etch_wtxn { tx };
            // SAFETY: f is the caller's callback; handle points to this attempt's WriteTxn and
            // lives on this stack frame for the whole call.
            let rc = unsafe { f(&mut handle, ctx) };
            if rc == ETCH_OK {
                Ok(())
            } else {
                aborted.set(Some(rc));
                // Any error aborts the engine's attempt without writing; the code is in
                // `aborted`.
                Err(Error::InvalidOption(format!(
                    "write callback returned {rc}"
                )))
            }
        });
        match (result, aborted.get()) {
            (Ok(((), at)), _) => {
                if let Some(r) = revision {
                    r.set(at);
                }
                Ok(())
            }
            (Err(_), Some(rc)) => Err(Failure::new(rc, format!("write callback returned {rc}"))),
            (Err(e), None) => Err(e),
        }
    })
}

/// `*revision` receives the revision of the snapshot this attempt reads. ETCH_OK or
/// ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_wtxn_revision(tx: *mut etch_wtxn, revision: *mut i64) -> c_int {
    call(|| {
        // SAFETY: by the header's contract tx is the running callback's handle and revision
        // is writable.
        let (tx, revision) = unsafe { (inner(tx)?, out(revision, "revision")?) };
        revision.set(tx.revision());
        Ok(())
    })
}

/// Reads `key` within the transaction (a key it wrote reads back its new value, with zero
/// revisions and version). On ETCH_OK `*kv` receives a key-value owned by the caller
/// (etch_kv_free()); ETCH_NOT_FOUND (with `*kv` NULL) if it does not exist or the transaction
/// deleted it. ETCH_INVALID for NULL arguments or an empty key, ETCH_TOO_LARGE for a key longer
/// than max_key_size.
#[no_mangle]
pub unsafe extern "C" fn etch_wtxn_get(
    tx: *mut etch_wtxn,
    key: *const u8,
    key_len: usize,
    kv: *mut *mut crate::kv::etch_kv,
) -> c_int {
    // SAFETY: by the header's contract `kv` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(kv) };
    call(|| {
        // SAFETY: by the header's contract tx is the running callback's handle, kv writable,
        // key valid for key_len bytes.
        let (tx, kv, key) = unsafe {
            let kv = out(kv, "kv")?;
            kv.set(std::ptr::null_mut());
            (inner(tx)?, kv, bytes(key, key_len, "key")?)
        };
        // The engine refuses an empty or over-long key, as for a put.
        match tx.get(key)? {
            Some(found) => {
                kv.set(into_owned_kv(found));
                Ok(())
            }
            None => Err(Failure::not_found("key not found")),
        }
    })
}

/// Reads the range `(key, range_end)` (as etch_range()) as of the transaction's snapshot (its
/// own writes are not merged in); any change to the range before commit makes the attempt
/// retry. On ETCH_OK `*iter` receives an iterator owned by the caller (etch_iter_free()).
#[no_mangle]
pub unsafe extern "C" fn etch_wtxn_range(
    tx: *mut etch_wtxn,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    iter: *mut *mut etch_iter,
) -> c_int {
    // SAFETY: by the header's contract `iter` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(iter) };
    call(|| {
        // SAFETY: by the header's contract tx is the running callback's handle, iter writable,
        // the key buffers valid for their lengths.
        let (tx, iter, range): (_, _, Range) = unsafe {
            let iter = out(iter, "iter")?;
            iter.set(std::ptr::null_mut());
            (
                inner(tx)?,
                iter,
                raw_range(key, key_len, range_end, range_end_len)?,
            )
        };
        let resp = tx.range(range)?;
        iter.set(Iter::new(resp.kvs, resp.count, resp.more, resp.header_revision).into_raw());
        Ok(())
    })
}

/// Buffers a put of `key = value` (bytes copied), applied at commit. ETCH_OK or ETCH_INVALID
/// (NULL arguments, empty key; limits are checked at commit).
#[no_mangle]
pub unsafe extern "C" fn etch_wtxn_put(
    tx: *mut etch_wtxn,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract tx is the running callback's handle and the buffers
        // are valid for their lengths.
        let (tx, key, value) = unsafe {
            (
                inner(tx)?,
                bytes(key, key_len, "key")?,
                bytes(value, value_len, "value")?,
            )
        };
        if key.is_empty() {
            return Err(Failure::invalid("key is empty"));
        }
        tx.put(key, value);
        Ok(())
    })
}

/// Buffers the deletion of `key`, applied at commit. ETCH_OK or ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_wtxn_delete(
    tx: *mut etch_wtxn,
    key: *const u8,
    key_len: usize,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract tx is the running callback's handle and key is
        // valid for key_len bytes.
        let (tx, key) = unsafe { (inner(tx)?, bytes(key, key_len, "key")?) };
        if key.is_empty() {
            return Err(Failure::invalid("key is empty"));
        }
        tx.delete(key);
        Ok(())
    })
}
