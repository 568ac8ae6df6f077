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
use crate::page::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seal_page, PageId};
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

    /// Decodes into the writer's owned form.
    pub(crate) fn to_node(self) -> Node {
        let n = self.count();
        if self.is_leaf() {
            let mut leaf = Node::new_leaf(self.tree_tag());
            for i in 0..n {
                leaf.leaf_insert(i, self.key(i).to_vec(), self.value(i).to_stored());
            }
            leaf
        } else {
            let mut branch = Node::new_branch(self.tree_tag(), self.first_child());
            for i in 0..n {
                branch.branch_insert(i, self.key(i).to_vec(), self.entry_child(i));
            }
            branch
        }
    }
}

/// One leaf entry in owned form.
#[derive(Clone, Debug)]
pub(crate) struct LeafEntry {
    pub(crate) key: Vec<u8>,
    pub(crate) value: StoredValue,
}

/// Writer-side node. `size` is always the encoded size in bytes (header + slots + entries).
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) tree: u8,
    pub(crate) size: usize,
    pub(crate) body: NodeBody,
}

/// Contents of an owned node.
#[derive(Clone, Debug)]
pub(crate) enum NodeBody {
    Leaf(Vec<LeafEntry>),
    Branch {
        first: PageId,
        entries: Vec<(Vec<u8>, PageId)>,
    },
}

pub(crate) fn leaf_entry_size(key_len: usize, value: &StoredValue) -> usize {
    2 + LEAF_ENTRY_HEADER + key_len + value.encoded_len()
}

pub(crate) fn branch_entry_size(key_len: usize) -> usize {
    2 + BRANCH_ENTRY_HEADER + key_len
}

impl Node {
    pub(crate) fn new_leaf(tree: u8) -> Node {
        Node {
            tree,
            size: PAGE_HEADER,
            body: NodeBody::Leaf(Vec::new()),
        }
    }

    pub(crate) fn new_branch(tree: u8, first: PageId) -> Node {
        Node {
            tree,
            size: PAGE_HEADER,
            body: NodeBody::Branch {
                first,
                entries: Vec::new(),
            },
        }
    }

    pub(crate) fn is_leaf(&self) -> bool {
        matches!(self.body, NodeBody::Leaf(_))
    }

    pub(crate) fn count(&self) -> usize {
        match &self.body {
            NodeBody::Leaf(e) => e.len(),
            NodeBody::Branch { entries, .. } => entries.len(),
        }
    }

    pub(crate) fn key(&self, i: usize) -> &[u8] {
        match &self.body {
            NodeBody::Leaf(e) => &e[i].key,
            NodeBody::Branch { entries, .. } => &entries[i].0,
        }
    }

    pub(crate) fn value(&self, i: usize) -> ValueRef<'_> {
        match &self.body {
            NodeBody::Leaf(e) => match &e[i].value {
                StoredValue::Inline(v) => ValueRef::Inline(v),
                StoredValue::Overflow { page, len, crc } => ValueRef::Overflow {
                    page: *page,
                    len: *len,
                    crc: *crc,
                },
            },
            NodeBody::Branch { .. } => ValueRef::Inline(&[]),
        }
    }

    pub(crate) fn child(&self, i: usize) -> PageId {
        match &self.body {
            NodeBody::Branch { first, entries } => {
                if i == 0 {
                    *first
                } else {
                    entries[i - 1].1
                }
            }
            NodeBody::Leaf(_) => 0,
        }
    }

    pub(crate) fn set_child(&mut self, i: usize, id: PageId) {
        if let NodeBody::Branch { first, entries } = &mut self.body {
            if i == 0 {
                *first = id;
            } else {
                entries[i - 1].1 = id;
            }
        }
    }

    pub(crate) fn leaf_insert(&mut self, i: usize, key: Vec<u8>, value: StoredValue) {
        self.size += leaf_entry_size(key.len(), &value);
        if let NodeBody::Leaf(e) = &mut self.body {
            e.insert(i, LeafEntry { key, value });
        }
    }

    /// Replaces the value of entry `i`, returning the old one.
    pub(crate) fn leaf_replace(&mut self, i: usize, value: StoredValue) -> StoredValue {
        let NodeBody::Leaf(e) = &mut self.body else {
            return value;
        };
        self.size = self.size + value.encoded_len() - e[i].value.encoded_len();
        std::mem::replace(&mut e[i].value, value)
    }

    pub(crate) fn leaf_remove(&mut self, i: usize) -> LeafEntry {
        let NodeBody::Leaf(e) = &mut self.body else {
            unreachable!("leaf_remove on a branch")
        };
        let entry = e.remove(i);
        self.size -= leaf_entry_size(entry.key.len(), &entry.value);
        entry
    }

    /// Inserts separator `key` with right child `child` as entry `i` (child index i + 1).
    pub(crate) fn branch_insert(&mut self, i: usize, key: Vec<u8>, child: PageId) {
        self.size += branch_entry_size(key.len());
        if let NodeBody::Branch { entries, .. } = &mut self.body {
            entries.insert(i, (key, child));
        }
    }

    /// Removes entry `i` (separator and child i + 1).
    pub(crate) fn branch_remove(&mut self, i: usize) -> (Vec<u8>, PageId) {
        let NodeBody::Branch { entries, .. } = &mut self.body else {
            unreachable!("branch_remove on a leaf")
        };
        let entry = entries.remove(i);
        self.size -= branch_entry_size(entry.0.len());
        entry
    }

    /// Splits off the upper part of an overfull node. Returns the separator (first key of the
    /// right part) and the right node. The split point balances bytes, so with entries of at most
    /// a quarter page both halves fit in a page.
    pub(crate) fn split(&mut self) -> (Vec<u8>, Node) {
        let half = (self.size - PAGE_HEADER) / 2;
        match &mut self.body {
            NodeBody::Leaf(entries) => {
                let mut acc = 0;
                let mut at = entries.len() - 1;
                for (i, e) in entries.iter().enumerate() {
                    acc += leaf_entry_size(e.key.len(), &e.value);
                    if acc >= half {
                        at = (i + 1).min(entries.len() - 1).max(1);
                        break;
                    }
                }
                let right_entries = entries.split_off(at);
                let mut right = Node::new_leaf(self.tree);
                for e in right_entries {
                    let n = right.count();
                    right.leaf_insert(n, e.key, e.value);
                }
                self.size -= right.size - PAGE_HEADER;
                let sep = right.key(0).to_vec();
                (sep, right)
            }
            NodeBody::Branch { entries, .. } => {
                // The separator at `at` moves up; its child becomes the right node's leftmost.
                let hi = entries.len().saturating_sub(2).max(1);
                let mut acc = 0;
                let mut at = entries.len() / 2;
                for (i, (k, _)) in entries.iter().enumerate() {
                    acc += branch_entry_size(k.len());
                    if acc >= half {
                        at = i.max(1).min(hi);
                        break;
                    }
                }
                let mut upper = entries.split_off(at);
                let (sep, right_first) = upper.remove(0);
                let mut right = Node::new_branch(self.tree, right_first);
                for (k, c) in upper {
                    let n = right.count();
                    right.branch_insert(n, k, c);
                }
                self.size -= right.size - PAGE_HEADER + branch_entry_size(sep.len());
                (sep, right)
            }
        }
    }

    /// Appends all entries of `right` (the next sibling) to this node; for branches `sep` is the
    /// separator between them in the parent, which comes down between the two halves.
    pub(crate) fn merge(&mut self, sep: Vec<u8>, right: Node) {
        match right.body {
            NodeBody::Leaf(entries) => {
                for e in entries {
                    let n = self.count();
                    self.leaf_insert(n, e.key, e.value);
                }
            }
            NodeBody::Branch { first, entries } => {
                let n = self.count();
                self.branch_insert(n, sep, first);
                for (k, c) in entries {
                    let n = self.count();
                    self.branch_insert(n, k, c);
                }
            }
        }
    }

    /// Encodes into `buf` (one page, zeroed by the caller or not: every byte is written).
    pub(crate) fn encode(&self, id: PageId, buf: &mut [u8]) {
        buf.fill(0);
        let page_size = buf.len();
        buf[4] = if self.is_leaf() {
            PageKind::Leaf as u8
        } else {
            PageKind::Branch as u8
        };
        buf[5] = self.tree;
        put_u16(buf, 6, self.count() as u16);
        put_u64(buf, 8, id);
        let mut end = page_size;
        match &self.body {
            NodeBody::Leaf(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    let len = LEAF_ENTRY_HEADER + e.key.len() + e.value.encoded_len();
                    end -= len;
                    put_u16(buf, PAGE_HEADER + 2 * i, end as u16);
                    put_u16(buf, end, e.key.len() as u16);
                    let kstart = end + LEAF_ENTRY_HEADER;
                    buf[kstart..kstart + e.key.len()].copy_from_slice(&e.key);
                    let vstart = kstart + e.key.len();
                    match &e.value {
                        StoredValue::Inline(v) => {
                            buf[end + 2] = 0;
                            put_u32(buf, end + 3, v.len() as u32);
                            buf[vstart..vstart + v.len()].copy_from_slice(v);
                        }
                        StoredValue::Overflow { page, len, crc } => {
                            buf[end + 2] = FLAG_OVERFLOW;
                            put_u32(buf, end + 3, *len);
                            put_u64(buf, vstart, *page);
                            put_u32(buf, vstart + 8, *crc);
                        }
                    }
                }
            }
            NodeBody::Branch { first, entries } => {
                put_u64(buf, 16, *first);
                for (i, (k, c)) in entries.iter().enumerate() {
                    let len = BRANCH_ENTRY_HEADER + k.len();
                    end -= len;
                    put_u16(buf, PAGE_HEADER + 2 * i, end as u16);
                    put_u16(buf, end, k.len() as u16);
                    put_u64(buf, end + 2, *c);
                    buf[end + BRANCH_ENTRY_HEADER..end + len].copy_from_slice(k);
                }
            }
        }
        debug_assert!(
            PAGE_HEADER + 2 * self.count() <= end,
            "node overflows its page"
        );
        seal_page(buf);
    }
}

/// A node as seen by tree code: a page in the map, or a dirty node owned by the writer.
#[derive(Clone, Copy)]
pub(crate) enum NodeRef<'a> {
    Page(PageView<'a>),
    Owned(&'a Node),
}

impl<'a> NodeRef<'a> {
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
