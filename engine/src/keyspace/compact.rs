//! Compaction of history, as etcd's, done incrementally.
//!
//! A compaction has two parts:
//!
//! 1. **The decision** ([`compact`], applied as [`crate::Command::Compact`], so replicated and
//!    replayed like any command): the compact revision `c` is raised. From then on reads below
//!    `c` are refused, so every version superseded at or before `c` is unreachable at once: a
//!    read at `r >= c` finds, per key, the newest version at or below `r`, which is never one of
//!    them (each is older than the key's version as of `c`, which is kept); a watch starts above
//!    `c`. The decision is O(1).
//! 2. **The physical work** ([`compact_step`]): local, bounded steps, each under the writer lock
//!    and sealed on its own. First a *sweep* of the history tree in key order drops every
//!    droppable version; then the change-log entries at or below `c` are removed from the log's
//!    front. Steps change no logical state, so they are not logged and need not be replayed or
//!    replicated: a crash loses the steps since the last checkpoint, and the next steps (the
//!    sweep restarts from the first key; what was already swept costs a read) redo them. Work is
//!    pending exactly while the log holds an entry at or below `c`, which the last phase removes.
//!
//! The sweep goes in key order because that is the order of the history tree: a step's removals
//! fall in neighbouring leaves, so each leaf is copied about once per compaction. (Walking the
//! change log instead, in revision order, reaches the history of randomly ordered keys: every
//! step then rewrites as many leaves as it drops versions.)
//!
//! Cost per dropped version: a sequential read of its history entry (and of the kept entries
//! beside it), one descent of `current` per key with history at or below `c` (keys in order,
//! so consecutive descents share their upper pages), one removal from `history` (a descent
//! into a leaf already copied by the step, for all but the leaf's first removal), and the
//! removal of its log entry (always from the log's leftmost leaf). Memory is one step's pages.

use super::*;
use crate::btree::{self, Cursor, KeyOrder, NodeSource};
use crate::error::{Error, Result};
use crate::pager::Pager;

/// History or log entries a step examines (a step ends at a key boundary, so a little more).
pub(crate) const STEP_ENTRIES: usize = 16_384;

/// A step of the log's trim removes this many times a sweep step's entries: it removes whole
/// leaves' worth of entries from the log's leftmost leaf per descent (`btree::remove_front`),
/// about as costly per leaf as the sweep is per entry, so the steps stay about as long.
const LOG_TRIM_FACTOR: u64 = 16;

/// Where a compaction's sweep has got to: the compact revision the current pass is complete
/// for, and the first history key not yet swept (`None` once the pass is done and the log is
/// being trimmed).
///
/// A pass sweeps every key with the compact revision current when it reaches the key. If the
/// compact revision rises during a pass, the pass goes on (it does not restart from the first
/// key): every key it sweeps is swept for at least the revision it started with, so when it
/// ends the history is compacted to that revision, the log is trimmed to it, and the next pass
/// starts for the newer one. Restarting instead would let decisions that come faster than a
/// pass of a large history ends (automatic compaction under a fast writer, with paced steps)
/// keep any compaction from finishing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SweepPosition {
    /// The compact revision when this pass started (0: no pass yet).
    pub(crate) compact_revision: u64,
    pub(crate) next: Option<Vec<u8>>,
    /// The pass finished: the history is compacted to `compact_revision`.
    pub(crate) swept: bool,
}

/// What one [`compact_step`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StepOutcome {
    /// History versions (and tombstones) removed.
    pub(crate) versions: u64,
    /// Change-log entries removed.
    pub(crate) log_entries: u64,
    /// Work is left after this step.
    pub(crate) more: bool,
}

/// Decides a compaction to revision `c` (the caller checked `compact_revision < c <= revision`):
/// every version superseded at or before `c` becomes unreachable, except, per key, the newest
/// one at or before `c` when that is a put and the key's live version is newer (it is the key's
/// value as of `c`); tombstones at or before `c` and change-log entries at or before `c` too.
/// [`compact_step`] then removes them; freed pages (overflow values included) are reused under
/// the usual rules.
pub(crate) fn compact(st: &mut KsState, c: u64) {
    st.compact_revision = c;
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
    log_at_or_below(src, st, st.compact_revision)
}

/// Whether the change log holds an entry at or below `revision` (none when it is 0).
fn log_at_or_below<S: NodeSource>(src: &S, st: &KsState, revision: u64) -> Result<bool> {
    if revision == 0 || st.roots.log == 0 {
        return Ok(false);
    }
    let mut cur = Cursor::new(src, st.roots.log, KeyOrder::Bytes);
    cur.first()?;
    match cur.current() {
        Some((k, _)) => Ok(log_revision(k)? <= revision),
        None => Ok(false),
    }
}

/// One bounded step of the pending compaction, from `pos` (reset when it belongs to another
/// compact revision): a sweep of about `max_entries` history entries, or, once the sweep is
/// done, the removal of up to `max_entries` log entries at or below the compact revision.
pub(crate) fn compact_step(
    pager: &mut Pager,
    st: &mut KsState,
    pos: &mut SweepPosition,
    max_entries: usize,
) -> Result<StepOutcome> {
    let c = st.compact_revision;
    let mut out = StepOutcome::default();
    if !compaction_pending(&*pager, st)? {
        return Ok(out);
    }
    // A new pass when there is none, when the history was replaced (its compact revision is
    // below this pass's), or when this pass and its log trim are done and the compact revision
    // has moved on since it started.
    let replaced = pos.compact_revision == 0 || pos.compact_revision > c;
    let finished = pos.swept
        && pos.compact_revision != c
        && !log_at_or_below(&*pager, st, pos.compact_revision)?;
    if replaced || finished {
        *pos = SweepPosition {
            compact_revision: c,
            next: None,
            swept: false,
        };
    }
    if !pos.swept {
        let next = sweep(pager, st, pos.next.as_deref(), max_entries.max(1), &mut out)?;
        pos.swept = next.is_none();
        pos.next = next;
        out.more = true;
        return Ok(out);
    }
    // The log's front: entries at or below the revision the pass compacted the history to,
    // oldest first (a later compact revision is the next pass's), a leaf at a time: the keys
    // below the first key of revision `trim_to + 1`.
    let trim_to = pos.compact_revision;
    let bound = log_key(trim_to.saturating_add(1), 0);
    let budget = (max_entries.max(1) as u64).saturating_mul(LOG_TRIM_FACTOR);
    while out.log_entries < budget {
        let (removed, values) =
            btree::remove_front(pager, &mut st.roots.log, KeyOrder::Bytes, TAG_LOG, &bound)?;
        if removed == 0 {
            break;
        }
        for v in &values {
            pager.free_value(v);
        }
        out.log_entries += removed;
    }
    out.more = compaction_pending(&*pager, st)?;
    Ok(out)
}

/// Sweeps the history from the key `from` (the start if `None`) for about `max_entries`
/// entries, ending at a key boundary, and drops what compaction to the compact revision makes
/// unreachable. Returns the first key not swept, or `None` at the end of the history.
fn sweep(
    pager: &mut Pager,
    st: &mut KsState,
    from: Option<&[u8]>,
    max_entries: usize,
    out: &mut StepOutcome,
) -> Result<Option<Vec<u8>>> {
    let c = st.compact_revision;
    let mut drop: Vec<Vec<u8>> = Vec::new();
    let mut next = None;
    {
        let mut cur = Cursor::new(&*pager, st.roots.history, KeyOrder::RevSuffix);
        match from {
            Some(key) => cur.seek_ge(&history_key(key, 0))?,
            None => cur.first()?,
        }
        let mut seen = 0usize;
        // The key being swept and its entries at or below `c`, oldest first: (tree key, kind).
        let mut key: Vec<u8> = Vec::new();
        let mut group: Vec<(Vec<u8>, u8)> = Vec::new();
        loop {
            let entry = cur.current();
            let user = entry.map(|(k, _)| &k[..k.len().saturating_sub(8)]);
            if user != Some(key.as_slice()) {
                // A key's group ends: decide what of it to drop.
                if !group.is_empty() {
                    decide(&*pager, st, &key, &mut group, &mut drop)?;
                }
                match user {
                    None => break,
                    Some(u) if seen >= max_entries => {
                        next = Some(u.to_vec());
                        break;
                    }
                    Some(u) => key = u.to_vec(),
                }
            }
            let Some((k, v)) = entry else { break };
            seen += 1;
            let mut r = [0u8; 8];
            r.copy_from_slice(&k[k.len().saturating_sub(8)..]);
            if u64::from_be_bytes(r) <= c {
                group.push((k.to_vec(), read_record(&*pager, v)?.0.kind));
            }
            cur.next()?;
        }
    }
    for hk in drop {
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
    Ok(next)
}

/// For one key's history entries at or below the compact revision (`group`, oldest first,
/// emptied), adds to `drop` all but the version readers at the compact revision need from
/// history: the newest, when it is a put and the key's live version is newer.
fn decide<S: NodeSource>(
    src: &S,
    st: &KsState,
    key: &[u8],
    group: &mut Vec<(Vec<u8>, u8)>,
    drop: &mut Vec<Vec<u8>>,
) -> Result<()> {
    let c = st.compact_revision;
    let live_mod = match btree::get(src, st.roots.current, KeyOrder::Bytes, key)? {
        Some(v) => Some(read_record(src, v)?.0.modr),
        None => None,
    };
    let keep_newest = match live_mod {
        Some(m) if m <= c => false,
        _ => group.last().is_some_and(|(_, kind)| *kind == KIND_PUT),
    };
    let n = group.len();
    for (i, (hk, _)) in group.drain(..).enumerate() {
        if !(keep_newest && i + 1 == n) {
            drop.push(hk);
        }
    }
    Ok(())
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
