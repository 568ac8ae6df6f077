//! The Raft log API of a replicated store ([`crate::Options::replicated`]): appends with group
//! commit, reads, truncation, purge behind a checkpoint, the vote. The log itself (its index,
//! the frame operations, recovery) is `crate::raftlog`; this file adds the locking and the
//! durability bookkeeping. Every call takes the writer lock for its in-memory part; the
//! fdatasync of a group commit runs outside it.

use parking_lot::{Condvar, Mutex, MutexGuard};

use std::path::Path;
use std::sync::Arc;

use super::transfer::{SnapshotInfo, WalAfterSwap};
use super::{make_snapshot, Store, Writer};
use crate::checkpoint::WalPosition;
use crate::error::{Error, Result};
use crate::meta::{Meta, MAX_MEMBERSHIP};
use crate::raftlog::{LogEntry, LogState, PurgePoint, RaftLog};
use crate::storage::{Storage, StorageFile};
use crate::wal::Wal;

/// The membership a replicated store applied last ([`Store::applied_membership`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedMembership {
    /// The log index of the membership entry.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// The bytes given to [`Store::apply_membership`].
    pub membership: Vec<u8>,
}

/// Group commit of log appends: which index is durable, and whether a sync is running.
pub(super) struct LogSync {
    state: Mutex<LogSyncState>,
    cv: Condvar,
}

struct LogSyncState {
    /// Every entry with an index <= this is durable.
    durable: u64,
    /// A syncer is at work.
    syncing: bool,
    /// Bumped by every truncation: a sync that started before one cannot vouch for entries
    /// appended after it (they may reuse the indexes it covered).
    epoch: u64,
    /// A sync failed: the log refuses further calls until reopened.
    poisoned: Option<String>,
}

impl LogSync {
    /// Everything up to `durable` is durable already (recovery synced the WAL).
    pub(super) fn new(durable: u64) -> LogSync {
        LogSync {
            state: Mutex::new(LogSyncState {
                durable,
                syncing: false,
                epoch: 0,
                poisoned: None,
            }),
            cv: Condvar::new(),
        }
    }
}

/// The log and its WAL, borrowed together from the writer.
fn parts(w: &mut Writer) -> Result<(&mut RaftLog, &mut Wal)> {
    match (w.log.as_mut(), w.wal.as_mut()) {
        (Some(log), Some(wal)) => Ok((log, wal)),
        _ => Err(not_replicated()),
    }
}

fn not_replicated() -> Error {
    Error::NotReplicated(
        "the Raft log calls need a store opened with Options::replicated(true)".into(),
    )
}

/// What a checkpoint of `w` records about the WAL if the store is replicated (`None` for a
/// local store): the log's start (or `purge`'s, for the checkpoint a purge writes) and the
/// unchanged generation. Syncs the WAL first: the meta is about to name an applied index, and
/// the log must still reach it after a crash (recovery checks that it does).
pub(super) fn replicated_position(
    w: &mut Writer,
    purge: Option<PurgePoint>,
) -> Result<Option<WalPosition>> {
    let (Some(log), Some(wal)) = (w.log.as_ref(), w.wal.as_ref()) else {
        return Ok(None);
    };
    wal.file.sync_data()?;
    let (offset, purged) = match purge {
        Some(p) => (p.offset, p.purged),
        None => (log.start_offset(wal), log.purged()),
    };
    Ok(Some(WalPosition {
        offset,
        salt: wal.salt(),
        purged: Some(purged),
        membership: w.membership.clone(),
    }))
}

impl Store {
    /// Refuses a local write on a replicated store (its writes are log entries).
    pub(super) fn check_local_write(&self, what: &'static str) -> Result<()> {
        if self.shared.opts.replicated {
            return Err(Error::ReplicatedWrite { what });
        }
        Ok(())
    }

    /// In a replicated store, refuses to apply an entry the log does not hold: the log must
    /// always reach the applied index (recovery re-applies from it).
    pub(super) fn check_in_log(&self, w: &Writer, index: u64) -> Result<()> {
        if let Some(log) = &w.log {
            let last = log.last().0;
            if index > last {
                return Err(Error::LogGap {
                    expected: last + 1,
                    got: index,
                });
            }
        }
        Ok(())
    }

    /// Makes the entry `seq` just applied visible: seals the working state and publishes it.
    /// Nothing waits for a sync (the entry's durability is the log's).
    pub(super) fn publish_applied(&self, w: &mut Writer, seq: u64) -> Result<()> {
        w.seq = seq;
        let snap = self.guard(w, |w| {
            w.pager.seal()?;
            Ok(make_snapshot(w))
        })?;
        let snap = Arc::new(snap);
        self.shared.live.register(&snap);
        self.publish(snap);
        let mut s = self.shared.sync.lock();
        s.durable_seq = s.durable_seq.max(seq);
        self.shared.sync_cv.notify_all();
        Ok(())
    }

    /// The writer, for a log call: the store must be open, replicated and not poisoned.
    fn log_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        self.check_writable()?;
        if !self.shared.opts.replicated {
            return Err(not_replicated());
        }
        let w = self.shared.writer.lock();
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        Ok(w)
    }

    /// Appends log entries `(index, term, payload)`; the first index must be the last one + 1
    /// ([`Error::LogGap`] otherwise: truncate first to replace a suffix). Returns the log's state
    /// after the append, read under the same lock (its `last` is the last entry appended), so a
    /// caller that keeps figures of the log needs no second [`Store::log_state`]. The entries
    /// are not durable yet: [`Store::wait_log_durable`] waits for that, sharing one fdatasync
    /// among every caller waiting at the time (group commit).
    ///
    /// A ring without room for an entry fails with [`Error::LogFull`] rather than overwrite
    /// unpurged entries; the entries before it stay appended. An I/O error poisons the store.
    pub fn log_append(&self, entries: &[(u64, u64, &[u8])]) -> Result<LogState> {
        let mut guard = self.log_writer()?;
        let w = &mut *guard;
        let durable = self.shared.log_sync.state.lock().durable;
        let (log, wal) = parts(w)?;
        match log.append(wal, entries, durable) {
            Ok(_) => Ok(log.state(wal)),
            Err(e @ (Error::LogGap { .. } | Error::LogFull { .. })) => Err(e),
            Err(e) => Err(self.poison(w, e)),
        }
    }

    /// Blocks until every log entry up to `index` is durable, syncing the WAL itself if no other
    /// caller is (group commit). An index past the log's last entry is [`Error::LogGap`].
    pub fn wait_log_durable(&self, index: u64) -> Result<()> {
        let sync = &self.shared.log_sync;
        let mut s = sync.state.lock();
        loop {
            if s.durable >= index {
                return Ok(());
            }
            if let Some(p) = &s.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            if s.syncing {
                sync.cv.wait(&mut s);
                continue;
            }
            s.syncing = true;
            let epoch = s.epoch;
            drop(s);
            let target = self.log_writer().and_then(|mut w| {
                let (log, wal) = parts(&mut w)?;
                let last = log.last().0;
                if index > last {
                    return Err(Error::LogGap {
                        expected: last + 1,
                        got: index,
                    });
                }
                Ok((last, wal.file.clone()))
            });
            let result = target.and_then(|(last, file)| match file.sync_data() {
                Ok(()) => Ok(last),
                Err(e) => {
                    let e = Error::from(e);
                    let mut w = self.shared.writer.lock();
                    Err(self.poison(&mut w, e))
                }
            });
            s = sync.state.lock();
            s.syncing = false;
            sync.cv.notify_all();
            match result {
                Ok(last) if s.epoch == epoch => s.durable = s.durable.max(last),
                Ok(_) => {} // a truncation intervened: sync again
                Err(e) => {
                    if let Error::Poisoned(p) = &e {
                        s.poisoned.get_or_insert_with(|| p.clone());
                    } else if !matches!(e, Error::LogGap { .. } | Error::Closed) {
                        s.poisoned.get_or_insert_with(|| e.to_string());
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The log entries with index in `[from, to)` (`to` is clamped to the last index + 1).
    /// Asking for a purged entry is [`Error::LogPurged`].
    pub fn log_read(&self, from: u64, to: u64) -> Result<Vec<LogEntry>> {
        let mut w = self.log_writer()?;
        let (log, wal) = parts(&mut w)?;
        log.read(wal, from, to)
    }

    /// The last entry, the last purged entry, and how full the WAL ring is.
    pub fn log_state(&self) -> Result<LogState> {
        let mut w = self.log_writer()?;
        let (log, wal) = parts(&mut w)?;
        Ok(log.state(wal))
    }

    /// Drops every log entry with an index `>= index`, durably before returning: after a crash
    /// at any point later, none of them is read back. Entries the state machine has applied
    /// cannot be dropped ([`Error::LogApplied`]; Raft never truncates committed entries). An
    /// index past the last entry changes nothing. Returns the log's state afterwards.
    pub fn log_truncate(&self, index: u64) -> Result<LogState> {
        let mut guard = self.log_writer()?;
        let w = &mut *guard;
        if index <= w.seq {
            return Err(Error::LogApplied {
                index,
                applied: w.seq,
            });
        }
        let (log, wal) = parts(w)?;
        if index > log.last().0 {
            // Nothing to drop, and nothing was synced: the durable index stays as it is.
            return Ok(log.state(wal));
        }
        let truncated = log.truncate(wal, index);
        let last = log.last().0;
        let state = log.state(wal);
        self.guard(w, |_| truncated)?;
        // Truncation synced the WAL: what is left is durable, nothing past it exists.
        let mut s = self.shared.log_sync.state.lock();
        s.durable = last;
        s.epoch += 1;
        Ok(state)
    }

    /// Forgets every log entry `<= index`: their space in the WAL ring may be reused. Only
    /// applied entries can go ([`Error::LogNotApplied`]), and first a checkpoint makes the main
    /// file hold the applied state and records the log's new start (so recovery never looks
    /// for a purged entry whose space was reused). An index at or below the last purge changes
    /// nothing. Returns the log's state afterwards.
    pub fn log_purge(&self, index: u64) -> Result<LogState> {
        let mut guard = self.log_writer()?;
        let w = &mut *guard;
        let applied = (w.seq, w.term);
        let point = {
            let (log, wal) = parts(w)?;
            log.purge_point(wal, index, applied)?
        };
        let Some(point) = point else {
            let (log, wal) = parts(w)?;
            return Ok(log.state(wal));
        };
        self.checkpoint_with(w, Some(point))?;
        let (log, wal) = parts(w)?;
        log.purge(wal, point);
        Ok(log.state(wal))
    }

    /// Stores the Raft vote (opaque bytes, at most 1024), durably before returning, in one of
    /// the WAL header's two alternating control slots.
    pub fn save_vote(&self, vote: &[u8]) -> Result<()> {
        let mut guard = self.log_writer()?;
        let w = &mut *guard;
        let (log, wal) = parts(w)?;
        let saved = log.save_vote(wal, vote);
        let last = log.last().0;
        match saved {
            Err(e @ Error::VoteTooLarge { .. }) => return Err(e),
            other => self.guard(w, |_| other)?,
        }
        // The vote's sync covered every entry appended so far.
        let mut s = self.shared.log_sync.state.lock();
        s.durable = s.durable.max(last);
        drop(s);
        self.shared.log_sync.cv.notify_all();
        Ok(())
    }

    /// Applies log entry `index` of `term` as a membership change: the entry changes no key
    /// (it is applied as [`Command::Noop`](crate::Command::Noop), taking its index), and
    /// `membership` (opaque bytes, at most 3840) becomes [`Store::applied_membership`]. It is
    /// durable with the applied index it belongs to: every checkpoint records both in the
    /// meta, so after a crash the store reports the membership as of its applied index, and
    /// re-applying the entries after it brings it up to date.
    pub fn apply_membership(&self, index: u64, term: u64, membership: &[u8]) -> Result<()> {
        if !self.shared.opts.replicated {
            return Err(not_replicated());
        }
        if membership.len() > MAX_MEMBERSHIP {
            return Err(Error::MembershipTooLarge {
                len: membership.len(),
                max: MAX_MEMBERSHIP,
            });
        }
        self.apply_entry(index, term, &crate::Command::Noop, Some(membership))?;
        Ok(())
    }

    /// Records the membership the applied state has when it did not come from an applied entry:
    /// after a snapshot was installed (a Raft snapshot carries its membership beside the state),
    /// this makes [`Store::applied_membership`] the snapshot's. `index` (the membership's log
    /// index) must not be past the applied index ([`Error::LogNotApplied`]). Durable before
    /// returning: it runs a checkpoint.
    pub fn set_applied_membership(&self, index: u64, term: u64, membership: &[u8]) -> Result<()> {
        let mut guard = self.log_writer()?;
        let w = &mut *guard;
        if membership.len() > MAX_MEMBERSHIP {
            return Err(Error::MembershipTooLarge {
                len: membership.len(),
                max: MAX_MEMBERSHIP,
            });
        }
        if index > w.seq {
            return Err(Error::LogNotApplied {
                index,
                applied: w.seq,
            });
        }
        w.membership = Some((index, term, membership.to_vec()));
        self.checkpoint_locked(w)
    }

    /// The membership applied last, with its log index and term; `None` if no membership entry
    /// was ever applied (or the store is not replicated).
    pub fn applied_membership(&self) -> Option<AppliedMembership> {
        let w = self.shared.writer.lock();
        w.membership
            .as_ref()
            .map(|(index, term, bytes)| AppliedMembership {
                index: *index,
                term: *term,
                membership: bytes.clone(),
            })
    }

    /// [`Store::install_snapshot`] for a replicated store, also recording the snapshot's
    /// membership (a Raft snapshot carries it beside the state) as the applied membership,
    /// atomically with the installed state.
    pub fn install_snapshot_with_membership(
        &self,
        from: &Path,
        index: u64,
        term: u64,
        membership: &[u8],
    ) -> Result<SnapshotInfo> {
        if !self.shared.opts.replicated {
            return Err(not_replicated());
        }
        self.install(from, false, Some((index, term, membership)))
    }

    /// Installs the verified snapshot copy at `tmp` into a replicated store, keeping its WAL
    /// (log and vote); the caller holds the writer lock and has checked the snapshot. A
    /// replicated store keeps its own database id: the id only binds the WAL to the file, and
    /// the cluster's identity is Raft's.
    ///
    /// 1. The copy's meta slots are rewritten as this store's replicated meta: its database id,
    ///    the snapshot's applied (index, term) and state, a log that is empty after the
    ///    snapshot's index and starts at the WAL's head, the WAL's salt, `membership`; synced.
    ///    A failure here removes the copy and changes nothing.
    /// 2. The copy is renamed over the store's file and the directory synced (the swap that
    ///    defrag and local installs use, keeping the WAL): the commit point.
    /// 3. The old log's entries past the snapshot, if any, are zeroed and synced; the log is
    ///    empty after the snapshot.
    ///
    /// A power cut before step 2 is durable leaves the old store (file, log and vote, as they
    /// were: nothing else was written). After it, the new file, whose meta names an empty log
    /// after the snapshot's index: recovery finds no entry at the WAL's old head (past the
    /// head no valid frame of a later index exists) and invalidates every frame past the
    /// snapshot's index (recovery step 6), whether or not step 3 ran. The vote is untouched.
    pub(super) fn install_into_log(
        &self,
        w: &mut Writer,
        tmp: &Path,
        file: &Arc<dyn StorageFile>,
        meta: &Meta,
        membership: Option<(u64, u64, &[u8])>,
    ) -> Result<()> {
        let shared = &*self.shared;
        let rewritten = (|| -> Result<()> {
            if let Some((_, _, m)) = membership {
                if m.len() > MAX_MEMBERSHIP {
                    return Err(Error::MembershipTooLarge {
                        len: m.len(),
                        max: MAX_MEMBERSHIP,
                    });
                }
            }
            let db_id = w.slots.db_id;
            let (_, wal) = parts(w)?;
            let ours = Meta {
                db_id,
                counter: meta.counter + 1,
                wal_offset: wal.head(),
                wal_salt: wal.salt(),
                replicated: true,
                purged: (meta.applied_seq, meta.applied_term),
                membership: membership.map(|(i, t, m)| (i, t, m.to_vec())),
                ..meta.clone()
            };
            let mut page = vec![0u8; shared.page_size];
            ours.encode(&mut page);
            file.write_all_at(&page, 0)?;
            file.write_all_at(&page, shared.page_size as u64)?;
            Ok(file.sync_data()?)
        })();
        if let Err(e) = rewritten {
            let _ = shared.storage.remove(tmp);
            return Err(e);
        }
        self.swap_main_file(w, tmp, file, WalAfterSwap::Keep)?;
        let purged = (meta.applied_seq, meta.applied_term);
        self.guard(w, |w| {
            let (log, wal) = parts(w)?;
            log.reset_after_install(wal, purged)
        })?;
        let mut s = shared.log_sync.state.lock();
        s.durable = purged.0;
        s.epoch += 1;
        Ok(())
    }

    /// The file system this store lives on ([`crate::Options::storage`]): a replicated store's
    /// Raft layer keeps its snapshot files there, beside the store, so that the install (which
    /// reads the received snapshot through it) and a simulated disk see them.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.shared.storage)
    }

    /// The last vote stored with [`Store::save_vote`], if any.
    pub fn read_vote(&self) -> Result<Option<Vec<u8>>> {
        let mut w = self.log_writer()?;
        let (log, _) = parts(&mut w)?;
        Ok(log.vote().map(<[u8]>::to_vec))
    }
}
