//! Locks on every backend, and the held side of a lock.
//!
//! - A local store uses the engine's lock recipe (`etch_engine::Mutex`).
//! - A remote server uses its Lock service (etcd's v3lock, which `etch serve` implements).
//! - A cluster member runs the same recipe as the engine, through the member's replicated
//!   calls: each contender puts `<name>/<lease in hex>` with its lease if absent, then waits
//!   until no key under the name was created before its own. The wait is one watch on the
//!   predecessor's deletion (from the revision it was read at, so a deletion before the watch
//!   started is replayed), never a timed poll.
//!
//! Every backend writes the same key (`<name>/<lease hex>`), so contenders on one data set
//! through different backends (a member and a client of the same cluster) queue together.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use etch_engine::{
    Compare, CompareOp, EventKind, MutexGuard, PutOp, Range, RangeOptions, Revision, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::backend::{AnyWatcher, BResult, Backend};
use crate::errors::IntoPyResult;

/// The longest wait a remote lock request is given when the caller set no timeout.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// How a lock is held.
enum Held {
    /// The engine's guard (a local store).
    Engine(MutexGuard),
    /// A key on a member or a server (the guard keeps the key and its create revision).
    Key { backend: Backend },
}

/// Waits for the lock `name` with `lease`, up to `timeout` (forever if None). The guard, or
/// None on timeout (having left the queue).
pub fn acquire(
    backend: &Backend,
    name: &str,
    lease: i64,
    timeout: Option<Duration>,
) -> BResult<Option<PyLockGuard>> {
    match backend {
        Backend::Local(store) => {
            let m = etch_engine::Mutex::new(store, name);
            let g = match timeout {
                None => m.lock(lease).map(Some),
                Some(t) => m.try_lock_for(lease, t),
            }?;
            Ok(g.map(|g| PyLockGuard {
                key: g.key().to_vec(),
                revision: g.revision(),
                held: Mutex::new(Some(Held::Engine(g))),
            }))
        }
        Backend::Remote(r) => {
            let wait = timeout.unwrap_or(FOREVER);
            let got = match r.run(r.client.lock(name, lease, wait)) {
                Ok(k) => k,
                Err(crate::backend::BackendError::Client(
                    etch_client::Error::DeadlineExceeded { .. },
                )) if timeout.is_some() => return Ok(None),
                Err(e) => return Err(e),
            };
            // The fencing token is the key's create revision, as the engine's guard gives.
            let revision = backend
                .get(&got.key)?
                .map_or(got.header_revision, |kv| kv.create_revision);
            Ok(Some(PyLockGuard::keyed(backend, got.key, revision)))
        }
        Backend::Member(_) => {
            let deadline = timeout.map(|t| Instant::now() + t);
            Ok(join_queue(backend, name, lease, deadline)?
                .map(|(key, revision)| PyLockGuard::keyed(backend, key, revision)))
        }
    }
}

/// `prefix` with a trailing `/`, so "a" and "ab" are different queues.
fn queue_prefix(name: &str) -> String {
    if name.ends_with('/') {
        name.to_string()
    } else {
        format!("{name}/")
    }
}

/// The engine's recipe over a backend's calls (see the module documentation).
fn join_queue(
    backend: &Backend,
    name: &str,
    lease: i64,
    deadline: Option<Instant>,
) -> BResult<Option<(Vec<u8>, Revision)>> {
    let prefix = queue_prefix(name);
    let key = format!("{prefix}{lease:x}").into_bytes();
    let put = PutOp {
        key: key.clone(),
        lease,
        ..Default::default()
    };
    let resp = backend.txn(
        Txn::new()
            .when([Compare::create_revision(&key, CompareOp::Equal, 0)])
            .and_then([TxnOp::Put(put)])
            .or_else([TxnOp::get(&key)]),
    )?;
    let revision = if resp.succeeded {
        resp.header_revision
    } else {
        match resp.responses.first() {
            Some(TxnOpResponse::Range(r)) => r.kvs.first().map_or(0, |kv| kv.create_revision),
            _ => 0,
        }
    };
    if !wait_turn(backend, &prefix, revision, deadline)? {
        delete_if_created_at(backend, &key, revision)?;
        return Ok(None);
    }
    // The key may have vanished meanwhile (its lease expired): then this contender is not
    // first after all.
    match backend.get(&key)? {
        Some(kv) if kv.create_revision == revision => Ok(Some((key, revision))),
        _ => Err(etch_engine::Error::LeaseNotFound { id: lease }.into()),
    }
}

/// Waits until no key under `prefix` created before `revision` is left, or the deadline.
fn wait_turn(
    backend: &Backend,
    prefix: &str,
    revision: Revision,
    deadline: Option<Instant>,
) -> BResult<bool> {
    loop {
        let opts = RangeOptions {
            limit: 1,
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Create,
            max_create_revision: revision - 1,
            ..Default::default()
        };
        let pred = backend.range_with(&Range::prefix(prefix), &opts)?.kvs;
        let Some(pred) = pred.into_iter().next() else {
            return Ok(true);
        };
        // Deletions of the predecessor from the revision it was read at: one that happened
        // before the watch started is replayed.
        let mut w = backend.watch_with(
            Range::key(&pred.key),
            WatchOptions {
                start_revision: pred.mod_revision + 1,
                no_put: true,
                ..Default::default()
            },
        )?;
        loop {
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => Some(left),
                    None => return Ok(false),
                },
                None => None,
            };
            let AnyWatcher::Engine(engine) = &mut w else {
                unreachable!("the recipe runs on members, whose watchers are the engine's")
            };
            let got = match left {
                Some(left) => engine.recv_timeout(left)?,
                None => engine.recv()?,
            };
            match got {
                Some(r) if r.canceled || r.events.iter().any(|e| e.kind == EventKind::Delete) => {
                    break
                }
                // A progress response or a timeout: the deadline check above decides.
                Some(_) | None => {}
            }
        }
    }
}

/// Deletes `key` only if it is still the incarnation created at `revision`.
fn delete_if_created_at(backend: &Backend, key: &[u8], revision: Revision) -> BResult<bool> {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, revision)])
        .and_then([TxnOp::delete(Range::key(key))]);
    Ok(backend.txn(txn)?.succeeded)
}

/// A held lock from the native module; `etch.Lock` wraps it. Holds the lock key (created with
/// the holder's lease) until `unlock`.
#[pyclass(frozen, module = "etch._etch", name = "LockGuard")]
pub struct PyLockGuard {
    held: Mutex<Option<Held>>,
    key: Vec<u8>,
    revision: i64,
}

impl PyLockGuard {
    fn keyed(backend: &Backend, key: Vec<u8>, revision: Revision) -> Self {
        PyLockGuard {
            key,
            revision,
            held: Mutex::new(Some(Held::Key {
                backend: backend.clone(),
            })),
        }
    }

    fn is_held_now(&self) -> BResult<bool> {
        let g = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(Held::Engine(g)) => Ok(g.is_held()?),
            Some(Held::Key { backend }) => Ok(backend
                .get(&self.key)?
                .is_some_and(|kv| kv.create_revision == self.revision)),
            None => Ok(false),
        }
    }

    fn unlock_now(&self) -> BResult<bool> {
        let taken = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(Held::Engine(g)) => g.unlock().map(|_| true).map_err(Into::into),
            Some(Held::Key { backend }) => {
                delete_if_created_at(&backend, &self.key, self.revision)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[pymethods]
impl PyLockGuard {
    /// The lock key's create revision: a fencing token that grows with every new holder.
    #[getter]
    fn revision(&self) -> i64 {
        self.revision
    }

    /// The lock key.
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.key)
    }

    /// True if the lock key still exists (not unlocked, its lease not lapsed).
    fn is_held(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| self.is_held_now()).py()
    }

    /// Releases the lock; returns False if it was already released through this guard.
    fn unlock(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| self.unlock_now()).py()
    }
}
