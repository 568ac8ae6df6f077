//! Options for opening a store, set through a builder.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::storage::{FsStorage, Storage};
use crate::store::Store;

/// When a commit is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// A commit returns only after its WAL record is on stable storage (fdatasync), and readers
    /// see it only from then on. Concurrent commits share one sync (group commit). The default.
    #[default]
    Immediate,
    /// A commit returns as soon as its record is in the WAL's memory map and is visible to
    /// readers at once; the WAL is synced by a background thread every
    /// [`Options::relaxed_sync_interval`] and by [`Store::sync`]. A power cut may lose the
    /// commits of that last interval (a suffix: never a gap, never a torn commit); a crash of the
    /// process alone loses nothing, because the record is already in the OS page cache.
    Relaxed,
}

/// Automatic compaction, as etcd's `--auto-compaction-mode` and `--auto-compaction-retention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Never compact automatically.
    Off,
    /// Keep the history of the last `n` revisions (compacting in steps of a tenth of `n`).
    Revisions(u64),
    /// Keep the history of the last interval (compacting to the revision that was current that
    /// long ago, checked every tick of the background thread).
    Periodic(Duration),
    /// Keep about the last `n` changes (one per key a revision put or deleted), whatever the
    /// number of revisions they came in: bounds the history itself, so an overwrite-heavy store's
    /// file stops growing even when one revision carries thousands of changes. Compacts, once
    /// more than `n + n/10` changes are kept, to the revision that leaves at most `n` (counted
    /// incrementally from the change log each tick; see docs/design.md, "Compaction").
    Changes(u64),
}

/// Builder for opening a [`Store`].
///
/// ```no_run
/// use etch_engine::{Durability, Options};
/// let db = Options::new().durability(Durability::Immediate).max_txn_ops(1024).open("app.etch")?;
/// # Ok::<(), etch_engine::Error>(())
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) page_size: usize,
    pub(crate) durability: Durability,
    pub(crate) relaxed_sync_interval: Duration,
    pub(crate) max_key_size: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_txn_ops: usize,
    pub(crate) wal_capacity: u64,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) checkpoint_wal_fraction: f64,
    pub(crate) random_access: bool,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) write_attempts: u32,
    pub(crate) auto_compaction: AutoCompaction,
    pub(crate) background_writes: bool,
    pub(crate) compaction_steps_per_tick: usize,
    pub(crate) quota_bytes: Option<u64>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) lock_timeout: Duration,
    pub(crate) read_only: bool,
    pub(crate) repair_wal: bool,
    pub(crate) replicated: bool,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("page_size", &self.page_size)
            .field("durability", &self.durability)
            .field("max_key_size", &self.max_key_size)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_txn_ops", &self.max_txn_ops)
            .field("wal_capacity", &self.wal_capacity)
            .field("background_writes", &self.background_writes)
            .field("compaction_steps_per_tick", &self.compaction_steps_per_tick)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("checkpoint_wal_fraction", &self.checkpoint_wal_fraction)
            .field("random_access", &self.random_access)
            .field("write_attempts", &self.write_attempts)
            .field("auto_compaction", &self.auto_compaction)
            .field("quota_bytes", &self.quota_bytes)
            .field("lock_timeout", &self.lock_timeout)
            .field("read_only", &self.read_only)
            .field("repair_wal", &self.repair_wal)
            .field("replicated", &self.replicated)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 4096,
            durability: Durability::Immediate,
            relaxed_sync_interval: Duration::from_millis(100),
            max_key_size: 960,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            wal_capacity: 64 << 20,
            checkpoint_interval: Duration::from_secs(30),
            checkpoint_wal_fraction: 0.5,
            random_access: false,
            storage: Arc::new(FsStorage),
            write_attempts: 16,
            auto_compaction: AutoCompaction::Changes(100_000),
            background_writes: true,
            compaction_steps_per_tick: 4,
            quota_bytes: Some(8 << 30),
            clock: Arc::new(SystemClock::default()),
            lock_timeout: Duration::ZERO,
            read_only: false,
            repair_wal: false,
            replicated: false,
        }
    }
}

impl Options {
    /// Default options: 4 KiB pages, immediate durability, etcd's request limits
    /// (1.5 MiB per request, 128 operations per transaction), a 64 MiB WAL checkpointed when half
    /// full or every 30 seconds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Page size for a new file (a power of two from 4 KiB to 64 KiB). An existing file keeps the
    /// page size it was created with.
    pub fn page_size(mut self, bytes: usize) -> Self {
        self.page_size = bytes;
        self
    }

    /// When commits are acknowledged; see [`Durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How often the WAL is synced in [`Durability::Relaxed`] mode.
    pub fn relaxed_sync_interval(mut self, interval: Duration) -> Self {
        self.relaxed_sync_interval = interval;
        self
    }

    /// Maximum key length in bytes. It cannot exceed `page_size / 4 - 64` (960 with 4 KiB pages),
    /// which keeps at least four entries on every B+tree page.
    pub fn max_key_size(mut self, bytes: usize) -> Self {
        self.max_key_size = bytes;
        self
    }

    /// Maximum total size of the keys and values of one write request (default 1.5 MiB, as
    /// etcd's `--max-request-bytes`).
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Maximum number of operations in one batch or transaction (default 128, as etcd's
    /// `--max-txn-ops`).
    pub fn max_txn_ops(mut self, count: usize) -> Self {
        self.max_txn_ops = count;
        self
    }

    /// Size in bytes of the preallocated WAL file (default 64 MiB, at least 1 MiB).
    pub fn wal_capacity(mut self, bytes: u64) -> Self {
        self.wal_capacity = bytes;
        self
    }

    /// A checkpoint runs at least this often while the WAL holds records (default 30 s).
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// A checkpoint runs once the WAL is this fraction full (default 0.5, range 0.05..=0.95).
    pub fn checkpoint_wal_fraction(mut self, fraction: f64) -> Self {
        self.checkpoint_wal_fraction = fraction;
        self
    }

    /// Page-cache hint: tell the kernel that reads of the main file are random, turning off
    /// read-ahead (as LMDB's `MDB_NORDAHEAD`). Helps point reads on files larger than memory;
    /// hurts long range scans. Off by default.
    pub fn random_access(mut self, random: bool) -> Self {
        self.random_access = random;
        self
    }

    /// How many times [`Store::write`] runs its closure before giving up with
    /// [`Error::Conflict`] (default 16, at least 1).
    pub fn write_attempts(mut self, attempts: u32) -> Self {
        self.write_attempts = attempts;
        self
    }

    /// Automatic compaction. The default keeps the last 100,000 changes
    /// ([`AutoCompaction::Changes`]), so an overwrite-heavy store does not grow without bound
    /// however large its batches; etcd's modes ([`AutoCompaction::Revisions`],
    /// [`AutoCompaction::Periodic`]) are there too; `AutoCompaction::Off` keeps all history until
    /// [`Store::compact`].
    pub fn auto_compaction(mut self, mode: AutoCompaction) -> Self {
        self.auto_compaction = mode;
        self
    }

    /// Whether the store's background thread makes its own writes: revoking expired leases and
    /// automatic compaction (default `true`). A replicated store turns this off: every member
    /// must apply the same writes in the same order, so the replication layer asks what is due
    /// ([`Store::expired_leases`], [`Store::auto_compaction_due`]) and proposes it through the
    /// log instead. Checkpoints and relaxed-durability syncs still run in the background.
    pub fn background_writes(mut self, on: bool) -> Self {
        self.background_writes = on;
        self
    }

    /// Most compaction steps the background thread runs per tick (default 4, one checkpoint's
    /// worth; at least 1). Each step sweeps about 16,000 history or change-log entries under the
    /// writer lock; between ticks the thread runs its timed checkpoints and relaxed syncs, so a
    /// big automatic compaction spreads over many ticks instead of holding them up until it
    /// ends. A checkpoint requested by a commit (WAL past its threshold) also cuts a tick's
    /// steps short. [`Store::compact`](crate::Store::compact) and
    /// [`Store::finish_compaction`](crate::Store::finish_compaction) are not paced.
    pub fn compaction_steps_per_tick(mut self, steps: usize) -> Self {
        self.compaction_steps_per_tick = steps;
        self
    }

    /// Space quota: past it, writes that add data fail with [`Error::QuotaExceeded`] while reads,
    /// deletes and compaction go on (etcd's NOSPACE alarm). Default 8 GiB; `None` for no quota.
    pub fn quota_bytes(mut self, quota: Option<u64>) -> Self {
        self.quota_bytes = quota;
        self
    }

    /// The time source for lease expiry (default: the system's monotonic clock). Tests pass a
    /// [`crate::ManualClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Open a store whose WAL is damaged in the middle ([`Error::WalDamaged`]) by recovering up
    /// to the damage: the WAL is first copied, durably, to `<file>-wal.damaged` (or
    /// `.damaged.N`), then the records before the damage are replayed and the records after it
    /// are dropped; [`Store::wal_repair`] says what was found and dropped. Default `false`: such
    /// an open fails and changes nothing, because the records after the damage were acknowledged.
    pub fn repair_wal(mut self, repair: bool) -> Self {
        self.repair_wal = repair;
        self
    }

    /// The file system to use (default: the real one, [`FsStorage`]). Tests pass a
    /// [`crate::sim::SimDisk`] to simulate power cuts and I/O errors.
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// How long an open waits for the file lock while another store holds it (SQLite's busy
    /// timeout). The open retries with a short, growing pause (1 ms doubling to 50 ms) and
    /// fails with [`Error::Locked`] once this much time has passed. Default zero: fail at once.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Opens the store read-only: nothing is ever written, to the file, its directory or its
    /// WAL, so it works on a file of mode 0444 or in a read-only directory.
    ///
    /// - The file must exist and be an etch file: a read-only open never creates one.
    /// - The file is opened `O_RDONLY` and locked *shared*: any number of read-only stores, in
    ///   any processes, may hold it at once; a writer excludes them and they exclude a writer
    ///   (both wait up to [`Options::lock_timeout`]).
    /// - Commits a killed writer left in the WAL are replayed into memory only (an overlay of
    ///   pages that readers consult); the file and the WAL stay byte-for-byte as they were, and
    ///   no WAL is created.
    /// - A WAL damaged in the middle fails the open with [`Error::WalDamaged`], as for a
    ///   writable open; [`Options::repair_wal`] writes, so it cannot be combined with this.
    /// - The store shows the state as of the open (no writer can change it while it is open).
    ///   No background thread runs: no lease expiry, compaction or checkpoint. It has no WAL of
    ///   its own, so [`crate::Status::wal_size`] is 0.
    /// - Every write — put, delete, transaction, compaction, lease calls, checkpoint, defrag —
    ///   fails with [`Error::ReadOnly`]. Reads, watches of history, `status`, `check`,
    ///   `snapshot` (which writes only the new copy) and `hash_kv` work.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Opens the store as a member of a replicated group (default `false`): its WAL is the Raft
    /// log. The replication layer appends entries to it ([`Store::log_append`] and the other
    /// `log_*` calls, durably with group commit), stores its vote there ([`Store::save_vote`]),
    /// and applies committed entries in index order with [`Store::apply`]. Then:
    ///
    /// - local writes (put, delete, batch, txn, write, compact, lease grant and revoke,
    ///   expire_leases) fail with [`Error::ReplicatedWrite`]; defrag works and keeps the log;
    /// - an open does not replay the log into the trees: they open at the last checkpoint
    ///   ([`Store::applied`]) and the replication layer re-applies the committed entries after it;
    /// - a checkpoint never starts a new WAL generation: entries after the applied index (and
    ///   applied ones not yet purged) stay in the ring until [`Store::log_purge`];
    /// - close keeps the WAL (it holds the log and the vote).
    ///
    /// A local store opened this way becomes replicated for good: its WAL is replayed and
    /// checkpointed, and its log starts empty after the applied index. A replicated store's file
    /// opened without this option fails with [`Error::NotReplicated`]. Combine with
    /// [`Options::background_writes`]`(false)`; `read_only` is refused.
    pub fn replicated(mut self, on: bool) -> Self {
        self.replicated = on;
        self
    }

    /// Opens (or creates) the store at `path` with these options.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path.as_ref(), self)
    }

    /// Checks ranges; called by `open` before anything touches the disk.
    pub(crate) fn validate(&self) -> Result<()> {
        if !self.page_size.is_power_of_two() || !(4096..=65536).contains(&self.page_size) {
            return Err(Error::InvalidOption(format!(
                "page_size {} is not a power of two between 4096 and 65536",
                self.page_size
            )));
        }
        if self.max_key_size == 0 || self.max_key_size > key_size_cap(self.page_size) {
            return Err(Error::InvalidOption(format!(
                "max_key_size {} is not between 1 and {} for {}-byte pages",
                self.max_key_size,
                key_size_cap(self.page_size),
                self.page_size
            )));
        }
        if self.max_request_bytes == 0 || self.max_request_bytes > (1 << 31) {
            return Err(Error::InvalidOption(format!(
                "max_request_bytes {} is not between 1 and 2 GiB",
                self.max_request_bytes
            )));
        }
        if self.auto_compaction == AutoCompaction::Revisions(0) {
            return Err(Error::InvalidOption(
                "auto-compaction must keep at least one revision".into(),
            ));
        }
        if self.auto_compaction == AutoCompaction::Changes(0) {
            return Err(Error::InvalidOption(
                "auto-compaction must keep at least one change".into(),
            ));
        }
        if self.compaction_steps_per_tick == 0 {
            return Err(Error::InvalidOption(
                "compaction_steps_per_tick must be at least 1".into(),
            ));
        }
        if self.write_attempts == 0 {
            return Err(Error::InvalidOption(
                "write_attempts must be at least 1".into(),
            ));
        }
        if self.max_txn_ops == 0 {
            return Err(Error::InvalidOption(
                "max_txn_ops must be at least 1".into(),
            ));
        }
        if self.read_only && self.repair_wal {
            return Err(Error::InvalidOption(
                "repair_wal writes (a copy of the WAL, the recovered state): it needs a \
                 writable open, not read_only"
                    .into(),
            ));
        }
        if self.read_only && self.replicated {
            return Err(Error::InvalidOption(
                "a replicated store keeps its log in a WAL it writes: replicated needs a \
                 writable open, not read_only"
                    .into(),
            ));
        }
        if self.wal_capacity < (1 << 20) || self.wal_capacity > (1 << 40) {
            return Err(Error::InvalidOption(format!(
                "wal_capacity {} is not between 1 MiB and 1 TiB",
                self.wal_capacity
            )));
        }
        if !(0.05..=0.95).contains(&self.checkpoint_wal_fraction) {
            return Err(Error::InvalidOption(format!(
                "checkpoint_wal_fraction {} is not between 0.05 and 0.95",
                self.checkpoint_wal_fraction
            )));
        }
        Ok(())
    }
}

/// Largest key a page size allows: a quarter page minus room for entry headers and the 8-byte
/// revision suffix of history keys.
pub(crate) fn key_size_cap(page_size: usize) -> usize {
    page_size / 4 - 64
}
