//! A linearizability checker for etcd's KV model with revisions.
//!
//! Give it a client history ([`Operation`]s: put, linearizable get, delete, and compare-and-put
//! transactions, each with invocation and response times, some with an unknown outcome) and it
//! decides whether some total order of the operations, consistent with real time, explains every
//! answer under etcd's semantics, revisions included.
//!
//! # How
//!
//! etcd's revision is global, so the model state of the whole store is every key plus the
//! revision, and a search over that state does not split. This checker splits the problem
//! instead:
//!
//! 1. **Per key**, a Wing–Gong / Lowe search with memoization over (operations placed, model
//!    state) — the algorithm of porcupine — against a model that carries the key's
//!    (value, create revision, mod revision, version) and a *revision floor*: the highest revision
//!    any operation on the key placed so far reported. A read placed later must report a header
//!    revision at or above the floor and the key's exact revisions; a write placed later must
//!    create a revision above it. This catches stale reads, lost writes, reads of values never
//!    written, wrong versions, and compare-and-put races.
//! 2. **Across keys**, direct checks of what the global revision implies: no two changes report
//!    the same revision; an operation that starts after another returned never reports a lower
//!    revision (nor an equal one if it made a change); and, for a history holding every write,
//!    no more revisions are missing than there are writes with an unknown outcome to have
//!    created them.
//!
//! When both pass, a global order exists for the operations with known revisions: sort them by
//! revision, a change before the reads at its revision; each key's order is a sub-order of that
//! sort and real time is respected by step 2.
//!
//! # What is not checked
//!
//! - Where exactly an unknown-outcome write's revision falls: it is only required to be above the
//!   floor of its key when placed (and pinned by any later read of it), and the missing-revision
//!   count of step 2 is necessary, not sufficient.
//! - A compare that failed against a revision only known symbolically is always accepted.
//! - Multi-key operations (ranges, delete-range, multi-key transactions), leases and watches:
//!   they break the split by key and belong to other checks of the simulation.
//! - Serializable reads, which are allowed to be stale: do not pass them in.
//!
//! # Why not a crate
//!
//! The crate named `porcupine` on crates.io is a Win32 API wrapper, not Anish Athalye's Go
//! checker, which has no Rust port. `stateright`'s `LinearizabilityTester` searches without
//! memoization (exponential on long concurrent histories), allows one operation in flight per
//! thread and has no notion of an operation with unknown outcome; it would also bring the model
//! checker's actor runtime and HTTP explorer as dependencies. The algorithm is small, so it is
//! written here.

mod global;
mod history;
mod model;
mod search;

use std::collections::BTreeMap;

pub use history::{Compare, HistoryError, KeyValue, Operation, Outcome, Request, Response};

/// How to check.
#[derive(Clone, Debug)]
pub struct Config {
    /// The revision of the store before the history starts (1 for an empty etcd store). Every key
    /// is assumed absent then.
    pub initial_revision: u64,
    /// Whether the history holds every write the store received. Enables the missing-revision
    /// check; turn it off when something outside the history also writes (lease revocations,
    /// other clients).
    pub complete: bool,
    /// The most configurations one key's search may explore before giving up with
    /// [`Verdict::Inconclusive`].
    pub budget_per_key: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            initial_revision: 1,
            complete: true,
            budget_per_key: 5_000_000,
        }
    }
}

/// The checker's conclusion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations explains every answer.
    Linearizable,
    /// No order does; the violation says where it was found.
    NotLinearizable(Violation),
    /// The search of this key exceeded its budget.
    Inconclusive {
        /// The key.
        key: Vec<u8>,
    },
}

/// Why a history is not linearizable. Operation numbers are indices into the checked history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// No order of one key's operations explains their answers.
    Key {
        /// The key.
        key: Vec<u8>,
        /// Every operation on the key.
        ops: Vec<usize>,
        /// The longest prefix of an order the search could build before getting stuck.
        longest_prefix: Vec<usize>,
    },
    /// Two changes report the same revision.
    DuplicateRevision {
        /// The revision.
        revision: u64,
        /// The two operations.
        ops: (usize, usize),
    },
    /// `later` started after `earlier` returned but reports a lower revision (or the same one
    /// although it made a change).
    RevisionWentBack {
        /// The operation that returned first.
        earlier: usize,
        /// The operation that started afterwards.
        later: usize,
    },
    /// An operation reports a revision the store had before the history began.
    RevisionBeforeStart {
        /// The operation.
        op: usize,
        /// Its revision.
        revision: u64,
    },
    /// More revisions were skipped than writes with an unknown outcome could have created.
    MissingRevisions {
        /// Revisions up to the highest reported that no answered write created.
        missing: u64,
        /// Writes with an unknown outcome.
        unknown_writes: u64,
    },
}

/// Checks `history` for linearizability under etcd's KV model.
///
/// Returns an error only if the history itself is malformed (a response of the wrong kind, a
/// return before the invocation).
pub fn check(history: &[Operation], config: &Config) -> Result<Verdict, HistoryError> {
    history::validate(history)?;
    if let Err(violation) = global::check(history, config.initial_revision, config.complete) {
        return Ok(Verdict::NotLinearizable(violation));
    }
    let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        let unknown_read =
            matches!(op.outcome, Outcome::Unknown) && matches!(op.request, Request::Get { .. });
        if !unknown_read {
            by_key.entry(op.request.key()).or_default().push(i);
        }
    }
    let initial = model::KeyState::initial_at(config.initial_revision);
    for (key, indices) in by_key {
        let ops: Vec<&Operation> = indices.iter().map(|&i| &history[i]).collect();
        match search::linearize(&ops, initial.clone(), config.budget_per_key) {
            search::Found::Linearizable => {}
            search::Found::GaveUp => return Ok(Verdict::Inconclusive { key: key.to_vec() }),
            search::Found::Violation { placed } => {
                return Ok(Verdict::NotLinearizable(Violation::Key {
                    key: key.to_vec(),
                    longest_prefix: placed.iter().map(|&p| indices[p]).collect(),
                    ops: indices,
                }))
            }
        }
    }
    Ok(Verdict::Linearizable)
}
