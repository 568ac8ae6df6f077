//! The Raft log of a replicated store: the WAL's frames hold log entries (index = sequence
//! number, term, an opaque payload the replication layer encodes) that are appended durably but
//! not applied; the replication layer applies committed entries with `Store::apply`.
//!
//! This module keeps the in-memory index of the log (where each unpurged entry's frame starts)
//! and implements the log operations on a [`Wal`]: append, read, truncate, purge, the vote, and
//! recovery. The store (`store/raftlog.rs`) adds locking, group commit and checkpoints.
//!
//! Invariants (see docs/design.md, "The Raft log"):
//! - the entries are `purged.0 + 1 ..= last`, consecutive, their frames in ring order from the
//!   WAL's tail to its head;
//! - no valid frame of the generation with a sequence number past `last` exists anywhere in the
//!   ring once an operation has returned (truncation zeroes the suffix and syncs; recovery
//!   zeroes whatever a crash left past the end and syncs), so a later append that reuses the
//!   space is never followed, on a scan, by a stale frame carrying the next sequence number;
//! - the vote and an unfinished truncation live in the WAL header's two control slots.

use std::collections::VecDeque;
use std::path::Path;

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::wal::{self, Control, Damage, Wal};

/// One log entry as [`Store::log_read`](crate::Store::log_read) returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its index (the WAL sequence number; at least 1).
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// The bytes the replication layer appended.
    pub payload: Vec<u8>,
}

/// What the log holds ([`Store::log_state`](crate::Store::log_state)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogState {
    /// (index, term) of the last purged entry; `None` if nothing was ever purged.
    pub last_purged: Option<(u64, u64)>,
    /// (index, term) of the last entry; the last purged one if the log is empty, `None` if the
    /// log never held anything.
    pub last: Option<(u64, u64)>,
    /// Bytes the unpurged entries occupy in the WAL ring.
    pub used_bytes: u64,
    /// The most the ring can hold ([`crate::Options::wal_capacity`] minus the header page).
    /// An append that does not fit fails with [`Error::LogFull`].
    pub capacity_bytes: u64,
}

/// Where an unpurged entry's frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    index: u64,
    term: u64,
    offset: u64,
}

/// A purge decided but not yet done: the log will start at `offset` (the frame after the
/// purged entry, or the head if none follows) with `purged` the last purged (index, term).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PurgePoint {
    pub(crate) offset: u64,
    pub(crate) purged: (u64, u64),
}

/// The log's in-memory index and control state.
pub(crate) struct RaftLog {
    entries: VecDeque<Loc>,
    purged: (u64, u64),
    control: Control,
}

fn some_id(id: (u64, u64)) -> Option<(u64, u64)> {
    (id.0 != 0).then_some(id)
}

impl RaftLog {
    /// An empty log after `purged` (a new replicated store, or one just converted from a local
    /// one), with no vote.
    pub(crate) fn empty(purged: (u64, u64)) -> RaftLog {
        RaftLog {
            entries: VecDeque::new(),
            purged,
            control: Control::default(),
        }
    }

    /// (index, term) of the last entry, or of the last purged one if the log is empty.
    pub(crate) fn last(&self) -> (u64, u64) {
        self.entries
            .back()
            .map_or(self.purged, |l| (l.index, l.term))
    }

    /// (index, term) of the last purged entry ((0, 0) = none).
    pub(crate) fn purged(&self) -> (u64, u64) {
        self.purged
    }

    /// Where the log starts in the WAL: the first unpurged entry's frame, or the write position
    /// if the log is empty. A checkpoint records it as the meta's WAL offset.
    pub(crate) fn start_offset(&self, wal: &Wal) -> u64 {
        self.entries.front().map_or(wal.head(), |l| l.offset)
    }

    /// The stored vote.
    pub(crate) fn vote(&self) -> Option<&[u8]> {
        self.control.vote.as_deref()
    }

    pub(crate) fn state(&self, wal: &Wal) -> LogState {
        LogState {
            last_purged: some_id(self.purged),
            last: some_id(self.last()),
            used_bytes: wal.used(),
            capacity_bytes: wal.max_bytes(),
        }
    }

    /// Appends `entries` (index, term, payload), which must continue the log. `durable` is the
    /// last index known durable (recorded in each frame for the damage rule). Returns the last
    /// index appended; nothing is synced. On [`Error::LogFull`] the entries before the one that
    /// did not fit stay appended.
    pub(crate) fn append(
        &mut self,
        wal: &mut Wal,
        entries: &[(u64, u64, &[u8])],
        durable: u64,
    ) -> Result<u64> {
        for &(index, term, payload) in entries {
            let expected = self.last().0 + 1;
            if index != expected {
                return Err(Error::LogGap {
                    expected,
                    got: index,
                });
            }
            let needed = Wal::frame_bytes(payload.len());
            let full = |wal: &Wal| Error::LogFull {
                needed,
                used: wal.used(),
                capacity: wal.max_bytes(),
            };
            if payload.len() > u32::MAX as usize || !wal.fits_at_all(payload.len()) {
                return Err(full(wal));
            }
            if !wal.append(index, term, durable, payload)? {
                return Err(full(wal));
            }
            // The frame ends at the new head (at the old head, or at the ring's start if the
            // append wrapped).
            self.entries.push_back(Loc {
                index,
                term,
                offset: wal.head() - needed,
            });
        }
        Ok(self.last().0)
    }

    /// The entries with index in `[from, to)` that the log holds.
    pub(crate) fn read(&self, wal: &Wal, from: u64, to: u64) -> Result<Vec<LogEntry>> {
        if from <= self.purged.0 && from < to {
            return Err(Error::LogPurged {
                index: from,
                purged: self.purged.0,
            });
        }
        let first = self.purged.0 + 1;
        let to = to.min(self.last().0 + 1);
        let mut out = Vec::new();
        let mut i = from;
        while i < to {
            let loc = self.entries[(i - first) as usize];
            out.push(LogEntry {
                index: loc.index,
                term: loc.term,
                payload: wal.read_at(loc.offset, loc.index, loc.term)?,
            });
            i += 1;
        }
        Ok(out)
    }

    /// Drops every entry `>= index`, durably before returning:
    ///
    /// 1. the control slot records "truncating at `index`" (synced): a crash from here on
    ///    recovers the log cut at `index`, whatever part of step 2 reached the disk;
    /// 2. the frames of the suffix are zeroed (the whole byte range, wrap markers included),
    ///    synced: no stale frame past the cut can be read again;
    /// 3. the control slot is cleared (synced): appends may reuse the space.
    ///
    /// The caller holds the writer lock throughout, so no append interleaves.
    pub(crate) fn truncate(&mut self, wal: &mut Wal, index: u64) -> Result<()> {
        let first = self.purged.0 + 1;
        if index > self.last().0 {
            return Ok(());
        }
        if index < first {
            return Err(Error::LogPurged {
                index,
                purged: self.purged.0,
            });
        }
        let pos = (index - first) as usize;
        let cut = self.entries[pos].offset;
        self.write_control(wal, index, self.control.vote.clone())?;
        wal.zero_until_head(cut)?;
        wal.file.sync_data()?;
        wal.set_head(cut);
        self.entries.truncate(pos);
        self.write_control(wal, 0, self.control.vote.clone())
    }

    /// Where the log would start after purging every entry `<= index`; `None` if nothing
    /// would change. `applied` is the state machine's last (index, term): a purge may not pass
    /// it ([`Error::LogNotApplied`]).
    pub(crate) fn purge_point(
        &self,
        wal: &Wal,
        index: u64,
        applied: (u64, u64),
    ) -> Result<Option<PurgePoint>> {
        if index > applied.0 {
            return Err(Error::LogNotApplied {
                index,
                applied: applied.0,
            });
        }
        if index <= self.purged.0 {
            return Ok(None);
        }
        let first = self.purged.0 + 1;
        let pos = (index - first) as usize;
        let purged = match self.entries.get(pos) {
            Some(l) => (l.index, l.term),
            // Past the log's end: only the applied entry itself can be named (after a
            // snapshot install the log can be shorter than what is applied).
            None if index == applied.0 => applied,
            None => {
                return Err(Error::LogGap {
                    expected: self.last().0 + 1,
                    got: index,
                })
            }
        };
        let offset = self.entries.get(pos + 1).map_or(wal.head(), |l| l.offset);
        Ok(Some(PurgePoint { offset, purged }))
    }

    /// Forgets the entries up to `point` (after a checkpoint recorded it as the log's start):
    /// the ring may reuse their space.
    pub(crate) fn purge(&mut self, wal: &mut Wal, point: PurgePoint) {
        while self
            .entries
            .front()
            .is_some_and(|l| l.index <= point.purged.0)
        {
            self.entries.pop_front();
        }
        self.purged = point.purged;
        wal.release_until(point.offset);
    }

    /// Empties the log after a snapshot at `purged` was installed: the log continues at
    /// `purged.0 + 1` from the WAL's head. If the old log held entries past the snapshot, its
    /// bytes are zeroed and synced first, so none of them can ever follow the new log on a scan.
    pub(crate) fn reset_after_install(&mut self, wal: &mut Wal, purged: (u64, u64)) -> Result<()> {
        if self.last().0 > purged.0 {
            if let Some(first) = self.entries.front() {
                if first.offset == wal.head() {
                    // A full ring: every byte of it is log.
                    wal.zero_ring()?;
                } else {
                    wal.zero_until_head(first.offset)?;
                }
                wal.file.sync_data()?;
            }
        }
        self.entries.clear();
        self.purged = purged;
        wal.release_until(wal.head());
        Ok(())
    }

    /// Stores `vote`, durably before returning.
    pub(crate) fn save_vote(&mut self, wal: &Wal, vote: &[u8]) -> Result<()> {
        if vote.len() > wal::MAX_VOTE {
            return Err(Error::VoteTooLarge {
                len: vote.len(),
                max: wal::MAX_VOTE,
            });
        }
        self.write_control(wal, 0, Some(vote.to_vec()))
    }

    fn write_control(&mut self, wal: &Wal, truncating: u64, vote: Option<Vec<u8>>) -> Result<()> {
        let next = Control {
            counter: self.control.counter + 1,
            truncating,
            vote,
        };
        wal::write_control(&*wal.file, wal.db_id(), &next)?;
        self.control = next;
        Ok(())
    }
}

/// Where a replicated store's log begins, from its meta.
pub(crate) struct LogStart {
    /// WAL offset of the first unpurged entry.
    pub(crate) offset: u64,
    /// (index, term) of the last purged entry.
    pub(crate) purged: (u64, u64),
    /// The generation's salt.
    pub(crate) salt: u64,
    pub(crate) db_id: u64,
}

/// Recovers a replicated store's log from its WAL, which must exist (it holds the log and the
/// vote). Reads the entries from `start`, cuts an unfinished truncation, decides damage as
/// local recovery does (`on_damage` refuses, or keeps a copy for a repair, given the WAL's
/// bytes), checks the log reaches the applied index `applied`, invalidates every frame a crash
/// left past the end, and syncs the WAL (so every recovered entry is durable before a new
/// frame can claim it was). Returns the log and the WAL positioned after its last entry.
pub(crate) fn recover(
    storage: &dyn Storage,
    wal_path: &Path,
    start: &LogStart,
    applied: u64,
    capacity: u64,
    on_damage: impl FnOnce(&[u8], Damage) -> Result<()>,
) -> Result<(RaftLog, Wal)> {
    let Some((file, map, len)) = Wal::open_existing(storage, wal_path, start.db_id)? else {
        return Err(Error::corrupt(format!(
            "{}: the WAL of a replicated store is missing; it held the Raft log and vote",
            wal_path.display()
        )));
    };
    let mut control = wal::read_control(&*file, start.db_id)?;
    let scan = Wal::scan(
        map.bytes(),
        start.offset,
        start.purged.0 + 1,
        start.salt,
        start.db_id,
    );
    let (mut records, mut damage, mut end, mut wrapped) =
        (scan.records, scan.damage, scan.end, scan.wrapped);
    if control.truncating != 0 {
        // A truncation at `cut` did not finish: the log is cut there (the truncation was
        // asked for, so either outcome is allowed; this one needs no stale frame). Frames past
        // the cut that survived are stale and witness nothing about entries at or past it.
        let cut = control.truncating;
        let reached = start.purged.0 + records.len() as u64 + 1 >= cut;
        if reached {
            damage = None;
            if let Some(pos) = records.iter().position(|r| r.seq >= cut) {
                end = records[pos].offset;
                wrapped = end < start.offset;
                records.truncate(pos);
            }
        }
    }
    if let Some(d) = damage {
        on_damage(map.bytes(), d)?;
    }
    let last = records.last().map_or(start.purged.0, |r| r.seq);
    if last < applied {
        return Err(Error::corrupt(format!(
            "{}: the Raft log ends at index {last}, before the applied index {applied}",
            wal_path.display()
        )));
    }
    let stale = wal::frames_from(map.bytes(), last + 1, start.salt, start.db_id);
    drop(map);
    let wal = Wal::resume(
        file,
        len,
        capacity,
        end,
        start.offset,
        wrapped,
        start.salt,
        start.db_id,
    );
    for off in stale {
        wal.zero_frame_header(off)?;
    }
    wal.file.sync_data()?;
    let mut log = RaftLog {
        entries: records
            .iter()
            .map(|r| Loc {
                index: r.seq,
                term: r.term,
                offset: r.offset,
            })
            .collect(),
        purged: start.purged,
        control: control.clone(),
    };
    if control.truncating != 0 {
        control.truncating = 0;
        log.write_control(&wal, 0, control.vote)?;
    }
    Ok((log, wal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;
    use crate::wal::WAL_START;

    const SALT: u64 = 99;
    const DB: u64 = 7;

    fn path(dir: &tempfile::TempDir) -> std::path::PathBuf {
        dir.path().join("t-wal")
    }

    fn fresh(dir: &tempfile::TempDir, cap: u64) -> (RaftLog, Wal) {
        let wal = Wal::create(&FsStorage, &path(dir), DB, cap, SALT).unwrap();
        (RaftLog::empty((0, 0)), wal)
    }

    fn start(offset: u64, purged: (u64, u64)) -> LogStart {
        LogStart {
            offset,
            purged,
            salt: SALT,
            db_id: DB,
        }
    }

    fn reopen(dir: &tempfile::TempDir, from: &LogStart, applied: u64) -> Result<(RaftLog, Wal)> {
        recover(&FsStorage, &path(dir), from, applied, 1 << 20, |_, d| {
            Err(Error::corrupt(format!("damage {d:?}")))
        })
    }

    fn payload(index: u64, term: u64) -> Vec<u8> {
        format!("entry {index} of term {term}").into_bytes()
    }

    fn append(log: &mut RaftLog, wal: &mut Wal, range: std::ops::RangeInclusive<u64>, term: u64) {
        let bufs: Vec<(u64, Vec<u8>)> = range.map(|i| (i, payload(i, term))).collect();
        let entries: Vec<(u64, u64, &[u8])> =
            bufs.iter().map(|(i, p)| (*i, term, &p[..])).collect();
        let durable = log.last().0;
        log.append(wal, &entries, durable).unwrap();
    }

    fn ids(log: &RaftLog, wal: &Wal) -> Vec<(u64, u64)> {
        let (first, last) = (log.purged().0 + 1, log.last().0);
        let entries = log.read(wal, first, last + 1).unwrap();
        for e in &entries {
            assert_eq!(e.payload, payload(e.index, e.term));
        }
        entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn append_read_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut wal) = fresh(&dir, 1 << 20);
        assert_eq!(log.state(&wal).last, None);
        append(&mut log, &mut wal, 1..=5, 2);
        assert_eq!(ids(&log, &wal), (1..=5).map(|i| (i, 2)).collect::<Vec<_>>());
        assert_eq!(log.read(&wal, 3, 100).unwrap().len(), 3);
        assert!(log.read(&wal, 4, 4).unwrap().is_empty());
        let gap = log.append(&mut wal, &[(7, 2, b"x")], 0).unwrap_err();
        assert!(matches!(
            gap,
            Error::LogGap {
                expected: 6,
                got: 7
            }
        ));
        let st = log.state(&wal);
        assert_eq!((st.last, st.last_purged), (Some((5, 2)), None));
        assert!(st.used_bytes > 0 && st.capacity_bytes == (1 << 20) - WAL_START);
        wal.file.sync_data().unwrap();
        let (log, wal) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert_eq!(ids(&log, &wal).len(), 5);
    }

    #[test]
    fn truncate_drops_the_suffix_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut wal) = fresh(&dir, 1 << 20);
        append(&mut log, &mut wal, 1..=10, 1);
        log.truncate(&mut wal, 6).unwrap();
        assert_eq!(log.last(), (5, 1));
        // A shorter replacement: the old frames 7.. would otherwise sit right behind it.
        append(&mut log, &mut wal, 6..=6, 3);
        wal.file.sync_data().unwrap();
        let (log, wal) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        let mut want: Vec<_> = (1..=5).map(|i| (i, 1)).collect();
        want.push((6, 3));
        assert_eq!(ids(&log, &wal), want);
        // Truncating past the end changes nothing; into the purged prefix is refused.
        let (mut log, mut wal) = (log, wal);
        log.truncate(&mut wal, 7).unwrap();
        assert_eq!(log.last(), (6, 3));
        let p = log.purge_point(&wal, 2, (6, 3)).unwrap().unwrap();
        log.purge(&mut wal, p);
        assert!(matches!(
            log.truncate(&mut wal, 2),
            Err(Error::LogPurged {
                index: 2,
                purged: 2
            })
        ));
    }

    #[test]
    fn an_unfinished_truncation_cuts_the_log_without_reporting_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut wal) = fresh(&dir, 1 << 20);
        append(&mut log, &mut wal, 1..=10, 1);
        wal.file.sync_data().unwrap();
        let offsets: Vec<u64> = log.entries.iter().map(|l| l.offset).collect();
        // Step 1 done, step 2 torn: only frame 7's header was zeroed. Frames 8..10 say 7 was
        // durable when they were written: without the marker this reads as damage.
        log.write_control(&wal, 4, None).unwrap();
        wal.zero_frame_header(offsets[6]).unwrap();
        let (log, wal) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert_eq!(log.last(), (3, 1));
        assert_eq!(
            log.control.truncating, 0,
            "recovery finishes the truncation"
        );
        drop((log, wal));
        let (log, _) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert_eq!(log.last(), (3, 1));
        // The same hole without a truncation in progress is damage.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut wal) = fresh(&dir, 1 << 20);
        for i in 1..=10 {
            append(&mut log, &mut wal, i..=i, 1);
        }
        wal.zero_frame_header(log.entries[6].offset).unwrap();
        assert!(reopen(&dir, &start(WAL_START, (0, 0)), 0).is_err());
    }

    #[test]
    fn recovery_invalidates_frames_past_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut wal) = fresh(&dir, 1 << 20);
        append(&mut log, &mut wal, 1..=4, 1);
        wal.file.sync_data().unwrap();
        // 5..=8 appended in one unsynced group; a power cut lost frame 5 only.
        append(&mut log, &mut wal, 5..=8, 1);
        wal.zero_frame_header(log.entries[4].offset).unwrap();
        let (mut log, mut wal) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert_eq!(log.last(), (4, 1));
        // A new entry 5 of the same size lands where the old one was; the old 6 behind it was
        // zeroed by the recovery, so it can never continue the log.
        append(&mut log, &mut wal, 5..=5, 1);
        wal.file.sync_data().unwrap();
        let (log, _) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert_eq!(log.last(), (5, 1));
    }

    #[test]
    fn the_log_must_reach_the_applied_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut wal) = fresh(&dir, 1 << 20);
        append(&mut log, &mut wal, 1..=3, 1);
        wal.file.sync_data().unwrap();
        assert!(reopen(&dir, &start(WAL_START, (0, 0)), 3).is_ok());
        assert!(matches!(
            reopen(&dir, &start(WAL_START, (0, 0)), 4),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn votes_survive_and_a_torn_slot_keeps_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, wal) = fresh(&dir, 1 << 20);
        assert_eq!(log.vote(), None);
        log.save_vote(&wal, b"term 3 for node 2").unwrap();
        log.save_vote(&wal, b"term 4 for node 1").unwrap();
        let (log, wal) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert_eq!(log.vote(), Some(&b"term 4 for node 1"[..]));
        // A torn write of the next vote (counter 3 goes to slot 1) leaves the last one.
        let next = log.control.counter + 1;
        wal.file
            .write_all_at(&[0xab; 100], super::wal::CONTROL_SLOTS[(next % 2) as usize])
            .unwrap();
        drop((log, wal));
        let (mut log, wal) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert_eq!(log.vote(), Some(&b"term 4 for node 1"[..]));
        log.save_vote(&wal, b"term 5").unwrap();
        let (log, _) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert_eq!(log.vote(), Some(&b"term 5"[..]));
        let big = vec![0u8; wal::MAX_VOTE + 1];
        let (mut log, wal) = reopen(&dir, &start(WAL_START, (0, 0)), 0).unwrap();
        assert!(matches!(
            log.save_vote(&wal, &big),
            Err(Error::VoteTooLarge { .. })
        ));
    }

    #[test]
    fn a_full_ring_refuses_until_purged_and_the_log_wraps() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut wal) = fresh(&dir, 1 << 20);
        let big = vec![7u8; 60_000];
        let mut index = 1;
        let full = loop {
            match log.append(&mut wal, &[(index, 1, &big)], index - 1) {
                Ok(_) => index += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(full, Error::LogFull { .. }), "{full}");
        assert!(index > 10);
        // Purge half, append past the ring's end: the log wraps and reads back.
        let p = log
            .purge_point(&wal, index / 2, (index - 1, 1))
            .unwrap()
            .unwrap();
        log.purge(&mut wal, p);
        let purged = log.purged();
        let start_at = log.start_offset(&wal);
        for _ in 0..3 {
            log.append(&mut wal, &[(index, 1, &big)], index - 1)
                .unwrap();
            index += 1;
        }
        assert!(wal.head() < wal.tail(), "the ring wrapped");
        wal.file.sync_data().unwrap();
        let (log, wal) = reopen(&dir, &start(start_at, purged), 0).unwrap();
        assert_eq!(log.last().0, index - 1);
        assert_eq!(
            log.read(&wal, purged.0 + 1, index).unwrap().len() as u64,
            index - 1 - purged.0
        );
        assert!(matches!(
            log.read(&wal, purged.0, index),
            Err(Error::LogPurged { .. })
        ));
        assert!(matches!(
            log.purge_point(&wal, index, (index - 2, 1)),
            Err(Error::LogNotApplied { .. })
        ));
    }
}
