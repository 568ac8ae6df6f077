//! Copy-on-write B+tree over pages: lookups and cursors for readers, insert and remove for the
//! writer.
//!
//! Invariants (checked by `check.rs`):
//! - keys within a node are strictly increasing under the tree's [`KeyOrder`];
//! - every key in child i of a branch is >= separator i - 1 and < separator i;
//! - all leaves are at the same depth;
//! - no node but the root is empty, and a branch root has at least one separator.
//!
//! The writer never modifies a page that a reader or the durable checkpoint can see: the first
//! change to a node in a batch copies it to a fresh page (`TreeWriter::cow`), later changes in the
//! same batch edit that copy in place, since no reader sees a batch before it is sealed.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::node::{Node, NodeRef, StoredValue, ValueRef};
use crate::page::PageId;

/// Deepest tree the code will walk; a deeper one can only come from a corrupt (cyclic) file.
pub(crate) const MAX_DEPTH: usize = 48;

/// How a tree orders its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyOrder {
    /// Plain lexicographic byte order.
    Bytes,
    /// Keys are `user_key ++ u64 big-endian revision`: ordered by user key, then revision. Plain
    /// byte order would interleave "a"+rev with "a\0"+rev.
    RevSuffix,
}

impl KeyOrder {
    pub(crate) fn cmp(self, a: &[u8], b: &[u8]) -> Ordering {
        match self {
            KeyOrder::Bytes => compare_bytes(a, b),
            KeyOrder::RevSuffix => {
                let (ak, ar) = a.split_at(a.len().saturating_sub(8));
                let (bk, br) = b.split_at(b.len().saturating_sub(8));
                compare_bytes(ak, bk).then_with(|| compare_bytes(ar, br))
            }
        }
    }
}

/// Lexicographic byte order, eight bytes at a time: keys that differ early (random keys, hashed
/// ids) are told apart by one integer comparison instead of a call to `memcmp`.
#[inline]
pub(crate) fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let mut a_chunks = a.chunks_exact(8);
    let mut b_chunks = b.chunks_exact(8);
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        let (x, y) = (crate::node::key_prefix(x), crate::node::key_prefix(y));
        if x != y {
            return x.cmp(&y);
        }
    }
    // The common whole chunks are equal; what is left of each (a short tail, or whole chunks of
    // the longer slice) decides, with length as the tie-break.
    let done = a.len().min(b.len()) / 8 * 8;
    a[done..].cmp(&b[done..])
}

/// Read access to nodes and overflow values.
pub(crate) trait NodeSource {
    /// The node stored at `id`, verified.
    fn node(&self, id: PageId) -> Result<NodeRef<'_>>;
    /// The bytes of an overflow value, verified against its checksum.
    fn overflow(&self, page: PageId, len: u32, crc: u32) -> Result<&[u8]>;

    /// Resolves a value reference to its bytes.
    fn value_bytes<'a>(&'a self, v: ValueRef<'a>) -> Result<&'a [u8]> {
        match v {
            ValueRef::Inline(b) => Ok(b),
            ValueRef::Overflow { page, len, crc } => self.overflow(page, len, crc),
        }
    }
}

/// Position of `key` in a node: index of the first key >= `key`, and whether it is equal.
fn search(node: &NodeRef<'_>, order: KeyOrder, key: &[u8]) -> (usize, bool) {
    search_with(node, order, key, true)
}

/// [`search`] for readers: no append probe (see [`crate::node::search_keys`]).
fn search_read(node: &NodeRef<'_>, order: KeyOrder, key: &[u8]) -> (usize, bool) {
    search_with(node, order, key, false)
}

fn search_with(
    node: &NodeRef<'_>,
    order: KeyOrder,
    key: &[u8],
    append_probe: bool,
) -> (usize, bool) {
    match order {
        KeyOrder::Bytes => {
            crate::node::search_keys(node.bytes(), key, true, append_probe, compare_bytes)
        }
        KeyOrder::RevSuffix => {
            crate::node::search_keys(node.bytes(), key, false, append_probe, |a, b| {
                KeyOrder::RevSuffix.cmp(a, b)
            })
        }
    }
}

/// Child of a branch that covers `key`: the number of separators <= key.
fn child_index(node: &NodeRef<'_>, order: KeyOrder, key: &[u8]) -> usize {
    match search(node, order, key) {
        (i, true) => i + 1,
        (i, false) => i,
    }
}

fn too_deep(root: PageId) -> Error {
    Error::corrupt(format!(
        "tree rooted at page {root} is deeper than {MAX_DEPTH} levels (cycle?)"
    ))
}

/// Point lookup: one descent from the root.
pub(crate) fn get<'a, S: NodeSource>(
    src: &'a S,
    root: PageId,
    order: KeyOrder,
    key: &[u8],
) -> Result<Option<ValueRef<'a>>> {
    Ok(get_entry(src, root, order, key)?.map(|(_, v)| v))
}

/// Point lookup returning the stored key too (borrowed from its node, unlike `key`).
pub(crate) fn get_entry<'a, S: NodeSource>(
    src: &'a S,
    root: PageId,
    order: KeyOrder,
    key: &[u8],
) -> Result<Option<(&'a [u8], ValueRef<'a>)>> {
    if root == 0 {
        return Ok(None);
    }
    let mut id = root;
    for _ in 0..MAX_DEPTH {
        let node = src.node(id)?;
        if node.is_leaf() {
            return Ok(match search_read(&node, order, key) {
                (i, true) => Some((node.key(i), node.value(i))),
                _ => None,
            });
        }
        id = node.child(match search_read(&node, order, key) {
            (i, true) => i + 1,
            (i, false) => i,
        });
    }
    Err(too_deep(root))
}

/// A position in a tree, for ordered scans in both directions.
pub(crate) struct Cursor<'a, S: NodeSource> {
    src: &'a S,
    root: PageId,
    order: KeyOrder,
    /// Path from the root: (node, index). For branches the index is the child taken; for the
    /// leaf it is the entry. Empty means the cursor is not on an entry.
    stack: Vec<(NodeRef<'a>, usize)>,
}

impl<'a, S: NodeSource> Cursor<'a, S> {
    pub(crate) fn new(src: &'a S, root: PageId, order: KeyOrder) -> Self {
        Cursor {
            src,
            root,
            order,
            stack: Vec::new(),
        }
    }

    /// The entry under the cursor, if any.
    pub(crate) fn current(&self) -> Option<(&'a [u8], ValueRef<'a>)> {
        let (node, i) = self.stack.last()?;
        if *i < node.count() {
            Some((node.key(*i), node.value(*i)))
        } else {
            None
        }
    }

    fn push_path(&mut self, mut id: PageId, leftmost: bool) -> Result<()> {
        loop {
            if self.stack.len() >= MAX_DEPTH {
                return Err(too_deep(self.root));
            }
            let node = self.src.node(id)?;
            if node.is_leaf() {
                let i = if leftmost {
                    0
                } else {
                    node.count().saturating_sub(1)
                };
                self.stack.push((node, i));
                return Ok(());
            }
            let i = if leftmost { 0 } else { node.count() };
            self.stack.push((node, i));
            id = node.child(i);
        }
    }

    /// Positions on the first entry.
    pub(crate) fn first(&mut self) -> Result<()> {
        self.stack.clear();
        if self.root != 0 {
            self.push_path(self.root, true)?;
            self.skip_empty_forward()?;
        }
        Ok(())
    }

    /// Positions on the last entry.
    pub(crate) fn last(&mut self) -> Result<()> {
        self.stack.clear();
        if self.root != 0 {
            self.push_path(self.root, false)?;
            self.skip_empty_backward()?;
        }
        Ok(())
    }

    /// Positions on the first entry >= `key`.
    pub(crate) fn seek_ge(&mut self, key: &[u8]) -> Result<()> {
        self.stack.clear();
        if self.root == 0 {
            return Ok(());
        }
        let mut id = self.root;
        loop {
            if self.stack.len() >= MAX_DEPTH {
                return Err(too_deep(self.root));
            }
            let node = self.src.node(id)?;
            if node.is_leaf() {
                let (i, _) = search_read(&node, self.order, key);
                self.stack.push((node, i));
                return self.skip_empty_forward();
            }
            let i = child_index(&node, self.order, key);
            self.stack.push((node, i));
            id = node.child(i);
        }
    }

    /// Positions on the last entry <= `key`.
    pub(crate) fn seek_le(&mut self, key: &[u8]) -> Result<()> {
        self.seek_ge(key)?;
        match self.current() {
            Some((k, _)) if self.order.cmp(k, key) == Ordering::Equal => Ok(()),
            Some(_) => self.prev(),
            None => self.last(),
        }
    }

    /// Moves to the next entry (or off the end).
    pub(crate) fn next(&mut self) -> Result<()> {
        if let Some((_, i)) = self.stack.last_mut() {
            *i += 1;
        }
        self.skip_empty_forward()
    }

    /// Moves to the previous entry (or off the start).
    pub(crate) fn prev(&mut self) -> Result<()> {
        match self.stack.last_mut() {
            Some((_, i)) if *i > 0 => {
                *i -= 1;
                Ok(())
            }
            Some(_) => self.step_back_leaf(),
            None => Ok(()),
        }
    }

    /// If the leaf index ran past the end, climb to the next subtree.
    fn skip_empty_forward(&mut self) -> Result<()> {
        loop {
            match self.stack.last() {
                None => return Ok(()),
                Some((node, i)) if *i < node.count() => return Ok(()),
                Some(_) => {}
            }
            self.stack.pop();
            loop {
                let Some((node, i)) = self.stack.last_mut() else {
                    return Ok(());
                };
                if *i < node.count() {
                    *i += 1;
                    let child = node.child(*i);
                    self.push_path(child, true)?;
                    break;
                }
                self.stack.pop();
            }
        }
    }

    fn step_back_leaf(&mut self) -> Result<()> {
        self.stack.pop();
        loop {
            let Some((node, i)) = self.stack.last_mut() else {
                return Ok(());
            };
            if *i > 0 {
                *i -= 1;
                let child = node.child(*i);
                self.push_path(child, false)?;
                return self.skip_empty_backward();
            }
            self.stack.pop();
        }
    }

    fn skip_empty_backward(&mut self) -> Result<()> {
        match self.stack.last() {
            Some((node, _)) if node.count() == 0 => self.step_back_leaf(),
            _ => Ok(()),
        }
    }
}

/// Write access for the tree algorithms; implemented by the pager.
pub(crate) trait TreeWriter: NodeSource {
    /// Page size in bytes; a node must encode into one page.
    fn page_size(&self) -> usize;
    /// Makes node `id` writable in this batch: a no-op for a node already copied in this batch,
    /// otherwise a copy to a fresh page (the old page is freed). Returns the writable node's id.
    fn cow(&mut self, id: PageId) -> Result<PageId>;
    /// The writable node `id` (must have come from `cow` or `alloc_node`).
    fn dirty(&mut self, id: PageId) -> Result<&mut Node>;
    /// Stores a new node on a fresh page.
    fn alloc_node(&mut self, node: Node) -> PageId;
    /// Removes writable node `id` and frees its page.
    fn take_node(&mut self, id: PageId) -> Result<Node>;
    /// Frees the page of node `id`, writable or not.
    fn free_node(&mut self, id: PageId);
}

/// Inserts or replaces `key`; returns the previous value (whose overflow pages the caller frees).
pub(crate) fn insert<W: TreeWriter>(
    w: &mut W,
    root: &mut PageId,
    order: KeyOrder,
    tag: u8,
    fill: AppendFill,
    key: &[u8],
    value: StoredValue,
) -> Result<Option<StoredValue>> {
    if *root == 0 {
        let mut leaf = Node::new_leaf(tag, w.page_size());
        if !leaf.leaf_insert(0, key, &value) {
            return Err(internal("an entry does not fit in an empty page"));
        }
        *root = w.alloc_node(leaf);
        return Ok(None);
    }
    let id = w.cow(*root)?;
    *root = id;
    let (old, split) = insert_rec(w, id, Shape { order, fill }, key, value, 0, true)?;
    grow_root(w, root, tag, split);
    Ok(old)
}

/// How full right-edge appends leave a leaf before starting the next one, in percent of the
/// page, for trees with [`AppendFill::Slack`].
const APPEND_FILL_PERCENT: usize = 90;

/// How an insert at the right edge of a tree fills the last leaf: a per-tree policy chosen by
/// the tree's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppendFill {
    /// Fill leaves completely: for a tree that only ever grows at its right edge (the change
    /// log), where no later insert lands between existing keys.
    Full,
    /// Leave [`APPEND_FILL_PERCENT`] of the leaf used: the tree also takes inserts between
    /// existing keys later (a sorted bulk load, then random puts), and a full leaf would split on
    /// the first of them.
    Slack,
}

/// What an insert needs to know about its tree: how keys compare and how appends fill leaves.
#[derive(Clone, Copy)]
struct Shape {
    order: KeyOrder,
    fill: AppendFill,
}

/// A node split in two: the separator and the new right node, for the parent to adopt.
type Split = Option<(Vec<u8>, PageId)>;

fn internal(what: &str) -> Error {
    Error::corrupt(format!("internal: {what}"))
}

/// A split of the root adds a level.
fn grow_root<W: TreeWriter>(w: &mut W, root: &mut PageId, tag: u8, split: Split) {
    if let Some((sep, right)) = split {
        let mut branch = Node::new_branch(tag, w.page_size(), *root);
        // One separator always fits in an empty page.
        let _ = branch.branch_insert(0, &sep, right);
        *root = w.alloc_node(branch);
    }
}

/// Puts separator `sep` with right child `right` into branch `id`, splitting the branch if it
/// is full.
fn insert_separator<W: TreeWriter>(
    w: &mut W,
    id: PageId,
    order: KeyOrder,
    sep: Vec<u8>,
    right: PageId,
    rightmost: bool,
) -> Result<Split> {
    let node = w.dirty(id)?;
    let (i, _) = search(&NodeRef::Owned(node), order, &sep);
    if node.branch_insert(i, &sep, right) {
        return Ok(None);
    }
    if rightmost && i == node.count() && node.count() >= 2 {
        // Appending at the right edge of the tree (the log tree always does): keep this node
        // full and start a new one, so sequential inserts fill pages instead of halving them.
        let last = node.count() - 1;
        let up = node.key(last).to_vec();
        let up_child = node.child(last + 1);
        node.branch_remove(last);
        let mut fresh = Node::new_branch(node.tree(), w.page_size(), up_child);
        if !fresh.branch_insert(0, &sep, right) {
            return Err(internal("separator does not fit in an empty page"));
        }
        return Ok(Some((up, w.alloc_node(fresh))));
    }
    let (up, mut right_half) = node.split();
    let target = if order.cmp(&sep, &up) == Ordering::Less {
        w.dirty(id)?
    } else {
        &mut right_half
    };
    let (i, _) = search(&NodeRef::Owned(target), order, &sep);
    if !target.branch_insert(i, &sep, right) {
        return Err(internal("separator does not fit after a split"));
    }
    Ok(Some((up, w.alloc_node(right_half))))
}

/// The separator between two leaves whose keys meet at `left_last` < `right_first`. In byte
/// order it is the shortest prefix of `right_first` greater than `left_last` (suffix truncation,
/// as in Bayer and Unterauer's prefix B-trees): for random 24-byte keys one or two bytes, so
/// branch pages hold three times as many children and trees are a level shallower. Composite
/// keys (`RevSuffix`) keep the whole key, which their order needs.
fn separator(order: KeyOrder, left_last: &[u8], right_first: &[u8]) -> Vec<u8> {
    match order {
        KeyOrder::Bytes => {
            let common = left_last
                .iter()
                .zip(right_first)
                .take_while(|(a, b)| a == b)
                .count();
            // `left_last < right_first`, so `right_first` is longer than the common prefix, and
            // one more byte already exceeds `left_last` while staying <= `right_first`.
            right_first[..(common + 1).min(right_first.len())].to_vec()
        }
        KeyOrder::RevSuffix => right_first.to_vec(),
    }
}

/// `rightmost` says whether `id` is on the right edge of the tree.
fn insert_rec<W: TreeWriter>(
    w: &mut W,
    id: PageId,
    shape: Shape,
    key: &[u8],
    value: StoredValue,
    depth: usize,
    rightmost: bool,
) -> Result<(Option<StoredValue>, Split)> {
    let Shape { order, fill } = shape;
    if depth >= MAX_DEPTH {
        return Err(too_deep(id));
    }
    let page_size = w.page_size();
    let node = w.dirty(id)?;
    if node.is_leaf() {
        let (i, found) = search(&NodeRef::Owned(node), order, key);
        let old = if found {
            Some(node.leaf_remove(i))
        } else {
            None
        };
        let appending = rightmost && i == node.count() && i > 0;
        let appending_new = appending && !found;
        let leave_slack = appending_new
            && fill == AppendFill::Slack
            && node.used() + crate::node::leaf_entry_size(key, &value)
                > page_size * APPEND_FILL_PERCENT / 100;
        if !leave_slack && node.leaf_insert(i, key, &value) {
            return Ok((old, None));
        }
        if appending {
            // Appending at the right edge: leave this leaf full, start a new one.
            let mut fresh = Node::new_leaf(node.tree(), page_size);
            if !fresh.leaf_insert(0, key, &value) {
                return Err(internal("an entry does not fit in an empty page"));
            }
            let sep = separator(order, node.key(node.count() - 1), key);
            return Ok((old, Some((sep, w.alloc_node(fresh)))));
        }
        // Full: split, then insert into the half that covers the key.
        let (sep, mut right) = node.split();
        let sep = separator(order, node.key(node.count() - 1), &sep);
        let target = if order.cmp(key, &sep) == Ordering::Less {
            w.dirty(id)?
        } else {
            &mut right
        };
        let (i, _) = search(&NodeRef::Owned(target), order, key);
        if !target.leaf_insert(i, key, &value) {
            return Err(internal("entry does not fit after a split"));
        }
        return Ok((old, Some((sep, w.alloc_node(right)))));
    }
    let ci = child_index(&NodeRef::Owned(node), order, key);
    let child_rightmost = rightmost && ci == node.count();
    let child = node.child(ci);
    let child = w.cow(child)?;
    w.dirty(id)?.set_child(ci, child);
    let (old, split) = insert_rec(w, child, shape, key, value, depth + 1, child_rightmost)?;
    match split {
        Some((sep, right)) => Ok((
            old,
            insert_separator(w, id, order, sep, right, child_rightmost)?,
        )),
        None => Ok((old, None)),
    }
}

/// Removes `key`; returns its value if it was present.
pub(crate) fn remove<W: TreeWriter>(
    w: &mut W,
    root: &mut PageId,
    order: KeyOrder,
    tag: u8,
    key: &[u8],
) -> Result<Option<StoredValue>> {
    if *root == 0 || get(w, *root, order, key)?.is_none() {
        return Ok(None);
    }
    let id = w.cow(*root)?;
    *root = id;
    let (old, split) = remove_rec(w, id, order, key, 0)?;
    grow_root(w, root, tag, split);
    shrink_root(w, root)?;
    Ok(old)
}

/// Shrinks the root after removals: an empty leaf root means an empty tree; a branch root with
/// a single child hands the root to that child.
fn shrink_root<W: TreeWriter>(w: &mut W, root: &mut PageId) -> Result<()> {
    loop {
        let node = w.node(*root)?;
        if node.is_leaf() {
            if node.count() == 0 {
                w.free_node(*root);
                *root = 0;
            }
            return Ok(());
        }
        if node.count() > 0 {
            return Ok(());
        }
        let only = node.child(0);
        w.free_node(*root);
        *root = only;
    }
}

/// Removes the entries below `bound` from the tree's leftmost leaf (all of them when the whole
/// leaf is below it), in one descent: the bulk form of [`remove`] for trimming a tree from its
/// front (the change log's oldest entries). Returns how many entries were removed (0 when the
/// first key is at or above `bound`) and the removed values that live on overflow pages, for
/// the caller to free. Calling it until it returns 0 removes every key below `bound`.
///
/// The leaf loses entries and is rebalanced on the way up exactly as after single removals
/// (an emptied leaf merges with its right neighbour), so the tree's invariants are those
/// [`remove`] keeps; the cost is one copy of the leftmost path and of the leaf's right
/// neighbour per call, instead of one descent and one slot shift per entry.
pub(crate) fn remove_front<W: TreeWriter>(
    w: &mut W,
    root: &mut PageId,
    order: KeyOrder,
    tag: u8,
    bound: &[u8],
) -> Result<(u64, Vec<StoredValue>)> {
    if *root == 0 {
        return Ok((0, Vec::new()));
    }
    // Nothing below the bound: leave the tree untouched (no copy of its path).
    {
        let mut cur = Cursor::new(&*w, *root, order);
        cur.first()?;
        match cur.current() {
            Some((k, _)) if order.cmp(k, bound) == Ordering::Less => {}
            _ => return Ok((0, Vec::new())),
        }
    }
    let id = w.cow(*root)?;
    *root = id;
    let mut values = Vec::new();
    let (removed, split) = remove_front_rec(w, id, order, bound, 0, &mut values)?;
    grow_root(w, root, tag, split);
    shrink_root(w, root)?;
    Ok((removed, values))
}

/// [`remove_front`] below writable node `id`: [`remove_rec`] with the leftmost child always
/// taken and, at the leaf, every entry below `bound` removed.
fn remove_front_rec<W: TreeWriter>(
    w: &mut W,
    id: PageId,
    order: KeyOrder,
    bound: &[u8],
    depth: usize,
    values: &mut Vec<StoredValue>,
) -> Result<(u64, Split)> {
    if depth >= MAX_DEPTH {
        return Err(too_deep(id));
    }
    let node = w.dirty(id)?;
    if node.is_leaf() {
        let (below, _) = search(&NodeRef::Owned(node), order, bound);
        for _ in 0..below {
            let v = node.leaf_remove(0);
            if matches!(v, StoredValue::Overflow { .. }) {
                values.push(v);
            }
        }
        return Ok((below as u64, None));
    }
    let first = node.child(0);
    let child = w.cow(first)?;
    w.dirty(id)?.set_child(0, child);
    let (removed, split) = remove_front_rec(w, child, order, bound, depth + 1, values)?;
    if let Some((sep, right)) = split {
        return Ok((removed, insert_separator(w, id, order, sep, right, false)?));
    }
    let page_size = w.page_size();
    let child_node = w.dirty(child)?;
    if child_node.count() == 0 || child_node.used() < page_size / 4 {
        return Ok((removed, rebalance(w, id, order, 0)?));
    }
    Ok((removed, None))
}

fn remove_rec<W: TreeWriter>(
    w: &mut W,
    id: PageId,
    order: KeyOrder,
    key: &[u8],
    depth: usize,
) -> Result<(Option<StoredValue>, Split)> {
    if depth >= MAX_DEPTH {
        return Err(too_deep(id));
    }
    let node = w.dirty(id)?;
    if node.is_leaf() {
        return Ok(match search(&NodeRef::Owned(node), order, key) {
            (i, true) => (Some(node.leaf_remove(i)), None),
            _ => (None, None),
        });
    }
    let ci = child_index(&NodeRef::Owned(node), order, key);
    let child = node.child(ci);
    let child = w.cow(child)?;
    w.dirty(id)?.set_child(ci, child);
    let (old, split) = remove_rec(w, child, order, key, depth + 1)?;
    if let Some((sep, right)) = split {
        // A child grew while rebalancing its own children (a longer separator): adopt it.
        return Ok((old, insert_separator(w, id, order, sep, right, false)?));
    }
    let page_size = w.page_size();
    let child_node = w.dirty(child)?;
    if child_node.count() == 0 || child_node.used() < page_size / 4 {
        return Ok((old, rebalance(w, id, order, ci)?));
    }
    Ok((old, None))
}

/// Merges underfull child `ci` of `parent` with a neighbour, or evens out the two if they do
/// not fit in one page. Afterwards no child of `parent` is empty. Returns a split of `parent`
/// if the new separator did not fit in it.
fn rebalance<W: TreeWriter>(
    w: &mut W,
    parent: PageId,
    order: KeyOrder,
    ci: usize,
) -> Result<Split> {
    let pnode = w.dirty(parent)?;
    if pnode.count() == 0 {
        return Ok(None); // a lone child: the grandparent (or the root shrink) deals with it
    }
    let left_idx = ci.saturating_sub(1);
    let (left, right) = (pnode.child(left_idx), pnode.child(left_idx + 1));
    let sep = pnode.key(left_idx).to_vec();
    let left = w.cow(left)?;
    let right = w.cow(right)?;
    w.dirty(parent)?.set_child(left_idx, left);
    let right_node = w.take_node(right)?;
    let balanced = w.dirty(left)?.merge_or_balance(&sep, &right_node);
    w.dirty(parent)?.branch_remove(left_idx);
    match balanced {
        None => Ok(None),
        Some((new_sep, new_right)) => {
            let rid = w.alloc_node(new_right);
            insert_separator(w, parent, order, new_sep, rid, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A truncated separator lies strictly above the left key and at or below the right.
        #[test]
        fn separators_split_their_neighbours(
            a in proptest::collection::vec(0u8..3, 0..12),
            b in proptest::collection::vec(0u8..3, 0..12),
        ) {
            prop_assume!(a != b);
            let (left, right) = if a < b { (a, b) } else { (b, a) };
            let sep = separator(KeyOrder::Bytes, &left, &right);
            prop_assert!(left < sep && sep <= right, "{:?} {:?} {:?}", left, sep, right);
        }

        /// The chunked comparison is exactly the slice order, including prefixes and lengths.
        #[test]
        fn compare_bytes_is_slice_order(
            a in proptest::collection::vec(0u8..4, 0..40),
            b in proptest::collection::vec(0u8..4, 0..40),
        ) {
            prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
            let mut c = a.clone();
            c.extend_from_slice(&b);
            prop_assert_eq!(compare_bytes(&a, &c), a.cmp(&c));
            prop_assert_eq!(compare_bytes(&c, &a), c.cmp(&a));
        }
    }
}
