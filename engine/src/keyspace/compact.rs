//! Compaction of history, as etcd's, done incrementally.
//!
//! A compaction has two parts:
//!
//! 1. **The decision** ([`compact`]): the compact revision `c` is raised. From then on reads
//!    below `c` are refused, so every version superseded at or before `c` is unreachable at
//!    once: a read at `r >= c` finds, per key, the newest version at or below `r`, which is never
//!    one of them (they are older than the key's version as of `c`); a watch starts above `c`.
//! 2. **The physical work** ([`compact_step`]): the dropped versions and the change-log entries
//!    at or below `c` leave the trees, a bounded batch per step. The change log is its own
//!    cursor: it is ordered by revision, so the entries at or below `c` still present are
//!    exactly the work left, at its front, and a step removes the ones it handled. Nothing else
//!    records progress, so a step is atomic with the commit it runs in, a crash between steps
//!    leaves a store whose compact revision is already the new one and whose leftovers are
//!    invisible, and the next steps (after a restart too) simply go on from the log's front.
//!
//! Both run inside [`crate::command::apply`], as functions of the trees alone, so every replica
//! applying the same commands, and every WAL replay, does the same work in the same order.
//!
//! Cost per dropped version: its log entry is read from the front of the log (sequential, a
//! fraction of a leaf), one descent of `current` and one of `history` per distinct key of the
//! batch (keys are handled in key order, so consecutive descents share their upper pages), and
//! one removal from `history` (a descent plus a copy-on-write of the leaf, amortised over the
//! versions of one batch that share it). Memory is bounded by the batch: its keys and the pages
//! it dirtied, which the commit around the step writes out.

use super::*;
use crate::btree::{self, Cursor, KeyOrder, NodeSource};
use crate::error::{Error, Result};
use crate::pager::Pager;

/// Change-log entries a step handles when it is the point of its command
/// ([`crate::Command::Compact`], [`crate::Command::Noop`]).
pub(crate) const STEP_ENTRIES: usize = 4096;

/// Change-log entries a step handles when it rides along another write: small, so that a
/// pending compaction adds little to a writer's commit, but never zero, so that a replicated
/// store's compaction advances with its log even when nobody drives it.
pub(crate) const WRITE_STEP_ENTRIES: usize = 64;

/// What one [`compact_step`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StepOutcome {
    /// Change-log entries removed.
    pub(crate) log_entries: u64,
    /// History versions (and tombstones) removed.
    pub(crate) versions: u64,
}

/// Decides a compaction to revision `c` (the caller checked `compact_revision < c <= revision`)
/// and does its first step. Every version superseded at or before `c` is dropped except, per
/// key, the newest one at or before `c` when that is a put and the key's live version is newer
/// (it is the key's value as of `c`); tombstones at or before `c` go too; change-log entries at
/// or before `c` go. Freed pages (overflow values included) are reused under the usual rules.
pub(crate) fn compact(pager: &mut Pager, st: &mut KsState, c: u64) -> Result<StepOutcome> {
    st.compact_revision = c;
    compact_step(pager, st, STEP_ENTRIES)
}

/// Revision of a change-log key.
fn log_revision(k: &[u8]) -> Result<u64> {
    if k.len() != 12 {
        return Err(Error::corrupt("change-log key is not 12 bytes"));
    }
    let mut rev = [0u8; 8];
    rev.copy_from_slice(&k[..8]);
    Ok(u64::from_be_bytes(rev))
}

/// Whether compaction work is left: a change-log entry at or below the compact revision.
pub(crate) fn compaction_pending<S: NodeSource>(src: &S, st: &KsState) -> Result<bool> {
    if st.compact_revision == 0 || st.roots.log == 0 {
        return Ok(false);
    }
    let mut cur = Cursor::new(src, st.roots.log, KeyOrder::Bytes);
    cur.first()?;
    match cur.current() {
        Some((k, _)) => Ok(log_revision(k)? <= st.compact_revision),
        None => Ok(false),
    }
}

/// One bounded step of the pending compaction: handles up to `max_entries` change-log entries
/// at or below the compact revision (the oldest ones), dropping the history of their keys that
/// the compaction makes unreachable, and removes those entries. Handling a key drops all of its
/// droppable versions at once, so a later entry of the same key finds nothing left to drop.
/// Does nothing when no work is pending.
pub(crate) fn compact_step(
    pager: &mut Pager,
    st: &mut KsState,
    max_entries: usize,
) -> Result<StepOutcome> {
    let c = st.compact_revision;
    let mut out = StepOutcome::default();
    if c == 0 || st.roots.log == 0 || max_entries == 0 {
        return Ok(out);
    }
    // The batch: the oldest log entries at or below `c`, and their keys.
    let mut log_keys: Vec<[u8; 12]> = Vec::new();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    {
        let mut cur = Cursor::new(&*pager, st.roots.log, KeyOrder::Bytes);
        cur.first()?;
        while let Some((k, v)) = cur.current() {
            if log_keys.len() >= max_entries || log_revision(k)? > c {
                break;
            }
            let mut lk = [0u8; 12];
            lk.copy_from_slice(k);
            let entry = pager.value_bytes(v)?;
            keys.push(entry.get(1..).unwrap_or(&[]).to_vec());
            log_keys.push(lk);
            cur.next()?;
        }
    }
    if log_keys.is_empty() {
        return Ok(out);
    }
    // Key order: consecutive keys share the upper pages of both trees' descents.
    keys.sort_unstable();
    keys.dedup();
    let mut entries: Vec<(Vec<u8>, u8)> = Vec::new();
    for key in &keys {
        let live_mod = match btree::get(&*pager, st.roots.current, KeyOrder::Bytes, key)? {
            Some(v) => Some(read_record(&*pager, v)?.0.modr),
            None => None,
        };
        // History entries of this key at or before `c`, oldest first: (tree key, kind).
        entries.clear();
        {
            let mut cur = Cursor::new(&*pager, st.roots.history, KeyOrder::RevSuffix);
            cur.seek_ge(&history_key(key, 0))?;
            while let Some((k, v)) = cur.current() {
                let (user, rev) = k.split_at(k.len().saturating_sub(8));
                let mut r = [0u8; 8];
                r.copy_from_slice(rev);
                if user != key.as_slice() || u64::from_be_bytes(r) > c {
                    break;
                }
                let kind = read_record(&*pager, v)?.0.kind;
                entries.push((k.to_vec(), kind));
                cur.next()?;
            }
        }
        // The version readers at `c` need, if history must provide it: the newest at or
        // before `c`, when it is a put and the live version is newer than `c`.
        let keep = match live_mod {
            Some(m) if m <= c => None,
            _ => entries
                .last()
                .filter(|(_, kind)| *kind == KIND_PUT)
                .map(|(k, _)| k.clone()),
        };
        for (hk, _) in entries.drain(..) {
            if keep.as_ref() == Some(&hk) {
                continue;
            }
            if let Some(old) = btree::remove(
                pager,
                &mut st.roots.history,
                KeyOrder::RevSuffix,
                TAG_HISTORY,
                &hk,
            )? {
                pager.free_value(&old);
                out.versions += 1;
            }
        }
    }
    for lk in log_keys {
        if let Some(old) = btree::remove(pager, &mut st.roots.log, KeyOrder::Bytes, TAG_LOG, &lk)? {
            pager.free_value(&old);
            out.log_entries += 1;
        }
    }
    Ok(out)
}

/// Walks the change log after revision `after` (up to the state's revision), calling
/// `at(revision, n)` at the end of each revision found, where `n` counts the entries of
/// revisions `(after, revision]`. Returns the total. For retention by change count.
pub(crate) fn count_changes<S: NodeSource>(
    src: &S,
    st: &KsState,
    after: u64,
    mut at: impl FnMut(u64, u64),
) -> Result<u64> {
    let mut n = 0u64;
    if st.roots.log == 0 || after >= st.revision {
        return Ok(0);
    }
    let mut cur = Cursor::new(src, st.roots.log, KeyOrder::Bytes);
    cur.seek_ge(&log_key(after + 1, 0))?;
    let mut last = None;
    while let Some((k, _)) = cur.current() {
        let rev = log_revision(k)?;
        if rev > st.revision {
            break;
        }
        if let Some(prev) = last.filter(|&p| p != rev) {
            at(prev, n);
        }
        last = Some(rev);
        n += 1;
        cur.next()?;
    }
    if let Some(prev) = last {
        at(prev, n);
    }
    Ok(n)
}
