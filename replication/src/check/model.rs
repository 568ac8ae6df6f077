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
//!
//! # Leases
//! The state also holds the status of every lease the sub-history names (never granted,
//! granted, revoked) and the lease the key's live version is attached to. A put with a lease
//! needs the lease granted and attaches the key; a plain put or a transaction's put detaches
//! it (etcd's rule). A revocation needs the lease granted and, when the key is attached to it,
//! deletes the key at the revocation's revision; otherwise it is a read of the revision. An
//! answer "lease not found" needs the lease not granted and changes nothing. The same model
//! checks a lease's own sub-history (grants, revocations, keep-alives), with no key.

use std::collections::BTreeMap;

use super::history::{Compare, KeyValue, Operation, Outcome, Request, Response};

/// Where a lease stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LeaseStatus {
    /// Not granted yet.
    Absent,
    /// Granted and not revoked.
    Granted,
    /// Revoked (its keys are gone).
    Revoked,
}

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
    /// The lease the key is attached to (0: none).
    lease: i64,
}

/// Model state of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyState {
    live: Option<Live>,
    floor: u64,
    /// Every lease the sub-history names.
    leases: BTreeMap<i64, LeaseStatus>,
}

impl KeyState {
    /// A key absent from a store at `revision`, with `leases` not granted yet.
    pub(crate) fn initial_at(revision: u64, leases: impl IntoIterator<Item = i64>) -> KeyState {
        KeyState {
            live: None,
            floor: revision,
            leases: leases
                .into_iter()
                .map(|l| (l, LeaseStatus::Absent))
                .collect(),
        }
    }

    fn lease(&self, id: i64) -> LeaseStatus {
        self.leases.get(&id).copied().unwrap_or(LeaseStatus::Absent)
    }

    fn with_lease(&self, id: i64, status: LeaseStatus) -> KeyState {
        let mut next = self.clone();
        next.leases.insert(id, status);
        next
    }

    /// The state after lease `id` is revoked at `revision` (`None`: a revision not yet
    /// reported, from an unknown outcome); `None` if that cannot happen now.
    fn revoke(&self, id: i64, revision: Option<u64>) -> Option<KeyState> {
        if self.lease(id) != LeaseStatus::Granted {
            return None;
        }
        let mut next = self.with_lease(id, LeaseStatus::Revoked);
        let attached = self.live.as_ref().is_some_and(|l| l.lease == id);
        match revision {
            Some(r) if attached && r <= self.floor => return None,
            Some(r) if r < self.floor => return None,
            Some(r) => next.floor = r,
            None => {}
        }
        if attached {
            next.live = None;
        }
        Some(next)
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
                self.write(value, Rev::Known(*revision), 0)
            }
            (Request::LeasePut { value, lease, .. }, Response::Put { revision }) => {
                if self.lease(*lease) != LeaseStatus::Granted {
                    return None;
                }
                self.write(value, Rev::Known(*revision), *lease)
            }
            (
                Request::LeasePut { lease, .. }
                | Request::LeaseRevoke { lease }
                | Request::LeaseKeepAlive { lease },
                Response::LeaseNotFound,
            ) => (self.lease(*lease) != LeaseStatus::Granted).then(|| self.clone()),
            (Request::LeaseGrant { lease }, Response::LeaseGrant) => (self.lease(*lease)
                != LeaseStatus::Granted)
                .then(|| self.with_lease(*lease, LeaseStatus::Granted)),
            (Request::LeaseRevoke { lease }, Response::LeaseRevoke { revision }) => {
                self.revoke(*lease, Some(*revision))
            }
            (Request::LeaseKeepAlive { lease }, Response::LeaseKeepAlive) => {
                (self.lease(*lease) == LeaseStatus::Granted).then(|| self.clone())
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
                        leases: self.leases.clone(),
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
                    pinned.write(value, Rev::Known(*revision), 0)
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
            Request::Get { .. } | Request::LeaseKeepAlive { .. } => None,
            Request::Put { value, .. } => self.write(value, unknown_revision, 0),
            Request::LeasePut { value, lease, .. } => {
                if self.lease(*lease) != LeaseStatus::Granted {
                    return None;
                }
                self.write(value, unknown_revision, *lease)
            }
            Request::LeaseGrant { lease } => (self.lease(*lease) != LeaseStatus::Granted)
                .then(|| self.with_lease(*lease, LeaseStatus::Granted)),
            Request::LeaseRevoke { lease } => self.revoke(*lease, None),
            // Deleting an absent key changes nothing: the "did not happen" successor covers it.
            Request::Delete { .. } => self.live.as_ref().map(|_| KeyState {
                live: None,
                ..self.clone()
            }),
            Request::Txn { compare, value, .. } => self
                .assume_compare(compare, true)
                .and_then(|pinned| pinned.write(value, unknown_revision, 0)),
        }
    }

    /// The key after a put at `revision` attached to `lease` (0: none), or `None` if that
    /// revision cannot come next.
    fn write(&self, value: &[u8], revision: Rev, lease: i64) -> Option<KeyState> {
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
                lease,
            },
            None => Live {
                value: value.to_vec(),
                create: revision.clone(),
                modified: revision,
                version: 1,
                lease,
            },
        };
        Some(KeyState {
            live: Some(live),
            floor,
            leases: self.leases.clone(),
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
                    lease: live.lease,
                })
            }
            _ => return None,
        };
        Some(KeyState {
            live,
            floor: revision,
            leases: self.leases.clone(),
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
