//! The native store: every engine call, with the GIL released around anything that may block,
//! sync or scan. `etch.Store` (Python) wraps it with python-etcd3's method names.

use std::path::PathBuf;
use std::sync::Mutex;

use etch_engine::{PutOp, RangeOptions, SortOrder, SortTarget, Store, WatchOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::convert::{kv_list, kv_opt, seconds, Bytes, KvMeta};
use crate::errors::{closed, IntoPyResult};
use crate::lock::PyLockGuard;
use crate::options;
use crate::stm::PyWriteTxn;
use crate::txn::{self, range_of};
use crate::types::{
    delete_response, put_response, PyCheckReport, PyDeleteResponse, PyPutResponse, PyStatus,
};
use crate::watch::PyWatcher;

type KvTuple = (Py<PyBytes>, Py<KvMeta>);

/// An open store, from the native module; `etch.open` returns an `etch.Store` wrapping it.
/// Safe to share between threads.
#[pyclass(frozen, module = "etch._etch", name = "NativeStore")]
pub struct PyStore {
    inner: Mutex<Option<Store>>,
    path: PathBuf,
    max_txn_ops: usize,
    max_key_size: usize,
    write_attempts: u32,
}

impl PyStore {
    /// A handle on the engine store, or `ClosedError` after `close`.
    fn store(&self) -> PyResult<Store> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(closed)
    }

    fn wrap(store: Store, path: PathBuf, o: &options::OpenOptions) -> Self {
        PyStore {
            inner: Mutex::new(Some(store)),
            path,
            max_txn_ops: o.max_txn_ops,
            max_key_size: o.max_key_size,
            write_attempts: o.write_attempts,
        }
    }
}

/// Opens (or creates) the store at `path` with keyword options.
#[pyfunction]
#[pyo3(signature = (path, **options))]
pub fn open(
    py: Python<'_>,
    path: PathBuf,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyStore> {
    let o = options::parse(options)?;
    let engine_opts = o.options.clone();
    let p = path.clone();
    let store = py.detach(move || engine_opts.open(&p)).py()?;
    Ok(PyStore::wrap(store, path, &o))
}

/// Copies the snapshot file `snapshot` to `output` (which must not exist), verifies the copy
/// and returns it open.
#[pyfunction]
#[pyo3(signature = (snapshot, output, **options))]
pub fn restore(
    py: Python<'_>,
    snapshot: PathBuf,
    output: PathBuf,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyStore> {
    let o = options::parse(options)?;
    let engine_opts = o.options.clone();
    let out = output.clone();
    let store = py
        .detach(move || Store::restore(&snapshot, &out, engine_opts))
        .py()?;
    Ok(PyStore::wrap(store, output, &o))
}

/// etcd's `GetPrefixRangeEnd`: the smallest key after every key starting with `prefix`.
#[pyfunction]
pub fn prefix_end<'py>(py: Python<'py>, prefix: Bytes) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &etch_engine::prefix_end(&prefix.0))
}

fn sort_order(s: &str) -> PyResult<SortOrder> {
    match s {
        "none" => Ok(SortOrder::None),
        "ascend" => Ok(SortOrder::Ascend),
        "descend" => Ok(SortOrder::Descend),
        other => Err(PyValueError::new_err(format!(
            "sort_order must be \"ascend\", \"descend\" or None, not {other:?}"
        ))),
    }
}

fn sort_target(s: &str) -> PyResult<SortTarget> {
    match s {
        "key" => Ok(SortTarget::Key),
        "version" => Ok(SortTarget::Version),
        "create" => Ok(SortTarget::Create),
        "mod" => Ok(SortTarget::Mod),
        "value" => Ok(SortTarget::Value),
        other => Err(PyValueError::new_err(format!(
            "sort_target must be one of \"key\", \"version\", \"create\", \"mod\", \"value\", not {other:?}"
        ))),
    }
}

#[pymethods]
impl PyStore {
    /// Path of the main file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Compares and operations allowed in one transaction.
    #[getter]
    fn max_txn_ops(&self) -> usize {
        self.max_txn_ops
    }

    /// How often `write` runs its function before giving up with `ConflictError`.
    #[getter]
    fn write_attempts(&self) -> u32 {
        self.write_attempts
    }

    /// Current revision.
    #[getter]
    fn revision(&self) -> PyResult<i64> {
        Ok(self.store()?.revision())
    }

    /// True once `close` has run.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// `(value, meta)` of `key` (at `revision` if > 0), or None.
    #[pyo3(signature = (key, revision=0))]
    fn get(&self, py: Python<'_>, key: Bytes, revision: i64) -> PyResult<Option<KvTuple>> {
        let store = self.store()?;
        let max_key_size = self.max_key_size;
        let kv = py
            .detach(move || {
                if revision > 0 {
                    // A range read takes any bound; a single-key read refuses a key no put
                    // could write, as Store::get does for the current revision.
                    if key.0.is_empty() {
                        return Err(etch_engine::Error::EmptyKey);
                    }
                    if key.0.len() > max_key_size {
                        return Err(etch_engine::Error::KeyTooLarge {
                            len: key.0.len(),
                            max: max_key_size,
                        });
                    }
                    let opts = RangeOptions {
                        revision,
                        ..Default::default()
                    };
                    let r = store.range_with(&range_of(key, None), &opts)?;
                    Ok(r.kvs.into_iter().next())
                } else {
                    store.get(&key.0)
                }
            })
            .py()?;
        kv_opt(py, kv)
    }

    /// The keys of `key` (or `[key, range_end)` in etcd's encoding) with etcd's range options.
    /// Returns `(kvs, more, count, header_revision)`.
    #[pyo3(signature = (key, range_end=None, *, limit=0, revision=0, sort_order="none", sort_target="key",
        keys_only=false, count_only=false, min_mod_revision=0, max_mod_revision=0,
        min_create_revision=0, max_create_revision=0))]
    #[allow(clippy::too_many_arguments)]
    fn range(
        &self,
        py: Python<'_>,
        key: Bytes,
        range_end: Option<Bytes>,
        limit: i64,
        revision: i64,
        sort_order: &str,
        sort_target: &str,
        keys_only: bool,
        count_only: bool,
        min_mod_revision: i64,
        max_mod_revision: i64,
        min_create_revision: i64,
        max_create_revision: i64,
    ) -> PyResult<(Vec<KvTuple>, bool, i64, i64)> {
        let opts = RangeOptions {
            limit,
            revision,
            sort_order: self::sort_order(sort_order)?,
            sort_target: self::sort_target(sort_target)?,
            keys_only,
            count_only,
            min_mod_revision,
            max_mod_revision,
            min_create_revision,
            max_create_revision,
        };
        let store = self.store()?;
        let range = range_of(key, range_end);
        let r = py.detach(move || store.range_with(&range, &opts)).py()?;
        Ok((kv_list(py, r.kvs)?, r.more, r.count, r.header_revision))
    }

    /// Puts `key = value` with etcd's put options.
    #[pyo3(signature = (key, value, *, lease=0, prev_kv=false, ignore_value=false, ignore_lease=false))]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        py: Python<'_>,
        key: Bytes,
        value: Bytes,
        lease: i64,
        prev_kv: bool,
        ignore_value: bool,
        ignore_lease: bool,
    ) -> PyResult<PyPutResponse> {
        let store = self.store()?;
        let op = PutOp {
            key: key.0,
            value: value.0,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        };
        let r = py.detach(move || store.put_with(op)).py()?;
        put_response(py, r)
    }

    /// Deletes `key` (or every key of `[key, range_end)`) at one revision.
    #[pyo3(signature = (key, range_end=None, *, prev_kv=false))]
    fn delete_range(
        &self,
        py: Python<'_>,
        key: Bytes,
        range_end: Option<Bytes>,
        prev_kv: bool,
    ) -> PyResult<PyDeleteResponse> {
        let store = self.store()?;
        let range = range_of(key, range_end);
        let r = py.detach(move || store.delete_range(range, prev_kv)).py()?;
        delete_response(py, r)
    }

    /// Runs a transaction of compare and operation tuples; returns `(succeeded, responses)`.
    fn txn<'py>(
        &self,
        py: Python<'py>,
        compare: &Bound<'py, PyAny>,
        success: &Bound<'py, PyAny>,
        failure: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let t = txn::build(compare, success, failure)?;
        let store = self.store()?;
        let r = py.detach(move || store.txn(t)).py()?;
        txn::response(py, r)
    }

    /// Compacts history below `revision`; returns the current revision.
    fn compact(&self, py: Python<'_>, revision: i64) -> PyResult<i64> {
        let store = self.store()?;
        py.detach(move || store.compact(revision)).py()
    }

    /// Grants a lease of `ttl` seconds (`id` 0 picks one); returns `(id, ttl)`.
    #[pyo3(signature = (ttl, id=0))]
    fn lease_grant(&self, py: Python<'_>, ttl: i64, id: i64) -> PyResult<(i64, i64)> {
        let store = self.store()?;
        let g = py.detach(move || store.lease_grant(ttl, id)).py()?;
        Ok((g.id, g.ttl))
    }

    /// Revokes a lease, deleting its keys; returns the revision.
    fn lease_revoke(&self, py: Python<'_>, id: i64) -> PyResult<i64> {
        let store = self.store()?;
        py.detach(move || store.lease_revoke(id)).py()
    }

    /// Renews a lease for its full TTL; returns the TTL.
    fn lease_keep_alive(&self, py: Python<'_>, id: i64) -> PyResult<i64> {
        let store = self.store()?;
        py.detach(move || store.lease_keep_alive(id)).py()
    }

    /// `(remaining_ttl, granted_ttl, keys)` of a lease (keys only if `keys` is true).
    #[pyo3(signature = (id, keys=false))]
    fn lease_time_to_live(
        &self,
        py: Python<'_>,
        id: i64,
        keys: bool,
    ) -> PyResult<(i64, i64, Vec<Py<PyBytes>>)> {
        let store = self.store()?;
        let info = py.detach(move || store.lease_time_to_live(id, keys)).py()?;
        let keys = info
            .keys
            .iter()
            .map(|k| PyBytes::new(py, k).unbind())
            .collect();
        Ok((info.ttl, info.granted_ttl, keys))
    }

    /// Every lease as `(id, granted_ttl)`.
    fn lease_list(&self, py: Python<'_>) -> PyResult<Vec<(i64, i64)>> {
        let store = self.store()?;
        let l = py.detach(move || store.lease_list()).py()?;
        Ok(l.into_iter().map(|g| (g.id, g.ttl)).collect())
    }

    /// Watches `key` (or `[key, range_end)`) with etcd's watch options.
    #[pyo3(signature = (key, range_end=None, *, start_revision=0, prev_kv=false, no_put=false,
        no_delete=false, progress_notify=None))]
    #[allow(clippy::too_many_arguments)]
    fn watch(
        &self,
        py: Python<'_>,
        key: Bytes,
        range_end: Option<Bytes>,
        start_revision: i64,
        prev_kv: bool,
        no_put: bool,
        no_delete: bool,
        progress_notify: Option<f64>,
    ) -> PyResult<PyWatcher> {
        let progress_notify = seconds("progress_notify", progress_notify)?;
        let opts = WatchOptions {
            start_revision,
            prev_kv,
            no_put,
            no_delete,
            progress_notify,
        };
        let store = self.store()?;
        let range = range_of(key, range_end);
        let w = py.detach(move || store.watch_with(range, opts)).py()?;
        Ok(PyWatcher::new(w))
    }

    /// Waits for the lock `name`, queued with `lease` (which must exist), for up to `timeout`
    /// seconds (forever if None). Returns the guard, or None on timeout.
    #[pyo3(signature = (name, lease, timeout=None))]
    fn lock(
        &self,
        py: Python<'_>,
        name: &str,
        lease: i64,
        timeout: Option<f64>,
    ) -> PyResult<Option<PyLockGuard>> {
        let timeout = seconds("timeout", timeout)?;
        let store = self.store()?;
        let name = name.to_owned();
        let g = py
            .detach(move || {
                let m = etch_engine::Mutex::new(&store, &name);
                match timeout {
                    None => m.lock(lease).map(Some),
                    Some(t) => m.try_lock_for(lease, t),
                }
            })
            .py()?;
        Ok(g.map(PyLockGuard::new))
    }

    /// Starts one attempt of an optimistic read-write transaction.
    fn begin_write(&self, py: Python<'_>) -> PyResult<PyWriteTxn> {
        let store = self.store()?;
        py.detach(move || PyWriteTxn::begin(&store)).py()
    }

    /// Writes a compact copy of the store to `path` (which must not exist); returns
    /// `(revision, size)`.
    fn snapshot(&self, py: Python<'_>, path: PathBuf) -> PyResult<(i64, u64)> {
        let store = self.store()?;
        py.detach(move || store.snapshot(&path)).py()
    }

    /// A hash of the keyspace at `revision` (0: current), for comparing copies.
    #[pyo3(signature = (revision=0))]
    fn hash_kv(&self, py: Python<'_>, revision: i64) -> PyResult<u32> {
        let store = self.store()?;
        py.detach(move || store.hash_kv(revision)).py()
    }

    /// Rewrites the file compactly; returns `(size_before, size_after)`.
    fn defrag(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        let store = self.store()?;
        py.detach(move || store.defrag()).py()
    }

    /// Status figures.
    fn status(&self, py: Python<'_>) -> PyResult<PyStatus> {
        let store = self.store()?;
        Ok(py.detach(move || store.status()).py()?.into())
    }

    /// Full integrity check.
    fn check(&self, py: Python<'_>) -> PyResult<PyCheckReport> {
        let store = self.store()?;
        Ok(py.detach(move || store.check()).py()?.into())
    }

    /// Makes every commit so far durable.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.store()?;
        py.detach(move || store.sync()).py()
    }

    /// Checkpoints the WAL into the main file.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.store()?;
        py.detach(move || store.checkpoint()).py()
    }

    /// Checkpoints, removes the WAL and releases the file. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(store) => py.detach(move || store.close()).py(),
            None => Ok(()),
        }
    }
}
