//! Page identifiers, the common page header and page checksums.
//!
//! Every B+tree and free-list page starts with the same 24-byte header:
//!
//! ```text
//! offset size field
//!      0    4 crc32 of bytes [4, page_size)
//!      4    1 kind (PageKind)
//!      5    1 tree tag (which tree a node belongs to; 0 for free-list pages)
//!      6    2 count (entries on a node, page ids on a free-list page)
//!      8    8 page id of this page (catches a page written to the wrong place)
//!     16    8 kind-specific: leftmost child (branch), next page (free list), 0 (leaf)
//! ```
//!
//! Overflow pages (large values) carry no header: their checksum lives in the leaf entry that
//! points at them. Pages 0 and 1 are the meta slots (see `meta.rs`).

use crate::error::{Error, Result};

/// Index of a page in the file; byte offset = id * page_size. Page 0 is never a node, so 0
/// doubles as "no page" (an empty tree).
pub(crate) type PageId = u64;

/// Size of the common page header.
pub(crate) const PAGE_HEADER: usize = 24;

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageKind {
    /// Interior B+tree node: separator keys and child page ids.
    Branch = 1,
    /// B+tree leaf: keys and values (inline, or a reference to overflow pages).
    Leaf = 2,
    /// A page of the persisted free list.
    FreeList = 3,
}

impl PageKind {
    pub(crate) fn from_byte(b: u8) -> Option<PageKind> {
        match b {
            1 => Some(PageKind::Branch),
            2 => Some(PageKind::Leaf),
            3 => Some(PageKind::FreeList),
            _ => None,
        }
    }
}

/// Little-endian readers that never panic: callers pass offsets they have bounds-checked, and a
/// short slice yields zero rather than a panic (the checksum and structure validation reject such
/// pages before any of this matters).
pub(crate) fn get_u16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .unwrap_or(0)
}

/// See [`get_u16`].
pub(crate) fn get_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

/// See [`get_u16`].
pub(crate) fn get_u64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
        .unwrap_or(0)
}

pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Fills in the checksum of a fully written page buffer.
pub(crate) fn seal_page(buf: &mut [u8]) {
    let crc = crc32fast::hash(&buf[4..]);
    put_u32(buf, 0, crc);
}

/// Verifies the checksum and header of a node or free-list page read from disk.
pub(crate) fn verify_page(buf: &[u8], id: PageId) -> Result<PageKind> {
    let stored = get_u32(buf, 0);
    let actual = crc32fast::hash(buf.get(4..).unwrap_or(&[]));
    if stored != actual {
        return Err(Error::corrupt(format!(
            "page {id}: checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        )));
    }
    let self_id = get_u64(buf, 8);
    if self_id != id {
        return Err(Error::corrupt(format!(
            "page {id}: header names page {self_id} (misdirected write)"
        )));
    }
    PageKind::from_byte(buf[4])
        .ok_or_else(|| Error::corrupt(format!("page {id}: unknown page kind {}", buf[4])))
}
