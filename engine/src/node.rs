//! B+tree node encoding: a zero-copy view for readers and an owned form for the writer.
//!
//! Node page layout after the common header (see `page.rs`):
//!
//! ```text
//! [24 .. 24+2n)   slot array: n little-endian u16 offsets of the entries, in key order
//! [..  free  ..]
//! [.. page end)   entries, packed from the end of the page downwards
//!
//! leaf entry:    u16 key_len | u8 flags | u32 value_len | key | value (flags = 0)
//!                                                              | u64 first overflow page | u32 crc32 of value (flags = 1)
//! branch entry:  u16 key_len | u64 child | key
//! ```
//!
//! A branch with n entries has n + 1 children: the leftmost child (header bytes 16..24) holds
//! keys below the first separator, entry i's child holds keys >= its separator and below the next.

use crate::error::{Error, Result};
use crate::page::{get_u16, get_u32, get_u64, put_u16, put_u64, seal_page, PageId};
use crate::page::{PageKind, PAGE_HEADER};

/// Leaf entry header: key_len u16, flags u8, value_len u32.
const LEAF_ENTRY_HEADER: usize = 7;
/// Branch entry header: key_len u16, child u64.
const BRANCH_ENTRY_HEADER: usize = 10;
/// Bytes an overflow reference takes in a leaf entry: first page u64, crc u32.
const OVERFLOW_REF: usize = 12;
const FLAG_OVERFLOW: u8 = 1;

/// Largest leaf entry (header + key + value, plus its slot) kept inline; larger values go to
/// overflow pages. A quarter page keeps at least four entries per node, so a split of an
/// overfull node always yields two nodes that fit.
pub(crate) fn max_inline_entry(page_size: usize) -> usize {
    (page_size - PAGE_HEADER) / 4
}

/// A value as stored in a leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoredValue {
    /// The bytes live in the leaf itself.
    Inline(Vec<u8>),
    /// The bytes live in `ceil(len / page_size)` contiguous pages starting at `page`.
    Overflow { page: PageId, len: u32, crc: u32 },
}

impl StoredValue {
    fn encoded_len(&self) -> usize {
        match self {
            StoredValue::Inline(v) => v.len(),
            StoredValue::Overflow { .. } => OVERFLOW_REF,
        }
    }
}

/// A borrowed value: inline bytes, or where to find the overflow run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ValueRef<'a> {
    Inline(&'a [u8]),
    Overflow { page: PageId, len: u32, crc: u32 },
}

impl ValueRef<'_> {
    pub(crate) fn to_stored(self) -> StoredValue {
        match self {
            ValueRef::Inline(v) => StoredValue::Inline(v.to_vec()),
            ValueRef::Overflow { page, len, crc } => StoredValue::Overflow { page, len, crc },
        }
    }
}

/// Zero-copy view of a node page that passed `validate`.
#[derive(Clone, Copy)]
pub(crate) struct PageView<'a> {
    data: &'a [u8],
}

impl<'a> PageView<'a> {
    /// Wraps a page whose checksum has been verified; checks that every slot and entry lies
    /// inside the page so that later accessors cannot read out of bounds.
    pub(crate) fn validate(id: PageId, data: &'a [u8]) -> Result<PageView<'a>> {
        let view = PageView { data };
        let kind = PageKind::from_byte(data[4]);
        if !matches!(kind, Some(PageKind::Branch) | Some(PageKind::Leaf)) {
            return Err(Error::corrupt(format!(
                "page {id}: expected a B+tree node, found kind {}",
                data[4]
            )));
        }
        let n = view.count();
        let slots_end = PAGE_HEADER + 2 * n;
        if slots_end > data.len() {
            return Err(Error::corrupt(format!(
                "page {id}: {n} slots do not fit in the page"
            )));
        }
        for i in 0..n {
            let off = get_u16(data, PAGE_HEADER + 2 * i) as usize;
            let end = view.entry_end(off);
            if off < slots_end || end.is_none_or(|e| e > data.len()) {
                return Err(Error::corrupt(format!(
                    "page {id}: entry {i} at offset {off} lies outside the page"
                )));
            }
        }
        if !view.is_leaf() && (view.first_child() == 0 || (0..n).any(|i| view.entry_child(i) == 0))
        {
            return Err(Error::corrupt(format!(
                "page {id}: branch has a null child"
            )));
        }
        Ok(view)
    }

    /// Wraps a page that was verified before (its bit is set in the map).
    pub(crate) fn trusted(data: &'a [u8]) -> PageView<'a> {
        PageView { data }
    }

    fn entry_end(&self, off: usize) -> Option<usize> {
        let key_len = get_u16(self.data, off) as usize;
        if self.is_leaf() {
            let flags = *self.data.get(off + 2)?;
            let val_len = get_u32(self.data, off + 3) as usize;
            let body = if flags & FLAG_OVERFLOW != 0 {
                OVERFLOW_REF
            } else {
                val_len
            };
            Some(off + LEAF_ENTRY_HEADER + key_len + body)
        } else {
            Some(off + BRANCH_ENTRY_HEADER + key_len)
        }
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.data[4] == PageKind::Leaf as u8
    }

    pub(crate) fn tree_tag(&self) -> u8 {
        self.data[5]
    }

    pub(crate) fn count(&self) -> usize {
        get_u16(self.data, 6) as usize
    }

    fn first_child(&self) -> PageId {
        get_u64(self.data, 16)
    }

    fn slot(&self, i: usize) -> usize {
        get_u16(self.data, PAGE_HEADER + 2 * i) as usize
    }

    pub(crate) fn key(&self, i: usize) -> &'a [u8] {
        let off = self.slot(i);
        let key_len = get_u16(self.data, off) as usize;
        let start = off
            + if self.is_leaf() {
                LEAF_ENTRY_HEADER
            } else {
                BRANCH_ENTRY_HEADER
            };
        self.data.get(start..start + key_len).unwrap_or(&[])
    }

    pub(crate) fn value(&self, i: usize) -> ValueRef<'a> {
        let off = self.slot(i);
        let key_len = get_u16(self.data, off) as usize;
        let flags = self.data.get(off + 2).copied().unwrap_or(0);
        let val_len = get_u32(self.data, off + 3);
        let start = off + LEAF_ENTRY_HEADER + key_len;
        if flags & FLAG_OVERFLOW != 0 {
            ValueRef::Overflow {
                page: get_u64(self.data, start),
                len: val_len,
                crc: get_u32(self.data, start + 8),
            }
        } else {
            ValueRef::Inline(
                self.data
                    .get(start..start + val_len as usize)
                    .unwrap_or(&[]),
            )
        }
    }

    fn entry_child(&self, i: usize) -> PageId {
        get_u64(self.data, self.slot(i) + 2)
    }

    /// Child `i` of a branch, 0 <= i <= count; child 0 is the leftmost.
    pub(crate) fn child(&self, i: usize) -> PageId {
        if i == 0 {
            self.first_child()
        } else {
            self.entry_child(i - 1)
        }
    }
}

/// Length of the entry at `off` in a node page of the given kind.
fn entry_len(data: &[u8], off: usize, leaf: bool) -> usize {
    let key_len = get_u16(data, off) as usize;
    if leaf {
        let flags = data.get(off + 2).copied().unwrap_or(0);
        let body = if flags & FLAG_OVERFLOW != 0 {
            OVERFLOW_REF
        } else {
            get_u32(data, off + 3) as usize
        };
        LEAF_ENTRY_HEADER + key_len + body
    } else {
        BRANCH_ENTRY_HEADER + key_len
    }
}

/// The first eight bytes of `bytes` as a big-endian integer, zero-padded. If two keys' prefixes
/// differ, they order the keys exactly as the bytes do (a zero pad sorts below any byte, as a
/// shorter key sorts below its extensions); if they are equal, the bytes must decide.
#[inline]
pub(crate) fn key_prefix(bytes: &[u8]) -> u64 {
    if let Some(first) = bytes.first_chunk::<8>() {
        return u64::from_be_bytes(*first);
    }
    let mut buf = [0u8; 8];
    for (to, from) in buf.iter_mut().zip(bytes) {
        *to = *from;
    }
    u64::from_be_bytes(buf)
}

/// Position of `key` among the keys of a slotted page: the index of the first key >= `key` (by
/// `cmp`), and whether it is equal. One pass over the slot array with the entry header size
/// fixed for the page; with `prefix_order` (plain byte order) most probes are decided by one
/// integer comparison of the keys' first eight bytes. This loop is most of the time of a read.
///
/// With `append_probe` the last key is probed first, so that an append (the change log always,
/// sorted loads, growing ids) costs one probe instead of a binary search: the writer's paths
/// ask for it. Readers do not: for a random key that probe is one more cache line of the page
/// touched for nothing (a leaf of 150-byte values holds about 20 entries, so a search touches
/// about 5 entry lines; the probe made it 6).
#[inline]
pub(crate) fn search_keys(
    data: &[u8],
    key: &[u8],
    prefix_order: bool,
    append_probe: bool,
    cmp: impl Fn(&[u8], &[u8]) -> std::cmp::Ordering,
) -> (usize, bool) {
    let header = if data.get(4) == Some(&(PageKind::Leaf as u8)) {
        LEAF_ENTRY_HEADER
    } else {
        BRANCH_ENTRY_HEADER
    };
    let wanted = key_prefix(key);
    // A validated page's count always fits its slot array; a count that overruns the page is
    // cut to the slots there are, so the search stays inside the page whatever the bytes say.
    let slots = data.get(PAGE_HEADER..).unwrap_or(&[]).as_chunks::<2>().0;
    let slots = &slots[..(get_u16(data, 6) as usize).min(slots.len())];
    // A function forced inline rather than a closure: the closure was called out of line
    // (it has two call sites), with its captures read back from memory on every probe.
    #[inline(always)]
    fn probe_order(
        data: &[u8],
        slot: &[u8; 2],
        header: usize,
        (key, wanted, prefix_order): (&[u8], u64, bool),
        cmp: &impl Fn(&[u8], &[u8]) -> std::cmp::Ordering,
    ) -> std::cmp::Ordering {
        let (probe, prefix) =
            entry_key_and_prefix(data, u16::from_le_bytes(*slot) as usize, header);
        if prefix_order && prefix != wanted {
            return prefix.cmp(&wanted);
        }
        cmp(probe, key)
    }
    let wanted = (key, wanted, prefix_order);
    let Some(last) = slots.last() else {
        return (0, false);
    };
    let mut hi = slots.len();
    if append_probe {
        // Appends go past the last key: one probe instead of a binary search.
        match probe_order(data, last, header, wanted, &cmp) {
            std::cmp::Ordering::Less => return (hi, false),
            std::cmp::Ordering::Equal => return (hi - 1, true),
            std::cmp::Ordering::Greater => hi -= 1,
        }
    }
    let mut lo = 0;
    while lo < hi {
        let mid = (lo + hi) / 2;
        match probe_order(data, &slots[mid], header, wanted, &cmp) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Equal => return (mid, true),
            std::cmp::Ordering::Greater => hi = mid,
        }
    }
    (lo, false)
}

/// The key of the entry at `off` (with an entry header of `header` bytes) and its
/// [`key_prefix`]. The prefix is one unaligned 8-byte load masked to the key's length, not a
/// copy of a short key: branch separators are cut to the shortest that separates (two to four
/// bytes in a tree of a million random keys), and copying them byte by byte was a fifth of a
/// point read's instructions.
#[inline(always)]
fn entry_key_and_prefix(data: &[u8], off: usize, header: usize) -> (&[u8], u64) {
    let start = off + header;
    let key = data
        .get(start..start + get_u16(data, off) as usize)
        .unwrap_or(&[]);
    let prefix = match data.get(start..start + 8) {
        Some(bytes) => {
            let raw = u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]));
            match key.len() {
                // The bytes after a short key belong to other entries: mask them off, which
                // leaves the zero padding of `key_prefix`.
                n @ 0..8 => raw & !(u64::MAX >> (8 * n)),
                _ => raw,
            }
        }
        // A short key at the very end of the page.
        None => key_prefix(key),
    };
    (key, prefix)
}

/// Key of the entry at `off`.
fn entry_key(data: &[u8], off: usize, leaf: bool) -> &[u8] {
    let key_len = get_u16(data, off) as usize;
    let start = off
        + if leaf {
            LEAF_ENTRY_HEADER
        } else {
            BRANCH_ENTRY_HEADER
        };
    data.get(start..start + key_len).unwrap_or(&[])
}

/// Bytes a leaf entry for `key` and `value` takes, its slot included.
pub(crate) fn leaf_entry_size(key: &[u8], value: &StoredValue) -> usize {
    2 + LEAF_ENTRY_HEADER + key.len() + value.encoded_len()
}

/// Encodes a leaf entry.
fn leaf_entry(key: &[u8], value: &StoredValue) -> Vec<u8> {
    let mut e = Vec::with_capacity(LEAF_ENTRY_HEADER + key.len() + value.encoded_len());
    e.extend_from_slice(&(key.len() as u16).to_le_bytes());
    match value {
        StoredValue::Inline(v) => {
            e.push(0);
            e.extend_from_slice(&(v.len() as u32).to_le_bytes());
            e.extend_from_slice(key);
            e.extend_from_slice(v);
        }
        StoredValue::Overflow { page, len, crc } => {
            e.push(FLAG_OVERFLOW);
            e.extend_from_slice(&len.to_le_bytes());
            e.extend_from_slice(key);
            e.extend_from_slice(&page.to_le_bytes());
            e.extend_from_slice(&crc.to_le_bytes());
        }
    }
    e
}

/// Encodes a branch entry.
fn branch_entry(key: &[u8], child: PageId) -> Vec<u8> {
    let mut e = Vec::with_capacity(BRANCH_ENTRY_HEADER + key.len());
    e.extend_from_slice(&(key.len() as u16).to_le_bytes());
    e.extend_from_slice(&child.to_le_bytes());
    e.extend_from_slice(key);
    e
}

/// A node the writer may change: one page buffer in the on-disk format, edited in place
/// (LMDB-style), so copying a page for copy-on-write is one memcpy and writing it is one pwrite.
///
/// Invariant: slots occupy `[PAGE_HEADER, PAGE_HEADER + 2 * count)`, live entries lie in
/// `[lower, page_size)`, and `garbage` counts the bytes of dead entries in that area.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    buf: Box<[u8]>,
    lower: usize,
    garbage: usize,
}

impl Node {
    fn empty(kind: PageKind, tree: u8, page_size: usize) -> Node {
        let mut buf = vec![0u8; page_size].into_boxed_slice();
        buf[4] = kind as u8;
        buf[5] = tree;
        Node {
            buf,
            lower: page_size,
            garbage: 0,
        }
    }

    pub(crate) fn new_leaf(tree: u8, page_size: usize) -> Node {
        Node::empty(PageKind::Leaf, tree, page_size)
    }

    pub(crate) fn new_branch(tree: u8, page_size: usize, first: PageId) -> Node {
        let mut n = Node::empty(PageKind::Branch, tree, page_size);
        put_u64(&mut n.buf, 16, first);
        n
    }

    /// Copies a validated page.
    pub(crate) fn from_view(view: PageView<'_>) -> Node {
        let buf: Box<[u8]> = view.data.into();
        let leaf = view.is_leaf();
        let mut lower = buf.len();
        let mut live = 0;
        for i in 0..view.count() {
            let off = get_u16(&buf, PAGE_HEADER + 2 * i) as usize;
            lower = lower.min(off);
            live += entry_len(&buf, off, leaf);
        }
        let garbage = (buf.len() - lower).saturating_sub(live);
        Node {
            buf,
            lower,
            garbage,
        }
    }

    pub(crate) fn tree(&self) -> u8 {
        self.buf[5]
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.buf[4] == PageKind::Leaf as u8
    }

    pub(crate) fn count(&self) -> usize {
        get_u16(&self.buf, 6) as usize
    }

    fn set_count(&mut self, n: usize) {
        put_u16(&mut self.buf, 6, n as u16);
    }

    fn slot(&self, i: usize) -> usize {
        get_u16(&self.buf, PAGE_HEADER + 2 * i) as usize
    }

    fn view(&self) -> PageView<'_> {
        PageView { data: &self.buf }
    }

    pub(crate) fn key(&self, i: usize) -> &[u8] {
        entry_key(&self.buf, self.slot(i), self.is_leaf())
    }

    pub(crate) fn value(&self, i: usize) -> ValueRef<'_> {
        self.view().value(i)
    }

    pub(crate) fn child(&self, i: usize) -> PageId {
        self.view().child(i)
    }

    pub(crate) fn set_child(&mut self, i: usize, id: PageId) {
        let at = if i == 0 { 16 } else { self.slot(i - 1) + 2 };
        put_u64(&mut self.buf, at, id);
    }

    /// Bytes in use: header, slots and live entries.
    pub(crate) fn used(&self) -> usize {
        PAGE_HEADER + 2 * self.count() + (self.buf.len() - self.lower) - self.garbage
    }

    /// Raw bytes of entry `i`.
    fn raw(&self, i: usize) -> &[u8] {
        let off = self.slot(i);
        &self.buf[off..off + entry_len(&self.buf, off, self.is_leaf())]
    }

    /// Rewrites the live entries densely at the end of the page.
    fn compact(&mut self) {
        let leaf = self.is_leaf();
        let old = self.buf.clone();
        let mut end = self.buf.len();
        for i in 0..self.count() {
            let off = get_u16(&old, PAGE_HEADER + 2 * i) as usize;
            let len = entry_len(&old, off, leaf);
            end -= len;
            self.buf[end..end + len].copy_from_slice(&old[off..off + len]);
            put_u16(&mut self.buf, PAGE_HEADER + 2 * i, end as u16);
        }
        self.lower = end;
        self.garbage = 0;
    }

    /// Inserts raw entry bytes as entry `i`; false (and no change) if the page is full.
    fn insert_raw(&mut self, i: usize, entry: &[u8]) -> bool {
        let n = self.count();
        let slots_end = PAGE_HEADER + 2 * n;
        let need = slots_end + 2 + entry.len();
        if self.lower < need {
            if self.lower + self.garbage < need {
                return false;
            }
            self.compact();
        }
        self.lower -= entry.len();
        let at = self.lower;
        self.buf[at..at + entry.len()].copy_from_slice(entry);
        self.buf
            .copy_within(PAGE_HEADER + 2 * i..slots_end, PAGE_HEADER + 2 * i + 2);
        put_u16(&mut self.buf, PAGE_HEADER + 2 * i, at as u16);
        self.set_count(n + 1);
        true
    }

    /// Removes entry `i`.
    fn remove_raw(&mut self, i: usize) {
        let n = self.count();
        let off = self.slot(i);
        let len = entry_len(&self.buf, off, self.is_leaf());
        self.buf.copy_within(
            PAGE_HEADER + 2 * i + 2..PAGE_HEADER + 2 * n,
            PAGE_HEADER + 2 * i,
        );
        self.set_count(n - 1);
        if off == self.lower {
            self.lower += len;
        } else {
            self.garbage += len;
        }
    }

    /// Inserts a leaf entry at `i`; false (and no change) if it does not fit.
    pub(crate) fn leaf_insert(&mut self, i: usize, key: &[u8], value: &StoredValue) -> bool {
        self.insert_raw(i, &leaf_entry(key, value))
    }

    /// Removes leaf entry `i`, returning its value.
    pub(crate) fn leaf_remove(&mut self, i: usize) -> StoredValue {
        let v = self.value(i).to_stored();
        self.remove_raw(i);
        v
    }

    /// Inserts separator `key` with right child `child` as entry `i` (child index i + 1);
    /// false (and no change) if it does not fit.
    pub(crate) fn branch_insert(&mut self, i: usize, key: &[u8], child: PageId) -> bool {
        self.insert_raw(i, &branch_entry(key, child))
    }

    /// Removes branch entry `i` (separator and child i + 1).
    pub(crate) fn branch_remove(&mut self, i: usize) {
        self.remove_raw(i);
    }

    /// Splits this node in two by bytes. Returns the separator (for leaves the first key of the
    /// right node; for branches the middle key, which moves up) and the right node. Entries are
    /// at most a quarter page, so each half keeps room for the insert that did not fit.
    pub(crate) fn split(&mut self) -> (Vec<u8>, Node) {
        let entries: Vec<Vec<u8>> = (0..self.count()).map(|i| self.raw(i).to_vec()).collect();
        let first = get_u64(&self.buf, 16);
        let (left, sep, right) =
            distribute(self.is_leaf(), self.tree(), self.buf.len(), first, &entries);
        *self = left;
        (sep, right)
    }

    /// Merges `right` (the next sibling; `sep` is the separator between them) into this node if
    /// both fit in one page, otherwise spreads their entries evenly over the two. Returns the new
    /// separator and right node, or `None` if everything now lives in this node.
    pub(crate) fn merge_or_balance(&mut self, sep: &[u8], right: &Node) -> Option<(Vec<u8>, Node)> {
        let leaf = self.is_leaf();
        let mut entries: Vec<Vec<u8>> = (0..self.count()).map(|i| self.raw(i).to_vec()).collect();
        if !leaf {
            entries.push(branch_entry(sep, get_u64(&right.buf, 16)));
        }
        entries.extend((0..right.count()).map(|i| right.raw(i).to_vec()));
        let total: usize = PAGE_HEADER + entries.iter().map(|e| e.len() + 2).sum::<usize>();
        let first = get_u64(&self.buf, 16);
        let page_size = self.buf.len();
        if total <= page_size {
            let mut merged = if leaf {
                Node::new_leaf(self.tree(), page_size)
            } else {
                Node::new_branch(self.tree(), page_size, first)
            };
            for (i, e) in entries.iter().enumerate() {
                merged.insert_raw(i, e);
            }
            *self = merged;
            return None;
        }
        let (left, sep, right) = distribute(leaf, self.tree(), page_size, first, &entries);
        *self = left;
        Some((sep, right))
    }

    /// Finishes the page for writing (page id, zeroed free space, checksum); returns its bytes.
    pub(crate) fn finish(&mut self, id: PageId) -> &[u8] {
        if self.garbage > 0 {
            self.compact();
        }
        put_u64(&mut self.buf, 8, id);
        let slots_end = PAGE_HEADER + 2 * self.count();
        self.buf[slots_end..self.lower].fill(0);
        seal_page(&mut self.buf);
        &self.buf
    }
}

/// Builds two nodes from a sequence of raw entries, split where the bytes balance.
fn distribute(
    leaf: bool,
    tree: u8,
    page_size: usize,
    first: PageId,
    entries: &[Vec<u8>],
) -> (Node, Vec<u8>, Node) {
    let total: usize = entries.iter().map(|e| e.len() + 2).sum();
    let n = entries.len();
    let mut acc = 0;
    let mut at = n / 2;
    for (i, e) in entries.iter().enumerate() {
        acc += e.len() + 2;
        if acc * 2 >= total {
            at = i + 1;
            break;
        }
    }
    if leaf {
        // An entry on each side.
        let at = at.clamp(1, n.saturating_sub(1).max(1));
        let mut left = Node::new_leaf(tree, page_size);
        let mut right = Node::new_leaf(tree, page_size);
        for (i, e) in entries[..at].iter().enumerate() {
            left.insert_raw(i, e);
        }
        for (i, e) in entries[at..].iter().enumerate() {
            right.insert_raw(i, e);
        }
        let sep = right.key(0).to_vec();
        (left, sep, right)
    } else {
        // Entry `at` moves up; its child becomes the right node's leftmost.
        let at = at.clamp(1, n.saturating_sub(2).max(1));
        let mid = &entries[at];
        let sep = entry_key(mid, 0, false).to_vec();
        let mut left = Node::new_branch(tree, page_size, first);
        let mut right = Node::new_branch(tree, page_size, get_u64(mid, 2));
        for (i, e) in entries[..at].iter().enumerate() {
            left.insert_raw(i, e);
        }
        for (i, e) in entries[at + 1..].iter().enumerate() {
            right.insert_raw(i, e);
        }
        (left, sep, right)
    }
}

/// A node as seen by tree code: a page in the map, or a dirty node owned by the writer.
#[derive(Clone, Copy)]
pub(crate) enum NodeRef<'a> {
    Page(PageView<'a>),
    Owned(&'a Node),
}

impl<'a> NodeRef<'a> {
    /// The page image: a dirty node's buffer has the same layout as a page in the file.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        match self {
            NodeRef::Page(p) => p.data,
            NodeRef::Owned(n) => &n.buf,
        }
    }

    pub(crate) fn is_leaf(&self) -> bool {
        match self {
            NodeRef::Page(p) => p.is_leaf(),
            NodeRef::Owned(n) => n.is_leaf(),
        }
    }

    pub(crate) fn count(&self) -> usize {
        match self {
            NodeRef::Page(p) => p.count(),
            NodeRef::Owned(n) => n.count(),
        }
    }

    pub(crate) fn key(&self, i: usize) -> &'a [u8] {
        match self {
            NodeRef::Page(p) => p.key(i),
            NodeRef::Owned(n) => n.key(i),
        }
    }

    pub(crate) fn value(&self, i: usize) -> ValueRef<'a> {
        match self {
            NodeRef::Page(p) => p.value(i),
            NodeRef::Owned(n) => n.value(i),
        }
    }

    pub(crate) fn child(&self, i: usize) -> PageId {
        match self {
            NodeRef::Page(p) => p.child(i),
            NodeRef::Owned(n) => n.child(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A node holding `keys` (sorted, distinct), as a leaf or as a branch.
    fn node_of(keys: &[Vec<u8>], leaf: bool) -> Node {
        let mut node = if leaf {
            Node::new_leaf(0, 4096)
        } else {
            Node::new_branch(0, 4096, 2)
        };
        for (i, k) in keys.iter().enumerate() {
            let fits = if leaf {
                node.leaf_insert(i, k, &StoredValue::Inline(vec![0xEE; i % 3]))
            } else {
                node.branch_insert(i, k, 3 + i as u64)
            };
            assert!(fits, "test keys fit one page");
        }
        node
    }

    proptest! {
        /// The search over a page (with the masked 8-byte prefix loads) finds exactly what a
        /// search of the sorted keys finds, for keys shorter and longer than the prefix, with
        /// or without the append probe; short keys sit at the end of the page, where no
        /// 8-byte load fits.
        #[test]
        fn page_search_is_slice_search(
            set in proptest::collection::btree_set(proptest::collection::vec(0u8..3, 0..11), 1..60),
            probes in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..11), 1..20),
            leaf in any::<bool>(),
        ) {
            let keys: Vec<Vec<u8>> = set.into_iter().collect();
            let mut node = node_of(&keys, leaf);
            let page = node.finish(7).to_vec();
            for probe in probes.iter().chain(&keys) {
                let want = match keys.binary_search(probe) {
                    Ok(i) => (i, true),
                    Err(i) => (i, false),
                };
                for append_probe in [false, true] {
                    prop_assert_eq!(
                        search_keys(&page, probe, true, append_probe, |a: &[u8], b: &[u8]| a.cmp(b)),
                        want
                    );
                }
            }
        }

        /// The prefix of a stored key is `key_prefix` of its bytes, whether other bytes follow
        /// it (masked off) or the page ends with it.
        #[test]
        fn stored_prefix_is_key_prefix(
            key in proptest::collection::vec(any::<u8>(), 0..12),
            pad in 0usize..12,
            at_page_end in any::<bool>(),
        ) {
            let mut page = vec![0xA5u8; 48 + pad + key.len()];
            let off = 30 + pad;
            page[off..off + 2].copy_from_slice(&(key.len() as u16).to_le_bytes());
            let start = off + BRANCH_ENTRY_HEADER;
            page[start..start + key.len()].copy_from_slice(&key);
            if at_page_end {
                page.truncate(start + key.len());
            }
            let (stored, prefix) = entry_key_and_prefix(&page, off, BRANCH_ENTRY_HEADER);
            prop_assert_eq!(stored, &key[..]);
            prop_assert_eq!(prefix, key_prefix(&key));
        }
    }
}
