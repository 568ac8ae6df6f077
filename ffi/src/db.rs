//! The database handle: options, open, restore, close, and the per-handle error messages.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use etch_engine::{AutoCompaction, Durability, Options, Store};

use crate::boundary::{self, c_message, call, clear, flag, out, path};
use crate::error::{Failure, FfiResult};

/// An open store. Opaque; created by etch_open() or etch_restore(), destroyed by etch_close().
///
/// Thread safety: every function taking an `etch_db *` may be called from any number of
/// threads at once on the same handle (reads never wait for writers; concurrent writers share
/// one fsync through group commit), except etch_close(), which must be the last call on the
/// handle and must not run concurrently with any other call on it.
pub struct etch_db {
    pub(crate) store: Store,
    /// Last error message per calling thread, for etch_errmsg().
    errors: Mutex<HashMap<u64, CString>>,
}

impl etch_db {
    /// Records `failure` as the calling thread's last error on this handle; returns its code.
    pub(crate) fn record(&self, failure: Failure) -> c_int {
        let message = c_message(&failure.message);
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        errors.insert(boundary::thread_token(), message);
        failure.code
    }
}

/// `etch_options.durability`: a commit returns after its WAL record is on stable storage
/// (fdatasync; concurrent commits share one sync). The default.
pub const ETCH_DURABILITY_IMMEDIATE: c_int = 0;
/// `etch_options.durability`: a commit returns once its record is in the WAL's memory map;
/// the WAL is synced every `relaxed_sync_interval_ms` and by etch_sync(). A power cut may lose
/// the commits of the last interval; a process crash loses nothing.
pub const ETCH_DURABILITY_RELAXED: c_int = 1;

/// `etch_options.auto_compaction_mode`: never compact automatically.
pub const ETCH_AUTO_COMPACTION_OFF: c_int = 0;
/// `etch_options.auto_compaction_mode`: keep the history of the last
/// `auto_compaction_retention` revisions. The default (100000 revisions).
pub const ETCH_AUTO_COMPACTION_REVISIONS: c_int = 1;
/// `etch_options.auto_compaction_mode`: keep the history of the last
/// `auto_compaction_retention` milliseconds.
pub const ETCH_AUTO_COMPACTION_PERIODIC: c_int = 2;

/// Options for etch_open() and etch_restore(). Always fill it with etch_options_init() first,
/// then change the fields you care about: fields added in later versions then keep their
/// defaults. Owned by the caller (stack or heap); etch only reads it during the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct etch_options {
    /// ETCH_DURABILITY_IMMEDIATE (default) or ETCH_DURABILITY_RELAXED.
    pub durability: c_int,
    /// How often the WAL is synced in relaxed mode, in milliseconds (default 100).
    pub relaxed_sync_interval_ms: u64,
    /// Page size of a new file: a power of two from 4096 to 65536 (default 4096). An existing
    /// file keeps its page size.
    pub page_size: u32,
    /// Maximum key length in bytes (default 960; at most page_size / 4 - 64).
    pub max_key_size: usize,
    /// Maximum size of the keys and values of one write request (default 1.5 MiB).
    pub max_request_bytes: usize,
    /// Maximum number of operations in one transaction branch (default 128).
    pub max_txn_ops: usize,
    /// Largest size in bytes of the WAL file (default 64 MiB; 1 MiB to 1 TiB). The WAL is
    /// created at 256 KiB (or this, if smaller) and doubles, zero-filled, as commits need room,
    /// up to this size; a checkpoint empties it, and once it is this full commits checkpoint.
    /// etch_close() removes it.
    pub wal_capacity: u64,
    /// A checkpoint runs at least this often while the WAL holds records, in milliseconds
    /// (default 30000).
    pub checkpoint_interval_ms: u64,
    /// A checkpoint runs once the WAL is this fraction full (default 0.5; 0.05 to 0.95).
    pub checkpoint_wal_fraction: f64,
    /// Non-zero: tell the kernel reads are random (no read-ahead). Default 0.
    pub random_access: c_int,
    /// Attempts of an optimistic transaction before ETCH_CONFLICT (default 16, at least 1).
    pub write_attempts: u32,
    /// ETCH_AUTO_COMPACTION_OFF, _REVISIONS (default) or _PERIODIC.
    pub auto_compaction_mode: c_int,
    /// Revisions (mode _REVISIONS, default 100000) or milliseconds (mode _PERIODIC) of
    /// history to keep; ignored when the mode is _OFF.
    pub auto_compaction_retention: u64,
    /// Space quota in bytes; past it writes that add data fail with ETCH_QUOTA. 0 means no
    /// quota. Default 8 GiB.
    pub quota_bytes: u64,
}

impl etch_options {
    /// The engine's defaults.
    fn defaults() -> etch_options {
        etch_options {
            durability: ETCH_DURABILITY_IMMEDIATE,
            relaxed_sync_interval_ms: 100,
            page_size: 4096,
            max_key_size: 960,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            wal_capacity: 64 << 20,
            checkpoint_interval_ms: 30_000,
            checkpoint_wal_fraction: 0.5,
            random_access: 0,
            write_attempts: 16,
            auto_compaction_mode: ETCH_AUTO_COMPACTION_REVISIONS,
            auto_compaction_retention: 100_000,
            quota_bytes: 8 << 30,
        }
    }

    /// The engine's builder for these options.
    fn to_engine(self) -> FfiResult<Options> {
        let durability = match self.durability {
            ETCH_DURABILITY_IMMEDIATE => Durability::Immediate,
            ETCH_DURABILITY_RELAXED => Durability::Relaxed,
            other => return Err(Failure::invalid(format!("unknown durability {other}"))),
        };
        let auto_compaction = match self.auto_compaction_mode {
            ETCH_AUTO_COMPACTION_OFF => AutoCompaction::Off,
            ETCH_AUTO_COMPACTION_REVISIONS => {
                AutoCompaction::Revisions(self.auto_compaction_retention)
            }
            ETCH_AUTO_COMPACTION_PERIODIC => {
                AutoCompaction::Periodic(Duration::from_millis(self.auto_compaction_retention))
            }
            other => {
                return Err(Failure::invalid(format!(
                    "unknown auto_compaction_mode {other}"
                )))
            }
        };
        Ok(Options::new()
            .durability(durability)
            .relaxed_sync_interval(Duration::from_millis(self.relaxed_sync_interval_ms))
            .page_size(self.page_size as usize)
            .max_key_size(self.max_key_size)
            .max_request_bytes(self.max_request_bytes)
            .max_txn_ops(self.max_txn_ops)
            .wal_capacity(self.wal_capacity)
            .checkpoint_interval(Duration::from_millis(self.checkpoint_interval_ms))
            .checkpoint_wal_fraction(self.checkpoint_wal_fraction)
            .random_access(flag(self.random_access))
            .write_attempts(self.write_attempts)
            .auto_compaction(auto_compaction)
            .quota_bytes((self.quota_bytes != 0).then_some(self.quota_bytes)))
    }
}

/// Reads an optional options pointer: NULL means the defaults.
///
/// # Safety
/// A non-NULL `opts` must point to a readable etch_options.
unsafe fn engine_options(opts: *const etch_options) -> FfiResult<Options> {
    // SAFETY: the caller's guarantee; etch_options is Copy plain data.
    let opts = unsafe { opts.as_ref() }.copied();
    opts.unwrap_or_else(etch_options::defaults).to_engine()
}

/// Boxes a store as a handle.
fn into_handle(store: Store) -> *mut etch_db {
    Box::into_raw(Box::new(etch_db {
        store,
        errors: Mutex::new(HashMap::new()),
    }))
}

/// Fills `*opts` with the defaults (immediate durability, 4 KiB pages, etcd's limits of 1.5 MiB
/// per request and 128 operations per transaction, a WAL of at most 64 MiB, auto-compaction keeping
/// 100000 revisions, an 8 GiB quota).
///
/// Returns ETCH_OK, or ETCH_INVALID if `opts` is NULL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_options_init(opts: *mut etch_options) -> c_int {
    call(|| {
        // SAFETY: by the header's contract a non-NULL opts is writable for the call.
        let opts = unsafe { out(opts, "opts") }?;
        opts.set(etch_options::defaults());
        Ok(())
    })
}

/// Opens the store at `path` (a NUL-terminated file name), creating it if it does not exist.
///
/// `opts` may be NULL for the defaults. On success `*db` receives a new handle, owned by the
/// caller and released with etch_close(); on failure `*db` is set to NULL and
/// etch_errmsg(NULL) describes the failure on this thread.
///
/// Returns ETCH_OK, ETCH_INVALID (NULL path or db, bad option), ETCH_LOCKED (open elsewhere,
/// including in this process), ETCH_FORMAT (not an etch file, or a newer format),
/// ETCH_CORRUPT, ETCH_IO or ETCH_NOSPACE. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_open(
    path: *const c_char,
    opts: *const etch_options,
    db: *mut *mut etch_db,
) -> c_int {
    // SAFETY: by the header's contract `db` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(db) };
    call(|| {
        // SAFETY: by the header's contract each non-NULL pointer is valid for its use: db
        // writable, path NUL-terminated, opts readable.
        let (db, path, opts) = unsafe {
            let db = out(db, "db")?;
            db.set(std::ptr::null_mut());
            (db, boundary::path(path, "path")?, engine_options(opts)?)
        };
        let store = opts.open(&path)?;
        db.set(into_handle(store));
        Ok(())
    })
}

/// Restores a snapshot file written by etch_snapshot(): copies `snapshot_path` to
/// `output_path` (which must not exist), verifies the copy completely, and opens it.
///
/// `opts` may be NULL for the defaults. On success `*db` receives the open handle (release it
/// with etch_close()); on failure `*db` is NULL, the output file is removed, and
/// etch_errmsg(NULL) describes the failure. The snapshot file is only read.
///
/// Returns ETCH_OK, ETCH_INVALID, ETCH_FORMAT, ETCH_CORRUPT, ETCH_IO (including "output
/// exists") or ETCH_NOSPACE. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_restore(
    snapshot_path: *const c_char,
    output_path: *const c_char,
    opts: *const etch_options,
    db: *mut *mut etch_db,
) -> c_int {
    // SAFETY: by the header's contract `db` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(db) };
    call(|| {
        // SAFETY: as in etch_open: db writable, paths NUL-terminated, opts readable.
        let (db, snapshot, output, opts) = unsafe {
            let db = out(db, "db")?;
            db.set(std::ptr::null_mut());
            (
                db,
                path(snapshot_path, "snapshot_path")?,
                path(output_path, "output_path")?,
                engine_options(opts)?,
            )
        };
        let store = Store::restore(&snapshot, &output, opts)?;
        db.set(into_handle(store));
        Ok(())
    })
}

/// Closes the handle: checkpoints (the WAL is folded into the main file and removed, leaving
/// one file), releases the file lock and frees the handle, even when it reports an error.
///
/// Must be the last call on `db`, with no other call on it running. Objects created from the
/// handle stay valid and must still be freed: iterators, key-values and transaction results
/// own their data; watches report ETCH_CLOSED from then on. A NULL `db` is a no-op returning
/// ETCH_OK. Returns ETCH_OK, or ETCH_IO / ETCH_NOSPACE / ETCH_POISONED if the final checkpoint
/// failed (every acknowledged commit is still recovered by the next open); the message is
/// then available from etch_errmsg(NULL), since the handle is gone.
#[no_mangle]
pub unsafe extern "C" fn etch_close(db: *mut etch_db) -> c_int {
    if db.is_null() {
        return crate::error::ETCH_OK;
    }
    call(|| {
        // SAFETY: by the header's contract db is a live handle from etch_open()/etch_restore(),
        // closed exactly once, with no concurrent call: we take back the Box we leaked.
        let handle = unsafe { Box::from_raw(db) };
        let etch_db { store, errors } = *handle;
        drop(errors);
        store.close()?;
        Ok(())
    })
}

/// The message of the calling thread's most recent failed call on `db` (a NUL-terminated
/// English string), or "no error" if it has none. With `db` NULL: the calling thread's most
/// recent failure among calls that had no usable handle (etch_open(), etch_restore(),
/// etch_close(), calls passing a NULL db, and the functions taking an iterator, transaction,
/// result, watch or etch_wtxn instead of a handle).
///
/// Messages are kept per thread, so threads sharing a handle never see or clobber each other's
/// messages. Calls that succeed leave it unchanged, like errno; ETCH_NOT_FOUND results are
/// recorded like failures. The string is owned by the library: valid until the same thread's
/// next call on the same handle (or, for NULL, its next handle-less call),
/// or until etch_close(db). Never NULL.
#[no_mangle]
pub unsafe extern "C" fn etch_errmsg(db: *const etch_db) -> *const c_char {
    // SAFETY: by the header's contract a non-NULL db is a live handle.
    let Some(handle) = (unsafe { db.as_ref() }) else {
        return boundary::thread_message();
    };
    let errors = handle.errors.lock().unwrap_or_else(PoisonError::into_inner);
    match errors.get(&boundary::thread_token()) {
        // The CString's heap buffer does not move when the map rehashes, and only this thread
        // replaces this thread's entry, so the pointer stays valid as documented.
        Some(message) => message.as_ptr(),
        None => c"no error".as_ptr(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ETCH_INVALID;

    #[test]
    fn defaults_are_accepted_and_bad_enums_refused() {
        assert!(etch_options::defaults().to_engine().is_ok());
        let mut o = etch_options::defaults();
        o.durability = 7;
        assert_eq!(o.to_engine().unwrap_err().code, ETCH_INVALID);
        let mut o = etch_options::defaults();
        o.auto_compaction_mode = -1;
        assert_eq!(o.to_engine().unwrap_err().code, ETCH_INVALID);
    }
}
