//! Optimistic read-write transactions driven from Python: one attempt of the engine's protocol
//! (`Store::begin_write` / `WriteTxn::commit`) held by a Python object. `etch.Store.write`
//! drives the retry loop, since the attempt body is Python code.

use std::sync::Mutex;

use etch_engine::{Store, WriteTxn};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::{kv_list, kv_opt, Bytes, KvMeta};
use crate::errors::{ClosedError, IntoPyResult};
use crate::txn::range_of;

type KvTuple = (Py<PyBytes>, Py<KvMeta>);
/// `(value, meta)` or `(None, None)`, as python-etcd3's `get`.
type MaybeKv = (Option<Py<PyBytes>>, Option<Py<KvMeta>>);

/// One attempt of an optimistic read-write transaction (from the native module; `etch.Store.write`
/// drives it).
#[pyclass(frozen, module = "etch._etch", name = "WriteTxn")]
pub struct PyWriteTxn {
    /// `None` once committed or aborted.
    txn: Mutex<Option<WriteTxn>>,
}

impl PyWriteTxn {
    /// Starts an attempt on a fresh snapshot.
    pub fn begin(store: &Store) -> etch_engine::Result<Self> {
        Ok(PyWriteTxn {
            txn: Mutex::new(Some(store.begin_write()?)),
        })
    }

    /// Runs `f` on the attempt, or raises `ClosedError` if it has ended.
    fn with<T>(&self, f: impl FnOnce(&mut WriteTxn) -> PyResult<T>) -> PyResult<T> {
        let mut txn = self.txn.lock().unwrap_or_else(|e| e.into_inner());
        match txn.as_mut() {
            Some(t) => f(t),
            None => Err(ClosedError::new_err(
                "this write transaction has already ended",
            )),
        }
    }
}

#[pymethods]
impl PyWriteTxn {
    /// Revision of the snapshot this attempt reads.
    #[getter]
    fn revision(&self) -> PyResult<i64> {
        self.with(|t| Ok(t.revision()))
    }

    /// `(value, meta)` of `key`, or `(None, None)`. A key this transaction wrote reads back its
    /// new value (with zero revisions, since it has none yet).
    fn get(&self, py: Python<'_>, key: Bytes) -> PyResult<MaybeKv> {
        let kv = self.with(|t| t.get(&key.0).py())?;
        Ok(match kv_opt(py, kv)? {
            Some((v, m)) => (Some(v), Some(m)),
            None => (None, None),
        })
    }

    /// `(value, meta)` of every key in `[key, range_end)` as of the snapshot (this transaction's
    /// own writes are not merged in). Any change to the range before commit makes it conflict.
    fn get_range(&self, py: Python<'_>, key: Bytes, range_end: Bytes) -> PyResult<Vec<KvTuple>> {
        let range = range_of(key, Some(range_end));
        let resp = self.with(|t| t.range(range).py())?;
        kv_list(py, resp.kvs)
    }

    /// Buffers a put.
    fn put(&self, key: Bytes, value: Bytes) -> PyResult<()> {
        self.with(|t| {
            t.put(key.0, value.0);
            Ok(())
        })
    }

    /// Buffers the deletion of one key.
    fn delete(&self, key: Bytes) -> PyResult<()> {
        self.with(|t| {
            t.delete(key.0);
            Ok(())
        })
    }

    /// Applies the buffered writes if nothing read has changed since the snapshot. Returns the
    /// revision the writes were committed at (the snapshot's if there was nothing to write), or
    /// None on a conflict. Ends the attempt.
    fn commit(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        let txn = self.txn.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(txn) = txn else {
            return Err(ClosedError::new_err(
                "this write transaction has already ended",
            ));
        };
        py.detach(move || txn.commit()).py()
    }

    /// Ends the attempt without writing.
    fn abort(&self) {
        self.txn.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
