//! Maintenance: revision, compact, snapshot, defrag, status, integrity check, hash, sync and
//! checkpoint.

use std::ffi::{c_char, c_int};

use crate::boundary::{self, call_db, opt_out, out, path};
use crate::db::etch_db;

/// Store status (filled by etch_status()), as etcd's StatusResponse plus engine figures.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct etch_store_status {
    /// Current revision.
    pub revision: i64,
    /// Compact revision (history below it is gone).
    pub compact_revision: i64,
    /// Number of live keys.
    pub key_count: u64,
    /// Size of the main file in bytes.
    pub file_size: u64,
    /// Bytes of the main file holding live pages.
    pub size_in_use: u64,
    /// Bytes of WAL records not yet checkpointed (0 right after etch_checkpoint()).
    pub wal_size: u64,
    /// Page size in bytes.
    pub page_size: u32,
    /// Last applied WAL sequence number.
    pub applied_index: u64,
}

/// What etch_check() examined.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct etch_check_report {
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

/// `*revision` receives the current revision (a new store is at 1). ETCH_OK or ETCH_INVALID.
/// May run concurrently with any call on the handle except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_revision(db: *const etch_db, revision: *mut i64) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract revision is writable.
        let revision = unsafe { out(revision, "revision") }?;
        revision.set(db.store.revision()?);
        Ok(())
    })
}

/// Compacts history: afterwards reads below `revision` fail with ETCH_COMPACTED, and every
/// version superseded at or before it is gone (each key keeps its value as of `revision`). The
/// space is reused for new pages; etch_defrag() shrinks the file. `current` (optional)
/// receives the store revision at the compaction. Returns ETCH_OK, ETCH_INVALID (`revision`
/// negative), ETCH_COMPACTED (already compacted at or past `revision`, 0 included),
/// ETCH_FUTURE_REV, ETCH_IO, ETCH_NOSPACE, ETCH_POISONED.
/// May run concurrently with any call on the handle except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_compact(
    db: *const etch_db,
    revision: i64,
    current: *mut i64,
) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract current is NULL or writable.
        let current = unsafe { opt_out(current) };
        let at = db
            .store
            .compact(boundary::revision(revision, "revision")?)?;
        if let Some(c) = current {
            c.set(at);
        }
        Ok(())
    })
}

/// Writes a consistent, compact single-file copy of the store as it is now to `path` (a
/// NUL-terminated file name that must not exist), while writers go on. Restore it with
/// etch_restore() (or simply open it). `revision` and `size` (both optional) receive the
/// revision copied and the file's size in bytes. Returns ETCH_OK, ETCH_INVALID, ETCH_IO (for
/// instance, the file exists), ETCH_NOSPACE. May run concurrently with any call except
/// etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_snapshot(
    db: *const etch_db,
    path: *const c_char,
    revision: *mut i64,
    size: *mut u64,
) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract path is NUL-terminated and the outputs NULL or
        // writable.
        let (target, revision, size) =
            unsafe { (self::path(path, "path")?, opt_out(revision), opt_out(size)) };
        let (rev, bytes) = db.store.local("etch_snapshot")?.snapshot(&target)?;
        if let Some(r) = revision {
            r.set(rev);
        }
        if let Some(s) = size {
            s.set(bytes);
        }
        Ok(())
    })
}

/// Rewrites the store compactly into a new file that atomically replaces the old one (etcd's
/// defrag). Writers wait while it runs; readers go on. `before` and `after` (both optional)
/// receive the file size in bytes. Returns ETCH_OK, ETCH_IO, ETCH_NOSPACE, ETCH_LOCKED,
/// ETCH_POISONED. May run concurrently with any call except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_defrag(
    db: *const etch_db,
    before: *mut u64,
    after: *mut u64,
) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract the outputs are NULL or writable.
        let (before, after) = unsafe { (opt_out(before), opt_out(after)) };
        let (b, a) = db.store.local("etch_defrag")?.defrag()?;
        if let Some(p) = before {
            p.set(b);
        }
        if let Some(p) = after {
            p.set(a);
        }
        Ok(())
    })
}

/// Fills the caller's `*status` with the store's figures. Returns ETCH_OK, ETCH_INVALID or
/// ETCH_IO. May run concurrently with any call except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_status(db: *const etch_db, status: *mut etch_store_status) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract status is writable.
        let status = unsafe { out(status, "status") }?;
        let s = db.store.local("etch_status")?.status()?;
        status.set(etch_store_status {
            revision: s.revision,
            compact_revision: s.compact_revision,
            key_count: s.key_count,
            file_size: s.file_size,
            size_in_use: s.size_in_use,
            wal_size: s.wal_size,
            page_size: s.page_size,
            applied_index: s.applied_index,
        });
        Ok(())
    })
}

/// Integrity check: walks every reachable page, verifying checksums, key order, tree shape,
/// record encoding and that every page is accounted for exactly once. `report` (optional)
/// receives what was examined. Blocks writers while it runs. Returns ETCH_OK, ETCH_CORRUPT
/// (the message names the page and what failed) or ETCH_IO. May run concurrently with any call
/// except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_check(db: *const etch_db, report: *mut etch_check_report) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract report is NULL or writable.
        let report = unsafe { opt_out(report) };
        let r = db.store.local("etch_check")?.check()?;
        if let Some(out) = report {
            out.set(etch_check_report {
                tree_pages: r.tree_pages,
                overflow_pages: r.overflow_pages,
                free_pages: r.free_pages,
                keys: r.keys,
                history_records: r.history_records,
                log_records: r.log_records,
            });
        }
        Ok(())
    })
}

/// `*hash` receives a CRC-32 of the keyspace as of `revision` (0 for the current one): every
/// key with its value and metadata, in key order (etcd's HashKV, for comparing copies).
/// Returns ETCH_OK, ETCH_INVALID (NULL hash, negative revision), ETCH_COMPACTED,
/// ETCH_FUTURE_REV. May run concurrently with
/// any call except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_hash_kv(db: *const etch_db, revision: i64, hash: *mut u32) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract hash is writable.
        let hash = unsafe { out(hash, "hash") }?;
        hash.set(
            db.store
                .hash_kv(boundary::revision(revision, "revision")?)?,
        );
        Ok(())
    })
}

/// Makes every commit so far durable (useful with ETCH_DURABILITY_RELAXED). Returns ETCH_OK,
/// ETCH_IO, ETCH_NOSPACE or ETCH_POISONED. May run concurrently with any call except
/// etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_sync(db: *const etch_db) -> c_int {
    call_db(db, |db| Ok(db.store.local("etch_sync")?.sync()?))
}

/// Runs a checkpoint now: the main file then holds every commit and the WAL is empty, as
/// etch_status() shows at once (wal_size 0). Returns
/// ETCH_OK, ETCH_IO, ETCH_NOSPACE or ETCH_POISONED. May run concurrently with any call except
/// etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_checkpoint(db: *const etch_db) -> c_int {
    call_db(db, |db| {
        Ok(db.store.local("etch_checkpoint")?.checkpoint()?)
    })
}
