//! The constraints etcd's single global revision puts across keys, which a per-key search cannot
//! see: every change has its own revision, revisions follow real time, and none is skipped.
//!
//! A lease revocation's answer does not say whether it deleted keys (created its revision) or
//! not (reported the current one). It is therefore treated as a read for the first two
//! constraints (its revision is the store's right after it either way) and as a possible
//! creator of one revision for the third.

use std::collections::HashMap;

use super::history::{Operation, Outcome, Request, Response};
use super::Violation;

/// The revision an answered operation reports and whether it surely created it.
fn reported(op: &Operation) -> Option<(u64, bool)> {
    let Outcome::Returned { response, .. } = &op.outcome else {
        return None;
    };
    match *response {
        Response::Put { revision } => Some((revision, true)),
        Response::Get { revision, .. } => Some((revision, false)),
        Response::Delete { revision, deleted } => Some((revision, deleted)),
        Response::Txn {
            revision,
            succeeded,
            ..
        } => Some((revision, succeeded)),
        Response::LeaseRevoke { revision } => Some((revision, false)),
        Response::LeaseGrant | Response::LeaseKeepAlive | Response::LeaseNotFound => None,
    }
}

/// Whether `op` may have created a revision that no answer names: a write with an unknown
/// outcome, or a lease revocation (answered or not), which deletes the lease's keys.
fn may_create_unreported(op: &Operation) -> bool {
    match (&op.request, &op.outcome) {
        (Request::LeaseRevoke { .. }, Outcome::Returned { response, .. }) => {
            matches!(response, Response::LeaseRevoke { .. })
        }
        (Request::LeaseGrant { .. }, _) => false,
        (request, Outcome::Unknown) => !request.is_read_only(),
        (_, Outcome::Returned { .. }) => false,
    }
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
            .filter(|op| may_create_unreported(op))
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
