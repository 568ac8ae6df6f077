//! The database handle: options, open, restore, close, and the per-handle error messages.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use etch_engine::{AutoCompaction, Durability, Options, Store};

use crate::backend::Backend;
use crate::boundary::{self, c_message, call, clear, flag, out, path};
use crate::error::{Failure, FfiResult};

/// An open store. Opaque; created by etch_open() or etch_restore() (a local file),
/// etch_open_member() (an in-process member of a cluster) or etch_connect() (a remote server),
/// destroyed by etch_close(). Every call takes any of the three, except the few a backend does
/// not offer (ETCH_UNSUPPORTED; each function's documentation names them).
///
/// Thread safety: every function taking an `etch_db *` may be called from any number of
/// threads at once on the same handle (reads never wait for writers; concurrent writers share
/// one fsync through group commit), except etch_close(), which must be the last call on the
/// handle and must not run concurrently with any other call on it.
pub struct etch_db {
    /// What the handle talks to.
    pub(crate) store: Backend,
    /// The path of the damaged-WAL copy, as C reads it through etch_wal_repair(); set when the
    /// open repaired the WAL. Kept here so the borrowed pointer lives as long as the handle.
    wal_repair_copy: Option<CString>,
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

/// Options for etch_open() and etch_restore(). Owned by the caller (stack or heap); etch only
/// reads it during the call.
///
/// Always fill it with `etch_options_init(&opts, sizeof opts)` first, then change the fields
/// you care about. ABI evolution: later versions only ever append fields, and `size` records
/// how much of the struct the caller's header knew; the library reads only those `size` bytes
/// and gives every field beyond them its default. So a program built against this header keeps
/// working, unchanged and unrecompiled, with a later library.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct etch_options {
    /// Size in bytes of the caller's etch_options: set by etch_options_init(), never by hand.
    pub size: usize,
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
    /// Non-zero: open read-only. The file must exist; it is opened O_RDONLY with a shared
    /// lock, so any number of read-only handles (in any processes) may hold it at once, while
    /// a writer and they exclude each other. Nothing is ever written (a file of mode 0444 or in
    /// a read-only directory works): commits a killed writer left in the WAL are replayed into
    /// memory only. Every write fails with ETCH_READONLY. The handle shows the state as of the
    /// open, runs no background work (no lease expiry, compaction, checkpoint) and reports
    /// `wal_size` 0. Cannot be combined with repair_wal (ETCH_INVALID). Default 0.
    pub read_only: c_int,
    /// How long an open waits for the file lock while another handle holds it, in
    /// milliseconds (SQLite's busy timeout); ETCH_LOCKED once it expires. Default 0: fail at
    /// once.
    pub lock_timeout_ms: u64,
    /// Non-zero: if the WAL is damaged in the middle (the open would fail with
    /// ETCH_WAL_DAMAGED), first copy it durably to `<file>-wal.damaged` (or `.damaged.N`),
    /// then recover up to the damage, dropping the records after it; etch_wal_repair() reports
    /// what was found and dropped. Default 0: such an open fails and changes nothing.
    pub repair_wal: c_int,
}

/// The size of the first etch_options with a `size` field (this version's): the smallest
/// `size` the library accepts. Later versions append fields and keep this figure.
const OPTIONS_SIZE_V1: usize = std::mem::size_of::<etch_options>();

/// What etch_wal_repair() reports: the damage an open with `etch_options.repair_wal` found in
/// the WAL and repaired.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct etch_wal_repair_report {
    /// Byte offset in the WAL of the first frame that could not be read.
    pub offset: u64,
    /// Sequence number of the last record read intact: the store was recovered up to it.
    pub last_good_seq: u64,
    /// Valid records after the damage, all dropped by the repair.
    pub records_after: u64,
    /// Path of the kept copy of the damaged WAL (NUL-terminated), next to the store. Borrowed
    /// from the handle: valid until etch_close(); do not free it.
    pub copy_path: *const c_char,
}

impl etch_options {
    /// The engine's defaults.
    fn defaults() -> etch_options {
        etch_options {
            size: std::mem::size_of::<etch_options>(),
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
            read_only: 0,
            lock_timeout_ms: 0,
            repair_wal: 0,
        }
    }

    /// Checks a caller's `size`: at least this version's first size, at most what this
    /// library knows (a larger one comes from a newer header, whose extra fields would be
    /// silently ignored).
    fn check_size(size: usize) -> FfiResult<()> {
        let known = std::mem::size_of::<etch_options>();
        if (OPTIONS_SIZE_V1..=known).contains(&size) {
            Ok(())
        } else {
            Err(Failure::invalid(format!(
                "etch_options size {size} is not between {OPTIONS_SIZE_V1} and {known}: fill the \
                 options with etch_options_init(&opts, sizeof opts), from the header of this \
                 library or an older one"
            )))
        }
    }

    /// Reads the caller's options: the first `size` bytes, defaults for the rest.
    ///
    /// # Safety
    /// `opts` must be non-NULL and readable for its `size` field and, once that is checked,
    /// for `size` bytes (the header's contract for a struct filled by etch_options_init()).
    unsafe fn read(opts: *const etch_options) -> FfiResult<etch_options> {
        // SAFETY: every etch_options, of any version, starts with its size_t `size`.
        let size = unsafe { opts.cast::<usize>().read_unaligned() };
        Self::check_size(size)?;
        let mut merged = etch_options::defaults();
        // SAFETY: `opts` is readable for `size` bytes (contract above) and `merged` is
        // writable for them (size <= size_of::<etch_options>(), checked); they do not overlap.
        // Every field is plain data for which any bit pattern is valid (integers, f64), so a
        // byte copy of a prefix yields a valid value.
        unsafe {
            std::ptr::copy_nonoverlapping(
                opts.cast::<u8>(),
                std::ptr::addr_of_mut!(merged).cast::<u8>(),
                size,
            )
        };
        merged.size = std::mem::size_of::<etch_options>();
        Ok(merged)
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
            .quota_bytes((self.quota_bytes != 0).then_some(self.quota_bytes))
            .read_only(flag(self.read_only))
            .lock_timeout(Duration::from_millis(self.lock_timeout_ms))
            .repair_wal(flag(self.repair_wal)))
    }
}

/// Reads an optional options pointer: NULL means the defaults.
///
/// # Safety
/// A non-NULL `opts` must point to an etch_options filled by etch_options_init().
pub(crate) unsafe fn engine_options(opts: *const etch_options) -> FfiResult<Options> {
    if opts.is_null() {
        return etch_options::defaults().to_engine();
    }
    // SAFETY: the caller's guarantee, as etch_options::read requires.
    unsafe { etch_options::read(opts) }?.to_engine()
}

/// Boxes a backend as a handle.
pub(crate) fn into_handle(store: Backend) -> *mut etch_db {
    let wal_repair_copy = match &store {
        Backend::Local(local) => local
            .wal_repair()
            .map(|repair| c_message(&repair.copy.to_string_lossy())),
        _ => None,
    };
    Box::into_raw(Box::new(etch_db {
        store,
        wal_repair_copy,
        errors: Mutex::new(HashMap::new()),
    }))
}

/// Fills `*opts` with the defaults (immediate durability, 4 KiB pages, etcd's limits of 1.5 MiB
/// per request and 128 operations per transaction, a WAL of at most 64 MiB, auto-compaction keeping
/// 100000 revisions, an 8 GiB quota).
///
/// 100000 revisions, an 8 GiB quota, a writable open that fails at once on a locked file and
/// refuses a damaged WAL). `size` must be `sizeof *opts` (the caller's view of the struct): the
/// library writes only that many bytes and records it in `opts->size`.
///
/// Returns ETCH_OK, or ETCH_INVALID if `opts` is NULL or `size` is not a size of etch_options
/// this library knows (smaller than this version's, or from a newer header). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_options_init(opts: *mut etch_options, size: usize) -> c_int {
    call(|| {
        if opts.is_null() {
            return Err(Failure::invalid("opts is NULL"));
        }
        etch_options::check_size(size)?;
        let mut defaults = etch_options::defaults();
        defaults.size = size;
        // SAFETY: by the header's contract opts is writable for `size` bytes (sizeof *opts
        // in the caller), and size <= size_of::<etch_options>() (checked), so the copy reads
        // inside `defaults` and writes inside the caller's struct.
        unsafe {
            std::ptr::copy_nonoverlapping(
                std::ptr::addr_of!(defaults).cast::<u8>(),
                opts.cast::<u8>(),
                size,
            )
        };
        Ok(())
    })
}

/// Opens the store at `path` (a NUL-terminated file name), creating it if it does not exist.
///
/// `opts` may be NULL for the defaults. On success `*db` receives a new handle, owned by the
/// caller and released with etch_close(); on failure `*db` is set to NULL and
/// etch_errmsg(NULL) describes the failure on this thread.
///
/// Returns ETCH_OK, ETCH_INVALID (NULL path or db, bad option, `read_only` with `repair_wal`),
/// ETCH_LOCKED (held elsewhere, including in this process, past `lock_timeout_ms`),
/// ETCH_FORMAT (not an etch file, or a newer format), ETCH_CORRUPT, ETCH_WAL_DAMAGED (see
/// `repair_wal`), ETCH_IO (with `read_only`: also a missing file) or ETCH_NOSPACE. Thread-safe.
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
        db.set(into_handle(Backend::Local(store)));
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
        db.set(into_handle(Backend::Local(store)));
        Ok(())
    })
}

/// Closes the handle: checkpoints (the WAL is folded into the main file and removed, leaving
/// one file), releases the file lock and frees the handle, even when it reports an error. A
/// cluster member is shut down first (its peers then elect a leader without it); a remote
/// handle closes its connections.
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
        let etch_db {
            store,
            errors,
            wal_repair_copy,
        } = *handle;
        drop((errors, wal_repair_copy));
        store.close()
    })
}

/// If the open that made `db` repaired a damaged WAL (`etch_options.repair_wal`), fills
/// `*report` with what it found and dropped and returns ETCH_OK; otherwise returns
/// ETCH_NOT_FOUND and leaves `*report` unwritten. ETCH_INVALID for a NULL argument,
/// ETCH_UNSUPPORTED on a member or remote handle.
/// `report->copy_path` is borrowed from the handle (valid until etch_close()). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_wal_repair(
    db: *const etch_db,
    report: *mut etch_wal_repair_report,
) -> c_int {
    boundary::call_db(db, |db| {
        // SAFETY: by the header's contract report is writable.
        let report = unsafe { out(report, "report") }?;
        match (
            db.store.local("etch_wal_repair")?.wal_repair(),
            &db.wal_repair_copy,
        ) {
            (Some(repair), Some(copy)) => {
                report.set(etch_wal_repair_report {
                    offset: repair.damage.offset,
                    last_good_seq: repair.damage.last_good_seq,
                    records_after: repair.damage.records_after,
                    copy_path: copy.as_ptr(),
                });
                Ok(())
            }
            _ => Err(Failure::not_found("this open repaired no WAL")),
        }
    })
}

/// `*read_only` receives 1 if `db` was opened with `etch_options.read_only`, else 0 (always 0
/// for a member or remote handle).
/// ETCH_OK, or ETCH_INVALID for a NULL argument. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_is_read_only(db: *const etch_db, read_only: *mut c_int) -> c_int {
    boundary::call_db(db, |db| {
        // SAFETY: by the header's contract read_only is writable.
        let read_only = unsafe { out(read_only, "read_only") }?;
        let local = matches!(&db.store, Backend::Local(s) if s.is_read_only());
        read_only.set(c_int::from(local));
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

    #[test]
    fn sizes_outside_the_known_versions_are_refused() {
        let known = std::mem::size_of::<etch_options>();
        assert!(etch_options::check_size(known).is_ok());
        assert_eq!(
            etch_options::check_size(known + 8).unwrap_err().code,
            ETCH_INVALID
        );
        assert_eq!(etch_options::check_size(0).unwrap_err().code, ETCH_INVALID);
    }
}
