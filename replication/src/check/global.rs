//! The constraints etcd's single global revision puts across keys, which a per-key search cannot
//! see: every change has its own revision, revisions follow real time, and none is skipped.

use std::collections::HashMap;

use super::history::{Operation, Outcome, Request, Response};
use super::Violation;

/// The revision an answered operation reports and whether it created it.
fn reported(op: &Operation) -> Option<(u64, bool)> {
    let Outcome::Returned { response, .. } = &op.outcome else {
        return None;
    };
    Some(match *response {
        Response::Put { revision } => (revision, true),
        Response::Get { revision, .. } => (revision, false),
        Response::Delete { revision, deleted } => (revision, deleted),
        Response::Txn {
            revision,
            succeeded,
            ..
        } => (revision, succeeded),
    })
}

/// Checks the cross-key revision constraints of `history`, which starts from a store at
/// `initial_revision`. With `complete`, the history holds every write the store received, so a
/// revision no answered write reports must have been created by an unknown-outcome write.
pub(crate) fn check(
    history: &[Operation],
    initial_revision: u64,
    complete: bool,
) -> Result<(), Violation> {
    let mut creator: HashMap<u64, usize> = HashMap::new();
    let mut highest = initial_revision;
    for (i, op) in history.iter().enumerate() {
        let Some((revision, created)) = reported(op) else {
            continue;
        };
        let lowest_legal = if created {
            initial_revision + 1
        } else {
            initial_revision
        };
        if revision < lowest_legal {
            return Err(Violation::RevisionBeforeStart { op: i, revision });
        }
        highest = highest.max(revision);
        if created {
            if let Some(&first) = creator.get(&revision) {
                return Err(Violation::DuplicateRevision {
                    revision,
                    ops: (first, i),
                });
            }
            creator.insert(revision, i);
        }
    }
    real_time_order(history)?;
    if complete {
        let missing = (highest - initial_revision) - creator.len() as u64;
        let unknown_writes = history
            .iter()
            .filter(|op| {
                matches!(op.outcome, Outcome::Unknown) && !matches!(op.request, Request::Get { .. })
            })
            .count() as u64;
        if missing > unknown_writes {
            return Err(Violation::MissingRevisions {
                missing,
                unknown_writes,
            });
        }
    }
    Ok(())
}

/// If A returned before B was invoked, B's revision is at least A's, and above it when B created
/// its revision.
fn real_time_order(history: &[Operation]) -> Result<(), Violation> {
    let mut by_return: Vec<(u64, u64, usize)> = Vec::new();
    let mut by_invoke: Vec<(u64, u64, bool, usize)> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        let (Some((revision, created)), Outcome::Returned { at, .. }) = (reported(op), &op.outcome)
        else {
            continue;
        };
        by_return.push((*at, revision, i));
        by_invoke.push((op.invoke, revision, created, i));
    }
    by_return.sort_unstable();
    by_invoke.sort_unstable();
    let mut finished = 0;
    // The highest revision among operations that returned before the current invocation.
    let mut highest: Option<(u64, usize)> = None;
    for &(invoke, revision, created, later) in &by_invoke {
        while finished < by_return.len() && by_return[finished].0 < invoke {
            let (_, r, op) = by_return[finished];
            if highest.is_none_or(|(h, _)| r > h) {
                highest = Some((r, op));
            }
            finished += 1;
        }
        if let Some((h, earlier)) = highest {
            if revision < h || (created && revision == h) {
                return Err(Violation::RevisionWentBack { earlier, later });
            }
        }
    }
    Ok(())
}
