//! Integrity check: every reachable page verified, every page accounted for.
//!
//! Like SQLite's `PRAGMA integrity_check`, this walks the whole file: checksums of every tree
//! page and overflow value (re-verified even if verified before), key order within nodes and
//! against the separators above them, uniform leaf depth, record encoding, that every change-log
//! entry points at a stored version, the live-key count, and that the pages reachable from the
//! trees, the free pages, the pages waiting for reuse and the free-list pages partition the file
//! exactly (a page in two places, or in none, is reported).
//!
//! The work is split over worker threads (one per core, at most [`MAX_WORKERS`]): the calling
//! thread checks the top levels of the trees until there are dozens of subtrees per worker,
//! the workers take subtrees from a shared list, and a page's owner is claimed by one
//! compare-and-swap, so a page reached twice is reported whichever worker reaches it second.
//! The change log's entries are then verified by parts of its revision range, each worker
//! looking up a batch of entries at a time in key order (consecutive lookups then share the
//! upper pages of their paths: in revision order, a random load's keys fall anywhere). Only
//! the calling thread calls the progress callback, from the workers' shared page count.
//!
//! It reads a pinned snapshot, not the writer's state: [`crate::Store::check_with_progress`]
//! seals the working state, pins it and copies the allocator's lists under the writer lock, and
//! the walk runs without any lock. Pages of a pinned snapshot are never reused while it lives
//! (the reader rule, `alloc.rs`), so the walk sees exactly the state of that moment, and the
//! copied lists are that moment's free and waiting pages.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::Duration;

use crate::alloc::Allocator;
use crate::btree::{self, KeyOrder, NodeSource, MAX_DEPTH};
use crate::error::{Error, Result};
use crate::keyspace::{KsState, TAG_CURRENT, TAG_HISTORY, TAG_LEASES, TAG_LEASE_KEYS, TREES};
use crate::node::{NodeRef, ValueRef};
use crate::page::PageId;
use crate::pager::ReadView;
use crate::types::CheckReport;

/// How often (in pages walked) the progress callback is called.
const PROGRESS_EVERY: u64 = 1024;

/// Most worker threads a check uses (it is CPU- and memory-bound: more than the cores do not
/// help, and a check should not take over a large machine).
const MAX_WORKERS: usize = 8;

/// Subtrees per worker the walk is split into: enough that a worker finishing early finds more
/// work, so the walk's end is not one worker alone on one large subtree.
const TASKS_PER_WORKER: usize = 32;

/// Change-log entries (and bytes of their keys) a worker verifies as one sorted batch.
const LOG_BATCH_ENTRIES: usize = 1 << 16;
const LOG_BATCH_BYTES: usize = 4 << 20;

/// Parts of the change log's revision range per worker (dynamically assigned, as the tasks).
const LOG_PARTS_PER_WORKER: u64 = 8;

/// How often (in change-log entries passed) a worker adds to the shared count.
const LOG_PROGRESS_EVERY: u64 = 4096;

/// The change log's share of the progress total, in multiples of the page walk's: verifying
/// an entry costs a tree lookup, and at 4M-16M keys of batched history the log takes about 85%
/// of a check's time (docs/benchmarks.md, issue 17), the walk the rest.
const LOG_PROGRESS_SHARE: u64 = 4;

/// How often the calling thread reports progress while the workers walk.
const PROGRESS_POLL: Duration = Duration::from_millis(5);

/// Worker threads: one per core, at most [`MAX_WORKERS`].
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
}

/// What all workers of one check share: the snapshot, who claims each page, the pages walked.
struct Shared<'a> {
    view: ReadView<'a>,
    page_size: usize,
    /// Who claims each page: 0 = nobody yet. A claim is one compare-and-swap from 0, so of two
    /// claims of one page (by any workers) exactly one fails, as in a sequential walk.
    owner: Vec<AtomicU8>,
    /// Pages of trees and values walked so far, by all workers (for progress).
    done: AtomicU64,
    /// A worker found an error: the others stop at their next node.
    failed: AtomicBool,
}

impl Shared<'_> {
    fn claim(&self, id: PageId, who: u8) -> Result<()> {
        let slot = self
            .owner
            .get(id as usize)
            .ok_or_else(|| Error::corrupt(format!("page {id} is beyond the end of the file")))?;
        if let Err(was) =
            slot.compare_exchange(0, who, AtomicOrdering::Relaxed, AtomicOrdering::Relaxed)
        {
            return Err(Error::corrupt(format!(
                "page {id} is in use twice (as {was} and as {who})"
            )));
        }
        Ok(())
    }
}

/// A subtree to walk: its root page, which of [`TREES`] it belongs to, its depth and the key
/// bounds its parent puts on it (`lo` inclusive, `hi` exclusive).
struct Task<'a> {
    id: PageId,
    tree: usize,
    depth: usize,
    lo: Option<&'a [u8]>,
    hi: Option<&'a [u8]>,
    is_root: bool,
}

/// One worker's part of the walk: what it counted, and the leaf depth it saw in each tree.
struct Walk<'s, 'a> {
    shared: &'s Shared<'a>,
    /// Depth of the leaves this worker found, per tree (all leaves of a tree must agree; the
    /// workers' findings are compared at the end).
    leaf_depth: [Option<usize>; TREES.len()],
    report: CheckReport,
    /// Live keys with a lease, and entries of the lease index.
    leased_keys: u64,
    lease_index_entries: u64,
}

const OWNER_TREE: u8 = 1;
const OWNER_OVERFLOW: u8 = 2;
const OWNER_FREE: u8 = 3;
const OWNER_META: u8 = 4;

impl<'s, 'a> Walk<'s, 'a> {
    fn new(shared: &'s Shared<'a>) -> Self {
        Walk {
            shared,
            leaf_depth: [None; TREES.len()],
            report: CheckReport::default(),
            leased_keys: 0,
            lease_index_entries: 0,
        }
    }

    /// Counts `n` pages of trees or values walked.
    fn walked(&self, n: u64) {
        self.shared.done.fetch_add(n, AtomicOrdering::Relaxed);
    }

    /// Checks node `t.id` itself, its entries and (for a leaf) its values; for a branch,
    /// returns the subtrees below it, in key order, with their bounds.
    fn check_node(&mut self, t: &Task<'a>) -> Result<Vec<Task<'a>>> {
        let Task {
            id,
            tree,
            depth,
            lo,
            hi,
            is_root,
        } = *t;
        let (tag, order) = TREES[tree];
        if depth >= MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "tree deeper than {MAX_DEPTH} at page {id}"
            )));
        }
        self.shared.claim(id, OWNER_TREE)?;
        let node = self.shared.view.verify_node_fully(id)?;
        self.report.tree_pages += 1;
        self.walked(1);
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
            match self.leaf_depth[tree] {
                None => self.leaf_depth[tree] = Some(depth),
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
            return Ok(Vec::new());
        }
        Ok((0..=n)
            .map(|i| Task {
                id: node.child(i),
                tree,
                depth: depth + 1,
                lo: if i == 0 { lo } else { Some(node.key(i - 1)) },
                hi: if i == n { hi } else { Some(node.key(i)) },
                is_root: false,
            })
            .collect())
    }

    /// Walks the subtree of `t`, depth first. Stops early (with the counts incomplete) when
    /// another worker has failed: that worker's error is then the check's result.
    fn subtree(&mut self, t: &Task<'a>) -> Result<()> {
        if self.shared.failed.load(AtomicOrdering::Relaxed) {
            return Ok(());
        }
        for child in self.check_node(t)? {
            self.subtree(&child)?;
        }
        Ok(())
    }

    fn value(&mut self, key: &[u8], v: ValueRef<'a>, tag: u8) -> Result<()> {
        let view = self.shared.view;
        if let ValueRef::Overflow { page, len, crc } = v {
            let pages = (len as u64).div_ceil(self.shared.page_size as u64).max(1);
            for p in page..page + pages {
                self.shared.claim(p, OWNER_OVERFLOW)?;
            }
            self.report.overflow_pages += pages;
            self.walked(pages);
            view.verify_overflow_fully(page, len, crc)?;
        }
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

    /// Adds another worker's counts and leaf depths to this one's.
    fn merge(&mut self, other: Walk<'_, '_>) -> Result<()> {
        for (tree, d) in other.leaf_depth.iter().enumerate() {
            match (self.leaf_depth[tree], *d) {
                (Some(a), Some(b)) if a != b => {
                    return Err(Error::corrupt(format!(
                        "tree {}: leaf pages at depth {a} and at depth {b}",
                        TREES[tree].0
                    )))
                }
                (None, d) => self.leaf_depth[tree] = d,
                _ => {}
            }
        }
        let (r, o) = (&mut self.report, other.report);
        r.tree_pages += o.tree_pages;
        r.overflow_pages += o.overflow_pages;
        r.keys += o.keys;
        r.history_records += o.history_records;
        r.log_records += o.log_records;
        self.leased_keys += other.leased_keys;
        self.lease_index_entries += other.lease_index_entries;
        Ok(())
    }
}

/// Runs `work(worker)` on `n` scoped threads while the calling thread reports progress
/// (`progress` is called only on the calling thread: it need not be `Send`). Returns the
/// workers' results in worker order. `poll` is called at every progress tick.
fn run_workers<T: Send>(
    n: usize,
    work: impl Fn(usize) -> T + Sync,
    mut poll: impl FnMut(),
) -> Vec<T> {
    let running = AtomicUsize::new(n);
    let caller = std::thread::current();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|w| {
                let (work, running, caller) = (&work, &running, &caller);
                scope.spawn(move || {
                    /// Counts the worker out even if it panics, and wakes the calling thread,
                    /// so the poll loop ends as soon as the last worker does.
                    struct Out<'r>(&'r AtomicUsize, &'r std::thread::Thread);
                    impl Drop for Out<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, AtomicOrdering::Release);
                            self.1.unpark();
                        }
                    }
                    let _out = Out(running, caller);
                    work(w)
                })
            })
            .collect();
        while running.load(AtomicOrdering::Acquire) > 0 {
            poll();
            std::thread::park_timeout(PROGRESS_POLL);
        }
        poll();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Walks every tree of `st` on `threads` workers: the calling thread checks the top levels
/// until there are enough subtrees, the workers take subtrees from a shared list, and their
/// counts are merged. Returns the merged walk.
fn walk_trees<'s, 'a>(
    shared: &'s Shared<'a>,
    st: &KsState,
    threads: usize,
    total: u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<Walk<'s, 'a>> {
    let mut top = Walk::new(shared);
    let mut tasks: Vec<Task<'a>> = TREES
        .iter()
        .enumerate()
        .map(|(tree, &(tag, _))| (tree, crate::keyspace::root(&st.roots, tag)))
        .filter(|&(_, root)| root != 0)
        .map(|(tree, id)| Task {
            id,
            tree,
            depth: 0,
            lo: None,
            hi: None,
            is_root: true,
        })
        .collect();
    // Split level by level: every node of a level is checked here, its children become tasks.
    let wanted = threads * TASKS_PER_WORKER;
    while tasks.len() < wanted && !tasks.is_empty() && threads > 1 {
        let mut next = Vec::new();
        for t in &tasks {
            next.extend(top.check_node(t)?);
        }
        tasks = next;
    }
    if tasks.is_empty() {
        // A small store: the calling thread has walked it all.
        return Ok(top);
    }
    let taken = AtomicUsize::new(0);
    let mut reported = 0u64;
    let results = run_workers(
        threads,
        |_| {
            let mut walk = Walk::new(shared);
            while !shared.failed.load(AtomicOrdering::Relaxed) {
                let i = taken.fetch_add(1, AtomicOrdering::Relaxed);
                let Some(t) = tasks.get(i) else { break };
                if let Err(e) = walk.subtree(t) {
                    shared.failed.store(true, AtomicOrdering::Relaxed);
                    return Err((i, e));
                }
            }
            Ok(walk)
        },
        || {
            let done = shared.done.load(AtomicOrdering::Relaxed).min(total);
            if done / PROGRESS_EVERY != reported / PROGRESS_EVERY {
                progress(done, total);
            }
            reported = reported.max(done);
        },
    );
    // Of several errors, the one in the earliest subtree (the first a sequential walk would
    // meet, of those found before the workers stopped).
    let mut first: Option<(usize, Error)> = None;
    let mut walks = Vec::new();
    for r in results {
        match r {
            Ok(w) => walks.push(w),
            Err((i, e)) => {
                if first.as_ref().is_none_or(|(j, _)| i < *j) {
                    first = Some((i, e));
                }
            }
        }
    }
    if let Some((_, e)) = first {
        return Err(e);
    }
    for w in walks {
        top.merge(w)?;
    }
    Ok(top)
}

/// Revision of a change-log key (its first 8 bytes, big-endian).
fn log_revision(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if let Some(r) = k.get(..8) {
        b.copy_from_slice(r);
    }
    u64::from_be_bytes(b)
}

/// Change-log entries waiting to be verified: their keys, back to back, and for each its
/// revision and the range of its key.
#[derive(Default)]
struct LogBatch {
    keys: Vec<u8>,
    entries: Vec<(u64, usize, usize)>,
}

impl LogBatch {
    fn full(&self) -> bool {
        self.entries.len() >= LOG_BATCH_ENTRIES || self.keys.len() >= LOG_BATCH_BYTES
    }

    /// Verifies that every entry points at a stored version of its key: the live version, or a
    /// version in the history. The entries are looked up in key order, so consecutive lookups
    /// share the upper pages of their paths (in revision order, the keys of a random load fall
    /// anywhere in the trees). Empties the batch.
    fn verify(&mut self, view: &ReadView<'_>, st: &KsState) -> Result<()> {
        let keys = &self.keys;
        let key = |&(_, a, b): &(u64, usize, usize)| &keys[a..b];
        self.entries
            .sort_unstable_by(|x, y| btree::compare_bytes(key(x), key(y)).then(x.0.cmp(&y.0)));
        let mut hk = Vec::new();
        for e in &self.entries {
            let (rev, k) = (e.0, key(e));
            let in_current = match btree::get(view, st.roots.current, KeyOrder::Bytes, k)? {
                Some(cv) => crate::page::get_u64(view.value_bytes(cv)?, 9) == rev,
                None => false,
            };
            if !in_current {
                hk.clear();
                hk.extend_from_slice(k);
                hk.extend_from_slice(&rev.to_be_bytes());
                if btree::get(view, st.roots.history, KeyOrder::RevSuffix, &hk)?.is_none() {
                    return Err(Error::corrupt(format!(
                        "change-log entry at revision {rev} has no stored version"
                    )));
                }
            }
        }
        self.keys.clear();
        self.entries.clear();
        Ok(())
    }
}

/// Verifies the change-log entries with revisions in `[from, to)`: each lies in `[2, revision]`,
/// and each above the compact revision points at a stored version of its key.
/// Adds the entries it has passed to `scanned` as it goes (for progress).
fn verify_log_part(
    view: &ReadView<'_>,
    st: &KsState,
    from: u64,
    to: u64,
    scanned: &AtomicU64,
) -> Result<()> {
    let mut cursor = btree::Cursor::new(view, st.roots.log, KeyOrder::Bytes);
    let mut unreported = 0u64;
    if from == 0 {
        cursor.first()?;
    } else {
        let mut k = [0u8; 12];
        k[..8].copy_from_slice(&from.to_be_bytes());
        cursor.seek_ge(&k)?;
    }
    let mut batch = LogBatch::default();
    while let Some((k, v)) = cursor.current() {
        let rev = log_revision(k);
        if rev >= to {
            break;
        }
        if rev > st.revision || rev < 2 {
            return Err(Error::corrupt(format!(
                "change-log entry at revision {rev} outside [2, {}]",
                st.revision
            )));
        }
        // Entries at or below the compact revision are the work an unfinished compaction has
        // left (`keyspace/compact.rs`): their versions may be gone already, and nothing reads
        // them.
        if rev > st.compact_revision {
            let entry = view.value_bytes(v)?;
            let key = entry.get(1..).unwrap_or(&[]);
            let at = batch.keys.len();
            batch.keys.extend_from_slice(key);
            batch.entries.push((rev, at, batch.keys.len()));
            if batch.full() {
                batch.verify(view, st)?;
            }
        }
        unreported += 1;
        if unreported == LOG_PROGRESS_EVERY {
            scanned.fetch_add(unreported, AtomicOrdering::Relaxed);
            unreported = 0;
        }
        cursor.next()?;
    }
    batch.verify(view, st)?;
    scanned.fetch_add(unreported, AtomicOrdering::Relaxed);
    Ok(())
}

/// Verifies the whole change log on `threads` workers, each taking parts of its revision range
/// (the parts cover every possible revision, so every entry is in exactly one part).
/// `entries` is the log's size (from the walk): a log of one batch is verified on the calling
/// thread. Calls `progress(scanned)` on the calling thread with the entries passed so far.
fn verify_log(
    view: &ReadView<'_>,
    st: &KsState,
    threads: usize,
    entries: u64,
    mut progress: impl FnMut(u64),
) -> Result<()> {
    let scanned = AtomicU64::new(0);
    if st.roots.log == 0 {
        return Ok(());
    }
    if entries <= LOG_BATCH_ENTRIES as u64 {
        return verify_log_part(view, st, 0, u64::MAX, &scanned);
    }
    // With one worker too, the log is verified on a worker thread: the calling thread then
    // reports progress while it runs.
    let parts = threads as u64 * LOG_PARTS_PER_WORKER;
    // Part i covers revisions [bound(i), bound(i + 1)): the entries above the compact revision
    // (the ones that cost lookups) are spread evenly, the first part also takes everything
    // below, the last everything above.
    let lo = st.compact_revision.saturating_add(1);
    let span = st.revision.saturating_add(1).saturating_sub(lo);
    let bound = |i: u64| -> u64 {
        if i == 0 {
            0
        } else if i >= parts {
            u64::MAX
        } else {
            lo + ((span as u128 * i as u128) / parts as u128) as u64
        }
    };
    let taken = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let errors: Mutex<Vec<(u64, Error)>> = Mutex::new(Vec::new());
    run_workers(
        threads,
        |_| loop {
            let i = taken.fetch_add(1, AtomicOrdering::Relaxed);
            if i >= parts || failed.load(AtomicOrdering::Relaxed) {
                break;
            }
            if let Err(e) = verify_log_part(view, st, bound(i), bound(i + 1), &scanned) {
                failed.store(true, AtomicOrdering::Relaxed);
                errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, e));
                break;
            }
        },
        || progress(scanned.load(AtomicOrdering::Relaxed)),
    );
    // Of several errors, the one in the earliest part.
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errors.sort_by_key(|&(i, _)| i);
    match errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
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
/// `progress(done, total)` on the calling thread as it goes (units of work: the page walk is
/// the first fifth, the change log's verification the rest).
pub(crate) fn check(
    view: &ReadView<'_>,
    st: &KsState,
    page_size: usize,
    unused: &[PageId],
    mut progress: impl FnMut(u64, u64),
) -> Result<CheckReport> {
    let hw = view.page_count;
    let threads = workers();
    let shared = Shared {
        view: *view,
        page_size,
        owner: (0..hw).map(|_| AtomicU8::new(0)).collect(),
        done: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    };
    let total = hw.saturating_sub(2 + unused.len() as u64).max(1);
    // Progress in units of work: the page walk is the first `total` units, the change log's
    // verification (most of a check's time on a store with history: a tree lookup per entry)
    // the following LOG_PROGRESS_SHARE * `total`, in proportion to the entries passed.
    let units = total * (1 + LOG_PROGRESS_SHARE);
    shared.claim(0, OWNER_META)?;
    shared.claim(1, OWNER_META)?;
    let mut walk = walk_trees(&shared, st, threads, total, &mut |done, _| {
        progress(done, units)
    })?;
    for &p in unused {
        shared.claim(p, OWNER_FREE)?;
        walk.report.free_pages += 1;
    }
    progress(total, units);
    if let Some(lost) = shared
        .owner
        .iter()
        .position(|o| o.load(AtomicOrdering::Relaxed) == 0)
    {
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
    let entries = walk.report.log_records.max(1);
    let mut reported = total;
    verify_log(view, st, threads, entries, |scanned| {
        let log_units =
            (total * LOG_PROGRESS_SHARE) as u128 * scanned.min(entries) as u128 / entries as u128;
        let done = total + log_units as u64;
        if done > reported {
            reported = done;
            progress(done, units);
        }
    })?;
    progress(units, units);
    Ok(walk.report)
}
