//! A linearizability checker for etcd's KV model with revisions.
//!
//! Give it a client history ([`Operation`]s: put, linearizable get, delete, compare-and-put
//! transactions, and leases: grant, revoke, keep-alive and puts attached to a lease; each with
//! invocation and response times, some with an unknown outcome) and it
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
//!    written, wrong versions, and compare-and-put races. A key's sub-history also holds the
//!    grants and revocations of the leases its puts name, and the model deletes an attached key
//!    at its lease's revocation, so a read that still sees the key after the revocation
//!    returned is caught (see `model.rs`, "Leases"). Each lease also gets a sub-history of its
//!    own (grants, revocations, keep-alives) against the same model with no key.
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
//! - Multi-key operations (ranges, delete-range, multi-key transactions) and watches: they
//!   break the split by key and belong to other checks of the simulation. A revocation is
//!   multi-key, but its one revision ties its place in every key's order (step 2); only a
//!   revocation with an unknown outcome may be placed differently in different keys' orders.
//! - Lease expiry by time: a revocation the leader proposes by itself is outside the history;
//!   give leases TTLs longer than the run, or turn `complete` off.
//! - Lease TTLs (what a keep-alive or time-to-live answers beyond "alive").
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

use std::collections::{BTreeMap, BTreeSet};

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
    /// The search of this lease's own operations exceeded its budget.
    InconclusiveLease {
        /// The lease.
        lease: i64,
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
    /// No order of one lease's grants, revocations and keep-alives explains their answers.
    Lease {
        /// The lease.
        lease: i64,
        /// Every operation on the lease.
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
        /// Writes with an unknown outcome, plus lease revocations (which may have deleted keys).
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
    for (object, indices) in split(history) {
        let ops: Vec<&Operation> = indices.iter().map(|&i| &history[i]).collect();
        let leases: BTreeSet<i64> = ops.iter().filter_map(|op| op.request.lease()).collect();
        let initial = model::KeyState::initial_at(config.initial_revision, leases);
        match search::linearize(&ops, initial, config.budget_per_key) {
            search::Found::Linearizable => {}
            search::Found::GaveUp => {
                return Ok(match object {
                    Object::Key(key) => Verdict::Inconclusive { key: key.to_vec() },
                    Object::Lease(lease) => Verdict::InconclusiveLease { lease },
                })
            }
            search::Found::Violation { placed } => {
                let longest_prefix = placed.iter().map(|&p| indices[p]).collect();
                return Ok(Verdict::NotLinearizable(match object {
                    Object::Key(key) => Violation::Key {
                        key: key.to_vec(),
                        longest_prefix,
                        ops: indices,
                    },
                    Object::Lease(lease) => Violation::Lease {
                        lease,
                        longest_prefix,
                        ops: indices,
                    },
                }));
            }
        }
    }
    Ok(Verdict::Linearizable)
}

/// What a sub-history is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Object<'a> {
    Key(&'a [u8]),
    Lease(i64),
}

/// Splits `history` into sub-histories (operation indices in history order): one per key, with
/// the grants and revocations of every lease a put on that key names (a revocation deletes the
/// key it is attached to), and one per lease with all its lease operations. Lost answers of
/// read-only requests constrain nothing and are left out.
fn split(history: &[Operation]) -> BTreeMap<Object<'_>, Vec<usize>> {
    let mut groups: BTreeMap<Object<'_>, Vec<usize>> = BTreeMap::new();
    let mut keys_of_lease: BTreeMap<i64, BTreeSet<&[u8]>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        if matches!(op.outcome, Outcome::Unknown) && op.request.is_read_only() {
            continue;
        }
        match (op.request.key(), op.request.lease()) {
            (Some(key), lease) => {
                groups.entry(Object::Key(key)).or_default().push(i);
                if let Some(lease) = lease {
                    keys_of_lease.entry(lease).or_default().insert(key);
                }
            }
            (None, Some(lease)) => groups.entry(Object::Lease(lease)).or_default().push(i),
            (None, None) => {}
        }
    }
    for (i, op) in history.iter().enumerate() {
        let lease = match op.request {
            Request::LeaseGrant { lease } | Request::LeaseRevoke { lease } => lease,
            _ => continue,
        };
        for key in keys_of_lease.get(&lease).into_iter().flatten() {
            groups.entry(Object::Key(key)).or_default().push(i);
        }
    }
    for indices in groups.values_mut() {
        indices.sort_unstable();
    }
    groups
}
