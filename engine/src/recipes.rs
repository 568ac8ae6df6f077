//! Lock and election recipes on leases, revisions and watch, with etcd's semantics
//! (`clientv3/concurrency`).
//!
//! **Mutex.** Each contender puts `<prefix>/<lease id in hex>` with its lease, if absent. Its
//! place in line is that key's create revision. It holds the lock once no key under the prefix
//! has a smaller create revision; until then it waits for the deletion of its immediate
//! predecessor only (no thundering herd). A holder whose lease expires or is revoked loses its
//! key, and with it the lock, to the next in line.
//!
//! **What this guarantees** (Jepsen's etcd analysis is the reference): at most one *live* key
//! holds the lock at any revision. It does not guarantee that a process that believes it holds
//! the lock still does: a process paused past its lease TTL (GC, swap, a stopped VM) wakes up to
//! find its key deleted and someone else holding the lock. Work protected by the lock must be
//! fenced: compare the key's create revision (the fencing token, [`MutexGuard::revision`]) in a
//! transaction with the protected write, which etcd transactions make easy.
//!
//! **Election.** The same queue: the candidate with the oldest key is the leader; `proclaim`
//! updates the leader's value only while it still is the leader (a guarded transaction);
//! `resign` deletes the key; `leader` reads the current leader; `observe` yields each change.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use crate::types::{KeyValue, PutOp, Range, RangeOptions, Revision, SortOrder, SortTarget};
use crate::watch::{EventKind, WatchOptions};

/// A distributed mutex under a key prefix.
pub struct Mutex {
    store: Store,
    prefix: String,
}

/// Proof of holding a [`Mutex`]; unlock with [`MutexGuard::unlock`] (or let the lease lapse).
pub struct MutexGuard {
    store: Store,
    key: Vec<u8>,
    revision: Revision,
}

/// An election under a key prefix.
pub struct Election {
    store: Store,
    prefix: String,
}

/// A leadership held in an [`Election`].
pub struct Leadership {
    store: Store,
    key: Vec<u8>,
    revision: Revision,
}

/// `prefix` with a trailing `/`, so "locks/a" and "locks/ab" are different queues.
fn queue_prefix(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// Deletes `key` only if it is still the incarnation created at `revision`.
fn delete_if_created_at(store: &Store, key: &[u8], revision: Revision) -> Result<()> {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, revision)])
        .and_then([TxnOp::delete(Range::key(key))]);
    store.txn(txn).map(|_| ())
}

/// Puts `key` with `lease` unless it exists; returns the key's create revision.
fn enqueue(store: &Store, key: &[u8], value: &[u8], lease: i64) -> Result<Revision> {
    let put = PutOp {
        key: key.to_vec(),
        value: value.to_vec(),
        lease,
        ..Default::default()
    };
    let resp = store.txn(
        Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::Put(put)])
            .or_else([TxnOp::get(key)]),
    )?;
    let created = if resp.succeeded {
        resp.header_revision
    } else {
        match resp.responses.first() {
            Some(TxnOpResponse::Range(r)) => r.kvs.first().map_or(0, |kv| kv.create_revision),
            _ => 0,
        }
    };
    Ok(created)
}

/// Joins the queue under `prefix` with `lease` (key `<prefix><lease in hex>`, value `value`) and
/// waits for the front. Returns the key and its create revision once it is first, or `None`
/// (having left the queue) if `deadline` passed first.
fn join_queue(
    store: &Store,
    prefix: &str,
    lease: i64,
    value: &[u8],
    deadline: Option<Instant>,
) -> Result<Option<(Vec<u8>, Revision)>> {
    let key = format!("{prefix}{lease:x}").into_bytes();
    let revision = enqueue(store, &key, value, lease)?;
    if !wait_turn(store, prefix, revision, deadline)? {
        store.delete(&key)?;
        return Ok(None);
    }
    // Our key may have vanished meanwhile (lease expired): then we are not first after all.
    match store.get(&key)? {
        Some(kv) if kv.create_revision == revision => Ok(Some((key, revision))),
        _ => Err(Error::LeaseNotFound { id: lease }),
    }
}

/// The key under `prefix` created just before `revision`, if any.
fn predecessor(store: &Store, prefix: &str, revision: Revision) -> Result<Option<KeyValue>> {
    let opts = RangeOptions {
        limit: 1,
        sort_order: SortOrder::Descend,
        sort_target: SortTarget::Create,
        max_create_revision: revision - 1,
        ..Default::default()
    };
    Ok(store
        .range_with(&Range::prefix(prefix), &opts)?
        .kvs
        .into_iter()
        .next())
}

/// Waits until every key under `prefix` created before `revision` is gone, or the deadline.
fn wait_turn(
    store: &Store,
    prefix: &str,
    revision: Revision,
    deadline: Option<Instant>,
) -> Result<bool> {
    loop {
        let Some(pred) = predecessor(store, prefix, revision)? else {
            return Ok(true);
        };
        // Watch just the predecessor for its deletion, from the revision we read it at.
        let mut w = store.watch_with(
            Range::key(&pred.key),
            WatchOptions {
                start_revision: pred.mod_revision + 1,
                no_put: true,
                ..Default::default()
            },
        )?;
        loop {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => return Ok(false),
                },
                None => Duration::from_secs(1),
            };
            match w.recv_timeout(wait.min(Duration::from_secs(1)))? {
                Some(r) if r.canceled || r.events.iter().any(|e| e.kind == EventKind::Delete) => {
                    break
                }
                _ => {
                    // Re-check: the predecessor may have gone before the watch started.
                    if store
                        .get(&pred.key)?
                        .is_none_or(|kv| kv.create_revision != pred.create_revision)
                    {
                        break;
                    }
                }
            }
        }
    }
}

impl Mutex {
    /// A mutex whose contenders live under `prefix` (a trailing `/` is added if missing).
    pub fn new(store: &Store, prefix: &str) -> Mutex {
        Mutex {
            store: store.clone(),
            prefix: queue_prefix(prefix),
        }
    }

    /// Waits for the lock, holding a place in line with `lease` (which must exist).
    ///
    /// ```no_run
    /// use etch_engine::{Mutex, Store};
    /// let db = Store::open("app.etch")?;
    /// let lease = db.lease_grant(15, 0)?;
    /// let guard = Mutex::new(&db, "locks/report").lock(lease.id)?;
    /// // ... work, fenced by guard.revision() ...
    /// guard.unlock()?;
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn lock(&self, lease: i64) -> Result<MutexGuard> {
        self.lock_until(lease, None)?
            .ok_or_else(|| Error::corrupt("internal: lock wait ended early"))
    }

    /// Like [`Mutex::lock`], giving up (and leaving the line) after `timeout`.
    pub fn try_lock_for(&self, lease: i64, timeout: Duration) -> Result<Option<MutexGuard>> {
        self.lock_until(
            lease,
            Some(crate::clock::deadline_after(Instant::now(), timeout)),
        )
    }

    fn lock_until(&self, lease: i64, deadline: Option<Instant>) -> Result<Option<MutexGuard>> {
        Ok(
            join_queue(&self.store, &self.prefix, lease, b"", deadline)?.map(|(key, revision)| {
                MutexGuard {
                    store: self.store.clone(),
                    key,
                    revision,
                }
            }),
        )
    }
}

impl MutexGuard {
    /// The lock key's create revision: a fencing token that grows with every new holder.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The lock key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// True if this guard's key still exists (its lease has not lapsed).
    pub fn is_held(&self) -> Result<bool> {
        Ok(self
            .store
            .get(&self.key)?
            .is_some_and(|kv| kv.create_revision == self.revision))
    }

    /// Releases the lock.
    pub fn unlock(self) -> Result<()> {
        delete_if_created_at(&self.store, &self.key, self.revision)
    }
}

impl Election {
    /// An election whose candidates live under `prefix`.
    pub fn new(store: &Store, prefix: &str) -> Election {
        Election {
            store: store.clone(),
            prefix: queue_prefix(prefix),
        }
    }

    /// Waits to become leader, proposing `value`, with `lease` keeping the candidacy alive.
    ///
    /// ```no_run
    /// use etch_engine::{Election, Store};
    /// let db = Store::open("app.etch")?;
    /// let lease = db.lease_grant(10, 0)?;
    /// let election = Election::new(&db, "elect/scheduler");
    /// let leadership = election.campaign(lease.id, "node-1")?;
    /// leadership.proclaim("node-1, epoch 2")?;
    /// leadership.resign()?;
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn campaign(&self, lease: i64, value: impl AsRef<[u8]>) -> Result<Leadership> {
        let (key, revision) =
            join_queue(&self.store, &self.prefix, lease, value.as_ref(), None)?
                .ok_or_else(|| Error::corrupt("internal: campaign wait ended early"))?;
        Ok(Leadership {
            store: self.store.clone(),
            key,
            revision,
        })
    }

    /// The current leader's key-value (the oldest candidate), if any.
    pub fn leader(&self) -> Result<Option<KeyValue>> {
        let opts = RangeOptions {
            limit: 1,
            sort_order: SortOrder::Ascend,
            sort_target: SortTarget::Create,
            ..Default::default()
        };
        Ok(self
            .store
            .range_with(&Range::prefix(&self.prefix), &opts)?
            .kvs
            .into_iter()
            .next())
    }

    /// Waits up to `timeout` for the leader to differ from `current` (by key and value).
    /// Returns `Some(new leader)` (itself `None` if there is no leader now), or `None` on
    /// timeout.
    pub fn observe(
        &self,
        current: Option<&KeyValue>,
        timeout: Duration,
    ) -> Result<Option<Option<KeyValue>>> {
        let deadline = crate::clock::deadline_after(Instant::now(), timeout);
        let mut w = self.store.watch(Range::prefix(&self.prefix))?;
        loop {
            let now = self.leader()?;
            let same = match (&now, current) {
                (Some(a), Some(b)) => a.key == b.key && a.value == b.value,
                (None, None) => true,
                _ => false,
            };
            if !same {
                return Ok(Some(now));
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Ok(None);
            };
            w.recv_timeout(left)?;
        }
    }
}

impl Leadership {
    /// The candidacy key's create revision (a fencing token).
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The candidacy key (under the election's prefix; its value is the proclaimed value).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Publishes a new value, only while still the leader. Returns false if leadership was lost.
    pub fn proclaim(&self, value: impl AsRef<[u8]>) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::create_revision(
                &self.key,
                CompareOp::Equal,
                self.revision,
            )])
            .and_then([TxnOp::Put(PutOp {
                key: self.key.clone(),
                value: value.as_ref().to_vec(),
                ignore_lease: true,
                ..Default::default()
            })]);
        Ok(self.store.txn(txn)?.succeeded)
    }

    /// Gives up leadership.
    pub fn resign(self) -> Result<()> {
        delete_if_created_at(&self.store, &self.key, self.revision)
    }
}
