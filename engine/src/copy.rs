//! Snapshot files: a consistent, compact, single-file copy of one state of the store, written
//! while writers go on (for backups, `snapshot save/restore`, Raft snapshots that keep the
//! store's identity, and defragmentation).
//!
//! The copy is made from a read snapshot, so it needs no lock: the pages it reads stay valid
//! while the snapshot is held (the reader rule). Each tree is rebuilt by inserting its entries in
//! key order, so every insert lands on the right edge and fills pages completely; overflow values
//! are copied to fresh runs. The result is an ordinary etch file, closed cleanly (no WAL), with
//! the identity its caller gives it ([`CopyIdentity`]): a new database id for a backup,
//! the store's own id and applied (index, term) for a Raft snapshot or a defrag. Restoring is
//! opening it.

use std::path::Path;
use std::sync::Arc;

use crate::alloc::Allocator;
use crate::btree::{self, Cursor, NodeSource};
use crate::checkpoint::{write_checkpoint, MetaSlots};
use crate::error::{Error, Result};
use crate::keyspace::{append_fill, root, root_mut, KsState, TREES};
use crate::meta::Roots;
use crate::node::{max_inline_entry, StoredValue, ValueRef};
use crate::pager::{MapState, Pager};
use crate::snapshot::SnapshotData;
use crate::storage::{Storage, StorageFile};

/// Seal after this many entries, to bound the memory of dirty pages.
const SEAL_EVERY: usize = 20_000;

/// Identity of a copy: a backup snapshot file gets a new database id and starts its WAL
/// sequence afresh; a Raft snapshot and a defragmented store keep both.
pub(crate) struct CopyIdentity {
    pub(crate) db_id: u64,
    /// (last applied sequence number, term).
    pub(crate) applied: (u64, u64),
    /// WAL salt recorded in the copy's meta.
    pub(crate) wal_salt: u64,
}

/// Writes `snap` to a new file at `path` (which must not exist or be empty). Returns the file's
/// size in bytes.
pub(crate) fn write_copy(
    storage: &dyn Storage,
    snap: &SnapshotData,
    path: &Path,
    page_size: usize,
) -> Result<u64> {
    let file = storage.open(path, true)?;
    if file.len()? != 0 {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{}: snapshot target already exists", path.display()),
        )));
    }
    let identity = CopyIdentity {
        db_id: crate::file::random_u64(),
        applied: (0, 0),
        wal_salt: crate::file::random_u64(),
    };
    let result = write_into(storage, &file, snap, path, page_size, &identity);
    if result.is_err() {
        let _ = storage.remove(path);
    }
    result
}

/// Writes `snap` into the empty `file` at `path` with the given identity, synced, directory
/// included. Returns the file's size.
pub(crate) fn write_into(
    storage: &dyn Storage,
    file: &Arc<dyn StorageFile>,
    snap: &SnapshotData,
    path: &Path,
    page_size: usize,
    identity: &CopyIdentity,
) -> Result<u64> {
    let map = Arc::new(MapState::new(&**file, page_size, 2, None, false)?);
    let mut pager = Pager::new(
        file.clone(),
        page_size,
        map,
        Allocator::new(2, Vec::new(), Vec::new()),
    )?;
    let src = snap.view();
    let mut roots = Roots::default();
    for (tag, order) in TREES {
        let from = root(&snap.state.roots, tag);
        let to = root_mut(&mut roots, tag);
        let mut cur = Cursor::new(&src, from, order);
        cur.first()?;
        let mut n = 0;
        while let Some((k, v)) = cur.current() {
            let stored = match v {
                ValueRef::Inline(b) => StoredValue::Inline(b.to_vec()),
                ValueRef::Overflow { .. } => {
                    let bytes = src.value_bytes(v)?;
                    if bytes.len() + k.len() + 32 <= max_inline_entry(page_size) {
                        StoredValue::Inline(bytes.to_vec())
                    } else {
                        pager.write_overflow(bytes)?
                    }
                }
            };
            btree::insert(&mut pager, to, order, tag, append_fill(tag), k, stored)?;
            n += 1;
            if n % SEAL_EVERY == 0 {
                pager.seal()?;
            }
            cur.next()?;
        }
    }
    let state = KsState {
        roots,
        ..snap.state
    };
    let mut slots = MetaSlots {
        counter: 0,
        db_id: identity.db_id,
    };
    write_checkpoint(
        &**file,
        &mut pager,
        &state,
        identity.applied,
        &mut slots,
        identity.wal_salt,
    )?;
    // A copy is complete: it ends at its last page, without the room a growing file keeps
    // ahead (`Pager::ensure_room`). The meta is durable already and names no page past here,
    // so a crash before this length is synced leaves only unused bytes at the end.
    file.set_len(pager.alloc.high_water * page_size as u64)?;
    file.sync_all()?;
    storage.sync_dir(path)?;
    Ok(file.len()?)
}
