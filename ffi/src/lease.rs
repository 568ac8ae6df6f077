//! Leases: grant, revoke, keep-alive, time-to-live, list.

use std::ffi::c_int;

use etch_engine::KeyValue;

use crate::boundary::{call_db, clear, flag, opt_out, out};
use crate::db::etch_db;
use crate::iter::{etch_iter, Iter};

/// A lease id with its granted TTL in seconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct etch_lease {
    /// The lease id.
    pub id: i64,
    /// The TTL it was granted with, in seconds.
    pub ttl: i64,
}

/// Every lease of a store (etch_lease_list()). Owned by the caller, released with
/// etch_leases_free(); `leases` is an array of `count` entries (NULL when count is 0).
#[repr(C)]
#[derive(Debug)]
pub struct etch_leases {
    /// Number of leases.
    pub count: usize,
    /// The leases.
    pub leases: *const etch_lease,
}

/// The list owned by Rust, the C view first.
#[repr(C)]
struct OwnedList {
    list: etch_leases,
    /// The array `list.leases` points into; never changed after construction.
    items: Vec<etch_lease>,
}

/// Grants a lease of `ttl` seconds (1 to 9000000000). `id` 0 lets etch pick a fresh id;
/// otherwise that id is used (ETCH_EXISTS if taken). `granted_id` (optional) receives the id.
/// Keys put with the lease are deleted, at one revision, when it is revoked or expires without
/// keep-alive (expiry runs on the store's background thread).
///
/// Returns ETCH_OK, ETCH_INVALID (ttl out of range, negative id), ETCH_EXISTS, ETCH_IO,
/// ETCH_NOSPACE, ETCH_QUOTA, ETCH_POISONED. May run concurrently with any call on the handle
/// except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_lease_grant(
    db: *const etch_db,
    ttl: i64,
    id: i64,
    granted_id: *mut i64,
) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract granted_id is NULL or writable.
        let granted_id = unsafe { opt_out(granted_id) };
        let grant = db.store.lease_grant(ttl, id)?;
        if let Some(g) = granted_id {
            g.set(grant.id);
        }
        Ok(())
    })
}

/// Revokes lease `id`: its keys are deleted at one revision and watchers see the deletes.
/// `revision` (optional) receives the store revision afterwards. Returns ETCH_OK,
/// ETCH_NOT_FOUND (no such lease), ETCH_IO, ETCH_NOSPACE, ETCH_POISONED. Concurrency as
/// etch_lease_grant().
#[no_mangle]
pub unsafe extern "C" fn etch_lease_revoke(
    db: *const etch_db,
    id: i64,
    revision: *mut i64,
) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract revision is NULL or writable.
        let revision = unsafe { opt_out(revision) };
        let rev = db.store.lease_revoke(id)?;
        if let Some(r) = revision {
            r.set(rev);
        }
        Ok(())
    })
}

/// Renews lease `id` for its full TTL; `ttl` (optional) receives that TTL in seconds. Returns
/// ETCH_OK or ETCH_NOT_FOUND (no such lease: revoked, expired or never granted). Concurrency
/// as etch_lease_grant().
#[no_mangle]
pub unsafe extern "C" fn etch_lease_keep_alive(
    db: *const etch_db,
    id: i64,
    ttl: *mut i64,
) -> c_int {
    call_db(db, |db| {
        // SAFETY: by the header's contract ttl is NULL or writable.
        let ttl = unsafe { opt_out(ttl) };
        let renewed = db.store.lease_keep_alive(id)?;
        if let Some(t) = ttl {
            t.set(renewed);
        }
        Ok(())
    })
}

/// Reports lease `id`: `ttl` (optional) receives the seconds left before it expires (rounded
/// up), `granted_ttl` (optional) the TTL it was granted with. If `keys` is non-NULL and
/// `with_keys` is non-zero, `*keys` receives an iterator over its attached keys (key-values
/// with only the key set), owned by the caller (etch_iter_free()); otherwise, if non-NULL, it
/// is set to NULL. Returns ETCH_OK or ETCH_NOT_FOUND. Concurrency as etch_lease_grant().
#[no_mangle]
pub unsafe extern "C" fn etch_lease_time_to_live(
    db: *const etch_db,
    id: i64,
    ttl: *mut i64,
    granted_ttl: *mut i64,
    with_keys: c_int,
    keys: *mut *mut etch_iter,
) -> c_int {
    // SAFETY: by the header's contract `keys` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(keys) };
    call_db(db, |db| {
        // SAFETY: by the header's contract each output is NULL or writable.
        let (ttl, granted, keys) = unsafe { (opt_out(ttl), opt_out(granted_ttl), opt_out(keys)) };
        if let Some(k) = &keys {
            k.set(std::ptr::null_mut());
        }
        let with_keys = flag(with_keys) && keys.is_some();
        let info = db.store.lease_time_to_live(id, with_keys)?;
        if let Some(t) = ttl {
            t.set(info.ttl);
        }
        if let Some(g) = granted {
            g.set(info.granted_ttl);
        }
        if let (Some(k), true) = (keys, with_keys) {
            let kvs: Vec<KeyValue> = info
                .keys
                .into_iter()
                .map(|key| KeyValue {
                    key,
                    lease: id,
                    ..Default::default()
                })
                .collect();
            let n = kvs.len() as i64;
            k.set(Iter::new(kvs, n, false, db.store.revision()?).into_raw());
        }
        Ok(())
    })
}

/// Lists every lease. On ETCH_OK `*list` receives the list, owned by the caller
/// (etch_leases_free()); on failure it is NULL. Returns ETCH_OK or ETCH_INVALID.
/// Concurrency as etch_lease_grant().
#[no_mangle]
pub unsafe extern "C" fn etch_lease_list(db: *const etch_db, list: *mut *mut etch_leases) -> c_int {
    // SAFETY: by the header's contract `list` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(list) };
    call_db(db, |db| {
        // SAFETY: by the header's contract list is writable.
        let list = unsafe { out(list, "list") }?;
        list.set(std::ptr::null_mut());
        let items: Vec<etch_lease> = db
            .store
            .lease_list()?
            .into_iter()
            .map(|g| etch_lease {
                id: g.id,
                ttl: g.ttl,
            })
            .collect();
        let view = etch_leases {
            count: items.len(),
            leases: if items.is_empty() {
                std::ptr::null()
            } else {
                items.as_ptr()
            },
        };
        let owned = Box::new(OwnedList { list: view, items });
        list.set(Box::into_raw(owned).cast());
        Ok(())
    })
}

/// Releases a list returned by etch_lease_list() (exactly once). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn etch_leases_free(list: *mut etch_leases) {
    if list.is_null() {
        return;
    }
    // SAFETY: by the header's contract list came from etch_lease_list, which leaked a
    // Box<OwnedList>; OwnedList is repr(C) with the view first, so the cast recovers it.
    drop(unsafe { Box::from_raw(list.cast::<OwnedList>()) });
}
