//! Snapshots that keep their identity, for Raft: streaming a consistent copy of the published
//! state out ([`Store::snapshot_to`]) and installing one in place of this store's state
//! ([`Store::install_snapshot`]); and the main-file swap that install and defrag share.
//!
//! A snapshot is an ordinary etch file (the file format of docs/design.md), closed cleanly (no
//! WAL), whose meta keeps the source's database id, last applied (index, term), revision and
//! compact revision; the leases tree carries every lease with its granted TTL. Install protocol,
//! under the writer lock:
//!
//! 1. copy the snapshot to `<file>.install`, fsync it and the directory; verify the copy (meta,
//!    format, page size, every page's checksum, tree shapes, page accounting) and its identity;
//!    a failure here removes the copy and changes nothing;
//! 2. checkpoint: the old main file then holds every commit, so the old WAL holds nothing
//!    needed; remove the WAL and fsync the directory;
//! 3. rename `<file>.install` over `<file>`, fsync the directory;
//! 4. create a new WAL (the snapshot's database id and WAL salt, sequence continuing at the
//!    snapshot's index + 1), switch the writer to the new file and publish its state.
//!
//! A power cut before the rename leaves the old file (complete after step 2's checkpoint, with
//! or without its WAL); after it, the new file (complete and synced in step 1), with no WAL or a
//! new empty one. From step 2 on, an error poisons the handle (as any failed checkpoint does);
//! a reopen then finds one of the two states, whole.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lease::LeaseClock;
use super::open::load_pager;
use super::{make_snapshot, AppliedMembership, Store, Writer};
use crate::checkpoint::{read_meta, MetaSlots};
use crate::copy::{write_into, CopyIdentity};
use crate::error::{Error, Result};
use crate::file_lock::Registration;
use crate::keyspace::{self, KsState};
use crate::meta::Meta;
use crate::storage::{Mapping, Storage, StorageFile};
use crate::types::Revision;
use crate::wal::Wal;

/// Chunk size for streaming and copying snapshot files.
const CHUNK: usize = 1 << 20;

/// What a snapshot holds: the identity of the state it copies, as [`Store::snapshot_to`] wrote
/// it or [`Store::install_snapshot`] installed it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// Last applied log index (sequence number) included: the Raft snapshot's last log id.
    pub index: u64,
    /// Term of that entry (0 for local commits).
    pub term: u64,
    /// The keyspace revision of the state.
    pub revision: Revision,
    /// Its compact revision: reads and watches below it get [`Error::Compacted`].
    pub compact_revision: Revision,
    /// The database id the state belongs to (a store's identity; every member of a cluster
    /// shares the first member's).
    pub database_id: u64,
    /// Size of the snapshot file in bytes.
    pub size: u64,
    /// A replicated store's applied membership as of `index` (the one a Raft snapshot at
    /// this index carries); `None` for a local store or before any membership was applied.
    /// For an install, the membership the store recorded with the installed state.
    pub membership: Option<AppliedMembership>,
}

impl SnapshotInfo {
    fn of(meta: &Meta, size: u64) -> SnapshotInfo {
        SnapshotInfo {
            membership: applied_membership(meta.membership.as_ref()),
            index: meta.applied_seq,
            term: meta.applied_term,
            revision: meta.revision as i64,
            compact_revision: meta.compact_revision as i64,
            database_id: meta.db_id,
            size,
        }
    }
}

/// The public form of a stored (index, term, bytes) membership.
fn applied_membership(m: Option<&(u64, u64, Vec<u8>)>) -> Option<AppliedMembership> {
    m.map(|(index, term, bytes)| AppliedMembership {
        index: *index,
        term: *term,
        membership: bytes.clone(),
    })
}

/// What happens to the WAL when a new main file takes over (see [`Store::swap_main_file`]).
pub(super) enum WalAfterSwap {
    /// Same database, every record checkpointed: the WAL starts a new generation in place,
    /// with the new file's salt.
    NewGeneration,
    /// The caller removed the WAL: create a new one with the new file's database id and salt.
    Recreate,
    /// A replicated store's WAL (its Raft log) stays as it is; the new file's meta names it.
    Keep,
}

/// `<path><suffix>`, a sibling of the store's file.
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl Store {
    /// Streams a consistent copy of the published state to `out`, keeping its identity: the
    /// database id, the last applied (index, term), the revision, the compact revision and
    /// every lease with its granted TTL (unlike [`Store::snapshot`], which makes a new database).
    /// This is a Raft snapshot: [`Store::install_snapshot`] on another store makes it this
    /// state, at this index.
    ///
    /// The copy is made from a pinned read view, so writers go on meanwhile. It is built as a
    /// compact, unsynced scratch file beside the store (`<file>.snapshot-<random>`, removed
    /// afterwards, also on error), then streamed to `out`: it needs disk space for one
    /// snapshot, and memory for one batch of pages and a 1 MiB buffer. What `out` receives is
    /// an ordinary etch file.
    ///
    /// ```no_run
    /// let db = etch_engine::Store::open("app.etch")?;
    /// let mut out = std::fs::File::create("snap.etch")?;
    /// let info = db.snapshot_to(&mut out)?;
    /// println!("snapshot at index {} (term {}), revision {}", info.index, info.term, info.revision);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot_to(&self, out: &mut dyn Write) -> Result<SnapshotInfo> {
        let read = self.read()?;
        let shared = &*self.shared;
        let snap = &read.snap;
        let tmp = sibling(
            &shared.path,
            &format!(".snapshot-{:016x}", crate::file::random_u64()),
        );
        let file = shared.storage.open(&tmp, true)?;
        let streamed = (|| -> Result<SnapshotInfo> {
            if file.len()? != 0 {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{}: snapshot scratch file already exists", tmp.display()),
                )));
            }
            let identity = CopyIdentity {
                db_id: snap.db_id,
                applied: (snap.version, snap.term),
                wal_salt: crate::file::random_u64(),
            };
            // The scratch file is read back at once and removed, and nothing needs it after a
            // crash: its syncs are skipped.
            let scratch: Arc<dyn StorageFile> = Arc::new(Unsynced(file.clone()));
            let size = write_into(
                &UnsyncedDir(&*shared.storage),
                &scratch,
                snap,
                &tmp,
                shared.page_size,
                &identity,
            )?;
            stream(&*file, size, out)?;
            out.flush()?;
            Ok(SnapshotInfo {
                index: snap.version,
                term: snap.term,
                revision: snap.state.revision as i64,
                compact_revision: snap.state.compact_revision as i64,
                database_id: snap.db_id,
                size,
                membership: applied_membership(snap.membership.as_ref()),
            })
        })();
        drop(file);
        let _ = shared.storage.remove(&tmp);
        streamed
    }

    /// Replaces this store's state by the snapshot file at `from` (written by
    /// [`Store::snapshot_to`]), atomically: afterwards the store is that state, at that
    /// (index, term), and the next [`Store::apply`] index is the snapshot's index + 1.
    ///
    /// Refused, with nothing changed: a file that fails verification
    /// ([`Error::InvalidSnapshot`]: not an etch file, another format or page size, truncated,
    /// a bad checksum or tree); a snapshot of another database ([`Error::SnapshotIdentity`]),
    /// unless this store has never applied anything (a new member receiving its first
    /// snapshot); a snapshot behind this store's applied index ([`Error::SnapshotBehind`]).
    /// A snapshot at exactly the applied index installs (in Raft it is the same state).
    ///
    /// Writers wait while it runs; readers holding a read view keep reading the old state
    /// until they drop it. Watchers continue from their next revision on the new state; one
    /// whose next revision is at or below the new compact revision is cancelled with
    /// `compact_revision` set, as after a compaction. Every lease gets its full TTL again (as
    /// after a reopen). A power cut at any point leaves the old state or the new one, whole;
    /// see the module docs for the protocol.
    pub fn install_snapshot(&self, from: &Path) -> Result<SnapshotInfo> {
        self.install(from, false, None)
    }

    /// [`Store::install_snapshot`] that also accepts a snapshot of another database: the
    /// store takes the snapshot's database id (its identity) along with its state. Use it to
    /// make a store with a history of its own a member of another cluster. A snapshot that does
    /// not move this store's applied index forward is still refused
    /// ([`Error::SnapshotBehind`]): indexes never go backwards for readers and watchers.
    pub fn install_snapshot_replacing_identity(&self, from: &Path) -> Result<SnapshotInfo> {
        self.install(from, true, None)
    }

    pub(super) fn install(
        &self,
        from: &Path,
        replace_identity: bool,
        membership: Option<(u64, u64, &[u8])>,
    ) -> Result<SnapshotInfo> {
        self.check_writable()?;
        // A replicated store's database id only ties its WAL (the Raft log) to its file: it
        // keeps its own and takes the snapshot's state (see `install_into_log`).
        let replicated = self.shared.opts.replicated;
        let shared = &*self.shared;
        let storage = &*shared.storage;
        let mut guard = shared.writer.lock();
        let w = &mut *guard;
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        let tmp = sibling(&shared.path, ".install");
        // A copy left by an install that was cut short.
        match storage.remove(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let file = storage.open(&tmp, true)?;
        // Step 1: nothing of the store changes; a failure removes the copy.
        let prepared = (|| -> Result<Meta> {
            file.set_len(0)?;
            if !file.try_lock()? {
                return Err(Error::Locked {
                    path: tmp.clone(),
                    in_this_process: false,
                });
            }
            copy_into(storage, from, &*file)?;
            storage.sync_dir(&tmp)?;
            let meta = verify_snapshot(&file, from, shared.page_size, shared.opts.random_access)?;
            let fresh = w.seq == 0 && w.state.revision <= 1 && w.state.key_count == 0;
            if meta.db_id != w.slots.db_id && !replace_identity && !fresh && !replicated {
                return Err(Error::SnapshotIdentity {
                    store: w.slots.db_id,
                    snapshot: meta.db_id,
                });
            }
            // Indexes never go backwards; and a snapshot of another database must move the
            // store forward, since at an equal index a group commit sealed before this install
            // could still publish the old state over the new one (publishing never goes back,
            // and only compares index and state).
            let foreign = meta.db_id != w.slots.db_id && !fresh;
            if meta.applied_seq < w.seq || (foreign && meta.applied_seq == w.seq) {
                return Err(Error::SnapshotBehind {
                    snapshot: meta.applied_seq,
                    applied: w.seq,
                });
            }
            Ok(meta)
        })();
        let meta = match prepared {
            Ok(meta) if replicated => {
                self.install_into_log(w, &tmp, &file, &meta, membership)?;
                self.restart_lease_clocks(w)?;
                let mut info = SnapshotInfo::of(&meta, file.len()?);
                info.membership = applied_membership(w.membership.as_ref());
                return Ok(info);
            }
            Ok(meta) => meta,
            Err(e) => {
                drop(file);
                let _ = storage.remove(&tmp);
                return Err(e);
            }
        };
        // Step 2: the old file takes every commit, so its WAL can go.
        if let Err(e) = self.checkpoint_locked(w) {
            drop(file);
            let _ = storage.remove(&tmp);
            return Err(e);
        }
        let wal_path = Wal::path_for(&shared.path);
        self.guard(w, |_| {
            match storage.remove(&wal_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            Ok(storage.sync_dir(&wal_path)?)
        })?;
        // Steps 3 and 4.
        self.swap_main_file(w, &tmp, &file, WalAfterSwap::Recreate)?;
        self.restart_lease_clocks(w)?;
        Ok(SnapshotInfo::of(&meta, file.len()?))
    }

    /// Lease deadlines are in memory only: the installed leases start their full TTL now.
    fn restart_lease_clocks(&self, w: &Writer) -> Result<()> {
        let clocks = keyspace::lease_list(&w.pager, &w.state)?;
        let now = self.shared.opts.clock.now();
        *self.shared.lease_clocks.lock() = clocks
            .into_iter()
            .map(|(id, ttl)| {
                let deadline = now.saturating_add(Duration::from_secs(ttl.max(0) as u64));
                (id, LeaseClock { ttl, deadline })
            })
            .collect();
        Ok(())
    }

    /// Makes `file`, complete and synced at `tmp` and locked by this handle, the store's main
    /// file: renames it over the store's path, syncs the directory, and switches the writer to
    /// it (pager, state, applied index and term, meta slots, WAL as `wal` says), then publishes
    /// its state. Readers holding read views keep the old file's map until they drop them. Any
    /// failure poisons the handle: from the rename on, only a reopen can tell which file is the
    /// store (the old or the new one, each whole).
    pub(super) fn swap_main_file(
        &self,
        w: &mut Writer,
        tmp: &Path,
        file: &Arc<dyn StorageFile>,
        wal: WalAfterSwap,
    ) -> Result<()> {
        let shared = &*self.shared;
        let storage = &*shared.storage;
        self.guard(w, |w| {
            storage.rename(tmp, &shared.path)?;
            storage.sync_dir(&shared.path)?;
            // The pager writes through a handle opened by the new name (the same file; a
            // simulated disk tracks handles by name).
            let handle = storage.open(&shared.path, false)?;
            let meta = read_meta(&*handle, &shared.path, handle.len()?)?;
            let pager = load_pager(&handle, &meta, shared.opts.random_access, false)?;
            w.wal = match wal {
                WalAfterSwap::NewGeneration => w.wal.take().map(|mut wal| {
                    wal.reset(meta.wal_salt);
                    wal
                }),
                WalAfterSwap::Keep => w.wal.take(),
                WalAfterSwap::Recreate => Some(Wal::create(
                    storage,
                    &Wal::path_for(&shared.path),
                    meta.db_id,
                    shared.opts.wal_capacity,
                    meta.wal_salt,
                )?),
            };
            w.pager = pager;
            w.pager.timers = shared.timers.clone();
            // Frees on the new pager wait for snapshots made after them, as on the old one.
            w.pager.seq = w.generation + 1;
            w.state = KsState {
                roots: meta.roots,
                revision: meta.revision,
                compact_revision: meta.compact_revision,
                key_count: meta.key_count,
            };
            w.seq = meta.applied_seq;
            w.term = meta.applied_term;
            w.slots = MetaSlots {
                counter: meta.counter,
                db_id: meta.db_id,
            };
            w.membership = meta.membership.clone();
            w.last_checkpoint = Instant::now();
            Ok(())
        })?;
        *shared.file.lock() = file.clone();
        // The store's name now means the new file: claim it, and give up the old one's claim
        // (the old file is unlinked; its lock goes with its last handle).
        *shared.registration.lock() = Some(Registration::new(&**file));
        let snap = Arc::new(make_snapshot(w));
        shared.live.register(&snap);
        let upto = snap.version;
        self.publish(snap);
        // The new file holds everything up to its applied index, synced.
        let mut s = shared.sync.lock();
        s.durable_seq = s.durable_seq.max(upto);
        shared.sync_cv.notify_all();
        Ok(())
    }
}

/// A file whose syncs do nothing: `snapshot_to`'s scratch file.
struct Unsynced(Arc<dyn StorageFile>);

impl StorageFile for Unsynced {
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn sync_all(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn try_lock(&self) -> std::io::Result<bool> {
        self.0.try_lock()
    }
    fn unlock(&self) -> std::io::Result<()> {
        self.0.unlock()
    }
    fn map(&self, len: usize, random_access: bool) -> std::io::Result<Box<dyn Mapping>> {
        self.0.map(len, random_access)
    }
}

/// A storage whose directory syncs do nothing (the scratch file's directory entry need not be
/// durable either); everything else goes to the real storage.
struct UnsyncedDir<'a>(&'a dyn Storage);

impl Storage for UnsyncedDir<'_> {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn StorageFile>> {
        self.0.open(path, create)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove(path)
    }
    fn sync_dir(&self, _path: &Path) -> std::io::Result<()> {
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
}

/// Writes the `size` bytes of `file` to `out`.
fn stream(file: &dyn StorageFile, size: u64, out: &mut dyn Write) -> Result<()> {
    let mut buf = vec![0u8; CHUNK.min(size as usize)];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], off)?;
        out.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

/// Copies the file at `from` (only read) into the empty `to`, and syncs `to`.
fn copy_into(storage: &dyn Storage, from: &Path, to: &dyn StorageFile) -> Result<()> {
    let source = storage.open_read_only(from)?;
    let len = source.len()?;
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        source.read_exact_at(&mut buf[..n], off)?;
        to.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    Ok(to.sync_all()?)
}

/// Verifies a snapshot copy completely before it may become the store: its meta (magic,
/// format, checksum), the page size, the length, and with [`crate::check::check`] every
/// reachable page's checksum, key order, tree shape, record encoding and page accounting.
/// Returns its meta. Errors reading the copy stay I/O errors; what is wrong with its content is
/// [`Error::InvalidSnapshot`], naming `from`.
fn verify_snapshot(
    file: &Arc<dyn StorageFile>,
    from: &Path,
    page_size: usize,
    random_access: bool,
) -> Result<Meta> {
    let invalid = |e: Error| match e {
        e @ (Error::Io(_) | Error::NoSpace(_)) => e,
        e => Error::InvalidSnapshot {
            path: from.to_path_buf(),
            reason: e.to_string(),
        },
    };
    let len = file.len()?;
    let meta = read_meta(&**file, from, len).map_err(invalid)?;
    if meta.page_size as usize != page_size {
        return Err(invalid(Error::corrupt(format!(
            "its page size is {}, this store's is {page_size}",
            meta.page_size
        ))));
    }
    let needed = meta.page_count * page_size as u64;
    if len < needed {
        return Err(invalid(Error::corrupt(format!(
            "truncated: its meta needs {needed} bytes, the file has {len}"
        ))));
    }
    let pager = load_pager(file, &meta, random_access, false).map_err(invalid)?;
    let state = KsState {
        roots: meta.roots,
        revision: meta.revision,
        compact_revision: meta.compact_revision,
        key_count: meta.key_count,
    };
    crate::check::check_loaded(&pager, &state).map_err(invalid)?;
    Ok(meta)
}
