//! The write API and the commit pipeline: every local write (put, delete, batch, txn,
//! compact, lease grant/revoke) and every replicated entry ([`Store::apply`]) goes through
//! `commit_with` → `begin_commit` → [`command::apply`] → `end_commit`, under the writer lock.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::lease::LeaseClock;
use super::{make_snapshot, Store, Writer};
use crate::command::{self, Applied, ApplyError, Command, CommandResponse, Origin};
use crate::error::{Error, Result};
use crate::keyspace::{self, Limits};
use crate::options::Durability;
use crate::profile;
use crate::record::{self, Payload};
use crate::txn::{Txn, TxnResponse};
use crate::types::{
    BatchResponse, DeleteResponse, OpResponse, PutOp, PutResponse, Range, Revision, WriteOp,
};

/// The error for a command answered with a response of another kind (an engine bug).
pub(super) fn mismatched_response(what: &str, got: &CommandResponse) -> Error {
    Error::corrupt(format!("internal: a {what} was answered with {got:?}"))
}

pub(super) fn poison_message(e: &Error) -> String {
    e.to_string()
}

impl Store {
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
        self.check_local_write("a batch, put or delete")?;
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
        let r = self.decide_compaction(revision)?;
        // The decision is durable; the rest of the work, in steps (see `keyspace/compact.rs`).
        self.finish_compaction()?;
        Ok(r)
    }

    /// The decision of [`Store::compact`] alone (the compact revision rises, durably); the
    /// steps are left to the caller, or to the background thread's paced ones.
    pub(super) fn decide_compaction(&self, revision: Revision) -> Result<Revision> {
        self.check_writable()?;
        self.check_local_write("compact")?;
        let command = Command::Compact(revision);
        let response = self.commit_with(|w| self.commit_command(w, &command))?;
        match response {
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
        self.check_local_write("a transaction")?;
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

    /// Applies `command` as log entry `index` of `term`: the state machine's entry point for
    /// replicated commits, through the same path as local commits and replay.
    ///
    /// `index` must be the next one, `applied().0 + 1` (else [`Error::OutOfOrder`]). The entry
    /// always takes its index: a command the engine refuses (a missing lease, a compacted
    /// revision, ...) changes nothing and is logged as a no-op, and the refusal is returned, the
    /// same on every replica that applies the same log. Returns once the entry is durable, like
    /// a local commit. Admission (sizes, limits, quota, picking a lease id) is the proposer's
    /// job and is not repeated here.
    ///
    /// In a replicated store ([`crate::Options::replicated`]) the entry must be in the log
    /// already (else [`Error::LogGap`]): nothing is written, readers see the new state at
    /// once, and the applied state becomes durable with the next checkpoint (until then the
    /// log holds it, and recovery re-applies it).
    pub fn apply(&self, index: u64, term: u64, command: &Command) -> Result<CommandResponse> {
        self.apply_entry(index, term, command, None)
    }

    /// [`Store::apply`], recording `membership` as the applied membership if it is `Some`
    /// (and the entry is applied).
    pub(super) fn apply_entry(
        &self,
        index: u64,
        term: u64,
        command: &Command,
        membership: Option<&[u8]>,
    ) -> Result<CommandResponse> {
        self.check_writable()?;
        let outcome = self.commit_with(|w| {
            let expected = w.seq + 1;
            if index != expected {
                return Err(Error::OutOfOrder {
                    expected,
                    got: index,
                });
            }
            self.check_in_log(w, index)?;
            let seq = self.begin_commit(w)?;
            w.term = term;
            let (outcome, record) = match self.apply_locked(w, command) {
                Ok(applied) => (Ok(applied.response), applied.record),
                Err(ApplyError::Failed(e)) => return Err(e),
                Err(ApplyError::Refused(e)) => (Err(e), None),
            };
            if let Some(m) = membership {
                w.membership = Some((index, term, m.to_vec()));
            }
            if self.shared.opts.replicated {
                self.publish_applied(w, seq)?;
                return Ok((outcome, None));
            }
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

    /// Runs `f` under the writer lock (counted as a committer, for the group-commit leader),
    /// then waits for the durability of the sequence number it returns, if any.
    pub(super) fn commit_with<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<(T, Option<u64>)>,
    ) -> Result<T> {
        self.shared.committing.fetch_add(1, Ordering::AcqRel);
        let t = Instant::now();
        let mut guard = self.shared.writer.lock();
        profile::add(&self.shared.timers.writer_wait, t);
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
    pub(super) fn commit_command(
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
        let t = Instant::now();
        let applied = command::apply(&mut w.pager, &mut w.state, command, Origin::New);
        profile::add(&self.shared.timers.apply, t);
        let applied = match applied {
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
    /// releases pages no snapshot needs any more, and numbers the commit (its frees are tagged
    /// with the next snapshot generation, set when the last snapshot was made).
    fn begin_commit(&self, w: &mut Writer) -> Result<u64> {
        self.check_writable()?;
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        if let Some(oldest) = self.shared.live.oldest() {
            w.pager.alloc.release_readers(oldest);
        }
        Ok(w.seq + 1)
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
        let fits = wal.fits_at_all(payload.encoded_len());
        let encoded = if fits { Some(payload.encode()) } else { None };
        let mut appended = match &encoded {
            Some(record) => {
                let t = Instant::now();
                let result = wal.append(seq, w.term, durable, record);
                profile::add(&shared.timers.wal_append, t);
                self.guard(w, |_| result)?
            }
            None => false,
        };
        if let (false, Some(record)) = (appended, &encoded) {
            // The WAL is full. A background checkpoint whose I/O is in flight frees the WAL
            // before its start when it finishes (about the part before the threshold): wait for
            // that, under the writer lock, rather than run a second checkpoint here, whose
            // fsync would also write every page sealed since the first one started.
            if shared.checkpoint_pending() {
                let t = Instant::now();
                shared.drain_checkpoint(w)?;
                let durable = shared.sync.lock().durable_seq;
                let term = w.term;
                if let Some(wal) = w.wal.as_mut() {
                    let result = wal.append(seq, term, durable, record);
                    appended = self.guard(w, |_| result)?;
                }
                profile::add(&shared.timers.wal_full_drain, t);
            }
        }
        let fraction = shared.opts.checkpoint_wal_fraction;
        let past_threshold = w
            .wal
            .as_ref()
            .is_some_and(|wal| wal.used() > (wal.max_bytes() as f64 * fraction) as u64);
        if !appended {
            // The WAL is still full, or too small for this record: a checkpoint under the writer
            // lock makes this commit (and all before it) durable in the main file. It runs here, in
            // the committing thread, so the commit's acknowledgement waits for it rather than
            // for a WAL sync.
            let t = Instant::now();
            let result = self.checkpoint_locked(w);
            profile::add(&shared.timers.wal_full_checkpoint, t);
            result?;
            return Ok(None);
        }
        if past_threshold {
            // The background thread checkpoints while commits go on; the WAL keeps room for
            // them (the other part of it), and if it fills first the branch above waits.
            self.request_checkpoint();
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
    pub(super) fn guard<T>(
        &self,
        w: &mut Writer,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<T> {
        f(w).map_err(|e| self.poison(w, e))
    }

    /// Poisons the writer with `e` (see [`Store::guard`]) and returns `e`.
    pub(super) fn poison(&self, w: &mut Writer, e: Error) -> Error {
        w.poisoned = Some(poison_message(&e));
        self.shared
            .sync
            .lock()
            .poisoned
            .get_or_insert_with(|| poison_message(&e));
        self.shared.sync_cv.notify_all();
        e
    }
}
