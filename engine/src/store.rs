//! The store: opening and recovery, the commit pipeline with group commit, checkpoints, close.
//!
//! Commit protocol (durability `Immediate`):
//!
//! 1. Under the writer lock: validate, apply the batch to the working trees (dirty nodes in
//!    memory), append one logical record to the WAL map. Release the lock.
//! 2. Wait until the record is durable. One waiting committer at a time becomes the syncer: it
//!    takes the writer lock briefly to *seal* (write all dirty nodes to the file, unsynced, and
//!    register a snapshot of the working state), releases it, fdatasyncs the WAL, then
//!    publishes the snapshot and wakes every committer whose record that sync covered. Commits
//!    arriving during the sync join the next one (group commit).
//!
//! So a reader sees a commit only after its record is durable, and the writer builds the next
//! batch while a sync is in flight. Checkpoints (by WAL size, by time, on close) write the
//! sealed tree and free list, fsync the main file, write the other meta slot, fsync again, and
//! start a new WAL generation. See docs/design.md for why a crash at any point loses nothing
//! acknowledged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::alloc::Allocator;
use crate::command::{self, Applied, ApplyError, Command, CommandResponse, Origin};
use crate::error::{Error, OpenAction, Result};
use crate::file_lock::{LockMode, Registration};
use crate::keyspace::{self, KsState, Limits};
use crate::meta::{self, Meta};
use crate::options::{AutoCompaction, Durability, Options};
use crate::pager::{read_freelist, MapState, Pager, ReadView};
use crate::record::{self, Payload};
use crate::snapshot::{LiveSnapshots, ReadTxn, SnapshotData};
use crate::storage::{ReadOnlyStorage, Storage, StorageFile};
use crate::txn::{Txn, TxnResponse};
use crate::types::{
    BatchResponse, CheckReport, DeleteResponse, KeyValue, OpResponse, PutOp, PutResponse, Range,
    RangeOptions, RangeResponse, Revision, Status, WriteOp,
};
use crate::wal::{Damage as WalDamage, Wal, WAL_START};

/// An open etch store. Cheap to clone (all clones share one store), `Send` and `Sync`.
///
/// ```no_run
/// use etch_engine::{Range, Store};
/// let db = Store::open("app.etch")?;
/// let rev = db.put("svc/a", "10.0.0.1")?.header_revision;
/// assert_eq!(db.get("svc/a")?.unwrap().value, b"10.0.0.1");
/// let listed = db.range(Range::prefix("svc/"))?;
/// assert_eq!(listed.kvs.len(), 1);
/// # let _ = rev;
/// # Ok::<(), etch_engine::Error>(())
/// ```
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    /// Shared by the user's clones only (not by the background thread): when the last clone
    /// goes, the store closes right there, in the dropping thread, so a reopen straight after
    /// finds the file unlocked.
    _close_on_drop: Option<Arc<CloseOnDrop>>,
}

struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // Errors cannot be reported from a drop; nothing is lost by ignoring them: if the final
        // checkpoint fails the WAL stays, and the next open recovers from it.
        let _ = self.0.close();
    }
}

struct Shared {
    path: PathBuf,
    opts: Options,
    limits: Limits,
    storage: Arc<dyn Storage>,
    /// The main file (swapped by `defrag`; the writer uses its pager's handle).
    file: Mutex<Arc<dyn StorageFile>>,
    /// This process's claim on the locked main file (swapped by `defrag` with the file; taken
    /// on close, after the unlock).
    registration: Mutex<Option<Registration>>,
    /// The WAL; `None` for a read-only store, which has none.
    wal_file: Option<Arc<dyn StorageFile>>,
    page_size: usize,
    published: RwLock<Arc<SnapshotData>>,
    live: LiveSnapshots,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    closed: AtomicBool,
    /// Committers between entering `batch` and releasing the writer lock; the group-commit
    /// leader waits briefly for them so their records ride its sync rather than the next one.
    committing: AtomicUsize,
    /// Bumped on every publish; watchers wait on `published_cv` for it to change.
    publish_generation: Mutex<u64>,
    published_cv: Condvar,
    /// Deadline and granted TTL of every lease. Not persisted: as in etcd, a reopened store
    /// gives every lease its full TTL again.
    lease_clocks: Mutex<HashMap<i64, LeaseClock>>,
    /// (time, revision) samples for periodic auto-compaction, one per
    /// [`Store::auto_compaction_due`] call.
    compaction_samples: Mutex<std::collections::VecDeque<(Instant, i64)>>,
    background: Mutex<Background>,
    background_cv: Condvar,
    /// What the open that made this handle repaired, if it repaired a damaged WAL.
    wal_repair: Option<WalRepair>,
}

/// What an open with [`Options::repair_wal`] did to a damaged WAL: the damage it found, where
/// it kept the damaged WAL, and (in the damage) how many records after it were dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRepair {
    /// Where the WAL broke and how many valid records followed (all of them were dropped).
    pub damage: WalDamage,
    /// The copy of the damaged WAL, next to the store (`<file>-wal.damaged`, or with a number
    /// appended if that exists).
    pub copy: PathBuf,
}

#[derive(Default)]
struct Background {
    stop: bool,
}

#[derive(Clone, Copy)]
struct LeaseClock {
    ttl: i64,
    /// Expiry, on the store's clock.
    deadline: Duration,
}

/// A granted lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The lease id.
    pub id: i64,
    /// Its TTL in seconds.
    pub ttl: i64,
}

/// What [`Store::lease_time_to_live`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: i64,
    /// Seconds left before it expires (rounded up).
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// Keys attached to it, if asked for.
    pub keys: Vec<Vec<u8>>,
}

struct SyncState {
    /// Every commit with a sequence number <= this is durable.
    durable_seq: u64,
    /// A syncer is at work.
    syncing: bool,
    /// A sync failed: the store refuses writes until reopened.
    poisoned: Option<String>,
}

struct Writer {
    pager: Pager,
    /// `None` for a read-only store, which never writes a WAL.
    wal: Option<Wal>,
    /// Working state: includes appended commits that may not be durable yet.
    state: KsState,
    /// Sequence number of the last appended (or checkpointed) commit.
    seq: u64,
    term: u64,
    slots: MetaSlots,
    poisoned: Option<String>,
    last_checkpoint: Instant,
}

/// Values every new meta carries over from the last one.
pub(crate) struct MetaSlots {
    /// Checkpoint counter of the newest durable meta.
    pub(crate) counter: u64,
    pub(crate) db_id: u64,
}

/// Longest a group-commit leader waits for committers still appending.
const GROUP_WAIT: Duration = Duration::from_micros(100);

/// The error for a command answered with a response of another kind (an engine bug).
fn mismatched_response(what: &str, got: &CommandResponse) -> Error {
    Error::corrupt(format!("internal: a {what} was answered with {got:?}"))
}

fn poison_message(e: &Error) -> String {
    e.to_string()
}

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

        // Recovery: replay the records after the checkpoint, in order.
        let wal_path = Wal::path_for(path);
        let mut replayed = 0usize;
        let mut wal_repair = None;
        if let Some((wal_file, wal_map, _)) =
            Wal::open_existing(&*file_storage, &wal_path, meta.db_id)
                .map_err(|e| e.opening(&wal_path, OpenAction::ReadWal))?
        {
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
        let salt = if read_only || (replayed == 0 && meta.wal_offset == WAL_START) {
            meta.wal_salt
        } else {
            let salt = crate::file::random_u64();
            write_checkpoint(&*file, &mut pager, &state, (seq, term), &mut slots, salt)
                .map_err(|e| e.opening(path, OpenAction::WriteRecovered))?;
            salt
        };
        let wal = open_recovered(&*storage, &mut pager, &opts, &wal_path, meta.db_id, salt)?;
        let writer = Writer {
            pager,
            wal,
            state,
            seq,
            term,
            slots,
            poisoned: None,
            last_checkpoint: Instant::now(),
        };
        let wal_file = writer.wal.as_ref().map(|wal| wal.file.clone());
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
        let snap = Arc::new(make_snapshot(&writer));
        let live = LiveSnapshots::default();
        live.register(&snap);
        let shared = Arc::new(Shared {
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
            wal_file,
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
        });
        // A read-only store has nothing for a background thread to do: every task of it writes.
        if !read_only {
            spawn_background(Arc::downgrade(&shared));
        }
        Ok(Store {
            _close_on_drop: Some(Arc::new(CloseOnDrop(shared.clone()))),
            shared,
        })
    }

    pub(crate) fn write_attempts(&self) -> u32 {
        self.shared.opts.write_attempts
    }

    /// The request limits with no bound on the number of operations.
    pub(crate) fn unbounded_op_limits(&self) -> Limits {
        Limits {
            max_txn_ops: usize::MAX,
            ..self.shared.limits
        }
    }

    /// What this handle's open repaired, if it was opened with [`Options::repair_wal`] and
    /// found the WAL damaged; `None` otherwise.
    pub fn wal_repair(&self) -> Option<&WalRepair> {
        self.shared.wal_repair.as_ref()
    }

    /// Path of the main file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Refuses if the store is closed or read-only: the first check of every write.
    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.shared.opts.read_only {
            return Err(Error::ReadOnly {
                path: self.shared.path.clone(),
            });
        }
        Ok(())
    }

    /// Whether the store was opened with [`Options::read_only`].
    pub fn is_read_only(&self) -> bool {
        self.shared.opts.read_only
    }

    /// A consistent read-only view of the newest durable state. Never waits for the writer.
    pub fn read(&self) -> Result<ReadTxn> {
        self.check_open()?;
        Ok(ReadTxn {
            snap: self.shared.published.read().clone(),
        })
    }

    /// Current revision (of the newest state readers can see).
    pub fn revision(&self) -> Revision {
        self.shared.published.read().state.revision as i64
    }

    /// The current value and metadata of `key`, or `None`. A key no put could write is refused
    /// as a put refuses it: empty ([`Error::EmptyKey`]) or over `max_key_size`
    /// ([`Error::KeyTooLarge`]).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        keyspace::check_key(key.as_ref(), &self.shared.limits)?;
        self.read()?.get(key)
    }

    /// The keys of a range at the current revision.
    pub fn range(&self, range: Range) -> Result<RangeResponse> {
        self.read()?.range(range)
    }

    /// The keys of a range with etcd's options (limit, revision, sort, filters, count/keys only).
    pub fn range_with(&self, range: &Range, opts: &RangeOptions) -> Result<RangeResponse> {
        self.read()?.range_with(range, opts)
    }

    /// Puts `key = value`; returns the new revision.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<PutResponse> {
        self.put_with(PutOp {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
            ..Default::default()
        })
    }

    /// A put with etcd's options (lease, prev_kv, ignore_value, ignore_lease).
    pub fn put_with(&self, op: PutOp) -> Result<PutResponse> {
        let mut resp = self.batch(vec![WriteOp::Put(op)])?;
        match resp.responses.pop() {
            Some(OpResponse::Put(p)) => Ok(p),
            _ => Err(Error::corrupt("internal: put produced no put response")),
        }
    }

    /// Deletes one key; `deleted` is 0 or 1.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteResponse> {
        self.delete_range(Range::key(key), false)
    }

    /// Deletes every key of a range at one revision.
    pub fn delete_range(&self, range: Range, prev_kv: bool) -> Result<DeleteResponse> {
        let mut resp = self.batch(vec![WriteOp::DeleteRange { range, prev_kv }])?;
        match resp.responses.pop() {
            Some(OpResponse::Delete(d)) => Ok(d),
            _ => Err(Error::corrupt(
                "internal: delete produced no delete response",
            )),
        }
    }

    /// Applies several writes atomically at one revision. A batch that changes nothing (say,
    /// deleting absent keys) leaves the revision unchanged and writes no record.
    pub fn batch(&self, ops: Vec<WriteOp>) -> Result<BatchResponse> {
        self.check_writable()?;
        keyspace::validate(&ops, &self.shared.limits)?;
        let adds_data = ops.iter().any(|op| matches!(op, WriteOp::Put(_)));
        let command = Command::Batch(ops);
        let response = self.commit_with(|w| {
            if adds_data {
                self.check_quota(w)?;
            }
            self.commit_command(w, &command)
        })?;
        match response {
            CommandResponse::Batch(r) => Ok(r),
            other => Err(mismatched_response("batch", &other)),
        }
    }

    /// Runs `f` under the writer lock (counted as a committer, for the group-commit leader),
    /// then waits for the durability of the sequence number it returns, if any.
    fn commit_with<T>(&self, f: impl FnOnce(&mut Writer) -> Result<(T, Option<u64>)>) -> Result<T> {
        self.shared.committing.fetch_add(1, Ordering::AcqRel);
        let mut guard = self.shared.writer.lock();
        let committed = f(&mut guard);
        let seen = guard.seq;
        drop(guard);
        self.shared.committing.fetch_sub(1, Ordering::AcqRel);
        let (out, wait_for) = match committed {
            Ok(v) => v,
            Err(e) => {
                // A refusal (lease not found, a failed precheck) may rest on another thread's
                // commit that is applied but not yet durable. Wait for it, so that a read after
                // the error sees the state the error was decided on. If that wait fails, the
                // store is poisoned and the original error still says what happened.
                let _ = self.wait_durable(seen);
                return Err(e);
            }
        };
        if let Some(seq) = wait_for {
            self.wait_durable(seq)?;
        }
        Ok(out)
    }

    /// Applies `command` as the next local commit, under the writer lock: numbers it, applies
    /// it through the state machine's one path ([`command::apply`]) and logs its record. Returns
    /// the response and, if the caller must wait for durability, the sequence number to wait
    /// for. A refusal changes nothing and uses no sequence number.
    fn commit_command(
        &self,
        w: &mut Writer,
        command: &Command,
    ) -> Result<(CommandResponse, Option<u64>)> {
        let seq = self.begin_commit(w)?;
        let applied = match self.apply_locked(w, command) {
            Ok(applied) => applied,
            Err(ApplyError::Refused(e) | ApplyError::Failed(e)) => return Err(e),
        };
        let wait_for = self.end_commit(w, seq, applied.record)?;
        Ok((applied.response, wait_for))
    }

    /// [`command::apply`] on the writer, plus what only the handle can do: a failure poisons
    /// the writer, and lease grants and revocations keep the in-memory lease clocks in step.
    fn apply_locked<'c>(
        &self,
        w: &mut Writer,
        command: &'c Command,
    ) -> std::result::Result<Applied<'c>, ApplyError> {
        let applied = match command::apply(&mut w.pager, &mut w.state, command, Origin::New) {
            Ok(applied) => applied,
            Err(ApplyError::Failed(e)) => return Err(ApplyError::Failed(self.poison(w, e))),
            Err(refused) => return Err(refused),
        };
        match command {
            Command::LeaseGrant { id, ttl } => {
                let deadline = self.lease_deadline(*ttl);
                self.shared.lease_clocks.lock().insert(
                    *id,
                    LeaseClock {
                        ttl: *ttl,
                        deadline,
                    },
                );
            }
            Command::LeaseRevoke { id } => {
                self.shared.lease_clocks.lock().remove(id);
            }
            _ => {}
        }
        Ok(applied)
    }

    /// Applies `command` as log entry `index` of `term`: the state machine's entry point for
    /// replicated commits, through the same path as local commits and replay.
    ///
    /// `index` must be the next one, `applied().0 + 1` (else [`Error::OutOfOrder`]). The entry
    /// always takes its index: a command the engine refuses (a missing lease, a compacted
    /// revision, ...) changes nothing and is logged as a no-op, and the refusal is returned, the
    /// same on every replica that applies the same log. Returns once the entry is durable, like
    /// a local commit. Admission (sizes, limits, quota, picking a lease id) is the proposer's
    /// job and is not repeated here.
    pub fn apply(&self, index: u64, term: u64, command: &Command) -> Result<CommandResponse> {
        self.check_writable()?;
        let outcome = self.commit_with(|w| {
            let expected = w.seq + 1;
            if index != expected {
                return Err(Error::OutOfOrder {
                    expected,
                    got: index,
                });
            }
            let seq = self.begin_commit(w)?;
            w.term = term;
            let (outcome, record) = match self.apply_locked(w, command) {
                Ok(applied) => (Ok(applied.response), applied.record),
                Err(ApplyError::Failed(e)) => return Err(e),
                Err(ApplyError::Refused(e)) => (Err(e), None),
            };
            let record = record.unwrap_or(Payload::Encoded(record::encode_noop()));
            let wait_for = self.end_commit(w, seq, Some(record))?;
            Ok((outcome, wait_for))
        })?;
        outcome
    }

    /// The last applied log index (the sequence number of the last commit) and its term (0
    /// for local commits).
    pub fn applied(&self) -> (u64, u64) {
        let w = self.shared.writer.lock();
        (w.seq, w.term)
    }

    /// Compacts history: afterwards reads below `revision` fail with [`Error::Compacted`], and
    /// every version superseded at or before it is gone (each key keeps its value as of
    /// `revision`), as etcd's compaction. The space is reused for new pages.
    ///
    /// ```no_run
    /// let db = etch_engine::Store::open("app.etch")?;
    /// let rev = db.put("k", "v1")?.header_revision;
    /// db.put("k", "v2")?;
    /// db.compact(rev + 1)?; // reads below rev + 1 now fail with Error::Compacted
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn compact(&self, revision: Revision) -> Result<Revision> {
        self.check_writable()?;
        let command = Command::Compact(revision);
        match self.commit_with(|w| self.commit_command(w, &command))? {
            CommandResponse::Compact(r) => Ok(r),
            other => Err(mismatched_response("compact", &other)),
        }
    }

    /// Runs a transaction; see [`Txn`].
    pub fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.txn_with_limits(txn, &self.shared.limits)
    }

    /// A transaction under explicit limits ([`Store::write`] lifts the operation-count limit,
    /// since its guard holds one compare per key read).
    pub(crate) fn txn_with_limits(&self, txn: Txn, limits: &Limits) -> Result<TxnResponse> {
        self.check_writable()?;
        crate::txn::validate(&txn, limits)?;
        let adds_data = crate::txn::has_put(&txn);
        let command = Command::Txn(txn);
        let response = self.commit_with(|w| {
            if adds_data {
                self.check_quota(w)?;
            }
            self.commit_command(w, &command)
        })?;
        match response {
            CommandResponse::Txn(r) => Ok(r),
            other => Err(mismatched_response("txn", &other)),
        }
    }

    /// Refuses writes that add data once the file is past its quota.
    fn check_quota(&self, w: &Writer) -> Result<()> {
        let Some(quota) = self.shared.opts.quota_bytes else {
            return Ok(());
        };
        let a = &w.pager.alloc;
        let used = (a.high_water - a.unused_pages()) * self.shared.page_size as u64;
        if used > quota {
            return Err(Error::QuotaExceeded { used, quota });
        }
        Ok(())
    }

    /// First step of every commit, under the writer lock: refuses if closed or poisoned,
    /// releases pages no snapshot needs any more, and numbers the commit.
    fn begin_commit(&self, w: &mut Writer) -> Result<u64> {
        self.check_writable()?;
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        if let Some(oldest) = self.shared.live.oldest() {
            w.pager.alloc.release_readers(oldest);
        }
        let seq = w.seq + 1;
        w.pager.seq = seq;
        Ok(seq)
    }

    /// Last step of every commit, after it was applied to the working state: logs `record` (or,
    /// with `None`, notes that nothing changed) and decides how the commit becomes durable.
    /// Returns the sequence number to wait for, if the caller must wait.
    fn end_commit(
        &self,
        w: &mut Writer,
        seq: u64,
        record: Option<Payload<'_>>,
    ) -> Result<Option<u64>> {
        let shared = &*self.shared;
        let Some(payload) = record else {
            // Nothing changed, so no record; still wait until what this commit saw is durable.
            return Ok(Some(w.seq));
        };
        w.seq = seq;
        // A record that cannot fit is never encoded: the checkpoint below makes it durable.
        // `begin_commit` refused a read-only store, so the WAL is there.
        // The frame records what is durable now, so that recovery can tell damage to an
        // acknowledged record from a torn, never-acknowledged tail.
        let durable = shared.sync.lock().durable_seq;
        let Some(wal) = w.wal.as_mut() else {
            return Err(Error::ReadOnly {
                path: shared.path.clone(),
            });
        };
        let appended = if wal.fits_at_all(payload.encoded_len()) {
            let result = wal.append(seq, w.term, durable, &payload.encode());
            self.guard(w, |_| result)?
        } else {
            false
        };
        let fraction = shared.opts.checkpoint_wal_fraction;
        let past_threshold = w
            .wal
            .as_ref()
            .is_some_and(|wal| wal.used() > (wal.max_bytes() as f64 * fraction) as u64);
        if !appended || past_threshold {
            // The WAL is past its checkpoint threshold, full, or too small for this record: a
            // checkpoint makes this commit (and all before it) durable in the main file. It runs
            // here, in the committing thread, so the commit's acknowledgement waits for it
            // rather than for a WAL sync, and a workload's I/O happens in a deterministic order.
            self.checkpoint_locked(w)?;
            return Ok(None);
        }
        match shared.opts.durability {
            Durability::Relaxed => {
                let snap = self.guard(w, |w| {
                    w.pager.seal()?;
                    Ok(make_snapshot(w))
                })?;
                let snap = Arc::new(snap);
                shared.live.register(&snap);
                self.publish(snap);
                Ok(None)
            }
            Durability::Immediate => Ok(Some(seq)),
        }
    }

    /// Runs `f` on the writer; an error poisons the writer (its in-memory state may be ahead of
    /// what is on disk in a way the writer cannot undo).
    fn guard<T>(&self, w: &mut Writer, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        f(w).map_err(|e| self.poison(w, e))
    }

    /// Poisons the writer with `e` (see [`Store::guard`]) and returns `e`.
    fn poison(&self, w: &mut Writer, e: Error) -> Error {
        w.poisoned = Some(poison_message(&e));
        self.shared
            .sync
            .lock()
            .poisoned
            .get_or_insert_with(|| poison_message(&e));
        self.shared.sync_cv.notify_all();
        e
    }

    /// Makes the newest snapshot visible to readers (never goes backwards).
    fn publish(&self, snap: Arc<SnapshotData>) {
        {
            let mut cur = self.shared.published.write();
            // At one version the WAL only shrinks (a checkpoint; appends take a new version),
            // so a smaller `wal_used` is the newer snapshot: status() after checkpoint() must
            // see the emptied WAL.
            let same_version_newer = snap.version == cur.version
                && (snap.state != cur.state || snap.wal_used < cur.wal_used);
            if snap.version > cur.version || same_version_newer {
                *cur = snap;
            } else {
                return;
            }
        }
        *self.shared.publish_generation.lock() += 1;
        self.shared.published_cv.notify_all();
    }

    /// Counter of publishes, for watchers.
    pub(crate) fn publish_generation(&self) -> u64 {
        *self.shared.publish_generation.lock()
    }

    /// Wakes every watcher waiting for a publish (they re-check their state and sleep again
    /// if nothing concerns them): how a [`crate::WatchCanceller`] reaches a waiting watcher.
    pub(crate) fn wake_watchers(&self) {
        *self.shared.publish_generation.lock() += 1;
        self.shared.published_cv.notify_all();
    }

    /// Waits until a publish after `generation`, the store closes, or `until`.
    pub(crate) fn wait_for_publish(&self, generation: u64, until: Instant) {
        let mut g = self.shared.publish_generation.lock();
        while *g == generation && !self.shared.closed.load(Ordering::Acquire) {
            if self
                .shared
                .published_cv
                .wait_until(&mut g, until)
                .timed_out()
            {
                return;
            }
        }
    }

    /// Blocks until every commit up to `seq` is durable, syncing the WAL itself if no other
    /// thread is (group commit).
    fn wait_durable(&self, seq: u64) -> Result<()> {
        let shared = &*self.shared;
        let mut s = shared.sync.lock();
        loop {
            if s.durable_seq >= seq {
                return Ok(());
            }
            if let Some(p) = &s.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            if s.syncing {
                shared.sync_cv.wait(&mut s);
                continue;
            }
            s.syncing = true;
            drop(s);
            let result = self.sync_round();
            s = shared.sync.lock();
            s.syncing = false;
            match result {
                Ok(upto) => s.durable_seq = s.durable_seq.max(upto),
                Err(e) => {
                    s.poisoned.get_or_insert_with(|| poison_message(&e));
                }
            }
            shared.sync_cv.notify_all();
        }
    }

    /// One group-commit round: seal, sync the WAL, publish. Returns the sequence number now
    /// durable.
    fn sync_round(&self) -> Result<u64> {
        let shared = &*self.shared;
        // Committers that are appending right now would otherwise miss this sync and wait a
        // whole extra round: give them a moment (bounded) to land in this group.
        let start = Instant::now();
        while shared.committing.load(Ordering::Acquire) > 0 && start.elapsed() < GROUP_WAIT {
            std::thread::yield_now();
        }
        let snap = {
            let mut w = shared.writer.lock();
            if let Some(p) = &w.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            let snap = self.guard(&mut w, |w| {
                w.pager.seal()?;
                Ok(make_snapshot(w))
            })?;
            let snap = Arc::new(snap);
            shared.live.register(&snap);
            snap
        };
        let Some(wal_file) = &shared.wal_file else {
            return Err(Error::ReadOnly {
                path: shared.path.clone(),
            });
        };
        if let Err(e) = wal_file.sync_data() {
            let e = Error::from(e);
            shared
                .writer
                .lock()
                .poisoned
                .get_or_insert_with(|| poison_message(&e));
            return Err(e);
        }
        let upto = snap.version;
        self.publish(snap);
        Ok(upto)
    }

    /// Makes every commit so far durable (useful with [`Durability::Relaxed`]).
    pub fn sync(&self) -> Result<()> {
        self.check_open()?;
        let target = self.shared.writer.lock().seq;
        self.wait_durable(target)
    }

    /// Runs a checkpoint now: the main file then holds every commit and the WAL is emptied.
    pub fn checkpoint(&self) -> Result<()> {
        self.check_writable()?;
        let mut w = self.shared.writer.lock();
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        self.checkpoint_locked(&mut w)
    }

    fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        self.check_writable()?;
        let salt = crate::file::random_u64();
        let file = w.pager.file.clone();
        self.guard(w, |w| {
            write_checkpoint(
                &*file,
                &mut w.pager,
                &w.state,
                (w.seq, w.term),
                &mut w.slots,
                salt,
            )
        })?;
        if let Some(wal) = w.wal.as_mut() {
            wal.reset(salt);
        }
        w.last_checkpoint = Instant::now();
        let snap = Arc::new(make_snapshot(w));
        self.shared.live.register(&snap);
        let upto = snap.version;
        self.publish(snap);
        let mut s = self.shared.sync.lock();
        s.durable_seq = s.durable_seq.max(upto);
        self.shared.sync_cv.notify_all();
        Ok(())
    }

    /// Grants a lease of `ttl` seconds (1 to 9,000,000,000); `id` 0 picks a fresh one. Keys put
    /// with the lease are deleted, at one revision, when it is revoked or expires without
    /// [`Store::lease_keep_alive`]. Expiry runs on the background thread.
    ///
    /// ```no_run
    /// use etch_engine::{PutOp, Store};
    /// let db = Store::open("app.etch")?;
    /// let lease = db.lease_grant(10, 0)?;
    /// db.put_with(PutOp { key: b"svc/me".to_vec(), value: b"10.0.0.7".to_vec(), lease: lease.id, ..Default::default() })?;
    /// db.lease_keep_alive(lease.id)?; // call more often than every 10 s, or the key goes
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant> {
        self.check_writable()?;
        if !(1..=9_000_000_000).contains(&ttl) {
            return Err(Error::InvalidOption(format!(
                "lease TTL {ttl} is not between 1 and 9000000000 seconds"
            )));
        }
        if id < 0 {
            return Err(Error::InvalidOption(format!("lease id {id} is negative")));
        }
        self.commit_with(|w| {
            let id = if id != 0 {
                if keyspace::lease_ttl(&w.pager, &w.state, id)?.is_some() {
                    return Err(Error::LeaseExists { id });
                }
                id
            } else {
                loop {
                    let candidate = (crate::file::random_u64() >> 1) as i64;
                    if candidate != 0
                        && keyspace::lease_ttl(&w.pager, &w.state, candidate)?.is_none()
                    {
                        break candidate;
                    }
                }
            };
            self.commit_command(w, &Command::LeaseGrant { id, ttl })
        })
        .and_then(|response| match response {
            CommandResponse::LeaseGrant(grant) => Ok(grant),
            other => Err(mismatched_response("lease grant", &other)),
        })
    }

    /// Revokes a lease: its keys are deleted at one revision (returned; unchanged if it had no
    /// keys) and watchers see the deletes.
    pub fn lease_revoke(&self, id: i64) -> Result<Revision> {
        self.check_writable()?;
        let command = Command::LeaseRevoke { id };
        match self.commit_with(|w| self.commit_command(w, &command))? {
            CommandResponse::LeaseRevoke(r) => Ok(r),
            other => Err(mismatched_response("lease revoke", &other)),
        }
    }

    /// Renews a lease for its full TTL; returns the TTL.
    pub fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.check_writable()?;
        let mut clocks = self.shared.lease_clocks.lock();
        let clock = clocks.get_mut(&id).ok_or(Error::LeaseNotFound { id })?;
        clock.deadline = self
            .shared
            .opts
            .clock
            .now()
            .saturating_add(Duration::from_secs(clock.ttl as u64));
        Ok(clock.ttl)
    }

    /// Remaining and granted TTL of a lease, and optionally its keys.
    pub fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        let read = self.read()?;
        let granted_ttl = keyspace::lease_ttl(&read.snap.view(), &read.snap.state, id)?
            .ok_or(Error::LeaseNotFound { id })?;
        let remaining = self.shared.lease_clocks.lock().get(&id).map_or(0, |c| {
            c.deadline
                .saturating_sub(self.shared.opts.clock.now())
                .as_millis()
                .div_ceil(1000) as i64
        });
        let keys = if with_keys {
            keyspace::lease_keys(&read.snap.view(), &read.snap.state, id)?
        } else {
            Vec::new()
        };
        Ok(LeaseInfo {
            id,
            ttl: remaining,
            granted_ttl,
            keys,
        })
    }

    /// Every lease: (id, granted TTL).
    pub fn lease_list(&self) -> Result<Vec<LeaseGrant>> {
        let read = self.read()?;
        Ok(keyspace::lease_list(&read.snap.view(), &read.snap.state)?
            .into_iter()
            .map(|(id, ttl)| LeaseGrant { id, ttl })
            .collect())
    }

    /// When a lease of `ttl` seconds granted or renewed now expires.
    fn lease_deadline(&self, ttl: i64) -> Duration {
        self.shared
            .opts
            .clock
            .now()
            .saturating_add(Duration::from_secs(ttl.max(0) as u64))
    }

    /// The revision automatic compaction (see [`AutoCompaction`]) would compact to now, if any.
    /// The background thread calls this every tick; with [`Options::background_writes`] off the
    /// replication layer calls it periodically and proposes the compaction. In periodic mode
    /// each call records a (time, revision) sample.
    pub fn auto_compaction_due(&self) -> Option<Revision> {
        let read = self.read().ok()?;
        let (revision, compacted) = (read.revision(), read.compact_revision());
        drop(read);
        match self.shared.opts.auto_compaction {
            AutoCompaction::Off => None,
            AutoCompaction::Revisions(n) => {
                let n = n as i64;
                let target = revision - n;
                // Compact in steps of a tenth of the retention, not at every revision.
                (target >= compacted.max(1) + (n / 10).max(1)).then_some(target)
            }
            AutoCompaction::Periodic(keep) => {
                let now = Instant::now();
                let mut samples = self.shared.compaction_samples.lock();
                samples.push_back((now, revision));
                let mut target = None;
                while let Some(&(t, r)) = samples.front() {
                    if now.duration_since(t) < keep {
                        break;
                    }
                    target = Some(r);
                    samples.pop_front();
                }
                target.filter(|&r| r > compacted.max(1))
            }
        }
    }

    /// The leases whose deadline has passed, in ascending id order, without revoking them: what
    /// a replication layer proposes to revoke when the store's own background writes are off
    /// ([`Options::background_writes`]).
    pub fn expired_leases(&self) -> Vec<i64> {
        let now = self.shared.opts.clock.now();
        let mut expired: Vec<i64> = self
            .shared
            .lease_clocks
            .lock()
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        expired
    }

    /// Revokes every lease whose deadline has passed, in ascending id order, and returns their
    /// ids. The background thread calls this every tick; tests with a [`crate::ManualClock`]
    /// call it after advancing the clock.
    pub fn expire_leases(&self) -> Result<Vec<i64>> {
        self.check_writable()?;
        // Read after the list, so every listed lease is still due at `now`.
        let expired = self.expired_leases();
        let now = self.shared.opts.clock.now();
        let mut revoked = Vec::new();
        for id in expired {
            // Keep-alive may have raced with us; check again right before revoking.
            let still = self
                .shared
                .lease_clocks
                .lock()
                .get(&id)
                .is_some_and(|c| c.deadline <= now);
            if !still {
                continue;
            }
            match self.lease_revoke(id) {
                Ok(_) => revoked.push(id),
                // Revoked meanwhile by someone else.
                Err(Error::LeaseNotFound { .. }) => {
                    self.shared.lease_clocks.lock().remove(&id);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(revoked)
    }

    /// Writes a consistent, compact single-file copy of the store as it is now to `path` (which
    /// must not exist), while writers go on. Its history is the store's (from the compact
    /// revision on); restoring it is opening it. Returns the revision copied and the file size.
    ///
    /// ```no_run
    /// let db = etch_engine::Store::open("app.etch")?;
    /// let (revision, bytes) = db.snapshot("backup.etch")?;
    /// let restored = etch_engine::Store::restore("backup.etch", "restored.etch", etch_engine::Options::new())?;
    /// assert_eq!(restored.revision(), revision);
    /// # let _ = bytes;
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn snapshot(&self, path: impl AsRef<Path>) -> Result<(Revision, u64)> {
        let read = self.read()?;
        let size = crate::copy::write_copy(
            &*self.shared.storage,
            &read.snap,
            path.as_ref(),
            self.shared.page_size,
        )?;
        Ok((read.revision(), size))
    }

    /// Restores a snapshot file: copies `snapshot` to `output` (which must not exist), opens the
    /// copy, verifies it completely with [`Store::check`], and returns it open. The snapshot file
    /// itself is only read.
    pub fn restore(
        snapshot: impl AsRef<Path>,
        output: impl AsRef<Path>,
        opts: Options,
    ) -> Result<Store> {
        let (snapshot, output) = (snapshot.as_ref(), output.as_ref());
        // Only read: so a snapshot of mode 0444, or in a read-only directory, restores too.
        let source = opts
            .storage
            .open_read_only(snapshot)
            .map_err(|e| Error::from(e).opening(snapshot, OpenAction::OpenFileReadOnly))?;
        let len = source.len()?;
        // Refuse a non-etch source before writing anything.
        read_meta(&*source, snapshot, len)?;
        let target = opts.storage.open(output, true)?;
        if target.len()? != 0 {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{}: restore target already exists", output.display()),
            )));
        }
        let copied = (|| -> Result<()> {
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0;
            while off < len {
                let n = (len - off).min(buf.len() as u64) as usize;
                source.read_exact_at(&mut buf[..n], off)?;
                target.write_all_at(&buf[..n], off)?;
                off += n as u64;
            }
            target.sync_all()?;
            Ok(opts.storage.sync_dir(output)?)
        })();
        drop(target);
        let opened = copied
            .and_then(|_| opts.clone().open(output))
            .and_then(|store| {
                store.check()?;
                Ok(store)
            });
        if opened.is_err() {
            let _ = opts.storage.remove(output);
        }
        opened
    }

    /// A hash of the keyspace as of `revision` (0 for the current one): every key with its
    /// value, create and mod revision, version and lease, in key order. Two stores with the same
    /// history give the same hash at the same revision (etcd's `HashKV`, for comparing copies).
    pub fn hash_kv(&self, revision: Revision) -> Result<u32> {
        let read = self.read()?;
        let kvs = read
            .range_with(
                &Range::all(),
                &RangeOptions {
                    revision,
                    ..Default::default()
                },
            )?
            .kvs;
        let mut h = crc32fast::Hasher::new();
        for kv in kvs {
            for part in [&kv.key[..], &kv.value[..]] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part);
            }
            for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
                h.update(&n.to_le_bytes());
            }
        }
        Ok(h.finalize())
    }

    /// Rewrites the store compactly into a new file that atomically replaces the old one, so the
    /// file shrinks after deletes and compaction (etcd's defrag). Writers wait while it runs;
    /// readers go on, old snapshots on the old file's map. Crash-safe: until the rename the old
    /// file is the store, after it the new one, complete and synced. Returns the file size
    /// before and after.
    ///
    /// ```no_run
    /// let db = etch_engine::Store::open("app.etch")?;
    /// db.compact(db.revision())?;
    /// let (before, after) = db.defrag()?;
    /// println!("{before} -> {after} bytes");
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn defrag(&self) -> Result<(u64, u64)> {
        self.check_writable()?;
        let shared = &*self.shared;
        let mut guard = shared.writer.lock();
        let w = &mut *guard;
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        let before = w.pager.file.len()?;
        // Everything into the main file; the WAL is empty afterwards.
        self.checkpoint_locked(w)?;
        // A compact copy beside it, with this store's identity and WAL position, locked before it
        // takes the store's name so no other process can open it in between.
        let mut tmp = shared.path.as_os_str().to_owned();
        tmp.push(".defrag");
        let tmp = PathBuf::from(tmp);
        let _ = shared.storage.remove(&tmp);
        let file = shared.storage.open(&tmp, true)?;
        file.set_len(0)?;
        if !file.try_lock()? {
            return Err(Error::Locked {
                path: tmp,
                in_this_process: false,
            });
        }
        let salt = crate::file::random_u64();
        let identity = crate::copy::CopyIdentity {
            db_id: w.slots.db_id,
            applied: (w.seq, w.term),
            wal_salt: salt,
        };
        let snap = make_snapshot(w);
        if let Err(e) = crate::copy::write_into(
            &*shared.storage,
            &file,
            &snap,
            &tmp,
            shared.page_size,
            &identity,
        ) {
            let _ = shared.storage.remove(&tmp);
            return Err(e);
        }
        // The swap. From here on the new file is the store; any failure poisons the handle
        // (a reopen finds the new file, complete).
        self.guard(w, |w| {
            shared.storage.rename(&tmp, &shared.path)?;
            shared.storage.sync_dir(&shared.path)?;
            let meta = read_meta(&*file, &shared.path, file.len()?)?;
            let pager = load_pager(&file, &meta, shared.opts.random_access, false)?;
            w.pager = pager;
            w.state.roots = meta.roots;
            w.slots.counter = meta.counter;
            if let Some(wal) = w.wal.as_mut() {
                wal.reset(salt);
            }
            Ok(())
        })?;
        *shared.file.lock() = file.clone();
        // The store's name now means the new file: claim it, and give up the old one's claim
        // (the old file is unlinked; its lock goes with its last handle).
        *shared.registration.lock() = Some(Registration::new(&*file));
        let after = file.len()?;
        let snap = Arc::new(make_snapshot(w));
        shared.live.register(&snap);
        self.publish(snap);
        Ok((before, after))
    }

    /// Status figures: revisions, key count, file and WAL sizes.
    pub fn status(&self) -> Result<Status> {
        let r = self.read()?;
        let s = &r.snap;
        let file_size = self.shared.file.lock().len()?;
        Ok(Status {
            revision: s.state.revision as i64,
            compact_revision: s.state.compact_revision as i64,
            key_count: s.state.key_count,
            file_size,
            size_in_use: (s.page_count - s.unused_pages) * self.shared.page_size as u64,
            wal_size: s.wal_used,
            page_size: self.shared.page_size as u32,
            applied_index: s.version,
        })
    }

    /// Integrity check: walks every reachable page of the working state, verifying checksums,
    /// key order, tree shape, record encoding and that every page of the file is accounted for
    /// exactly once. Blocks writers while it runs.
    pub fn check(&self) -> Result<CheckReport> {
        self.check_open()?;
        let w = self.shared.writer.lock();
        crate::check::check(&w.pager, &w.state)
    }

    /// Checkpoints, removes the WAL (leaving one file) and releases the file lock. Other clones
    /// of this handle get [`Error::Closed`] afterwards.
    pub fn close(self) -> Result<()> {
        self.shared.close()
    }
}

impl Shared {
    fn close(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut bg = self.background.lock();
            bg.stop = true;
            self.background_cv.notify_all();
        }
        let result = match w.poisoned.clone() {
            // Nothing to write back: a read-only store changed nothing.
            _ if self.opts.read_only => Ok(()),
            Some(p) => Err(Error::Poisoned(p)),
            None => {
                let salt = crate::file::random_u64();
                let w = &mut *w;
                write_checkpoint(
                    &*w.pager.file.clone(),
                    &mut w.pager,
                    &w.state,
                    (w.seq, w.term),
                    &mut w.slots,
                    salt,
                )
                .and_then(|_| {
                    self.storage.remove(&Wal::path_for(&self.path))?;
                    Ok(self.storage.sync_dir(&self.path)?)
                })
            }
        };
        drop(w);
        let _ = self.file.lock().unlock();
        // After the unlock, so a refused open never blames this process for a lock it released.
        self.registration.lock().take();
        *self.publish_generation.lock() += 1;
        self.published_cv.notify_all();
        result
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A drop without close still checkpoints; errors cannot be reported here, and nothing
        // is lost by ignoring them: the WAL stays and the next open recovers from it.
        let _ = self.close();
    }
}

/// Writes the initial meta slots of a new file.
fn init_file(
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

/// The last step of recovery. A writable store gets a new WAL (generation `salt`). A read-only
/// store seals what it replayed into its pager's in-memory overlay, so readers see it, and gets
/// no WAL: nothing is written.
fn open_recovered(
    storage: &dyn Storage,
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
    Wal::create(storage, wal_path, db_id, opts.wal_capacity, salt)
        .map(Some)
        .map_err(|e| e.opening(wal_path, OpenAction::CreateWal))
}

/// The writer's pager for a file whose newest meta is `meta`: a map of its pages and an
/// allocator seeded with the meta's free list. A read-only pager writes pages to an in-memory
/// overlay instead of the file (see `pager.rs`).
fn load_pager(
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

/// Reads both meta slots and picks the newest valid one.
fn read_meta(file: &dyn StorageFile, path: &Path, len: u64) -> Result<Meta> {
    let mut slot0 = vec![0u8; 256];
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
    file.read_exact_at(&mut slot0, 0)?;
    // Slot 1 sits one page in; the page size comes from slot 0, or, if slot 0 is damaged, from
    // whichever candidate page size finds a valid slot 1.
    let candidates: Vec<u64> = match Meta::decode(&slot0) {
        Ok(m) => vec![m.page_size as u64],
        Err(_) => (12..=16).map(|s| 1u64 << s).collect(),
    };
    let mut slot1 = vec![0u8; 256];
    for ps in candidates {
        if len >= ps + 256 {
            file.read_exact_at(&mut slot1, ps)?;
            if Meta::decode(&slot1).is_ok() {
                break;
            }
        }
    }
    meta::choose(&slot0, &slot1, path).map(|(m, _)| m)
}

/// Seals the writer's state and makes it the durable checkpoint: free list, fsync, meta in the
/// other slot, fsync. Afterwards the WAL may start a new generation with `salt` at WAL_START.
/// `applied` is the (sequence number, term) of the last commit in `state`.
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

pub(crate) fn write_checkpoint(
    file: &dyn StorageFile,
    pager: &mut Pager,
    state: &KsState,
    applied: (u64, u64),
    slots: &mut MetaSlots,
    salt: u64,
) -> Result<()> {
    pager.seal()?;
    let (fl_pages, fl_count) = pager.write_freelist()?;
    file.sync_data()?;
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
        wal_offset: WAL_START,
        wal_salt: salt,
        key_count: state.key_count,
    };
    // Both slots get the new meta, one after the other, each followed by a sync: a torn write
    // of one slot leaves the other intact (the old meta while slot 0 is written, the new one
    // while slot 1 is), and afterwards damage to either slot alone loses nothing.
    let mut page = vec![0u8; pager.page_size];
    meta.encode(&mut page);
    for slot in 0..2 {
        file.write_all_at(&page, (slot * pager.page_size) as u64)?;
        file.sync_data()?;
    }
    slots.counter += 1;
    pager.alloc.checkpoint_durable(fl_pages);
    Ok(())
}

fn make_snapshot(w: &Writer) -> SnapshotData {
    SnapshotData {
        version: w.seq,
        state: w.state,
        map: w.pager.map.clone(),
        page_count: w.pager.alloc.high_water,
        unused_pages: w.pager.alloc.unused_pages(),
        wal_used: w.wal.as_ref().map_or(0, Wal::used),
    }
}

/// The background thread: checkpoints by WAL size and by time, and syncs the WAL periodically
/// in relaxed mode. Holds only a weak reference, so it never keeps a store open.
fn spawn_background(weak: Weak<Shared>) {
    let _ = std::thread::Builder::new()
        .name("etch-background".into())
        .spawn(move || {
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let tick = shared
                    .opts
                    .checkpoint_interval
                    .min(shared.opts.relaxed_sync_interval)
                    .min(Duration::from_millis(500));
                {
                    let mut bg = shared.background.lock();
                    if !bg.stop {
                        shared.background_cv.wait_for(&mut bg, tick);
                    }
                    if bg.stop {
                        return;
                    }
                }
                let store = Store {
                    shared,
                    _close_on_drop: None,
                };
                let (due, pending) = {
                    let w = store.shared.writer.lock();
                    (
                        w.last_checkpoint.elapsed() >= store.shared.opts.checkpoint_interval,
                        w.wal.as_ref().is_some_and(|wal| wal.used() > 0),
                    )
                };
                if due && pending {
                    let _ = store.checkpoint();
                } else if store.shared.opts.durability == Durability::Relaxed && pending {
                    let _ = store.sync();
                }
                if store.shared.opts.background_writes {
                    let _ = store.expire_leases();
                    if let Some(target) = store.auto_compaction_due() {
                        let _ = store.compact(target);
                    }
                }
                // Release the strong reference before sleeping, so it never keeps the store open.
                drop(store);
            }
        });
}
