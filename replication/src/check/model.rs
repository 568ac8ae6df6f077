//! The sequential specification of one key of etcd's KV store, with the global revision seen
//! through that key.
//!
//! The state is the key's live version (if any) plus a *revision floor*: the highest revision any
//! operation linearized so far on this key observed. etcd's revision never decreases, so a read
//! linearized later must report a header revision at or above the floor, and a write linearized
//! later must create a revision strictly above it.
//!
//! An operation with an unknown outcome that is linearized as *applied* created some revision
//! this key's history never reported; it is kept symbolic ([`Rev::Above`]) until a later read
//! reports the key's revisions, which pins it.

use super::history::{Compare, KeyValue, Operation, Outcome, Request, Response};

/// A revision the model knows exactly, or only a lower bound of.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Rev {
    /// Exactly this revision.
    Known(u64),
    /// Some revision strictly above this one (created by an operation with an unknown outcome).
    Above(u64),
}

impl Rev {
    /// Whether a reported revision can be this one.
    fn admits(&self, reported: u64) -> bool {
        match *self {
            Rev::Known(r) => r == reported,
            Rev::Above(floor) => reported > floor,
        }
    }
}

/// The live version of the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Live {
    value: Vec<u8>,
    create: Rev,
    modified: Rev,
    version: u64,
}

/// Model state of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyState {
    live: Option<Live>,
    floor: u64,
}

impl KeyState {
    /// A key absent from a store at `revision`.
    pub(crate) fn initial_at(revision: u64) -> KeyState {
        KeyState {
            live: None,
            floor: revision,
        }
    }

    /// The states the key can be in after `op` is linearized now; empty if `op` cannot take
    /// effect here. A returned operation has at most one successor; an unknown one has up to two
    /// (it did not happen, or it did).
    pub(crate) fn step(&self, op: &Operation) -> Vec<KeyState> {
        match &op.outcome {
            Outcome::Returned { response, .. } => self
                .step_returned(&op.request, response)
                .into_iter()
                .collect(),
            Outcome::Unknown => {
                let mut next = vec![self.clone()];
                next.extend(self.step_unknown(&op.request));
                next
            }
        }
    }

    fn step_returned(&self, request: &Request, response: &Response) -> Option<KeyState> {
        match (request, response) {
            (Request::Put { value, .. }, Response::Put { revision }) => {
                self.write(value, Rev::Known(*revision))
            }
            (Request::Get { .. }, Response::Get { revision, kv }) => {
                self.read(*revision, kv.as_ref())
            }
            (Request::Delete { .. }, Response::Delete { revision, deleted }) => {
                if *deleted {
                    if self.live.is_none() || *revision <= self.floor {
                        return None;
                    }
                    Some(KeyState {
                        live: None,
                        floor: *revision,
                    })
                } else {
                    self.read(*revision, None)
                }
            }
            (
                Request::Txn { compare, value, .. },
                Response::Txn {
                    revision,
                    succeeded,
                    kv,
                },
            ) => {
                let pinned = self.assume_compare(compare, *succeeded)?;
                if *succeeded {
                    pinned.write(value, Rev::Known(*revision))
                } else {
                    pinned.read(*revision, kv.as_ref())
                }
            }
            _ => None,
        }
    }

    /// The successor in which an unknown-outcome operation took effect, if it can have.
    fn step_unknown(&self, request: &Request) -> Option<KeyState> {
        let unknown_revision = Rev::Above(self.floor);
        match request {
            // Unknown reads are dropped before the search; they constrain nothing.
            Request::Get { .. } => None,
            Request::Put { value, .. } => self.write(value, unknown_revision),
            // Deleting an absent key changes nothing: the "did not happen" successor covers it.
            Request::Delete { .. } => self.live.as_ref().map(|_| KeyState {
                live: None,
                floor: self.floor,
            }),
            Request::Txn { compare, value, .. } => self
                .assume_compare(compare, true)
                .and_then(|pinned| pinned.write(value, unknown_revision)),
        }
    }

    /// The key after a put at `revision`, or `None` if that revision cannot come next.
    fn write(&self, value: &[u8], revision: Rev) -> Option<KeyState> {
        let floor = match revision {
            Rev::Known(r) if r <= self.floor => return None,
            Rev::Known(r) => r,
            Rev::Above(_) => self.floor,
        };
        let live = match &self.live {
            Some(old) => Live {
                value: value.to_vec(),
                create: old.create.clone(),
                modified: revision,
                version: old.version + 1,
            },
            None => Live {
                value: value.to_vec(),
                create: revision.clone(),
                modified: revision,
                version: 1,
            },
        };
        Some(KeyState {
            live: Some(live),
            floor,
        })
    }

    /// The key after a read at header revision `revision` that returned `seen`, or `None` if the
    /// read cannot happen now. A read pins symbolic revisions to the reported ones.
    fn read(&self, revision: u64, seen: Option<&KeyValue>) -> Option<KeyState> {
        if revision < self.floor {
            return None;
        }
        let live = match (&self.live, seen) {
            (None, None) => None,
            (Some(live), Some(kv)) => {
                let consistent = live.value == kv.value
                    && live.version == kv.version
                    && live.create.admits(kv.create_revision)
                    && live.modified.admits(kv.mod_revision)
                    && kv.create_revision <= kv.mod_revision
                    && kv.mod_revision <= revision
                    && (kv.version != 1 || kv.create_revision == kv.mod_revision);
                if !consistent {
                    return None;
                }
                Some(Live {
                    value: live.value.clone(),
                    create: Rev::Known(kv.create_revision),
                    modified: Rev::Known(kv.mod_revision),
                    version: live.version,
                })
            }
            _ => return None,
        };
        Some(KeyState {
            live,
            floor: revision,
        })
    }

    /// The state in which `compare` evaluates to `holds`, pinning a symbolic mod revision when
    /// the compare names it; `None` if `compare` cannot evaluate to `holds` here.
    ///
    /// A symbolic revision `Above(a)` may equal any `r > a` and may differ from any `r`, so a
    /// failed compare against it is always possible (the checker does not remember "not r").
    fn assume_compare(&self, compare: &Compare, holds: bool) -> Option<KeyState> {
        let possible = match (compare, &self.live) {
            (Compare::ModRevision(r), None) | (Compare::Version(r), None) => (*r == 0) == holds,
            (Compare::Value(_), None) => !holds,
            (Compare::Version(v), Some(live)) => (live.version == *v) == holds,
            (Compare::Value(v), Some(live)) => (live.value == *v) == holds,
            (Compare::ModRevision(r), Some(live)) => match live.modified {
                Rev::Known(m) => (m == *r) == holds,
                Rev::Above(a) => !holds || *r > a,
            },
        };
        if !possible {
            return None;
        }
        let mut next = self.clone();
        if let (Compare::ModRevision(r), Some(live), true) = (compare, next.live.as_mut(), holds) {
            if matches!(live.modified, Rev::Above(_)) {
                if live.version == 1 {
                    live.create = Rev::Known(*r);
                }
                live.modified = Rev::Known(*r);
            }
        }
        Some(next)
    }
}
