//! The pager: the read-only memory map readers use, and the writer's dirty pages.
//!
//! Readers reach pages only through [`MapState`]: a read-only map of the main file plus one bit
//! per page saying whether its checksum has been verified. Verification is lazy: the first read
//! of a page checks its crc32 and structure, later reads trust the bit. The writer writes pages
//! with `pwrite`, never through the map; the OS page cache makes those writes visible in the map.
//!
//! The map reserves address space beyond the end of the file so the file can grow without a
//! remap; when it must grow past that, a new, larger map is made and published with the next
//! snapshot. Old maps live as long as a snapshot refers to them.
//!
//! A read-only store never writes the file. The pages it produces while replaying a WAL into
//! memory go to an [`Overlay`] in the map state instead, which readers consult before the map;
//! its file does not grow, so pages past the file's end exist only there. A writable store has
//! no overlay, and its readers pay one never-taken branch for the possibility.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::alloc::Allocator;
use crate::btree::{NodeSource, TreeWriter};
use crate::error::{Error, Result};
use crate::idhash::IdMap;
use crate::node::{Node, NodeRef, PageView, StoredValue};
use crate::page::{
    get_u64, put_u16, put_u64, seal_page, verify_page, PageId, PageKind, PAGE_HEADER,
};
use crate::profile::{self, Timers};
use crate::storage::{Mapping, StorageFile};

/// Smallest address-space reservation for the map.
const MIN_MAP_BYTES: u64 = 1 << 30;

/// Dirty-node bytes a seal must free for it to return freed heap memory to the OS (see
/// [`return_freed_memory`]): 65,536 pages, a transaction of hundreds of thousands of keys. A
/// lower bound (64 MiB) also trimmed after 10k-key batches, whose successors then faulted the
/// same memory back in; a transaction this large is rare enough that the trim's walk over the
/// allocator's free chunks, and the faults of the next large one, are noise beside its own cost.
const RETURN_MEMORY_BYTES: u64 = 256 << 20;

/// How far ahead of the pages in use the main file grows ([`Pager::ensure_room`]): a
/// sixteenth of its length, at least 64 KiB and at most 64 MiB, so growth stays rare (a file
/// grows by 6-12% at a time) and the unused tail small (at most 128 MiB).
fn grow_ahead(file_len: u64) -> u64 {
    (file_len / 16).clamp(64 << 10, 64 << 20)
}

/// The smallest byte range holding both `pending` (if any) and `[start, end)`: how requests to
/// prefault a region the file grew into are merged while they wait (growth only moves up the
/// file, so the ranges it adds follow one another).
pub(crate) fn merge_ranges(pending: Option<(u64, u64)>, start: u64, end: u64) -> (u64, u64) {
    pending.map_or((start, end), |(s, e)| (s.min(start), e.max(end)))
}

/// Returns the free memory of the C allocator's heap to the OS. A seal frees one 4 KiB buffer
/// per dirty node; glibc's `malloc` keeps freed small blocks for reuse and gives back only the
/// top of its heap, so after a one-transaction load of a million keys (about 470 MiB of node
/// buffers, docs/benchmarks.md "Issue 17 item 5") the process kept that memory resident until it
/// exited. `malloc_trim(0)` releases the free pages inside the heap as well. Only with glibc; a
/// program with another global allocator keeps its own policy (this call then finds glibc's heap
/// nearly empty and returns at once).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    // SAFETY: `malloc_trim` only returns unused pages of glibc's heap to the OS; it takes no
    // pointer and is safe to call from any thread at any time (it takes the allocator's locks).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Elsewhere the allocator decides on its own when to return memory.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

/// A read-only map of the main file and its verified-page bitmap.
pub(crate) struct MapState {
    map: Box<dyn Mapping>,
    page_size: usize,
    /// Pages [0, capacity) lie inside the mapping (and, with an overlay, inside the file).
    capacity: u64,
    verified: Box<[AtomicU64]>,
    /// Present exactly for a read-only store: the pages it wrote in memory.
    overlay: Option<Overlay>,
}

/// Pages a read-only store wrote in memory instead of to its file, each entry keyed by the first
/// page id of one write: a single node page, or a whole overflow run (zero-padded to whole
/// pages). Invariant: every page id a reachable node or value refers to that was written since
/// the open has its newest bytes under its own id (a write replaces the entry; pages are only
/// referenced by the first id of what was written there). Filled only while the store opens,
/// before any reader exists; read-only afterwards.
#[derive(Default)]
struct Overlay {
    pages: IdMap<Box<[u8]>>,
}

impl Overlay {
    /// The bytes written at `first`, if they span at least `len` bytes.
    fn get(&self, first: PageId, len: usize) -> Option<&[u8]> {
        self.pages
            .get(&first)
            .filter(|b| b.len() >= len)
            .map(|b| &b[..len])
    }
}

impl MapState {
    /// A map for a read-only store: `file` is never written and never grows, so the map covers
    /// exactly the pages inside it (a reference past its end is corruption, never a fault),
    /// with an empty overlay for the pages the store writes in memory.
    pub(crate) fn new_read_only(
        file: &dyn StorageFile,
        page_size: usize,
        random_access: bool,
    ) -> Result<MapState> {
        let file_pages = file.len()? / page_size as u64;
        let mut state = MapState::new(file, page_size, file_pages, None, random_access)?;
        state.capacity = state.capacity.min(file_pages);
        state.overlay = Some(Overlay::default());
        Ok(state)
    }

    /// Maps `file` with room for at least `pages` pages. Verified bits of `old` carry over.
    pub(crate) fn new(
        file: &dyn StorageFile,
        page_size: usize,
        pages: u64,
        old: Option<&MapState>,
        random_access: bool,
    ) -> Result<MapState> {
        let bytes = (pages.saturating_mul(page_size as u64) * 2)
            .max(MIN_MAP_BYTES)
            .next_power_of_two();
        let len = usize::try_from(bytes)
            .map_err(|_| Error::InvalidOption("file too large for this platform".into()))?;
        let map = file.map(len, random_access)?;
        let capacity = bytes / page_size as u64;
        let words = capacity.div_ceil(64) as usize;
        let verified: Box<[AtomicU64]> = (0..words)
            .map(|i| {
                AtomicU64::new(
                    old.and_then(|o| o.verified.get(i))
                        .map_or(0, |w| w.load(Ordering::Relaxed)),
                )
            })
            .collect();
        Ok(MapState {
            map,
            page_size,
            capacity,
            verified,
            overlay: None,
        })
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes `[0, len)` of page `first` (and the pages after it). The caller has checked the
    /// range with [`ReadView::check_range`].
    fn bytes(&self, first: PageId, len: usize) -> &[u8] {
        // The one branch the overlay costs a writable store: `overlay` is always `None` there,
        // so the prediction never misses.
        if let Some(bytes) = self.overlay.as_ref().and_then(|o| o.get(first, len)) {
            return bytes;
        }
        let start = first as usize * self.page_size;
        &self.map.bytes()[start..start + len]
    }

    /// Whether pages `[first, first + n)` were written to the overlay as one entry.
    fn in_overlay(&self, first: PageId, n: u64) -> bool {
        let len = n.saturating_mul(self.page_size as u64);
        self.overlay
            .as_ref()
            .is_some_and(|o| usize::try_from(len).is_ok_and(|len| o.get(first, len).is_some()))
    }

    fn is_verified(&self, id: PageId) -> bool {
        // Overlay pages may lie past the bitmap; they count as unverified (checked on each read).
        self.verified
            .get((id / 64) as usize)
            .is_some_and(|word| word.load(Ordering::Acquire) & (1 << (id % 64)) != 0)
    }

    /// Records that page `id` holds verified content. The writer calls this for pages it writes,
    /// since it computed their checksums itself.
    pub(crate) fn mark_verified(&self, id: PageId) {
        if let Some(word) = self.verified.get((id / 64) as usize) {
            word.fetch_or(1 << (id % 64), Ordering::Release);
        }
    }
}

/// Read access to the pages of one snapshot: pages [2, page_count) of a map.
#[derive(Clone, Copy)]
pub(crate) struct ReadView<'a> {
    pub(crate) map: &'a MapState,
    pub(crate) page_count: u64,
}

impl ReadView<'_> {
    fn check_range(&self, first: PageId, n: u64) -> Result<()> {
        let end = first.saturating_add(n);
        // Past the map's capacity only a read-only store's overlay can hold pages; the overlay
        // is asked only then, so a writable store's readers never reach it.
        if first < 2
            || end > self.page_count
            || (end > self.map.capacity && !self.map.in_overlay(first, n))
        {
            return Err(Error::corrupt(format!(
                "reference to pages {first}..{} outside the file ({} pages)",
                end, self.page_count
            )));
        }
        Ok(())
    }
}

impl<'a> ReadView<'a> {
    /// The verified node at `id`, borrowed for the map's lifetime.
    pub(crate) fn node_at(&self, id: PageId) -> Result<NodeRef<'a>> {
        self.check_range(id, 1)?;
        let data = self.map.bytes(id, self.map.page_size);
        if self.map.is_verified(id) {
            return Ok(NodeRef::Page(PageView::trusted(data)));
        }
        let view = match verify_page(data, id)? {
            PageKind::Branch | PageKind::Leaf => PageView::validate(id, data)?,
            PageKind::FreeList => {
                return Err(Error::corrupt(format!(
                    "page {id}: free-list page where a tree node was expected"
                )))
            }
        };
        self.map.mark_verified(id);
        Ok(NodeRef::Page(view))
    }

    /// The verified bytes of an overflow value, borrowed for the map's lifetime.
    pub(crate) fn overflow_at(&self, page: PageId, len: u32, crc: u32) -> Result<&'a [u8]> {
        let n = (len as u64).div_ceil(self.map.page_size as u64).max(1);
        self.check_range(page, n)?;
        let data = self.map.bytes(page, len as usize);
        if !self.map.is_verified(page) {
            if crc32fast::hash(data) != crc {
                return Err(Error::corrupt(format!(
                    "overflow value at page {page} ({len} bytes): checksum mismatch"
                )));
            }
            self.map.mark_verified(page);
        }
        Ok(data)
    }
}

impl<'a> ReadView<'a> {
    /// Re-verifies node page `id` even if it was verified before (for `check`), and returns it.
    /// Marks it verified, as [`ReadView::node_at`] would: later reads need not verify it again.
    pub(crate) fn verify_node_fully(&self, id: PageId) -> Result<NodeRef<'a>> {
        self.check_range(id, 1)?;
        let data = self.map.bytes(id, self.map.page_size);
        verify_page(data, id)?;
        let view = PageView::validate(id, data)?;
        self.map.mark_verified(id);
        Ok(NodeRef::Page(view))
    }

    /// Re-verifies an overflow value's checksum (for `check`).
    pub(crate) fn verify_overflow_fully(&self, page: PageId, len: u32, crc: u32) -> Result<()> {
        let n = (len as u64).div_ceil(self.map.page_size as u64).max(1);
        self.check_range(page, n)?;
        if crc32fast::hash(self.map.bytes(page, len as usize)) != crc {
            return Err(Error::corrupt(format!(
                "overflow value at page {page}: checksum mismatch"
            )));
        }
        Ok(())
    }
}

impl NodeSource for ReadView<'_> {
    fn node(&self, id: PageId) -> Result<NodeRef<'_>> {
        self.node_at(id)
    }

    fn overflow(&self, page: PageId, len: u32, crc: u32) -> Result<&[u8]> {
        self.overflow_at(page, len, crc)
    }
}

/// The writer's view of the file: dirty nodes of the batch being built, plus the allocator.
pub(crate) struct Pager {
    pub(crate) page_size: usize,
    pub(crate) file: Arc<dyn StorageFile>,
    pub(crate) map: Arc<MapState>,
    file_len: u64,
    /// Nodes created or copied since the last seal, by page id. None of them is visible to any
    /// reader or part of any checkpoint, so they are edited in place.
    dirty: IdMap<Node>,
    /// Overflow runs written since the last seal: first page -> page count.
    unsealed_overflow: IdMap<u64>,
    /// Bytes written to the main file since [`Pager::take_writeback_due`] last returned true:
    /// page-cache pages whose early writeback has not been asked for.
    unflushed_bytes: u64,
    /// The byte range the file last grew into ahead of need, until
    /// [`Pager::take_prefault_due`] hands it to the thread that brings it into the page cache.
    prefault_pending: Option<(u64, u64)>,
    pub(crate) alloc: Allocator,
    /// Sequence number of the commit being built; frees are tagged with it.
    pub(crate) seq: u64,
    /// Advise the kernel that map reads are random (no read-ahead).
    pub(crate) random_access: bool,
    /// The store's phase clocks (file growth and remaps are counted here); a store hands its
    /// own to every pager it makes.
    pub(crate) timers: Arc<Timers>,
}

impl Pager {
    pub(crate) fn new(
        file: Arc<dyn StorageFile>,
        page_size: usize,
        map: Arc<MapState>,
        alloc: Allocator,
    ) -> Result<Pager> {
        let file_len = file.len()?;
        Ok(Pager {
            page_size,
            file,
            map,
            file_len,
            dirty: IdMap::default(),
            unsealed_overflow: IdMap::default(),
            unflushed_bytes: 0,
            prefault_pending: None,
            alloc,
            seq: 0,
            random_access: false,
            timers: Arc::default(),
        })
    }

    fn view(&self) -> ReadView<'_> {
        ReadView {
            map: &self.map,
            page_count: self.alloc.high_water,
        }
    }

    /// Writes `bytes` at page `first`: to the file, or, for a read-only store, to the overlay
    /// (a node run one entry per page, an overflow value as one entry padded to whole pages,
    /// as [`Overlay`] requires).
    fn write_pages(&mut self, first: PageId, bytes: &[u8], one_value: bool) -> Result<()> {
        let ps = self.page_size;
        if self.map.overlay.is_none() {
            self.unflushed_bytes += bytes.len() as u64;
            return Ok(self.file.write_all_at(bytes, first * ps as u64)?);
        }
        // Only the open writes the overlay, before any snapshot shares this map.
        let overlay = Arc::get_mut(&mut self.map)
            .and_then(|m| m.overlay.as_mut())
            .ok_or_else(|| {
                Error::corrupt("internal: a read-only store wrote pages after its open")
            })?;
        if one_value {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(ps).max(1) * ps, 0);
            overlay.pages.insert(first, padded.into_boxed_slice());
        } else {
            for (k, page) in bytes.chunks(ps).enumerate() {
                overlay.pages.insert(first + k as u64, page.into());
            }
        }
        Ok(())
    }

    /// Grows the file and the map to hold `pages` pages. A read-only store's file never grows:
    /// pages past its end live in the overlay.
    ///
    /// The file grows ahead of need: once less than [`grow_ahead`] bytes are left past the
    /// pages in use, it grows to twice that past them, and the region it grew into becomes due
    /// for [`Pager::take_prefault_due`]. Writing a page the page cache does not hold yet makes
    /// the kernel allocate it on the writer's time, and on a virtual machine that hands freed
    /// memory back to its host that costs a commit 10-15x a write over a cached page
    /// (docs/benchmarks.md, "the slow batches are fresh memory"); growing a step early lets
    /// the writeback thread bring the new region in before commits need it.
    fn ensure_room(&mut self, pages: u64) -> Result<()> {
        if self.map.overlay.is_some() {
            return Ok(());
        }
        let need = pages * self.page_size as u64;
        let ahead = grow_ahead(self.file_len);
        if need + ahead > self.file_len {
            let t = Instant::now();
            let old_len = self.file_len;
            let new_len = (need + 2 * ahead).next_multiple_of(64 << 10);
            self.file.set_len(new_len)?;
            self.file_len = new_len;
            // Pages below `need` are this batch's: it writes them now.
            let from = old_len.max(need);
            self.prefault_pending = Some(merge_ranges(self.prefault_pending, from, new_len));
            profile::add(&self.timers.file_grow, t);
            self.timers.file_grows.fetch_add(1, Ordering::Relaxed);
        }
        if pages > self.map.capacity() {
            let t = Instant::now();
            self.map = Arc::new(MapState::new(
                &*self.file,
                self.page_size,
                pages,
                Some(&self.map),
                self.random_access,
            )?);
            profile::add(&self.timers.map_remap, t);
            self.timers.map_remaps.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether at least `threshold` bytes were written to the main file since this last
    /// returned true (and if so, starts counting again): group commit asks for early writeback
    /// only then, so that a round of a few pages costs no wake-up of the background thread and
    /// no device write beside its WAL sync. Between requests at most `threshold` bytes of
    /// sealed pages wait for the kernel's own writeback or the checkpoint's fsync.
    pub(crate) fn take_writeback_due(&mut self, threshold: u64) -> bool {
        if self.unflushed_bytes < threshold {
            return false;
        }
        self.unflushed_bytes = 0;
        true
    }

    /// The region the file grew into ahead of need since this was last asked, for the
    /// writeback thread to bring into the page cache ([`StorageFile::prefault`]).
    pub(crate) fn take_prefault_due(&mut self) -> Option<(u64, u64)> {
        self.prefault_pending.take()
    }

    /// Writes a large value to fresh contiguous pages (a read-only store's to its overlay).
    pub(crate) fn write_overflow(&mut self, value: &[u8]) -> Result<StoredValue> {
        let n = (value.len() as u64).div_ceil(self.page_size as u64).max(1);
        let first = self.alloc.alloc_run(n);
        self.ensure_room(self.alloc.high_water)?;
        self.write_pages(first, value, true)?;
        self.unsealed_overflow.insert(first, n);
        self.map.mark_verified(first);
        Ok(StoredValue::Overflow {
            page: first,
            len: value.len() as u32,
            crc: crc32fast::hash(value),
        })
    }

    /// Frees the pages of a value that was removed (versions leave the trees only through
    /// compaction).
    pub(crate) fn free_value(&mut self, value: &StoredValue) {
        if let StoredValue::Overflow { page, len, .. } = *value {
            let n = (len as u64).div_ceil(self.page_size as u64).max(1);
            let unpublished = self.unsealed_overflow.remove(&page).is_some();
            for p in page..page + n {
                if unpublished {
                    self.alloc.free_unpublished(p);
                } else {
                    self.alloc.free_published(p, self.seq);
                }
            }
        }
    }

    /// Writes every dirty node to the file (unsynced; a read-only store's to its overlay) and
    /// makes the batch immutable: the next change copies again. After this, a snapshot of the current roots may be published.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if self.dirty.is_empty() {
            // Nothing to write (an overflow value is written when it is made, with room made
            // for it then): no growth either, so a seal of a clean state never touches the file.
            self.unsealed_overflow.clear();
            return Ok(());
        }
        self.ensure_room(self.alloc.high_water)?;
        let mut ids: Vec<PageId> = self.dirty.keys().copied().collect();
        ids.sort_unstable();
        let mut buf: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            // Coalesce consecutive page ids into one write of up to 1 MiB.
            let run_start = ids[i];
            buf.clear();
            let mut next = run_start;
            while i < ids.len() && ids[i] == next && buf.len() < (1 << 20) {
                if let Some(node) = self.dirty.get_mut(&ids[i]) {
                    buf.extend_from_slice(node.finish(ids[i]));
                }
                next += 1;
                i += 1;
            }
            self.write_pages(run_start, &buf, false)?;
        }
        let sealed_bytes = ids.len() as u64 * self.page_size as u64;
        for id in ids {
            self.map.mark_verified(id);
        }
        self.dirty.clear();
        self.unsealed_overflow.clear();
        if sealed_bytes >= RETURN_MEMORY_BYTES {
            // A large batch just freed its node buffers: hand their memory back to the OS
            // instead of keeping it as the process's heap until exit.
            self.dirty.shrink_to_fit();
            return_freed_memory();
        }
        Ok(())
    }

    /// Writes the free list for a checkpoint into freshly allocated pages. Returns the pages (in
    /// chain order) and the number of ids listed.
    pub(crate) fn write_freelist(&mut self) -> Result<(Vec<PageId>, u64)> {
        let per_page = ((self.page_size - PAGE_HEADER) / 8) as u64;
        let listed = self.alloc.free_for_checkpoint().len() as u64;
        let n_pages = listed.div_ceil(per_page);
        let pages: Vec<PageId> = (0..n_pages).map(|_| self.alloc.alloc()).collect();
        // Allocation took pages off the free set; list what remains.
        let ids = self.alloc.free_for_checkpoint();
        self.ensure_room(self.alloc.high_water)?;
        let mut buf = vec![0u8; self.page_size];
        for (k, chunk) in ids.chunks(per_page as usize).enumerate() {
            buf.fill(0);
            buf[4] = PageKind::FreeList as u8;
            put_u16(&mut buf, 6, chunk.len() as u16);
            put_u64(&mut buf, 8, pages[k]);
            put_u64(&mut buf, 16, pages.get(k + 1).copied().unwrap_or(0));
            for (j, id) in chunk.iter().enumerate() {
                put_u64(&mut buf, PAGE_HEADER + 8 * j, *id);
            }
            seal_page(&mut buf);
            self.write_pages(pages[k], &buf, false)?;
        }
        // Pages allocated beyond what the list needed (it shrank) are written as empty links.
        for k in ids.len().div_ceil(per_page as usize)..pages.len() {
            buf.fill(0);
            buf[4] = PageKind::FreeList as u8;
            put_u64(&mut buf, 8, pages[k]);
            put_u64(&mut buf, 16, pages.get(k + 1).copied().unwrap_or(0));
            seal_page(&mut buf);
            self.write_pages(pages[k], &buf, false)?;
        }
        Ok((pages, ids.len() as u64))
    }
}

/// Reads the free list of a checkpoint: returns (free page ids, pages holding the list).
pub(crate) fn read_freelist(
    view: &ReadView<'_>,
    head: PageId,
    expected: u64,
) -> Result<(Vec<PageId>, Vec<PageId>)> {
    let mut ids = Vec::new();
    let mut pages = Vec::new();
    let mut next = head;
    while next != 0 {
        if pages.len() as u64 >= view.page_count {
            return Err(Error::corrupt("free list forms a cycle"));
        }
        view.check_range(next, 1)?;
        let data = view.map.bytes(next, view.map.page_size);
        if verify_page(data, next)? != PageKind::FreeList {
            return Err(Error::corrupt(format!(
                "page {next}: expected a free-list page"
            )));
        }
        let count = crate::page::get_u16(data, 6) as usize;
        if PAGE_HEADER + 8 * count > data.len() {
            return Err(Error::corrupt(format!(
                "page {next}: free-list count {count} too large"
            )));
        }
        for j in 0..count {
            let id = get_u64(data, PAGE_HEADER + 8 * j);
            if id < 2 || id >= view.page_count {
                return Err(Error::corrupt(format!(
                    "page {next}: free page id {id} outside the file"
                )));
            }
            ids.push(id);
        }
        pages.push(next);
        next = get_u64(data, 16);
    }
    if ids.len() as u64 != expected {
        return Err(Error::corrupt(format!(
            "free list holds {} ids, meta says {expected}",
            ids.len()
        )));
    }
    // Checkpoints write the list in ascending order (`free_for_checkpoint`), so one pass that
    // finds it strictly ascending proves it free of duplicates without the copy and sort a
    // list of a few hundred thousand ids costs an open; a list in any other order is sorted.
    let ascending = ids.windows(2).all(|w| w[0] < w[1]);
    let len = ids.len();
    if !ascending {
        ids.sort_unstable();
        ids.dedup();
    }
    if ids.len() != len || pages.iter().any(|p| ids.binary_search(p).is_ok()) {
        return Err(Error::corrupt(
            "free list lists a page twice or lists its own pages",
        ));
    }
    Ok((ids, pages))
}

impl NodeSource for Pager {
    fn node(&self, id: PageId) -> Result<NodeRef<'_>> {
        match self.dirty.get(&id) {
            Some(n) => Ok(NodeRef::Owned(n)),
            None => self.view().node_at(id),
        }
    }

    fn overflow(&self, page: PageId, len: u32, crc: u32) -> Result<&[u8]> {
        self.view().overflow_at(page, len, crc)
    }
}

impl TreeWriter for Pager {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn cow(&mut self, id: PageId) -> Result<PageId> {
        if self.dirty.contains_key(&id) {
            return Ok(id);
        }
        let node = match self.view().node_at(id)? {
            NodeRef::Page(p) => Node::from_view(p),
            NodeRef::Owned(n) => n.clone(),
        };
        let new_id = self.alloc.alloc();
        self.dirty.insert(new_id, node);
        self.alloc.free_published(id, self.seq);
        Ok(new_id)
    }

    fn dirty(&mut self, id: PageId) -> Result<&mut Node> {
        self.dirty.get_mut(&id).ok_or_else(|| {
            Error::corrupt(format!("internal: page {id} is not writable in this batch"))
        })
    }

    fn alloc_node(&mut self, node: Node) -> PageId {
        let id = self.alloc.alloc();
        self.dirty.insert(id, node);
        id
    }

    fn take_node(&mut self, id: PageId) -> Result<Node> {
        let node = self.dirty.remove(&id).ok_or_else(|| {
            Error::corrupt(format!("internal: page {id} is not writable in this batch"))
        })?;
        self.alloc.free_unpublished(id);
        Ok(node)
    }

    fn free_node(&mut self, id: PageId) {
        if self.dirty.remove(&id).is_some() {
            self.alloc.free_unpublished(id);
        } else {
            self.alloc.free_published(id, self.seq);
        }
    }
}
