//! The write-ahead log: a preallocated ring of checksummed frames.
//!
//! Appends are `pwrite`s into the zero-filled, preallocated file, and recovery reads the log
//! through a memory map. (Appending through a shared writable map was measured at about ten times
//! the cost per durable commit on ext4 — 0.47 ms against 0.044 ms for pwrite + fdatasync, see
//! docs/benchmarks.md — because each write fault on a cleaned page goes through the file
//! system's page_mkwrite path; so the map is used for reading only.)
//!
//! File layout: a 4 KiB header, then the ring `[WAL_START, capacity)`.
//!
//! ```text
//! header:  0  8  magic "etchwal\x1a"
//!          8  4  version (1)
//!         12  4  reserved (0)
//!         16  8  database id (must match the main file's meta)
//!         24  4  crc32 of bytes [0, 24)
//!
//! frame (8-byte aligned):
//!          0  4  crc32 of (salt | db id | bytes [4, 32) | payload)
//!          4  4  payload length
//!          8  8  sequence number (the Raft index, later); consecutive, starting after the
//!                meta's last applied sequence number
//!         16  8  term (0 without Raft)
//!         24  1  kind: 1 = commit record, 2 = wrap marker (continue at WAL_START)
//!         25  1  flags: bit 0 = the durable-lag field is set (0 in WALs of earlier builds)
//!         26  2  zero
//!         28  4  durable lag: seq minus the highest sequence number that was durable when this
//!                frame was appended (saturating; u32::MAX = unknown)
//!         32  .  payload, zero-padded to a multiple of 8
//! ```
//!
//! Recovery reads frames from the meta's WAL offset while each frame's checksum holds and its
//! sequence number is the next expected one; the first frame that fails either test ends the
//! log. That drops torn tails and stale frames from before the ring last wrapped or from an
//! earlier generation (each generation mixes a fresh salt into the checksum).
//!
//! Where the log ends, the rest of the ring is searched for valid frames of the same generation
//! with a later sequence number. Unsynced writes reach the disk in any order, so after a power
//! cut such frames can follow a hole legitimately — but only if the frame at the hole was never
//! durable. Each frame records which sequence number was durable when it was appended (its
//! *durable lag*), so a later frame that says the missing one was already durable proves that an
//! acknowledged record was damaged: that is [`Damage`], which open refuses unless asked to
//! repair. Truncating an uncommitted suffix (Raft) is moving `head` back to a frame boundary;
//! purging a checkpointed prefix is moving `tail` forward.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::page::{get_u32, get_u64, put_u32, put_u64};
use crate::storage::{Mapping, Storage, StorageFile};

/// First byte of the ring.
pub(crate) const WAL_START: u64 = 4096;
const FRAME_HEADER: u64 = 32;
const WAL_MAGIC: [u8; 8] = *b"etchwal\x1a";
const WAL_VERSION: u32 = 1;
const KIND_COMMIT: u8 = 1;
const KIND_WRAP: u8 = 2;
/// Frame flag: the durable-lag field (bytes 28..32) is set.
const FLAG_DURABLE_LAG: u8 = 1;
/// A lag that does not fit (or is not known) is stored as this and proves nothing.
const LAG_UNKNOWN: u32 = u32::MAX;
/// A new WAL starts this large (or at its capacity, if smaller) and doubles as needed. Every
/// open creates the WAL anew, zero-filled (a local store's is synced by its first append), so
/// this is written by every open: 256 KiB keeps that write small, while a busy writer grows
/// the WAL in a few doublings.
const INITIAL_BYTES: u64 = 256 << 10;
/// The most one growth adds. A growth zero-fills and syncs the new part while a commit waits
/// (the commit that found no room), so it is bounded: doubling a 32 MiB WAL to the default
/// 64 MiB held one commit for 105 ms (docs/benchmarks.md, "fresh memory"); a step writes and
/// syncs at most a quarter of that.
const MAX_GROWTH: u64 = 8 << 20;

/// A record read back during recovery.
pub(crate) struct ScannedRecord {
    pub(crate) seq: u64,
    pub(crate) term: u64,
    /// Where its frame starts in the WAL.
    pub(crate) offset: u64,
    pub(crate) payload: Vec<u8>,
}

/// Where and how badly a WAL is damaged: the log ends at `offset`, yet valid frames of the same
/// generation follow, at least one of them written after the missing record was durable (or
/// written by an earlier build that did not record durability, which cannot prove otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset in the WAL where the first unreadable frame starts.
    pub offset: u64,
    /// Sequence number of the last record read intact (the meta's applied one if none was).
    pub last_good_seq: u64,
    /// Valid records of this generation after the damage: records that replay up to the damage
    /// drops.
    pub records_after: u64,
}

/// The outcome of reading a WAL: the records of the unbroken log, and the damage that ended it
/// if the end is not a torn tail.
pub(crate) struct Scan {
    pub(crate) records: Vec<ScannedRecord>,
    pub(crate) damage: Option<Damage>,
    /// Offset right after the last record read (where the next frame would go).
    pub(crate) end: u64,
    /// The scan went round the ring (followed a wrap marker or ran off the end) before `end`.
    pub(crate) wrapped: bool,
}

/// An existing WAL opened for recovery: the file, a read-only map of it, its usable length.
pub(crate) type ExistingWal = (Arc<dyn StorageFile>, Box<dyn Mapping>, u64);

/// The open WAL. Only the writer (under the writer lock) appends; syncing needs only `file`.
pub(crate) struct Wal {
    pub(crate) file: Arc<dyn StorageFile>,
    /// Frame being written (reused to avoid an allocation per commit).
    buf: Vec<u8>,
    len: u64,
    max_len: u64,
    /// Next write offset.
    head: u64,
    /// Offset of the oldest record not yet covered by a durable checkpoint.
    tail: u64,
    /// True when `head` has wrapped around and lies behind `tail`.
    wrapped: bool,
    salt: u64,
    db_id: u64,
    /// Set when the WAL was created without syncing it (see [`Wal::create_unsynced`]): the
    /// storage and path whose file and directory entry must be synced before the first frame
    /// is appended.
    unsynced: Option<(Arc<dyn Storage>, std::path::PathBuf)>,
}

fn frame_len(payload: usize) -> u64 {
    FRAME_HEADER + (payload as u64).next_multiple_of(8)
}

fn frame_crc(salt: u64, db_id: u64, header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(&db_id.to_le_bytes());
    h.update(&header[4..FRAME_HEADER as usize]);
    h.update(payload);
    h.finalize()
}

fn write_zeros(file: &dyn StorageFile, from: u64, to: u64) -> Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut off = from;
    while off < to {
        let n = (to - off).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// A frame whose header is sane and whose checksum holds.
struct Frame<'a> {
    seq: u64,
    term: u64,
    kind: u8,
    flags: u8,
    lag: u32,
    /// Bytes the frame occupies, padding included.
    len: u64,
    payload: &'a [u8],
}

/// The valid frame at `off`, if there is one: the header fits, the payload fits, the reserved
/// bytes are zero and the checksum (with this generation's salt and the database id) holds.
fn read_frame(map: &[u8], off: u64, salt: u64, db_id: u64) -> Option<Frame<'_>> {
    let len = map.len() as u64;
    if off + FRAME_HEADER > len {
        return None;
    }
    let h = &map[off as usize..(off + FRAME_HEADER) as usize];
    let plen = get_u32(h, 4) as u64;
    let flen = FRAME_HEADER + plen.next_multiple_of(8);
    if off + flen > len || h[25] & !FLAG_DURABLE_LAG != 0 || h[26] != 0 || h[27] != 0 {
        return None;
    }
    let payload = &map[(off + FRAME_HEADER) as usize..(off + FRAME_HEADER + plen) as usize];
    if frame_crc(salt, db_id, h, payload) != get_u32(h, 0) {
        return None;
    }
    Some(Frame {
        seq: get_u64(h, 8),
        term: get_u64(h, 16),
        kind: h[24],
        flags: h[25],
        lag: get_u32(h, 28),
        len: flen,
        payload,
    })
}

/// Largest distance past the missing sequence number at which a frame still counts as part of
/// the lost suffix (a larger one would be a coincidence, not a record of this log).
const MAX_SEQ_AHEAD: u64 = 1 << 32;

/// The log ended at `end` with `missing` the first sequence number not found. Searches the whole
/// ring for valid commit frames of this generation with `seq >= missing`: frames appended after
/// the missing one. If any of them was appended when `missing` was already durable (or cannot
/// say, being from an earlier build), an acknowledged record was lost: damage. Otherwise every
/// such frame was written after an unsynced hole and never acknowledged, and dropping them with
/// the hole is what dropping a torn tail means.
///
/// Cost: one pass over the ring in 8-byte steps with a cheap header filter before any checksum;
/// it runs only when a WAL is recovered, never on a clean open.
fn damage_after(map: &[u8], end: u64, missing: u64, salt: u64, db_id: u64) -> Option<Damage> {
    let len = map.len() as u64;
    let mut after = 0u64;
    let mut proven_durable = false;
    let mut off = WAL_START;
    while off + FRAME_HEADER <= len {
        let h = &map[off as usize..(off + FRAME_HEADER) as usize];
        let seq = get_u64(h, 8);
        if seq < missing || seq - missing >= MAX_SEQ_AHEAD || h[24] != KIND_COMMIT {
            off += 8;
            continue;
        }
        let Some(frame) = read_frame(map, off, salt, db_id) else {
            off += 8;
            continue;
        };
        after += 1;
        let durable_then = if frame.flags & FLAG_DURABLE_LAG == 0 {
            u64::MAX // an earlier build's frame: it cannot prove the hole was never durable
        } else if frame.lag == LAG_UNKNOWN {
            0
        } else {
            frame.seq.saturating_sub(frame.lag as u64)
        };
        if durable_then >= missing {
            proven_durable = true;
        }
        off += frame.len;
    }
    proven_durable.then_some(Damage {
        offset: end,
        last_good_seq: missing - 1,
        records_after: after,
    })
}

impl Wal {
    /// Path of the WAL beside a main file: `<file>-wal`.
    pub(crate) fn path_for(main: &Path) -> std::path::PathBuf {
        let mut s = main.as_os_str().to_owned();
        s.push("-wal");
        s.into()
    }

    /// Opens an existing WAL for recovery. Returns `None` if there is none or it holds nothing
    /// that could be acknowledged (a WAL whose header never became durable).
    pub(crate) fn open_existing(
        storage: &dyn Storage,
        path: &Path,
        db_id: u64,
    ) -> Result<Option<ExistingWal>> {
        let file = match storage.open(path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let len = file.len()?;
        if len < WAL_START + FRAME_HEADER {
            return Ok(None);
        }
        let mut header = [0u8; 28];
        file.read_exact_at(&mut header, 0)?;
        if header.iter().all(|&b| b == 0) {
            return Ok(None); // created but never initialised: nothing was acknowledged from it
        }
        if header[0..8] != WAL_MAGIC || crc32fast::hash(&header[..24]) != get_u32(&header, 24) {
            return Err(Error::corrupt(format!(
                "{}: WAL header is damaged",
                path.display()
            )));
        }
        if get_u32(&header, 8) > WAL_VERSION {
            return Err(Error::corrupt(format!(
                "{}: WAL written by a newer etch",
                path.display()
            )));
        }
        if get_u64(&header, 16) != db_id {
            return Err(Error::corrupt(format!(
                "{}: WAL belongs to a different database; move it away to open without it",
                path.display()
            )));
        }
        let len = len - len % 8;
        let map = file.map(len as usize, false)?;
        Ok(Some((file, map, len)))
    }

    /// Reads the records after `start` that continue the sequence at `expected_seq`, then
    /// decides whether what ended the log is a torn tail or damage (see the module docs).
    pub(crate) fn scan(
        map: &[u8],
        start: u64,
        mut expected_seq: u64,
        salt: u64,
        db_id: u64,
    ) -> Scan {
        let len = map.len() as u64;
        let mut records = Vec::new();
        if start < WAL_START || start >= len {
            return Scan {
                records,
                damage: None,
                end: start,
                wrapped: false,
            };
        }
        let mut off = start;
        let mut wrapped = false;
        loop {
            if off + FRAME_HEADER > len {
                if wrapped {
                    break;
                }
                off = WAL_START;
                wrapped = true;
                continue;
            }
            let Some(frame) = read_frame(map, off, salt, db_id) else {
                break;
            };
            if frame.seq != expected_seq || (wrapped && off + frame.len > start) {
                break;
            }
            match frame.kind {
                KIND_WRAP if !wrapped => {
                    off = WAL_START;
                    wrapped = true;
                }
                KIND_COMMIT => {
                    records.push(ScannedRecord {
                        seq: frame.seq,
                        term: frame.term,
                        offset: off,
                        payload: frame.payload.to_vec(),
                    });
                    expected_seq += 1;
                    off += frame.len;
                }
                _ => break,
            }
        }
        let damage = damage_after(map, off, expected_seq, salt, db_id);
        // The position after the last record: a wrap marker or jump that no record followed
        // does not count (the next append decides again where its frame goes).
        let (end, wrapped) = match records.last() {
            Some(r) => {
                let end = r.offset + frame_len(r.payload.len());
                (end, r.offset < start)
            }
            None => (start, false),
        };
        Scan {
            records,
            damage,
            end,
            wrapped,
        }
    }

    /// Creates (or re-initialises) the WAL: zero-filled, so later overwrites change no file
    /// metadata and an fdatasync costs one data write, then synced along with its directory.
    pub(crate) fn create(
        storage: &dyn Storage,
        path: &Path,
        db_id: u64,
        max_len: u64,
        salt: u64,
    ) -> Result<Wal> {
        let wal = Wal::create_in_cache(storage, path, db_id, max_len, salt)?;
        wal.file.sync_all()?;
        storage.sync_dir(path)?;
        Ok(wal)
    }

    /// [`Wal::create`] without its two syncs (the file's and its directory's), which are done
    /// by the first [`Wal::append`] instead: what a local store's open uses, so that opening a
    /// store to read it waits for no disk flush. Until the first append nothing in this WAL is
    /// needed by anyone: the durable meta names a fresh salt at `WAL_START`, so whatever a
    /// power cut leaves of the file (missing, empty, zeros, the old WAL's frames of another
    /// salt) recovers as "no records" — the same states a crash inside `create` could leave.
    /// Not for a replicated store, whose WAL also holds the vote, written without `append`.
    pub(crate) fn create_unsynced(
        storage: Arc<dyn Storage>,
        path: &Path,
        db_id: u64,
        max_len: u64,
        salt: u64,
    ) -> Result<Wal> {
        let mut wal = Wal::create_in_cache(&*storage, path, db_id, max_len, salt)?;
        wal.unsynced = Some((storage, path.to_path_buf()));
        Ok(wal)
    }

    /// The writes of [`Wal::create`], unsynced.
    fn create_in_cache(
        storage: &dyn Storage,
        path: &Path,
        db_id: u64,
        max_len: u64,
        salt: u64,
    ) -> Result<Wal> {
        let file = storage.open(path, true)?;
        file.set_len(0)?;
        let len = INITIAL_BYTES.min(max_len).max(WAL_START + (64 << 10));
        write_zeros(&*file, 0, len)?;
        let mut header = [0u8; 28];
        header[0..8].copy_from_slice(&WAL_MAGIC);
        put_u32(&mut header, 8, WAL_VERSION);
        put_u64(&mut header, 16, db_id);
        let crc = crc32fast::hash(&header[..24]);
        put_u32(&mut header, 24, crc);
        file.write_all_at(&header, 0)?;
        Ok(Wal {
            file,
            buf: Vec::new(),
            len,
            max_len: max_len.max(len),
            head: WAL_START,
            tail: WAL_START,
            wrapped: false,
            salt,
            db_id,
            unsynced: None,
        })
    }

    /// The syncs [`Wal::create_unsynced`] left out, if they are still due: after this the
    /// file's header, its zero-filled length and its directory entry are durable, so a later
    /// `fdatasync` of a frame is all that frame needs.
    fn sync_created(&mut self) -> Result<()> {
        if let Some((storage, path)) = &self.unsynced {
            self.file.sync_all()?;
            storage.sync_dir(path)?;
            self.unsynced = None;
        }
        Ok(())
    }

    /// Bytes of records not yet covered by a checkpoint.
    pub(crate) fn used(&self) -> u64 {
        if self.wrapped || self.head < self.tail {
            (self.len - self.tail) + (self.head - WAL_START)
        } else {
            self.head - self.tail
        }
    }

    /// The most records the ring can ever hold, in bytes.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_len - WAL_START
    }

    /// Offset where the next record will start; a checkpoint records it as the replay start.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// True if a record of `payload` bytes could ever fit, even in an empty ring.
    pub(crate) fn fits_at_all(&self, payload: usize) -> bool {
        frame_len(payload) * 4 <= self.max_bytes()
    }

    /// Grows the file (zero-filled, synced) so that `need` more bytes fit after `head`: it
    /// doubles, by at most [`MAX_GROWTH`] at a time, unless one record needs more.
    fn grow(&mut self, need: u64) -> Result<bool> {
        if self.wrapped || self.head < self.tail {
            return Ok(false);
        }
        let mut new_len = self.len;
        while new_len < self.head + need && new_len < self.max_len {
            new_len = (new_len * 2).min(new_len + MAX_GROWTH).min(self.max_len);
        }
        if new_len < self.head + need {
            return Ok(false);
        }
        write_zeros(&*self.file, self.len, new_len)?;
        self.file.sync_all()?;
        self.len = new_len;
        Ok(true)
    }

    /// Appends one commit record. `durable` is the highest sequence number known durable now
    /// (recorded in the frame, so recovery can tell damage from a torn tail). Returns
    /// `Ok(false)` if the ring is full (the caller checkpoints and retries). The record is in
    /// the page cache, not yet durable.
    pub(crate) fn append(
        &mut self,
        seq: u64,
        term: u64,
        durable: u64,
        payload: &[u8],
    ) -> Result<bool> {
        self.sync_created()?;
        let lag = u32::try_from(seq.saturating_sub(durable))
            .unwrap_or(LAG_UNKNOWN)
            .max(1);
        let n = frame_len(payload.len());
        let at = if !self.wrapped && self.head >= self.tail {
            if self.head + n <= self.len || self.grow(n)? {
                self.head
            } else if WAL_START + n <= self.tail {
                if self.head + FRAME_HEADER <= self.len {
                    self.write_frame(self.head, seq, term, KIND_WRAP, lag, &[])?;
                }
                self.wrapped = true;
                WAL_START
            } else {
                return Ok(false);
            }
        } else if self.head + n <= self.tail {
            self.head
        } else {
            return Ok(false);
        };
        self.write_frame(at, seq, term, KIND_COMMIT, lag, payload)?;
        self.head = at + n;
        Ok(true)
    }

    fn write_frame(
        &mut self,
        at: u64,
        seq: u64,
        term: u64,
        kind: u8,
        lag: u32,
        payload: &[u8],
    ) -> Result<()> {
        let padded = (payload.len() as u64).next_multiple_of(8) as usize;
        let buf = &mut self.buf;
        buf.clear();
        buf.resize(FRAME_HEADER as usize, 0);
        put_u32(buf, 4, payload.len() as u32);
        put_u64(buf, 8, seq);
        put_u64(buf, 16, term);
        buf[24] = kind;
        buf[25] = FLAG_DURABLE_LAG;
        put_u32(buf, 28, lag);
        let crc = frame_crc(self.salt, self.db_id, buf, payload);
        put_u32(buf, 0, crc);
        buf.extend_from_slice(payload);
        buf.resize(FRAME_HEADER as usize + padded, 0);
        self.file.write_all_at(buf, at)?;
        Ok(())
    }

    /// A checkpoint covering every record before `offset` is durable: that space is free.
    /// (Checkpoints today cover every record and `reset` instead; this is the purge of a
    /// checkpointed prefix that the Raft log and online checkpoints need.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn release_until(&mut self, offset: u64) {
        if offset == self.head {
            self.tail = offset;
            self.wrapped = false;
            return;
        }
        if self.wrapped && offset <= self.head {
            self.wrapped = false;
        }
        self.tail = offset;
    }

    /// Starts a new generation after a checkpoint that covers everything: empty ring at the
    /// start, fresh salt (stale frames then fail their checksum).
    pub(crate) fn reset(&mut self, salt: u64) {
        self.head = WAL_START;
        self.tail = WAL_START;
        self.wrapped = false;
        self.salt = salt;
    }
}

/// The largest vote [`write_control`] stores.
pub(crate) const MAX_VOTE: usize = 1024;
/// The two control slots in the header page (see [`Control`]).
pub(crate) const CONTROL_SLOTS: [u64; 2] = [1024, 2560];
const CONTROL_LEN: usize = 1536;
const CONTROL_CRC_AT: usize = CONTROL_LEN - 4;
const CONTROL_HAS_VOTE: u32 = 1;

/// What a replicated store keeps in its WAL's header page besides the header: the Raft vote and
/// the index of a truncation in progress. Written to two alternating slots (offsets 1024 and
/// 2560), each with a counter and a checksum:
///
/// ```text
///  0  8  counter (the valid slot with the higher counter is current)
///  8  8  truncation in progress: every frame with sequence number >= this is being
///        invalidated (0 = none)
/// 16  4  flags: bit 0 = a vote is stored
/// 20  4  vote length (at most 1024)
/// 24  .  vote bytes
/// 1532 4 crc32 of (database id | bytes [0, 1532))
/// ```
///
/// A write goes to the slot that does not hold the current state, then the WAL is synced: a
/// torn write damages only that slot, and the other still holds the previous state. So after a
/// crash the state is the last one whose write returned, or the one being written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Control {
    /// Counter of the current slot (0 when no slot is valid).
    pub(crate) counter: u64,
    /// 0 = none; else the cut of an unfinished truncation.
    pub(crate) truncating: u64,
    pub(crate) vote: Option<Vec<u8>>,
}

fn decode_control(slot: &[u8], db_id: u64) -> Option<Control> {
    let mut h = crc32fast::Hasher::new();
    h.update(&db_id.to_le_bytes());
    h.update(&slot[..CONTROL_CRC_AT]);
    if h.finalize() != get_u32(slot, CONTROL_CRC_AT) {
        return None;
    }
    let flags = get_u32(slot, 16);
    let vote_len = get_u32(slot, 20) as usize;
    if vote_len > MAX_VOTE || flags & !CONTROL_HAS_VOTE != 0 {
        return None;
    }
    Some(Control {
        counter: get_u64(slot, 0),
        truncating: get_u64(slot, 8),
        vote: (flags & CONTROL_HAS_VOTE != 0).then(|| slot[24..24 + vote_len].to_vec()),
    })
}

/// Reads the current control state of a WAL (the default, counter 0, if neither slot is valid:
/// a WAL that never stored one).
pub(crate) fn read_control(file: &dyn StorageFile, db_id: u64) -> Result<Control> {
    let mut best: Option<Control> = None;
    for at in CONTROL_SLOTS {
        let mut slot = vec![0u8; CONTROL_LEN];
        file.read_exact_at(&mut slot, at)?;
        if let Some(c) = decode_control(&slot, db_id) {
            if best.as_ref().is_none_or(|b| c.counter > b.counter) {
                best = Some(c);
            }
        }
    }
    Ok(best.unwrap_or_default())
}

/// Makes `next` the control state (its counter must be the current one + 1): writes the slot
/// not holding the current state and syncs the WAL. Slot `counter % 2` holds counter `counter`,
/// so the current slot is never the one overwritten.
pub(crate) fn write_control(file: &dyn StorageFile, db_id: u64, next: &Control) -> Result<()> {
    let vote = next.vote.as_deref().unwrap_or(&[]);
    if vote.len() > MAX_VOTE {
        return Err(Error::VoteTooLarge {
            len: vote.len(),
            max: MAX_VOTE,
        });
    }
    let mut slot = vec![0u8; CONTROL_LEN];
    put_u64(&mut slot, 0, next.counter);
    put_u64(&mut slot, 8, next.truncating);
    put_u32(
        &mut slot,
        16,
        if next.vote.is_some() {
            CONTROL_HAS_VOTE
        } else {
            0
        },
    );
    put_u32(&mut slot, 20, vote.len() as u32);
    slot[24..24 + vote.len()].copy_from_slice(vote);
    let mut h = crc32fast::Hasher::new();
    h.update(&db_id.to_le_bytes());
    h.update(&slot[..CONTROL_CRC_AT]);
    put_u32(&mut slot, CONTROL_CRC_AT, h.finalize());
    file.write_all_at(&slot, CONTROL_SLOTS[(next.counter % 2) as usize])?;
    file.sync_data()?;
    Ok(())
}

/// Offsets of every valid frame (commit or wrap marker) of this generation whose sequence
/// number is at or past `from`: what a replicated open must invalidate past the end of the log
/// it recovered, so that a later append that reuses the space can never be followed by a stale
/// frame that happens to carry the next sequence number.
pub(crate) fn frames_from(map: &[u8], from: u64, salt: u64, db_id: u64) -> Vec<u64> {
    let len = map.len() as u64;
    let mut found = Vec::new();
    let mut off = WAL_START;
    while off + FRAME_HEADER <= len {
        let h = &map[off as usize..(off + FRAME_HEADER) as usize];
        let seq = get_u64(h, 8);
        if seq < from || seq - from >= MAX_SEQ_AHEAD || !matches!(h[24], KIND_COMMIT | KIND_WRAP) {
            off += 8;
            continue;
        }
        match read_frame(map, off, salt, db_id) {
            Some(frame) => {
                found.push(off);
                off += frame.len;
            }
            None => off += 8,
        }
    }
    found
}

impl Wal {
    /// Takes over an existing WAL (a replicated store keeps its WAL across opens): the log
    /// occupies `[tail, head)` of the ring (wrapping past the end if `wrapped`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn resume(
        file: Arc<dyn StorageFile>,
        len: u64,
        max_len: u64,
        head: u64,
        tail: u64,
        wrapped: bool,
        salt: u64,
        db_id: u64,
    ) -> Wal {
        Wal {
            file,
            buf: Vec::new(),
            len,
            max_len: max_len.max(len),
            head,
            tail,
            wrapped,
            salt,
            db_id,
            unsynced: None,
        }
    }

    /// The generation's salt.
    pub(crate) fn salt(&self) -> u64 {
        self.salt
    }

    /// The database id mixed into every checksum.
    pub(crate) fn db_id(&self) -> u64 {
        self.db_id
    }

    /// Offset of the oldest byte still in use.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// Moves the write position back to `offset`, the start of a frame of the log (a
    /// truncation): the log then ends there.
    pub(crate) fn set_head(&mut self, offset: u64) {
        self.wrapped = offset < self.tail;
        self.head = offset;
    }

    /// Zeroes `[from, self.head)` of the ring (wrapping past the end if `from` lies after the
    /// head): every frame written there becomes unreadable. Not synced.
    pub(crate) fn zero_until_head(&self, from: u64) -> Result<()> {
        if from <= self.head {
            write_zeros(&*self.file, from, self.head)
        } else {
            write_zeros(&*self.file, from, self.len)?;
            write_zeros(&*self.file, WAL_START, self.head)
        }
    }

    /// Zeroes the whole ring. Not synced.
    pub(crate) fn zero_ring(&self) -> Result<()> {
        write_zeros(&*self.file, WAL_START, self.len)
    }

    /// Zeroes the header of the frame at `offset` (it then fails its checksum). Not synced.
    pub(crate) fn zero_frame_header(&self, offset: u64) -> Result<()> {
        Ok(self
            .file
            .write_all_at(&[0u8; FRAME_HEADER as usize], offset)?)
    }

    /// Reads back the commit frame at `offset`, which must be record `seq` of `term`: the
    /// payload, or [`Error::Corrupt`] if the frame there is not that record.
    pub(crate) fn read_at(&self, offset: u64, seq: u64, term: u64) -> Result<Vec<u8>> {
        let mut header = [0u8; FRAME_HEADER as usize];
        self.file.read_exact_at(&mut header, offset)?;
        let plen = get_u32(&header, 4) as usize;
        let mut payload = vec![0u8; plen];
        if offset + FRAME_HEADER + plen as u64 <= self.len {
            self.file
                .read_exact_at(&mut payload, offset + FRAME_HEADER)?;
        }
        if get_u64(&header, 8) != seq
            || get_u64(&header, 16) != term
            || header[24] != KIND_COMMIT
            || offset + FRAME_HEADER + plen as u64 > self.len
            || frame_crc(self.salt, self.db_id, &header, &payload) != get_u32(&header, 0)
        {
            return Err(Error::corrupt(format!(
                "WAL frame at offset {offset} is not log entry {seq} of term {term}"
            )));
        }
        Ok(payload)
    }

    /// Bytes a frame with a payload of `payload` bytes occupies.
    pub(crate) fn frame_bytes(payload: usize) -> u64 {
        frame_len(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal(dir: &tempfile::TempDir, cap: u64) -> Wal {
        Wal::create(
            &crate::storage::FsStorage,
            &dir.path().join("t-wal"),
            7,
            cap,
            99,
        )
        .unwrap()
    }

    fn bytes(w: &Wal) -> Vec<u8> {
        let mut b = vec![0u8; w.len as usize];
        w.file.read_exact_at(&mut b, 0).unwrap();
        b
    }

    #[test]
    fn records_round_trip_and_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = wal(&dir, 1 << 20);
        for seq in 1..=5u64 {
            assert!(w
                .append(seq, 0, seq - 1, &vec![seq as u8; 100 + seq as usize])
                .unwrap());
        }
        let mut b = bytes(&w);
        let recs = Wal::scan(&b, WAL_START, 1, 99, 7).records;
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[4].payload, vec![5u8; 105]);
        // Tear the fourth record: only three survive.
        let off = WAL_START + frame_len(101) + frame_len(102) + frame_len(103) + 40;
        b[off as usize] ^= 0xff;
        let recs = Wal::scan(&b, WAL_START, 1, 99, 7).records;
        assert_eq!(recs.len(), 3);
        // Wrong salt or database id: nothing.
        assert!(Wal::scan(&b, WAL_START, 1, 98, 7).records.is_empty());
        assert!(Wal::scan(&b, WAL_START, 1, 99, 8).records.is_empty());
    }

    /// The WAL doubles from its initial size, but by at most `MAX_GROWTH` at a time, up to
    /// its capacity; a record larger than one step still gets room in one growth.
    #[test]
    fn growth_doubles_in_bounded_steps_up_to_the_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 40 << 20;
        let mut w = wal(&dir, cap);
        let mut lens = vec![w.len];
        let record = vec![3u8; 256 << 10];
        let mut seq = 0;
        while w.len < w.max_len && seq < 1000 {
            seq += 1;
            assert!(w.append(seq, 0, seq - 1, &record).unwrap());
            if w.len != *lens.last().unwrap() {
                lens.push(w.len);
            }
        }
        assert_eq!(w.len, w.max_len, "grew to {lens:?}");
        assert_eq!(w.file.len().unwrap(), w.len);
        for pair in lens.windows(2) {
            let step = pair[1] - pair[0];
            assert!(
                step <= MAX_GROWTH
                    && (step == pair[0] || step == MAX_GROWTH || pair[1] == w.max_len),
                "steps {lens:?}"
            );
        }
        // The records all read back in order.
        let recs = Wal::scan(&bytes(&w), WAL_START, 1, 99, 7).records;
        assert_eq!(recs.len() as u64, seq);
        // One record larger than a step fits after a single growth of a fresh WAL.
        let dir = tempfile::tempdir().unwrap();
        let mut w = wal(&dir, cap);
        let big = vec![5u8; (MAX_GROWTH + (1 << 20)) as usize];
        assert!(w.append(1, 0, 0, &big).unwrap());
        assert!(w.len >= WAL_START + frame_len(big.len()));
    }

    #[test]
    fn ring_wraps_and_scan_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = wal(&dir, 1 << 20);
        let payload = vec![1u8; 40_000];
        let (mut tail_seq, mut tail_off, mut wraps) = (1, WAL_START, 0);
        for seq in 1..200u64 {
            let before = w.head();
            if !w.append(seq, 0, seq - 1, &payload).unwrap() {
                // Full: a checkpoint covering everything so far frees the ring.
                tail_off = w.head();
                tail_seq = seq;
                w.release_until(w.head());
                assert!(w.append(seq, 0, seq - 1, &payload).unwrap());
            }
            if w.head() < before {
                wraps += 1;
            }
        }
        assert!(wraps >= 3, "ring wrapped {wraps} times");
        let scan = Wal::scan(&bytes(&w), tail_off, tail_seq, 99, 7);
        assert!(scan.damage.is_none());
        let recs = scan.records;
        assert_eq!(recs.len() as u64, 200 - tail_seq);
        assert_eq!(recs.last().map(|r| r.seq), Some(199));
        assert!(w.used() > 0 && w.used() <= w.max_bytes());
    }

    /// Appends records 1..=n of 100 bytes each; record i is appended when `durable(i)` was
    /// durable. Returns the WAL bytes and each frame's offset.
    fn log_of(n: u64, durable: impl Fn(u64) -> u64) -> (Vec<u8>, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = wal(&dir, 1 << 20);
        let mut offsets = Vec::new();
        for seq in 1..=n {
            offsets.push(w.head());
            assert!(w.append(seq, 1, durable(seq), &[seq as u8; 100]).unwrap());
        }
        (bytes(&w), offsets)
    }

    #[test]
    fn damage_before_frames_written_after_it_was_durable_is_reported() {
        // Every record was synced before the next was appended (one commit at a time).
        let (mut b, offsets) = log_of(10, |seq| seq - 1);
        b[offsets[3] as usize + 40] ^= 1; // payload of record 4
        let scan = Wal::scan(&b, WAL_START, 1, 99, 7);
        assert_eq!(scan.records.len(), 3);
        assert_eq!(
            scan.damage,
            Some(Damage {
                offset: offsets[3],
                last_good_seq: 3,
                records_after: 6,
            })
        );
        // Damage to a header field (the length) is found the same way.
        let (mut b, offsets) = log_of(10, |seq| seq - 1);
        b[offsets[6] as usize + 5] ^= 0x10;
        let scan = Wal::scan(&b, WAL_START, 1, 99, 7);
        assert_eq!(scan.records.len(), 6);
        assert_eq!(
            scan.damage.map(|d| (d.last_good_seq, d.records_after)),
            Some((6, 3))
        );
    }

    #[test]
    fn hole_in_an_unsynced_suffix_is_a_torn_tail() {
        // Records 1..=4 durable; 5..=10 appended while only 4 was durable (one group that a
        // power cut interrupted), and record 5 never reached the disk.
        let (mut b, offsets) = log_of(10, |seq| seq.min(5) - 1);
        let o = offsets[4] as usize;
        b[o..o + 136].fill(0);
        let scan = Wal::scan(&b, WAL_START, 1, 99, 7);
        assert_eq!(scan.records.len(), 4);
        assert_eq!(scan.damage, None);
        // A frame of that group missing at the very end is just the tail.
        let (mut b, offsets) = log_of(10, |seq| seq.min(5) - 1);
        let o = offsets[9] as usize;
        b[o..o + 136].fill(0);
        assert_eq!(Wal::scan(&b, WAL_START, 1, 99, 7).records.len(), 9);
        assert!(Wal::scan(&b, WAL_START, 1, 99, 7).damage.is_none());
    }

    #[test]
    fn frames_without_a_durable_lag_are_trusted_as_durable() {
        // A WAL from a build that did not record durability: a hole followed by frames is
        // damage, since nothing proves the hole was never acknowledged.
        let (mut b, offsets) = log_of(6, |seq| seq - 1);
        for &o in &offsets {
            let o = o as usize;
            b[o + 25] = 0;
            b[o + 28..o + 32].fill(0);
            let plen = get_u32(&b, o + 4) as usize;
            let crc = frame_crc(99, 7, &b[o..o + 32], &b[o + 32..o + 32 + plen]);
            put_u32(&mut b, o, crc);
        }
        assert_eq!(Wal::scan(&b, WAL_START, 1, 99, 7).records.len(), 6);
        b[offsets[2] as usize + 50] ^= 0xff;
        let scan = Wal::scan(&b, WAL_START, 1, 99, 7);
        assert_eq!(scan.damage.map(|d| d.records_after), Some(3));
    }

    #[test]
    fn every_flipped_byte_is_recovered_or_reported() {
        // One commit per sync: a flip anywhere in a frame (header, payload or padding) either
        // changes nothing the scan accepts or is reported as damage, never a silent drop.
        let (clean, offsets) = log_of(12, |seq| seq - 1);
        let end = offsets[11] as usize + 136;
        for at in WAL_START as usize..end {
            let mut b = clean.clone();
            b[at] ^= 0x5a;
            let scan = Wal::scan(&b, WAL_START, 1, 99, 7);
            let n = scan.records.len();
            if n == 12 {
                assert!(scan.damage.is_none(), "offset {at}");
                continue;
            }
            if n == 11 {
                // The newest record has no later frame to witness that it was durable, so
                // damage to it reads as a torn tail (the documented limit of the rule).
                assert!(scan.damage.is_none(), "offset {at}");
                continue;
            }
            let d = scan
                .damage
                .unwrap_or_else(|| panic!("silent drop at offset {at}: {n}"));
            assert_eq!(d.last_good_seq, n as u64, "offset {at}");
            assert_eq!(d.records_after, 11 - n as u64, "offset {at}");
        }
    }
}
