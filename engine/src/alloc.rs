//! Page allocation and the page-reclamation rules.
//!
//! A freed page goes through up to two waiting stages before it can be reused:
//!
//! 1. **Checkpoint rule.** A page that existed when the durable checkpoint was taken may belong
//!    to the durable tree, which recovery starts from. It is not reused until the next
//!    checkpoint is durable (`awaiting_checkpoint`). A page allocated after the last checkpoint
//!    (`epoch_allocated`) was never part of a durable tree and skips this stage.
//! 2. **Reader rule.** A page freed by the commit with sequence number `s` may still be read by a
//!    snapshot older than `s`. It is reused only once every live snapshot is at `s` or later
//!    (`awaiting_readers`).
//!
//! Pages allocated and freed inside one unsealed batch were never visible to anyone and return to
//! `free` at once. Every page in `[2, high_water)` is, at any time, exactly one of: reachable from
//! the writer's roots, in `free`, awaiting, or holding the persisted free list of the durable or
//! of the in-flight checkpoint (`check.rs` verifies this partition).
//!
//! A checkpoint is *in flight* from [`Allocator::checkpoint_started`] (its tree is sealed and its
//! free list written, under the writer lock) until [`Allocator::checkpoint_durable`] (its meta is
//! durable); commits continue in between. Two checkpoints are then relevant to the checkpoint
//! rule: the durable one (recovery starts from it if the power fails now) and the in-flight one
//! (recovery starts from it once its meta lands). A page freed before the start is free in the
//! in-flight tree but may be in the durable one: it waits for the in-flight checkpoint
//! (`awaiting_in_flight`). A page freed after the start that was allocated before it belongs to
//! the in-flight tree: it waits for the checkpoint after (`awaiting_checkpoint`). A page
//! allocated after the start is in neither tree: only the reader rule applies.

use std::collections::{BTreeMap, BTreeSet};

use crate::idhash::IdSet;
use crate::page::PageId;

/// The writer's page allocator.
#[derive(Debug, Default)]
pub(crate) struct Allocator {
    /// Pages [0, high_water) exist; new pages beyond come from here.
    pub(crate) high_water: u64,
    /// Reusable now.
    pub(crate) free: FreeSet,
    /// Allocated since the last checkpoint: not part of any durable tree.
    pub(crate) epoch_allocated: IdSet,
    /// Freed, possibly part of the durable tree: (freeing sequence number, page).
    pub(crate) awaiting_checkpoint: Vec<(u64, PageId)>,
    /// Freed and outside every durable tree, but maybe visible to snapshots older than the key.
    pub(crate) awaiting_readers: BTreeMap<u64, Vec<PageId>>,
    /// Freed before the in-flight checkpoint started, possibly part of the durable tree: they
    /// move on to the reader rule when the in-flight checkpoint is durable.
    pub(crate) awaiting_in_flight: Vec<(u64, PageId)>,
    /// Pages holding the free list of the durable meta.
    pub(crate) freelist_pages: Vec<PageId>,
    /// Pages holding the free list of the in-flight checkpoint (empty when none is in flight).
    pub(crate) in_flight_freelist: Vec<PageId>,
}

impl Allocator {
    /// Allocator for a file whose durable checkpoint lists `free` and keeps its free list in
    /// `freelist_pages`.
    pub(crate) fn new(high_water: u64, free: Vec<PageId>, freelist_pages: Vec<PageId>) -> Self {
        Allocator {
            high_water,
            free: FreeSet::loaded(free),
            freelist_pages,
            ..Default::default()
        }
    }

    /// One page, the lowest free one (keeps the file dense) or a new one at the end.
    pub(crate) fn alloc(&mut self) -> PageId {
        let id = self.free.pop_first().unwrap_or_else(|| {
            self.high_water += 1;
            self.high_water - 1
        });
        self.epoch_allocated.insert(id);
        id
    }

    /// `n` contiguous pages (for an overflow value): a free run if one exists among the first
    /// free pages scanned, otherwise new pages at the end (reusing free pages that end there).
    pub(crate) fn alloc_run(&mut self, n: u64) -> PageId {
        if n == 1 {
            return self.alloc();
        }
        let mut start = None;
        let mut run_start = 0;
        let mut run_len = 0;
        let mut prev = None;
        for &p in self.free.iter().take(65_536) {
            if prev.is_some_and(|q: u64| q + 1 == p) {
                run_len += 1;
            } else {
                run_start = p;
                run_len = 1;
            }
            prev = Some(p);
            if run_len == n {
                start = Some(run_start);
                break;
            }
        }
        let first = match start {
            Some(s) => s,
            None => {
                // Extend a free tail run up to the high-water mark, if there is one.
                let mut s = self.high_water;
                while s > 2 && self.high_water - s < n && self.free.contains(&(s - 1)) {
                    s -= 1;
                }
                let end = s + n;
                self.high_water = self.high_water.max(end);
                s
            }
        };
        for p in first..first + n {
            self.free.remove(&p);
            self.epoch_allocated.insert(p);
        }
        first
    }

    /// Frees a page no reader or checkpoint has seen.
    pub(crate) fn free_unpublished(&mut self, id: PageId) {
        self.epoch_allocated.remove(&id);
        self.free.insert(id);
    }

    /// Frees a published page, replaced by the commit with sequence number `seq`.
    pub(crate) fn free_published(&mut self, id: PageId, seq: u64) {
        if self.epoch_allocated.remove(&id) {
            self.awaiting_readers.entry(seq).or_default().push(id);
        } else {
            self.awaiting_checkpoint.push((seq, id));
        }
    }

    /// Makes pages freed by commits up to `oldest_live` reusable: no snapshot older than them
    /// exists any more.
    pub(crate) fn release_readers(&mut self, oldest_live: u64) {
        while let Some(entry) = self.awaiting_readers.first_entry() {
            if *entry.key() > oldest_live {
                break;
            }
            self.free.extend(entry.remove());
        }
    }

    /// Every page that is free in the tree being checkpointed (excluding the pages that will
    /// hold this list, which the caller allocates first).
    pub(crate) fn free_for_checkpoint(&self) -> Vec<PageId> {
        let mut all: Vec<PageId> = self.free.iter().copied().collect();
        all.extend(self.awaiting_readers.values().flatten());
        all.extend(self.awaiting_checkpoint.iter().map(|&(_, p)| p));
        all.extend(&self.freelist_pages);
        all.sort_unstable();
        all
    }

    /// A checkpoint of the current (sealed) tree, whose free list lives in `freelist_pages`,
    /// has started: pages freed so far wait for it rather than for the one after, and a new
    /// epoch starts (pages allocated from now on are in no checkpoint's tree). At most one
    /// checkpoint is in flight: the previous one must be durable first.
    pub(crate) fn checkpoint_started(&mut self, freelist_pages: Vec<PageId>) {
        debug_assert!(self.awaiting_in_flight.is_empty() && self.in_flight_freelist.is_empty());
        self.awaiting_in_flight = std::mem::take(&mut self.awaiting_checkpoint);
        self.in_flight_freelist = freelist_pages;
        self.epoch_allocated.clear();
    }

    /// The in-flight checkpoint is durable: pages waiting for it move on to the reader rule, the
    /// old free-list pages are free (the new tree lists them as free), and its free list is now
    /// the durable one.
    pub(crate) fn checkpoint_durable(&mut self) {
        for (seq, p) in std::mem::take(&mut self.awaiting_in_flight) {
            self.awaiting_readers.entry(seq).or_default().push(p);
        }
        let new = std::mem::take(&mut self.in_flight_freelist);
        let old = std::mem::replace(&mut self.freelist_pages, new);
        self.free.extend(old);
    }

    /// Number of pages not holding live data (free, waiting, or free-list pages).
    pub(crate) fn unused_pages(&self) -> u64 {
        (self.free.len()
            + self.awaiting_readers.values().map(Vec::len).sum::<usize>()
            + self.awaiting_checkpoint.len()
            + self.awaiting_in_flight.len()
            + self.freelist_pages.len()
            + self.in_flight_freelist.len()) as u64
    }
}

/// The pages reusable now, in ascending order. An open hands over the checkpoint's free list
/// as a sorted vector, and it stays that vector until the first change, which builds the
/// B-tree set the writer works with: a store opened to be read never builds it (at 4M keys,
/// 160,000 free pages, the set took 0.9 ms of a 2.1 ms open; docs/benchmarks.md, "Issue 17
/// item 5"). Invariant: `loaded` is strictly ascending, and at most one of the two is non-empty.
#[derive(Debug, Default)]
pub(crate) struct FreeSet {
    loaded: Vec<PageId>,
    set: BTreeSet<PageId>,
}

impl FreeSet {
    /// The free pages of a checkpoint, strictly ascending (as `read_freelist` returns them).
    fn loaded(ids: Vec<PageId>) -> FreeSet {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        FreeSet {
            loaded: ids,
            set: BTreeSet::new(),
        }
    }

    /// The set, built from the loaded vector on the first change.
    fn set(&mut self) -> &mut BTreeSet<PageId> {
        if !self.loaded.is_empty() {
            // `set` is empty while `loaded` is not; collecting a sorted vector builds the
            // tree in bulk.
            self.set = std::mem::take(&mut self.loaded).into_iter().collect();
        }
        &mut self.set
    }

    pub(crate) fn len(&self) -> usize {
        self.loaded.len() + self.set.len()
    }

    /// The pages in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &PageId> + '_ {
        self.loaded.iter().chain(self.set.iter())
    }

    pub(crate) fn contains(&self, id: &PageId) -> bool {
        self.loaded.binary_search(id).is_ok() || self.set.contains(id)
    }

    fn pop_first(&mut self) -> Option<PageId> {
        self.set().pop_first()
    }

    fn remove(&mut self, id: &PageId) -> bool {
        self.set().remove(id)
    }

    fn insert(&mut self, id: PageId) -> bool {
        self.set().insert(id)
    }

    fn extend(&mut self, ids: impl IntoIterator<Item = PageId>) {
        self.set().extend(ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_pages_wait_for_checkpoint_then_readers() {
        let mut a = Allocator::new(10, vec![5], vec![]);
        assert_eq!(a.alloc(), 5);
        assert_eq!(a.alloc(), 10);
        a.free_published(3, 7); // existed at the checkpoint
        a.free_published(10, 7); // allocated this epoch
        a.release_readers(7);
        assert!(a.free.contains(&10) && !a.free.contains(&3));
        a.checkpoint_started(vec![]);
        a.checkpoint_durable();
        a.release_readers(6);
        assert!(!a.free.contains(&3));
        a.release_readers(7);
        assert!(a.free.contains(&3));
    }

    #[test]
    fn pages_freed_during_a_checkpoint_wait_for_the_next_one() {
        let mut a = Allocator::new(10, vec![], vec![]);
        a.free_published(3, 5); // in the durable tree, freed before the checkpoint starts
        a.checkpoint_started(vec![8]);
        let fresh = a.alloc(); // after the start: in neither tree
        a.free_published(4, 6); // in the in-flight tree, freed after it started
        a.free_published(fresh, 6);
        a.release_readers(6);
        assert!(a.free.contains(&fresh));
        assert!(!a.free.contains(&3) && !a.free.contains(&4));
        a.checkpoint_durable();
        a.release_readers(6);
        assert!(a.free.contains(&3) && !a.free.contains(&4));
        assert_eq!(a.freelist_pages, vec![8]);
        a.checkpoint_started(vec![9]);
        a.checkpoint_durable();
        a.release_readers(6);
        assert!(a.free.contains(&4) && a.free.contains(&8));
    }

    #[test]
    fn a_loaded_free_list_behaves_as_the_set_it_becomes() {
        let mut a = Allocator::new(30, vec![3, 5, 6, 7, 12], vec![]);
        assert_eq!(a.free.len(), 5);
        assert!(a.free.contains(&6) && !a.free.contains(&4));
        assert_eq!(a.free.iter().copied().collect::<Vec<_>>(), [3, 5, 6, 7, 12]);
        assert_eq!(a.unused_pages(), 5);
        // A run search reads the loaded list; taking the run builds the set.
        assert_eq!(a.alloc_run(3), 5);
        assert_eq!(a.free.iter().copied().collect::<Vec<_>>(), [3, 12]);
        assert_eq!(a.alloc(), 3);
        a.free_unpublished(5);
        assert_eq!(a.alloc(), 5);
        assert_eq!(a.alloc(), 12);
        assert_eq!(a.alloc(), 30);
        assert_eq!(a.free.len(), 0);
        // The first change to a loaded list may also be a free.
        let mut b = Allocator::new(30, vec![8, 9], vec![]);
        b.free_unpublished(31);
        assert_eq!(b.free.iter().copied().collect::<Vec<_>>(), [8, 9, 31]);
        assert_eq!(b.alloc(), 8);
    }

    #[test]
    fn runs_come_from_free_space_or_the_end() {
        let mut a = Allocator::new(20, vec![3, 4, 6, 7, 8], vec![]);
        assert_eq!(a.alloc_run(3), 6);
        assert_eq!(a.alloc_run(3), 20);
        assert_eq!(a.high_water, 23);
        a.free_unpublished(22);
        a.free_unpublished(21);
        a.free_unpublished(20);
        assert_eq!(a.alloc_run(4), 20);
        assert_eq!(a.high_water, 24);
    }
}
