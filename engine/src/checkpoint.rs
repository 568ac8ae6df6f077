//! Checkpoint and meta I/O on a main file: a new file's first meta, reading the newest valid
//! meta slot, and writing a sealed state as the durable checkpoint. Shared by the store (open,
//! checkpoints, defrag) and by the copy writer (snapshot files), which is why it is not part of
//! the store.

use std::path::Path;

use crate::error::{Error, Result};
use crate::keyspace::KsState;
use crate::meta::{self, Meta};
use crate::pager::Pager;
use crate::storage::{Storage, StorageFile};
use crate::wal::WAL_START;

/// Values every new meta carries over from the last one.
pub(crate) struct MetaSlots {
    /// Checkpoint counter of the newest durable meta.
    pub(crate) counter: u64,
    pub(crate) db_id: u64,
}

/// Writes the initial meta slots of a new file.
pub(crate) fn init_file(
    file: &dyn StorageFile,
    storage: &dyn Storage,
    path: &Path,
    page_size: usize,
) -> Result<()> {
    let meta = Meta {
        page_size: page_size as u32,
        db_id: crate::file::random_u64(),
        counter: 1,
        page_count: 2,
        revision: 1,
        wal_offset: WAL_START,
        wal_salt: crate::file::random_u64(),
        ..Default::default()
    };
    let mut buf = vec![0u8; page_size * 2];
    meta.encode(&mut buf[..page_size]);
    Meta { counter: 0, ..meta }.encode(&mut buf[page_size..]);
    file.write_all_at(&buf, 0)?;
    file.sync_all()?;
    Ok(storage.sync_dir(path)?)
}

/// Reads both meta slots and picks the newest valid one.
pub(crate) fn read_meta(file: &dyn StorageFile, path: &Path, len: u64) -> Result<Meta> {
    // 4096 bytes of each slot: the meta proper and a replicated store's membership after it.
    let mut slot0 = vec![0u8; 4096];
    if len < 256 {
        let mut head = vec![0u8; len as usize];
        file.read_exact_at(&mut head, 0)?;
        return Err(if head.len() >= 8 && head[..8] == meta::MAGIC {
            Error::corrupt(format!("file is truncated to {len} bytes"))
        } else {
            Error::NotEtchFile {
                path: path.to_path_buf(),
            }
        });
    }
    file.read_exact_at(&mut slot0[..len.min(4096) as usize], 0)?;
    // Slot 1 sits one page in; the page size comes from slot 0, or, if slot 0 is damaged, from
    // whichever candidate page size finds a valid slot 1.
    let candidates: Vec<u64> = match Meta::decode(&slot0) {
        Ok(m) => vec![m.page_size as u64],
        Err(_) => (12..=16).map(|s| 1u64 << s).collect(),
    };
    let mut slot1 = vec![0u8; 4096];
    for ps in candidates {
        if len >= ps + 256 {
            slot1.fill(0);
            file.read_exact_at(&mut slot1[..(len - ps).min(4096) as usize], ps)?;
            if Meta::decode(&slot1).is_ok() {
                break;
            }
        }
    }
    meta::choose(&slot0, &slot1, path).map(|(m, _)| m)
}

/// Where the WAL stands as of a checkpoint: what the meta records about it.
pub(crate) struct WalPosition {
    /// Where reading the WAL starts after this checkpoint.
    pub(crate) offset: u64,
    /// The generation's salt.
    pub(crate) salt: u64,
    /// `Some((index, term))` of the last purged log entry for a replicated store, whose WAL is
    /// its Raft log: `offset` is then where the first unpurged entry starts, and the WAL keeps
    /// its generation. `None` for a local store.
    pub(crate) purged: Option<(u64, u64)>,
    /// A replicated store's applied membership (index, term, bytes), recorded with the applied
    /// index it belongs to.
    pub(crate) membership: Option<(u64, u64, Vec<u8>)>,
}

/// Seals the writer's state and makes it the durable checkpoint: free list, fsync, meta in the
/// other slot, fsync. Afterwards the WAL may start a new generation with `salt` at WAL_START.
/// `applied` is the (sequence number, term) of the last commit in `state`.
pub(crate) fn write_checkpoint(
    file: &dyn StorageFile,
    pager: &mut Pager,
    state: &KsState,
    applied: (u64, u64),
    slots: &mut MetaSlots,
    salt: u64,
) -> Result<()> {
    let fresh = WalPosition {
        offset: WAL_START,
        salt,
        purged: None,
        membership: None,
    };
    write_checkpoint_at(file, pager, state, applied, slots, &fresh)
}

/// [`write_checkpoint`] recording any WAL position: a replicated store's checkpoint keeps its
/// log (see `raftlog.rs`). All three phases in a row; the store's concurrent checkpoint runs the
/// middle one without the writer lock (see `store/durability.rs`).
pub(crate) fn write_checkpoint_at(
    file: &dyn StorageFile,
    pager: &mut Pager,
    state: &KsState,
    applied: (u64, u64),
    slots: &mut MetaSlots,
    wal: &WalPosition,
) -> Result<()> {
    let prepared = prepare_checkpoint(pager, state, applied, slots, wal)?;
    make_durable(file, &prepared)?;
    checkpoint_done(pager, slots, &prepared);
    Ok(())
}

/// A checkpoint between its start and the moment its meta is durable: the encoded meta page and
/// the checkpoint counter it carries.
#[derive(Clone)]
pub(crate) struct PreparedCheckpoint {
    meta_page: Vec<u8>,
    counter: u64,
}

/// First phase (writer lock held): seals the state, writes its free list into fresh pages
/// (unsynced), starts the allocator's next epoch and encodes the meta naming it all. Nothing on
/// disk refers to the new pages yet.
pub(crate) fn prepare_checkpoint(
    pager: &mut Pager,
    state: &KsState,
    applied: (u64, u64),
    slots: &MetaSlots,
    wal: &WalPosition,
) -> Result<PreparedCheckpoint> {
    pager.seal()?;
    let (fl_pages, fl_count) = pager.write_freelist()?;
    let meta = Meta {
        page_size: pager.page_size as u32,
        db_id: slots.db_id,
        counter: slots.counter + 1,
        page_count: pager.alloc.high_water,
        freelist_head: fl_pages.first().copied().unwrap_or(0),
        freelist_count: fl_count,
        roots: state.roots,
        revision: state.revision,
        compact_revision: state.compact_revision,
        applied_seq: applied.0,
        applied_term: applied.1,
        wal_offset: wal.offset,
        wal_salt: wal.salt,
        key_count: state.key_count,
        replicated: wal.purged.is_some(),
        purged: wal.purged.unwrap_or((0, 0)),
        membership: wal.membership.clone(),
    };
    let mut meta_page = vec![0u8; pager.page_size];
    meta.encode(&mut meta_page);
    pager.alloc.checkpoint_started(fl_pages);
    Ok(PreparedCheckpoint {
        meta_page,
        counter: meta.counter,
    })
}

/// Second phase (needs no lock: it touches only the file): fsyncs the main file, so every page
/// the new meta names is durable, then writes the meta to both slots, each followed by a sync.
/// Pages written meanwhile by later commits are free in the new tree and in the old one, so
/// syncing them too (or not) changes neither.
pub(crate) fn make_durable(file: &dyn StorageFile, prepared: &PreparedCheckpoint) -> Result<()> {
    file.sync_data()?;
    // Both slots get the new meta, one after the other, each followed by a sync: a torn write
    // of one slot leaves the other intact (the old meta while slot 0 is written, the new one
    // while slot 1 is), and afterwards damage to either slot alone loses nothing.
    let page_size = prepared.meta_page.len();
    for slot in 0..2 {
        file.write_all_at(&prepared.meta_page, (slot * page_size) as u64)?;
        file.sync_data()?;
    }
    Ok(())
}

/// Third phase (writer lock held), once [`make_durable`] succeeded: the new meta is the durable
/// checkpoint, so pages that only the old one needed become reusable.
pub(crate) fn checkpoint_done(
    pager: &mut Pager,
    slots: &mut MetaSlots,
    prepared: &PreparedCheckpoint,
) {
    slots.counter = prepared.counter;
    pager.alloc.checkpoint_durable();
}
