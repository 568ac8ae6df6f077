//! The two meta slots at pages 0 and 1.
//!
//! A checkpoint writes the new meta to slot 0, syncs, then to slot 1, syncs. A torn write can
//! damage only the slot being written while the other holds a valid meta (the old one, or the
//! new one); open picks the valid slot with the higher checkpoint counter. Once a checkpoint is
//! complete both slots are equal, so damage to either alone loses nothing.
//! Layout (little-endian), in the first 256 bytes of the page; the rest of the page is zero:
//!
//! ```text
//! offset size field
//!      0    8 magic "etch\x00db\x1a"
//!      8    4 format version (1)
//!     12    4 page size in bytes
//!     16    8 database id (random, chosen at creation; ties the WAL to this file)
//!     24    8 checkpoint counter (the newer slot has the higher value)
//!     32    8 page count: pages [0, page count) are in use or free; later pages are unused
//!     40    8 first free-list page (0 = none)
//!     48    8 number of page ids on the free list
//!     56    8 root of the `current` tree (0 = empty)
//!     64    8 root of the `history` tree
//!     72    8 root of the `log` tree
//!     80    8 root of the `leases` tree
//!     88    8 root of the `lease_keys` tree
//!     96   24 three more root slots, reserved (0)
//!    120    8 revision (etcd's current revision)
//!    128    8 compact revision
//!    136    8 last applied WAL sequence number (the Raft index, later)
//!    144    8 term of that record (0 without Raft)
//!    152    8 WAL offset where the record after the last applied one starts
//!    160    8 WAL salt: mixed into every frame checksum of this WAL generation
//!    168    8 number of live keys
//!    176    8 flags: bit 0 = replicated (the WAL is a Raft log; written as format version 2),
//!                 bit 1 = a membership is stored
//!    184    8 replicated: index of the last purged log entry (0 = none)
//!    192    8 replicated: term of that entry
//!    200    8 replicated: log index of the applied membership
//!    208    8 replicated: its term
//!    216    4 replicated: membership length in bytes (at most 3840)
//!    220    4 replicated: crc32 of the membership bytes
//!    224   28 reserved (0)
//!    252    4 crc32 of bytes [0, 252)
//!    256    . replicated: the membership bytes (opaque; the replication layer encodes them)
//! ```
//!
//! The membership lives in the same page as the rest of the meta and is written with it, so a
//! checkpoint records it atomically with the applied index it belongs to; its own checksum,
//! which the checksummed header names, makes a slot whose page was torn past byte 256 invalid
//! as a whole (the other slot is used). Readers read the first 4096 bytes of each slot, so it
//! fits any page size.

use crate::error::{Error, Result};
use crate::page::{get_u32, get_u64, put_u32, put_u64, PageId};

/// First bytes of every etch file.
pub(crate) const MAGIC: [u8; 8] = *b"etch\x00db\x1a";
/// The newest format version this build reads. It writes version 1, or version 2 for a
/// replicated store, whose WAL holds Raft entries that an older build would misread as local
/// commits: version 2 makes an older build refuse the file ([`Error::NewerFormat`]).
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The version of a local store's meta.
const LOCAL_VERSION: u32 = 1;
const FLAG_REPLICATED: u64 = 1;
const FLAG_MEMBERSHIP: u64 = 2;
/// Where the membership bytes start in a meta page.
const MEMBERSHIP_AT: usize = 256;
/// The largest membership a meta holds (it must fit the smallest page).
pub(crate) const MAX_MEMBERSHIP: usize = 4096 - MEMBERSHIP_AT;
const META_LEN: usize = 256;
const CRC_AT: usize = 252;

/// Decoded meta slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) page_size: u32,
    pub(crate) db_id: u64,
    pub(crate) counter: u64,
    pub(crate) page_count: u64,
    pub(crate) freelist_head: PageId,
    pub(crate) freelist_count: u64,
    pub(crate) roots: Roots,
    pub(crate) revision: u64,
    pub(crate) compact_revision: u64,
    pub(crate) applied_seq: u64,
    pub(crate) applied_term: u64,
    pub(crate) wal_offset: u64,
    pub(crate) wal_salt: u64,
    pub(crate) key_count: u64,
    /// The WAL is a Raft log (see `raftlog.rs`): `wal_offset` is where its first unpurged
    /// entry starts, and the trees are not replayed from it.
    pub(crate) replicated: bool,
    /// Replicated stores: (index, term) of the last purged log entry ((0, 0) = none).
    pub(crate) purged: (u64, u64),
    /// Replicated stores: the applied membership (index, term, opaque bytes).
    pub(crate) membership: Option<(u64, u64, Vec<u8>)>,
}

/// Roots of the keyspace trees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Roots {
    /// user key -> latest record of each live key.
    pub(crate) current: PageId,
    /// (user key, revision) -> superseded records and tombstones.
    pub(crate) history: PageId,
    /// (revision, sub-revision) -> (event kind, user key): the change log in revision order.
    pub(crate) log: PageId,
    /// lease id -> granted TTL.
    pub(crate) leases: PageId,
    /// (lease id, user key) -> nothing: the keys attached to each lease.
    pub(crate) lease_keys: PageId,
}

/// Why a slot did not decode.
pub(crate) enum SlotError {
    /// No magic number: not an etch file (or a zeroed slot).
    NoMagic,
    /// Written by a newer etch.
    Newer(u32),
    /// Magic present but checksum or fields are wrong.
    Damaged(String),
}

impl Meta {
    pub(crate) fn encode(&self, page: &mut [u8]) {
        page.fill(0);
        page[0..8].copy_from_slice(&MAGIC);
        put_u32(
            page,
            8,
            if self.replicated {
                FORMAT_VERSION
            } else {
                LOCAL_VERSION
            },
        );
        put_u32(page, 12, self.page_size);
        put_u64(page, 16, self.db_id);
        put_u64(page, 24, self.counter);
        put_u64(page, 32, self.page_count);
        put_u64(page, 40, self.freelist_head);
        put_u64(page, 48, self.freelist_count);
        put_u64(page, 56, self.roots.current);
        put_u64(page, 64, self.roots.history);
        put_u64(page, 72, self.roots.log);
        put_u64(page, 80, self.roots.leases);
        put_u64(page, 88, self.roots.lease_keys);
        put_u64(page, 120, self.revision);
        put_u64(page, 128, self.compact_revision);
        put_u64(page, 136, self.applied_seq);
        put_u64(page, 144, self.applied_term);
        put_u64(page, 152, self.wal_offset);
        put_u64(page, 160, self.wal_salt);
        put_u64(page, 168, self.key_count);
        let mut flags = if self.replicated { FLAG_REPLICATED } else { 0 };
        if let Some((index, term, bytes)) = &self.membership {
            flags |= FLAG_MEMBERSHIP;
            put_u64(page, 200, *index);
            put_u64(page, 208, *term);
            put_u32(page, 216, bytes.len() as u32);
            put_u32(page, 220, crc32fast::hash(bytes));
            page[MEMBERSHIP_AT..MEMBERSHIP_AT + bytes.len()].copy_from_slice(bytes);
        }
        put_u64(page, 176, flags);
        put_u64(page, 184, self.purged.0);
        put_u64(page, 192, self.purged.1);
        let crc = crc32fast::hash(&page[..CRC_AT]);
        put_u32(page, CRC_AT, crc);
    }

    pub(crate) fn decode(page: &[u8]) -> Result<Meta, SlotError> {
        if page.len() < META_LEN || page[0..8] != MAGIC {
            return Err(SlotError::NoMagic);
        }
        let version = get_u32(page, 8);
        let crc = crc32fast::hash(&page[..CRC_AT]);
        if crc != get_u32(page, CRC_AT) {
            return Err(SlotError::Damaged("meta checksum mismatch".into()));
        }
        if version > FORMAT_VERSION {
            return Err(SlotError::Newer(version));
        }
        if version == 0 {
            return Err(SlotError::Damaged("format version 0".into()));
        }
        let meta = Meta {
            page_size: get_u32(page, 12),
            db_id: get_u64(page, 16),
            counter: get_u64(page, 24),
            page_count: get_u64(page, 32),
            freelist_head: get_u64(page, 40),
            freelist_count: get_u64(page, 48),
            roots: Roots {
                current: get_u64(page, 56),
                history: get_u64(page, 64),
                log: get_u64(page, 72),
                leases: get_u64(page, 80),
                lease_keys: get_u64(page, 88),
            },
            revision: get_u64(page, 120),
            compact_revision: get_u64(page, 128),
            applied_seq: get_u64(page, 136),
            applied_term: get_u64(page, 144),
            wal_offset: get_u64(page, 152),
            wal_salt: get_u64(page, 160),
            key_count: get_u64(page, 168),
            replicated: get_u64(page, 176) & FLAG_REPLICATED != 0,
            purged: (get_u64(page, 184), get_u64(page, 192)),
            membership: None,
        };
        let flags = get_u64(page, 176);
        let mut meta = meta;
        if flags & FLAG_MEMBERSHIP != 0 {
            let len = get_u32(page, 216) as usize;
            let end = MEMBERSHIP_AT + len;
            if len > MAX_MEMBERSHIP
                || page.len() < end
                || crc32fast::hash(&page[MEMBERSHIP_AT..end]) != get_u32(page, 220)
            {
                return Err(SlotError::Damaged("membership checksum mismatch".into()));
            }
            meta.membership = Some((
                get_u64(page, 200),
                get_u64(page, 208),
                page[MEMBERSHIP_AT..end].to_vec(),
            ));
        }
        if flags & !(FLAG_REPLICATED | FLAG_MEMBERSHIP) != 0
            || meta.replicated != (version >= 2)
            || (meta.membership.is_some() && !meta.replicated)
        {
            return Err(SlotError::Damaged(format!(
                "format version {version} does not match the flags {:#x}",
                get_u64(page, 176)
            )));
        }
        meta.sanity().map_err(SlotError::Damaged)?;
        Ok(meta)
    }

    /// Field checks that a checksum cannot make: a valid checksum over nonsense still fails here.
    fn sanity(&self) -> std::result::Result<(), String> {
        let ps = self.page_size as usize;
        if !ps.is_power_of_two() || !(4096..=65536).contains(&ps) {
            return Err(format!("invalid page size {ps}"));
        }
        if self.page_count < 2 {
            return Err(format!("page count {} is below 2", self.page_count));
        }
        for (name, root) in [
            ("current", self.roots.current),
            ("history", self.roots.history),
            ("log", self.roots.log),
            ("leases", self.roots.leases),
            ("lease keys", self.roots.lease_keys),
        ] {
            if root == 1 || (root != 0 && root >= self.page_count) {
                return Err(format!(
                    "{name} root page {root} outside the file ({} pages)",
                    self.page_count
                ));
            }
        }
        if self.freelist_head == 1
            || (self.freelist_head != 0 && self.freelist_head >= self.page_count)
        {
            return Err(format!(
                "free-list page {} outside the file",
                self.freelist_head
            ));
        }
        if self.purged.0 > self.applied_seq {
            return Err(format!(
                "purged log index {} is past the applied index {}",
                self.purged.0, self.applied_seq
            ));
        }
        if self.compact_revision > self.revision || self.revision == 0 {
            return Err(format!(
                "revision {} / compact revision {} are inconsistent",
                self.revision, self.compact_revision
            ));
        }
        Ok(())
    }
}

/// Picks the newest valid meta from the two slots, or explains why there is none.
pub(crate) fn choose(slot0: &[u8], slot1: &[u8], path: &std::path::Path) -> Result<(Meta, usize)> {
    let a = Meta::decode(slot0);
    let b = Meta::decode(slot1);
    // A slot written by a newer etch means the file was upgraded: opening the older slot would
    // silently roll the database back, so refuse.
    for slot in [&a, &b] {
        if let Err(SlotError::Newer(v)) = slot {
            return Err(Error::NewerFormat {
                path: path.to_path_buf(),
                found: *v,
                supported: FORMAT_VERSION,
            });
        }
    }
    match (a, b) {
        (Ok(x), Ok(y)) => {
            if x.db_id != y.db_id || x.page_size != y.page_size {
                // Both valid but from different databases: trust neither silently.
                return Err(Error::corrupt(
                    "meta slots disagree on database id or page size",
                ));
            }
            Ok(if y.counter > x.counter {
                (y, 1)
            } else {
                (x, 0)
            })
        }
        (Ok(x), Err(_)) => Ok((x, 0)),
        (Err(_), Ok(y)) => Ok((y, 1)),
        (Err(e0), Err(e1)) => Err(match (e0, e1) {
            (SlotError::NoMagic, SlotError::NoMagic) => Error::NotEtchFile {
                path: path.to_path_buf(),
            },
            (SlotError::Damaged(m), _) | (_, SlotError::Damaged(m)) => {
                Error::corrupt(format!("both meta slots are invalid: {m}"))
            }
            // Already returned above; kept so the match needs no panic.
            (SlotError::Newer(v), _) | (_, SlotError::Newer(v)) => Error::NewerFormat {
                path: path.to_path_buf(),
                found: v,
                supported: FORMAT_VERSION,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicated() -> Meta {
        Meta {
            page_size: 4096,
            db_id: 5,
            counter: 3,
            page_count: 10,
            revision: 4,
            applied_seq: 9,
            applied_term: 2,
            wal_offset: 4096,
            wal_salt: 11,
            replicated: true,
            purged: (6, 2),
            membership: Some((8, 2, b"voters {1, 2, 3}".to_vec())),
            ..Default::default()
        }
    }

    #[test]
    fn a_replicated_meta_round_trips_with_its_membership() {
        let mut page = vec![0u8; 4096];
        replicated().encode(&mut page);
        assert_eq!(
            get_u32(&page, 8),
            2,
            "replicated metas are format version 2"
        );
        assert!(Meta::decode(&page).is_ok_and(|m| m == replicated()));
        // A torn write that spared the header but not the membership voids the slot.
        let mut torn = page.clone();
        torn[MEMBERSHIP_AT + 3] ^= 1;
        assert!(matches!(Meta::decode(&torn), Err(SlotError::Damaged(_))));
        // A local meta stays version 1, without the replicated fields.
        let local = Meta {
            replicated: false,
            purged: (0, 0),
            membership: None,
            ..replicated()
        };
        local.encode(&mut page);
        assert_eq!(get_u32(&page, 8), 1);
        assert!(Meta::decode(&page).is_ok_and(|m| m == local));
        // Version 1 claiming to be replicated is inconsistent.
        put_u64(&mut page, 176, FLAG_REPLICATED);
        let crc = crc32fast::hash(&page[..CRC_AT]);
        put_u32(&mut page, CRC_AT, crc);
        assert!(matches!(Meta::decode(&page), Err(SlotError::Damaged(_))));
    }
}
