//! Maintenance: snapshot files, restore, the keyspace hash, defragmentation, status and the
//! integrity check.

use std::path::Path;

use super::transfer::{sibling, WalAfterSwap};
use super::{make_snapshot, Store};
use crate::checkpoint::read_meta;
use crate::error::{Error, OpenAction, Result};
use crate::options::Options;
use crate::types::{CheckReport, Range, RangeOptions, Revision, Status};

/// Compaction steps between the checkpoints that make their work durable.
const CHECKPOINT_EVERY_STEPS: u64 = 4;

impl Store {
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
    /// A replicated store's WAL is its Raft log: defrag keeps it as it is (every unpurged
    /// entry and the vote), and the new file's meta names it exactly as the checkpoint taken
    /// first does (its position, salt, last purged entry and applied membership), so the
    /// member goes on replicating, and restarts, from the same log.
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
        // Everything into the main file; a local store's WAL is empty afterwards.
        self.checkpoint_locked(w)?;
        // A replicated store's log, where the checkpoint just written names it.
        let log = if shared.opts.replicated {
            match super::raftlog::replicated_position(w, None)? {
                Some(position) => Some(position),
                None => return Err(Error::corrupt("internal: a replicated store has no log")),
            }
        } else {
            None
        };
        // A compact copy beside it, with this store's identity and WAL position, locked before it
        // takes the store's name so no other process can open it in between.
        let tmp = sibling(&shared.path, ".defrag");
        let _ = shared.storage.remove(&tmp);
        let file = shared.storage.open(&tmp, true)?;
        file.set_len(0)?;
        if !file.try_lock()? {
            return Err(Error::Locked {
                path: tmp,
                in_this_process: false,
            });
        }
        // A kept log keeps its salt: its frames carry it.
        let salt = match &log {
            Some(position) => position.salt,
            None => crate::file::random_u64(),
        };
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
        if let Some(position) = &log {
            if let Err(e) = name_the_log(&*file, &tmp, shared.page_size, position) {
                let _ = shared.storage.remove(&tmp);
                return Err(e);
            }
        }
        // The swap: from the rename on, the new file is the store.
        let wal = if log.is_some() {
            WalAfterSwap::Keep
        } else {
            WalAfterSwap::NewGeneration
        };
        self.swap_main_file(w, &tmp, &file, wal)?;
        let after = file.len()?;
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

    /// Integrity check: walks every reachable page of the store as it is at the call,
    /// verifying checksums, key order, tree shape, record encoding and that every page of the
    /// file is accounted for exactly once. Writers go on while it runs: it reads a pinned
    /// snapshot (see [`Store::check_with_progress`]).
    pub fn check(&self) -> Result<CheckReport> {
        self.check_with_progress(|_, _| {})
    }

    /// [`Store::check`], calling `progress(done, total)` as it goes, on the calling thread:
    /// `done` units of work of `total` (never more, never decreasing, and equal at the end).
    /// The walk of the pages the snapshot's trees and values use is the first fifth of
    /// `total`, one unit per page; verifying the change log's entries against the stored
    /// versions is the rest, in proportion to the entries passed (on a store with history
    /// it is most of a check's time).
    ///
    /// Only the start holds the writer lock, briefly: it seals the working state, pins it as a
    /// snapshot (so none of its pages is reused while the check reads it) and copies the
    /// allocator's lists of free and waiting pages, which with the snapshot's trees must
    /// partition the file as of that moment. The walk itself reads only the pinned pages.
    pub fn check_with_progress(&self, progress: impl FnMut(u64, u64)) -> Result<CheckReport> {
        self.check_open()?;
        let (snap, unused) = {
            let mut w = self.shared.writer.lock();
            if let Some(p) = &w.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            if !self.is_read_only() {
                self.guard(&mut w, |w| w.pager.seal())?;
            }
            let snap = std::sync::Arc::new(make_snapshot(&mut w));
            self.shared.live.register(&snap);
            (snap, crate::check::unused_pages(&w.pager.alloc))
        };
        crate::check::check(
            &snap.view(),
            &snap.state,
            self.shared.page_size,
            &unused,
            progress,
        )
    }

    /// Runs the remaining steps of a compaction decided earlier, if any. [`Store::compact`]
    /// calls it before returning, and the background thread runs a bounded number of steps
    /// every tick when the store makes background writes or is replicated (see
    /// [`Options::compaction_steps_per_tick`](crate::Options::compaction_steps_per_tick)), so
    /// it is only needed to finish, at a moment of the caller's choosing, a compaction left
    /// unfinished by a crash or decided by [`Store::apply`].
    ///
    /// Each step is local work under the writer lock (a bounded sweep of the history in key
    /// order, then a bounded trim of the change log; see `keyspace/compact.rs`), sealed so that
    /// its pages leave memory; the lock is released between steps, so writers go on. Steps
    /// change no logical state and write no WAL record: they become durable with the next
    /// checkpoint (one is run every few steps), and after a crash the next steps redo what was
    /// lost.
    pub fn finish_compaction(&self) -> Result<()> {
        while self.compaction_steps(usize::MAX)? {}
        Ok(())
    }

    /// Whether compaction work is left: a compaction was decided whose steps have not all run
    /// (as of the newest published state).
    pub fn compaction_pending(&self) -> Result<bool> {
        self.check_open()?;
        // The writer's state, not the published one: steps are published only when no commit
        // waits for durability (see `compaction_step`), so the published state may lag.
        let w = self.shared.writer.lock();
        crate::keyspace::compaction_pending(&w.pager, &w.state)
    }

    /// Runs at most `max_steps` steps of the pending compaction (see
    /// [`Store::finish_compaction`]) and returns whether work is left: the way to pace a big
    /// compaction, a few steps at a time, between other work. With no compaction pending (or
    /// on a read-only store) it does nothing and returns `false`.
    ///
    /// ```no_run
    /// # let db = etch_engine::Store::open("app.etch")?;
    /// while db.compaction_steps(4)? {
    ///     // other work between bounded slices of the compaction
    /// }
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn compaction_steps(&self, max_steps: usize) -> Result<bool> {
        if self.is_read_only() || max_steps == 0 {
            return Ok(false);
        }
        if !self.compaction_pending()? {
            return Ok(false);
        }
        for _ in 0..max_steps {
            let more = {
                let mut w = self.shared.writer.lock();
                self.check_writable()?;
                if let Some(p) = &w.poisoned {
                    return Err(Error::Poisoned(p.clone()));
                }
                self.guard(&mut w, |w| self.compaction_step(w))?
            };
            // Pages of the durable tree that the steps free wait for a checkpoint before reuse,
            // and the steps are durable only with one: checkpoint every few steps (commits go on
            // during it), counted across calls so that paced steps checkpoint as often.
            let due = {
                let mut bg = self.shared.background.lock();
                bg.steps_since_checkpoint += 1;
                bg.steps_since_checkpoint >= CHECKPOINT_EVERY_STEPS
            };
            if !more {
                return Ok(false);
            }
            if due {
                self.checkpoint()?;
                self.shared.background.lock().steps_since_checkpoint = 0;
            }
        }
        Ok(true)
    }

    /// One local compaction step on the writer (lock held): like a commit's start (pages no
    /// snapshot needs any more are released), the step, then a seal, so the step's pages are
    /// written out, and, when every commit of the working state is already visible to readers,
    /// a publish of the stepped state. Returns whether work is left.
    ///
    /// The publish changes nothing a read can see (a step removes only what the compact
    /// revision made unreachable), but it moves readers off the trees the step replaced: once
    /// the snapshots of the generations before it are dropped, the pages this step freed are
    /// reusable by the next step, instead of waiting for the next commit's publish (pages of
    /// the durable tree wait for a checkpoint as well; see `alloc.rs`). While a commit of the
    /// working state is not visible yet (its group-commit round is syncing the WAL), publishing
    /// the working state would show that commit before it is durable: the step's state is then
    /// left to the next commit's publish, which includes it.
    fn compaction_step(&self, w: &mut super::Writer) -> Result<bool> {
        if let Some(oldest) = self.shared.live.oldest() {
            w.pager.alloc.release_readers(oldest);
        }
        let mut pos = std::mem::take(&mut self.shared.background.lock().sweep);
        let step = crate::keyspace::compact_step(
            &mut w.pager,
            &mut w.state,
            &mut pos,
            crate::keyspace::STEP_ENTRIES,
        );
        self.shared.background.lock().sweep = pos;
        let step = step?;
        w.pager.seal()?;
        if self.shared.published.read().version == w.seq {
            let snap = std::sync::Arc::new(super::make_snapshot(w));
            self.shared.live.register(&snap);
            self.publish(snap);
        }
        Ok(step.more)
    }
}

/// Rewrites both meta slots of a defragmented copy (`file` at `path`) as a replicated store's,
/// naming the kept log at `position`; synced. Until the copy is renamed over the store, this
/// changes nothing of the store.
fn name_the_log(
    file: &dyn crate::storage::StorageFile,
    path: &Path,
    page_size: usize,
    position: &crate::checkpoint::WalPosition,
) -> Result<()> {
    let meta = read_meta(file, path, file.len()?)?;
    let ours = crate::meta::Meta {
        counter: meta.counter + 1,
        wal_offset: position.offset,
        wal_salt: position.salt,
        replicated: true,
        purged: position.purged.unwrap_or((0, 0)),
        membership: position.membership.clone(),
        ..meta
    };
    let mut page = vec![0u8; page_size];
    ours.encode(&mut page);
    file.write_all_at(&page, 0)?;
    file.write_all_at(&page, page_size as u64)?;
    Ok(file.sync_data()?)
}
