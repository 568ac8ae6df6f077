//! Integrity check: every reachable page verified, every page accounted for.
//!
//! Like SQLite's `PRAGMA integrity_check`, this walks the whole file: checksums of every tree
//! page and overflow value (re-verified even if verified before), key order within nodes and
//! against the separators above them, uniform leaf depth, record encoding, that every change-log
//! entry points at a stored version, the live-key count, and that the pages reachable from the
//! trees, the free pages, the pages waiting for reuse and the free-list pages partition the file
//! exactly (a page in two places, or in none, is reported).
//!
//! It reads a pinned snapshot, not the writer's state: [`crate::Store::check_with_progress`]
//! seals the working state, pins it and copies the allocator's lists under the writer lock, and
//! the walk runs without any lock. Pages of a pinned snapshot are never reused while it lives
//! (the reader rule, `alloc.rs`), so the walk sees exactly the state of that moment, and the
//! copied lists are that moment's free and waiting pages.

use std::cmp::Ordering;

use crate::alloc::Allocator;
use crate::btree::{self, KeyOrder, NodeSource, MAX_DEPTH};
use crate::error::{Error, Result};
use crate::keyspace::{KsState, TAG_CURRENT, TAG_HISTORY, TAG_LEASES, TAG_LEASE_KEYS};
use crate::node::{NodeRef, ValueRef};
use crate::page::PageId;
use crate::pager::ReadView;
use crate::types::CheckReport;

/// How often (in pages walked) the progress callback is called.
const PROGRESS_EVERY: u64 = 1024;

struct Walk<'a, P: FnMut(u64, u64)> {
    view: &'a ReadView<'a>,
    page_size: usize,
    /// Pages the trees and values use, as the snapshot counts them (for progress).
    total: u64,
    done: u64,
    progress: P,
    /// Who claims each page: 0 = nobody yet.
    owner: Vec<u8>,
    leaf_depth: Option<usize>,
    report: CheckReport,
    /// Live keys with a lease, and entries of the lease index.
    leased_keys: u64,
    lease_index_entries: u64,
}

const OWNER_TREE: u8 = 1;
const OWNER_OVERFLOW: u8 = 2;
const OWNER_FREE: u8 = 3;
const OWNER_META: u8 = 4;

impl<P: FnMut(u64, u64)> Walk<'_, P> {
    /// Counts `n` pages of trees or values walked, reporting progress now and then.
    fn walked(&mut self, n: u64) {
        let before = self.done / PROGRESS_EVERY;
        self.done = (self.done + n).min(self.total);
        if self.done / PROGRESS_EVERY != before {
            (self.progress)(self.done, self.total);
        }
    }

    fn claim(&mut self, id: PageId, who: u8) -> Result<()> {
        let slot = self
            .owner
            .get_mut(id as usize)
            .ok_or_else(|| Error::corrupt(format!("page {id} is beyond the end of the file")))?;
        if *slot != 0 {
            return Err(Error::corrupt(format!(
                "page {id} is in use twice (as {} and as {who})",
                *slot
            )));
        }
        *slot = who;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        id: PageId,
        order: KeyOrder,
        tag: u8,
        depth: usize,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        is_root: bool,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "tree deeper than {MAX_DEPTH} at page {id}"
            )));
        }
        self.claim(id, OWNER_TREE)?;
        self.view.verify_fully(id)?;
        self.report.tree_pages += 1;
        self.walked(1);
        let node = self.view.node(id)?;
        let n = node.count();
        if n == 0 && !(is_root && node.is_leaf()) {
            return Err(Error::corrupt(format!(
                "page {id}: empty node below the root"
            )));
        }
        if let NodeRef::Page(p) = &node {
            let t = p.tree_tag();
            if t != tag {
                return Err(Error::corrupt(format!(
                    "page {id}: belongs to tree {t}, found in tree {tag}"
                )));
            }
        }
        for i in 0..n {
            let k = node.key(i);
            if i > 0 && order.cmp(node.key(i - 1), k) != Ordering::Less {
                return Err(Error::corrupt(format!(
                    "page {id}: keys {} and {i} out of order",
                    i - 1
                )));
            }
            if lo.is_some_and(|lo| order.cmp(k, lo) == Ordering::Less)
                || hi.is_some_and(|hi| order.cmp(k, hi) != Ordering::Less)
            {
                return Err(Error::corrupt(format!(
                    "page {id}: key {i} outside the bounds of its parent"
                )));
            }
        }
        if node.is_leaf() {
            match self.leaf_depth {
                None => self.leaf_depth = Some(depth),
                Some(d) if d != depth => {
                    return Err(Error::corrupt(format!(
                        "page {id}: leaf at depth {depth}, others at {d}"
                    )))
                }
                _ => {}
            }
            for i in 0..n {
                self.value(node.key(i), node.value(i), tag)?;
            }
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = (0..n).map(|i| node.key(i).to_vec()).collect();
        let children: Vec<PageId> = (0..=n).map(|i| node.child(i)).collect();
        for (i, child) in children.into_iter().enumerate() {
            let clo = if i == 0 {
                lo
            } else {
                Some(keys[i - 1].as_slice())
            };
            let chi = if i == n { hi } else { Some(keys[i].as_slice()) };
            self.node(child, order, tag, depth + 1, clo, chi, false)?;
        }
        Ok(())
    }

    fn value(&mut self, key: &[u8], v: ValueRef<'_>, tag: u8) -> Result<()> {
        if let ValueRef::Overflow { page, len, crc } = v {
            let pages = (len as u64).div_ceil(self.page_size as u64).max(1);
            for p in page..page + pages {
                self.claim(p, OWNER_OVERFLOW)?;
            }
            self.report.overflow_pages += pages;
            self.walked(pages);
            self.view.verify_overflow_fully(page, len, crc)?;
        }
        let view = self.view;
        let bytes = view.value_bytes(v)?;
        match tag {
            TAG_LEASES => {
                if key.len() != 8 || bytes.len() != 8 {
                    return Err(Error::corrupt("lease entry is malformed"));
                }
            }
            TAG_LEASE_KEYS => {
                if key.len() < 9 || !bytes.is_empty() {
                    return Err(Error::corrupt("lease index entry is malformed"));
                }
                self.lease_index_entries += 1;
            }
            TAG_CURRENT | TAG_HISTORY => {
                if bytes.len() < 33 || !(bytes[0] == 1 || bytes[0] == 2) {
                    return Err(Error::corrupt(format!(
                        "record of key {key:?} is malformed"
                    )));
                }
                if tag == TAG_CURRENT && crate::page::get_u64(bytes, 25) != 0 {
                    self.leased_keys += 1;
                }
                if tag == TAG_CURRENT {
                    if bytes[0] != 1 {
                        return Err(Error::corrupt(format!(
                            "tombstone in the current tree for key {key:?}"
                        )));
                    }
                    self.report.keys += 1;
                } else {
                    self.report.history_records += 1;
                }
            }
            _ => {
                if key.len() != 12 || bytes.len() < 2 || !(bytes[0] == 1 || bytes[0] == 2) {
                    return Err(Error::corrupt("change-log entry is malformed"));
                }
                self.report.log_records += 1;
            }
        }
        Ok(())
    }
}

/// Every page the allocator holds out of the trees: free, waiting for readers or a checkpoint,
/// or holding a free list. With the pages reachable from the trees they partition the file.
pub(crate) fn unused_pages(a: &Allocator) -> Vec<PageId> {
    a.free
        .iter()
        .copied()
        .chain(a.awaiting_readers.values().flatten().copied())
        .chain(a.awaiting_checkpoint.iter().map(|&(_, p)| p))
        .chain(a.awaiting_in_flight.iter().map(|&(_, p)| p))
        .chain(a.freelist_pages.iter().copied())
        .chain(a.in_flight_freelist.iter().copied())
        .collect()
}

/// Checks the state of a pager that has no unsealed nodes (a freshly loaded file, as a snapshot
/// being verified before its install), with the pager's own allocator lists.
pub(crate) fn check_loaded(pager: &crate::pager::Pager, st: &KsState) -> Result<CheckReport> {
    let view = ReadView {
        map: &pager.map,
        page_count: pager.alloc.high_water,
    };
    check(
        &view,
        st,
        pager.page_size,
        &unused_pages(&pager.alloc),
        |_, _| {},
    )
}

/// Checks a sealed state (see the module docs): the trees of `st` as read through `view`,
/// whose file has `view.page_count` pages, `unused` of them outside the trees. Calls
/// `progress(done, total)` as pages are walked.
pub(crate) fn check(
    view: &ReadView<'_>,
    st: &KsState,
    page_size: usize,
    unused: &[PageId],
    progress: impl FnMut(u64, u64),
) -> Result<CheckReport> {
    let hw = view.page_count;
    let mut walk = Walk {
        leased_keys: 0,
        lease_index_entries: 0,
        view,
        page_size,
        total: hw.saturating_sub(2 + unused.len() as u64).max(1),
        done: 0,
        progress,
        owner: vec![0; hw as usize],
        leaf_depth: None,
        report: CheckReport::default(),
    };
    walk.claim(0, OWNER_META)?;
    walk.claim(1, OWNER_META)?;
    for (tag, order) in crate::keyspace::TREES {
        let root = crate::keyspace::root(&st.roots, tag);
        walk.leaf_depth = None;
        if root != 0 {
            walk.node(root, order, tag, 0, None, None, true)?;
        }
    }
    for &p in unused {
        walk.claim(p, OWNER_FREE)?;
        walk.report.free_pages += 1;
    }
    let total = walk.total;
    (walk.progress)(total, total);
    if let Some(lost) = walk.owner.iter().position(|&o| o == 0) {
        return Err(Error::corrupt(format!(
            "page {lost} is neither reachable nor free (leaked)"
        )));
    }
    if walk.report.keys != st.key_count {
        return Err(Error::corrupt(format!(
            "current tree holds {} keys, the store counts {}",
            walk.report.keys, st.key_count
        )));
    }
    // The lease index lists exactly the live keys that have a lease, under leases that exist.
    if walk.leased_keys != walk.lease_index_entries {
        return Err(Error::corrupt(format!(
            "{} live keys have a lease but the lease index holds {} entries",
            walk.leased_keys, walk.lease_index_entries
        )));
    }
    let mut cursor = btree::Cursor::new(view, st.roots.lease_keys, KeyOrder::Bytes);
    cursor.first()?;
    while let Some((k, _)) = cursor.current() {
        let (id, key) = k.split_at(8);
        if btree::get(view, st.roots.leases, KeyOrder::Bytes, id)?.is_none() {
            return Err(Error::corrupt(
                "the lease index names a lease that does not exist",
            ));
        }
        let mut be = [0u8; 8];
        be.copy_from_slice(id);
        let lease = u64::from_be_bytes(be);
        let attached = match btree::get(view, st.roots.current, KeyOrder::Bytes, key)? {
            Some(v) => crate::page::get_u64(view.value_bytes(v)?, 25) == lease,
            None => false,
        };
        if !attached {
            return Err(Error::corrupt(
                "the lease index names a key that does not have that lease",
            ));
        }
        cursor.next()?;
    }
    // Every change-log entry must point at a stored version of its key.
    let mut cursor = btree::Cursor::new(view, st.roots.log, KeyOrder::Bytes);
    cursor.first()?;
    while let Some((k, v)) = cursor.current() {
        let rev = crate::page::get_u64(
            &{
                let mut b = [0u8; 8];
                b.copy_from_slice(&k[..8]);
                b.reverse();
                b
            },
            0,
        );
        if rev > st.revision || rev < 2 {
            return Err(Error::corrupt(format!(
                "change-log entry at revision {rev} outside [2, {}]",
                st.revision
            )));
        }
        // Entries at or below the compact revision are the work an unfinished compaction has
        // left (`keyspace/compact.rs`): their versions may be gone already, and nothing reads
        // them.
        if rev <= st.compact_revision {
            cursor.next()?;
            continue;
        }
        let entry = view.value_bytes(v)?;
        let key = entry.get(1..).unwrap_or(&[]);
        let in_current = match btree::get(view, st.roots.current, KeyOrder::Bytes, key)? {
            Some(cv) => crate::page::get_u64(view.value_bytes(cv)?, 9) == rev,
            None => false,
        };
        if !in_current {
            let mut hk = key.to_vec();
            hk.extend_from_slice(&rev.to_be_bytes());
            if btree::get(view, st.roots.history, KeyOrder::RevSuffix, &hk)?.is_none() {
                return Err(Error::corrupt(format!(
                    "change-log entry at revision {rev} has no stored version"
                )));
            }
        }
        cursor.next()?;
    }
    Ok(walk.report)
}
