//! Opening a store: the main file and its lock, a new file's first meta, recovery (replaying
//! the WAL records after the last checkpoint through the state machine's one apply path), and
//! the handle's initial state.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::background::{spawn_background, spawn_writeback, Background};
use super::lease::LeaseClock;
use super::{make_snapshot, CloseOnDrop, Shared, Store, SyncState, WalRepair, Writer};
use crate::alloc::Allocator;
use crate::checkpoint::{
    init_file, read_meta, write_checkpoint, write_checkpoint_at, MetaSlots, WalPosition,
};
use crate::command::{self, ApplyError, Origin};
use crate::error::{Error, OpenAction, Result};
use crate::file_lock::{LockMode, Registration};
use crate::keyspace::{self, KsState, Limits};
use crate::meta::Meta;
use crate::options::Options;
use crate::pager::{read_freelist, MapState, Pager, ReadView};
use crate::record;
use crate::snapshot::LiveSnapshots;
use crate::storage::{ReadOnlyStorage, Storage, StorageFile};
use crate::wal::{Wal, WAL_START};

impl Store {
    /// Opens the store at `path`, creating it if it does not exist, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path.as_ref(), Options::default())
    }

    /// The options builder; `Store::options().durability(..).open(path)`.
    pub fn options() -> Options {
        Options::default()
    }

    pub(crate) fn open_with(path: &Path, opts: Options) -> Result<Store> {
        opts.validate()?;
        let storage = opts.storage.clone();
        let read_only = opts.read_only;
        // A read-only store opens its files only through this view, which refuses every change.
        let file_storage: Arc<dyn Storage> = if read_only {
            Arc::new(ReadOnlyStorage(storage.clone()))
        } else {
            storage.clone()
        };
        let (file, registration) = open_main_file(&*file_storage, path, &opts)?;
        let mut len = file
            .len()
            .map_err(|e| Error::from(e).opening(path, OpenAction::ReadMeta))?;
        if len == 0 {
            if read_only {
                return Err(Error::Open {
                    path: path.to_path_buf(),
                    action: OpenAction::OpenFileReadOnly,
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the file is empty; a new store cannot be created read-only",
                    ),
                });
            }
            init_file(&*file, &*storage, path, opts.page_size)
                .map_err(|e| e.opening(path, OpenAction::InitFile))?;
            len = file
                .len()
                .map_err(|e| Error::from(e).opening(path, OpenAction::ReadMeta))?;
        }
        let meta =
            read_meta(&*file, path, len).map_err(|e| e.opening(path, OpenAction::ReadMeta))?;
        let ps = meta.page_size as usize;
        if len < meta.page_count * ps as u64 {
            return Err(Error::corrupt(format!(
                "file is truncated: the meta needs {} pages ({} bytes), the file has {len} bytes",
                meta.page_count,
                meta.page_count * ps as u64
            )));
        }
        let mut pager = load_pager(&file, &meta, opts.random_access, read_only)
            .map_err(|e| e.opening(path, OpenAction::MapFile))?;
        let mut state = KsState {
            roots: meta.roots,
            revision: meta.revision,
            compact_revision: meta.compact_revision,
            key_count: meta.key_count,
        };
        let mut seq = meta.applied_seq;
        let mut term = meta.applied_term;

        // Recovery: replay the records after the checkpoint, in order. A replicated store's
        // WAL is its Raft log instead: recovered, never replayed (see `recover_log`).
        let wal_path = Wal::path_for(path);
        let mut replayed = 0usize;
        let mut wal_repair = None;
        let replicated_log = if meta.replicated {
            Some(recover_log(
                &*storage,
                &wal_path,
                &meta,
                &opts,
                &mut wal_repair,
            )?)
        } else {
            None
        };
        let existing = if meta.replicated {
            None
        } else {
            Wal::open_existing(&*file_storage, &wal_path, meta.db_id)
                .map_err(|e| e.opening(&wal_path, OpenAction::ReadWal))?
        };
        if let Some((wal_file, wal_map, _)) = existing {
            let scan = Wal::scan(
                wal_map.bytes(),
                meta.wal_offset,
                meta.applied_seq + 1,
                meta.wal_salt,
                meta.db_id,
            );
            if let Some(damage) = scan.damage {
                // Records after the damage were acknowledged: replaying up to it would drop
                // them silently. Refuse, leaving the WAL untouched, unless asked to repair.
                if !opts.repair_wal {
                    return Err(Error::WalDamaged {
                        path: wal_path,
                        offset: damage.offset,
                        last_good_seq: damage.last_good_seq,
                        records_after: damage.records_after,
                    });
                }
                let copy = keep_damaged_wal(&*storage, &wal_path, wal_map.bytes())?;
                wal_repair = Some(WalRepair { damage, copy });
            }
            for r in scan.records {
                pager.seq = r.seq;
                let (command, creates) = command::from_record(record::decode(&r.payload)?);
                if let Some(rev) = creates {
                    if rev != state.revision + 1 {
                        return Err(Error::corrupt(format!(
                            "WAL record {} creates revision {rev}, expected {}",
                            r.seq,
                            state.revision + 1
                        )));
                    }
                }
                match command::apply(&mut pager, &mut state, &command, Origin::Replay) {
                    Ok(_) => {}
                    Err(ApplyError::Failed(e)) => return Err(e),
                    Err(ApplyError::Refused(
                        e @ (Error::Io(_) | Error::NoSpace(_) | Error::Corrupt(_)),
                    )) => return Err(e),
                    Err(ApplyError::Refused(e)) => {
                        return Err(Error::corrupt(format!(
                            "WAL record {} cannot be replayed: {e}",
                            r.seq
                        )))
                    }
                }
                if let Some(rev) = creates {
                    if state.revision != rev {
                        return Err(Error::corrupt(format!(
                            "WAL record {} did not reproduce revision {rev}",
                            r.seq
                        )));
                    }
                }
                seq = r.seq;
                term = r.term;
                replayed += 1;
            }
            drop(wal_map);
            drop(wal_file);
        }
        let mut slots = MetaSlots {
            counter: meta.counter,
            db_id: meta.db_id,
        };
        // The replayed state must be in the main file before the old WAL is replaced.
        // A read-only store keeps what it replayed in memory (see `open_recovered`).
        let salt =
            if read_only || meta.replicated || (replayed == 0 && meta.wal_offset == WAL_START) {
                meta.wal_salt
            } else {
                let salt = crate::file::random_u64();
                write_checkpoint(&*file, &mut pager, &state, (seq, term), &mut slots, salt)
                    .map_err(|e| e.opening(path, OpenAction::WriteRecovered))?;
                salt
            };
        let (wal, log) = match replicated_log {
            Some((log, wal)) => (Some(wal), Some(log)),
            None => {
                let mut wal =
                    open_recovered(&storage, &mut pager, &opts, &wal_path, meta.db_id, salt)?;
                let log = if opts.replicated {
                    // A local store becomes replicated: everything it holds is in the main
                    // file (replayed and checkpointed above), so its log starts empty after
                    // the applied index, in the fresh WAL.
                    let position = WalPosition {
                        offset: WAL_START,
                        salt,
                        purged: Some((seq, term)),
                        membership: None,
                    };
                    write_checkpoint_at(
                        &*file,
                        &mut pager,
                        &state,
                        (seq, term),
                        &mut slots,
                        &position,
                    )
                    .map_err(|e| e.opening(path, OpenAction::WriteRecovered))?;
                    if let Some(wal) = wal.as_mut() {
                        wal.reset(salt);
                    }
                    Some(crate::raftlog::RaftLog::empty((seq, term)))
                } else {
                    None
                };
                (wal, log)
            }
        };
        let log_durable = log.as_ref().map_or(0, |l| l.last().0);
        let mut writer = Writer {
            pager,
            wal,
            state,
            seq,
            // Above every tag the replay gave frees (commit numbers up to `seq`), so that the
            // first snapshot releases them.
            generation: seq,
            term,
            slots,
            poisoned: None,
            last_checkpoint: Instant::now(),
            log,
            membership: meta.membership.clone(),
        };
        let lease_clocks = keyspace::lease_list(&writer.pager, &writer.state)?
            .into_iter()
            .map(|(id, ttl)| {
                (
                    id,
                    LeaseClock {
                        ttl,
                        deadline: opts
                            .clock
                            .now()
                            .saturating_add(Duration::from_secs(ttl as u64)),
                    },
                )
            })
            .collect();
        let snap = Arc::new(make_snapshot(&mut writer));
        let live = LiveSnapshots::default();
        live.register(&snap);
        let timers = writer.pager.timers.clone();
        let shared = Arc::new(Shared {
            timers,
            path: path.to_path_buf(),
            limits: Limits {
                max_key_size: opts.max_key_size,
                max_request_bytes: opts.max_request_bytes,
                max_txn_ops: opts.max_txn_ops,
            },
            opts,
            storage,
            file: Mutex::new(file),
            registration: Mutex::new(Some(registration)),
            page_size: ps,
            published: RwLock::new(snap),
            live,
            writer: Mutex::new(writer),
            sync: Mutex::new(SyncState {
                durable_seq: seq,
                syncing: false,
                poisoned: None,
            }),
            sync_cv: Condvar::new(),
            closed: AtomicBool::new(false),
            committing: AtomicUsize::new(0),
            publish_generation: Mutex::new(0),
            published_cv: Condvar::new(),
            lease_clocks: Mutex::new(lease_clocks),
            compaction_samples: Mutex::new(std::collections::VecDeque::new()),
            background: Mutex::new(Background::default()),
            background_cv: Condvar::new(),
            wal_repair,
            log_sync: super::raftlog::LogSync::new(log_durable),
        });
        // A read-only store has nothing for a background thread to do: every task of it writes.
        if !read_only {
            spawn_background(Arc::downgrade(&shared));
            spawn_writeback(Arc::downgrade(&shared));
        }
        Ok(Store {
            _close_on_drop: Some(Arc::new(CloseOnDrop(shared.clone()))),
            shared,
        })
    }
}

/// Recovers a replicated store's Raft log (`crate::raftlog::recover`) from the WAL the meta
/// names. Damage is refused as for a local WAL, or repaired with [`Options::repair_wal`]
/// (the WAL is copied first; the log is cut at the damage).
fn recover_log(
    storage: &dyn Storage,
    wal_path: &Path,
    meta: &Meta,
    opts: &Options,
    wal_repair: &mut Option<WalRepair>,
) -> Result<(crate::raftlog::RaftLog, Wal)> {
    if !opts.replicated {
        return Err(Error::NotReplicated(format!(
            "{}: the store is replicated (its WAL is a Raft log): open it with \
             Options::replicated(true) (a read-only open of a replicated store is not \
             supported yet)",
            wal_path.display()
        )));
    }
    let start = crate::raftlog::LogStart {
        offset: meta.wal_offset,
        purged: meta.purged,
        salt: meta.wal_salt,
        db_id: meta.db_id,
    };
    crate::raftlog::recover(
        storage,
        wal_path,
        &start,
        meta.applied_seq,
        opts.wal_capacity,
        |bytes, damage| {
            if !opts.repair_wal {
                return Err(Error::WalDamaged {
                    path: wal_path.to_path_buf(),
                    offset: damage.offset,
                    last_good_seq: damage.last_good_seq,
                    records_after: damage.records_after,
                });
            }
            let copy = keep_damaged_wal(storage, wal_path, bytes)?;
            *wal_repair = Some(WalRepair { damage, copy });
            Ok(())
        },
    )
    .map_err(|e| e.opening(wal_path, OpenAction::ReadWal))
}

/// Opens and locks the main file as `opts` ask: read-write (created if missing) with the
/// exclusive lock, or read-only (never created) with the shared lock; waits for the lock up to
/// `opts.lock_timeout`.
fn open_main_file(
    storage: &dyn Storage,
    path: &Path,
    opts: &Options,
) -> Result<(Arc<dyn StorageFile>, Registration)> {
    let (opened, mode) = if opts.read_only {
        let opened = storage
            .open_read_only(path)
            .map_err(|e| Error::from(e).opening(path, OpenAction::OpenFileReadOnly));
        (opened, LockMode::Shared)
    } else {
        let opened = storage.open(path, true).map_err(|e| {
            // Creating a file fails with NotFound only when its directory is missing.
            let action = if e.kind() == std::io::ErrorKind::NotFound {
                OpenAction::CreateFile
            } else {
                OpenAction::OpenFile
            };
            Error::from(e).opening(path, action)
        });
        (opened, LockMode::Exclusive)
    };
    let file = opened?;
    let registration = crate::file_lock::lock(&*file, path, mode, opts.lock_timeout)?;
    Ok((file, registration))
}

/// The last step of recovery. A writable store gets a new WAL (generation `salt`); a local
/// store's is synced by its first append rather than here (see [`Wal::create_unsynced`]), so an
/// open waits for no disk flush. A read-only store seals what it replayed into its pager's
/// in-memory overlay, so readers see it, and gets no WAL: nothing is written.
fn open_recovered(
    storage: &Arc<dyn Storage>,
    pager: &mut Pager,
    opts: &Options,
    wal_path: &Path,
    db_id: u64,
    salt: u64,
) -> Result<Option<Wal>> {
    if opts.read_only {
        pager.seal()?;
        return Ok(None);
    }
    let created = if opts.replicated {
        // A store that becomes replicated writes its vote into this WAL without an append.
        Wal::create(&**storage, wal_path, db_id, opts.wal_capacity, salt)
    } else {
        Wal::create_unsynced(storage.clone(), wal_path, db_id, opts.wal_capacity, salt)
    };
    created
        .map(Some)
        .map_err(|e| e.opening(wal_path, OpenAction::CreateWal))
}

/// The writer's pager for a file whose newest meta is `meta`: a map of its pages and an
/// allocator seeded with the meta's free list. A read-only pager writes pages to an in-memory
/// overlay instead of the file (see `pager.rs`).
pub(super) fn load_pager(
    file: &Arc<dyn StorageFile>,
    meta: &Meta,
    random_access: bool,
    read_only: bool,
) -> Result<Pager> {
    let ps = meta.page_size as usize;
    let map = Arc::new(if read_only {
        MapState::new_read_only(&**file, ps, random_access)?
    } else {
        MapState::new(&**file, ps, meta.page_count, None, random_access)?
    });
    let view = ReadView {
        map: &map,
        page_count: meta.page_count,
    };
    let (free, fl_pages) = read_freelist(&view, meta.freelist_head, meta.freelist_count)?;
    let alloc = Allocator::new(meta.page_count, free, fl_pages);
    let mut pager = Pager::new(file.clone(), ps, map.clone(), alloc)?;
    pager.random_access = random_access;
    Ok(pager)
}

/// Copies a damaged WAL to `<wal>.damaged` (or `.damaged.N`, the first that does not exist),
/// durably, before a repair replays up to the damage and replaces the WAL.
fn keep_damaged_wal(storage: &dyn Storage, wal_path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let mut name = wal_path.as_os_str().to_owned();
    name.push(".damaged");
    let base = PathBuf::from(name);
    let mut copy = base.clone();
    let mut n = 1;
    loop {
        match storage.open(&copy, false) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(e.into()),
            Ok(_) => {
                n += 1;
                let mut name = base.as_os_str().to_owned();
                name.push(format!(".{n}"));
                copy = PathBuf::from(name);
            }
        }
    }
    let file = storage.open(&copy, true)?;
    file.write_all_at(bytes, 0)?;
    file.sync_all()?;
    storage.sync_dir(&copy)?;
    Ok(copy)
}
