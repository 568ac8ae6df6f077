//! Optimistic read-write transactions driven from Python: one attempt of the engine's protocol
//! (`Store::begin_write` / `WriteTxn::commit`) held by a Python object. `etch.Store.write`
//! drives the retry loop, since the attempt body is Python code.
//!
//! On a cluster member or a remote server the attempt is the same protocol over the backend's
//! calls ([`RemoteTxn`]): reads at the revision current when the attempt began, writes buffered,
//! and the commit one transaction guarded by what was read (each key read still at the
//! modification revision it had; each range read with no key modified after the snapshot),
//! exactly the compares the engine's own `WriteTxn` commits with.

use std::collections::BTreeMap;
use std::sync::Mutex;

use etch_engine::{KeyValue, Range, RangeOptions, RangeResponse, Revision, WriteTxn};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::backend::{BResult, Backend};
use crate::convert::{kv_list, kv_opt, Bytes, KvMeta};
use crate::errors::{ClosedError, IntoPyResult};
use crate::txn::range_of;

type KvTuple = (Py<PyBytes>, Py<KvMeta>);
/// `(value, meta)` or `(None, None)`, as python-etcd3's `get`.
type MaybeKv = (Option<Py<PyBytes>>, Option<Py<KvMeta>>);

/// One attempt over a member's or a server's calls; see the module documentation.
pub struct RemoteTxn {
    backend: Backend,
    revision: Revision,
    /// Each key read, with its modification revision at the snapshot (0: absent).
    read_keys: BTreeMap<Vec<u8>, Revision>,
    read_ranges: Vec<Range>,
    /// Buffered writes: a value, or None for a deletion.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl RemoteTxn {
    fn read(&self, range: &Range) -> BResult<RangeResponse> {
        let opts = RangeOptions {
            revision: self.revision,
            ..Default::default()
        };
        self.backend.range_with(range, &opts)
    }

    fn get(&mut self, key: &[u8]) -> BResult<Option<KeyValue>> {
        if key.is_empty() {
            return Err(etch_engine::Error::EmptyKey.into());
        }
        if let Some(w) = self.writes.get(key) {
            return Ok(w.as_ref().map(|v| KeyValue {
                key: key.to_vec(),
                value: v.clone(),
                ..Default::default()
            }));
        }
        let kv = self.read(&Range::key(key))?.kvs.into_iter().next();
        self.read_keys
            .entry(key.to_vec())
            .or_insert(kv.as_ref().map_or(0, |kv| kv.mod_revision));
        Ok(kv)
    }

    fn range(&mut self, range: Range) -> BResult<RangeResponse> {
        if range.start().is_empty() {
            return Err(etch_engine::Error::EmptyKey.into());
        }
        let resp = self.read(&range)?;
        // The range compare catches keys changed or inserted since the snapshot; a compare per
        // key returned catches keys deleted since.
        for kv in &resp.kvs {
            self.read_keys
                .entry(kv.key.clone())
                .or_insert(kv.mod_revision);
        }
        self.read_ranges.push(range);
        Ok(resp)
    }

    fn commit(self) -> BResult<Option<Revision>> {
        if self.writes.is_empty() {
            return Ok(Some(self.revision));
        }
        let txn =
            etch_engine::guarded_txn(self.revision, self.read_keys, self.read_ranges, self.writes);
        let resp = self.backend.txn(txn)?;
        Ok(resp.succeeded.then_some(resp.header_revision))
    }
}

/// One attempt, on the engine or over a backend's calls.
pub enum Attempt {
    /// A local store's own attempt.
    Engine(WriteTxn),
    /// A member's or a server's.
    Remote(RemoteTxn),
}

/// One attempt of an optimistic read-write transaction (from the native module; `etch.Store.write`
/// drives it).
#[pyclass(frozen, module = "etch._etch", name = "WriteTxn")]
pub struct PyWriteTxn {
    /// `None` once committed or aborted.
    txn: Mutex<Option<Attempt>>,
}

impl PyWriteTxn {
    /// Starts an attempt on a fresh snapshot (the backend's current revision).
    pub fn begin(backend: &Backend) -> BResult<Self> {
        let attempt = match backend {
            Backend::Local(store) => Attempt::Engine(store.begin_write()?),
            other => Attempt::Remote(RemoteTxn {
                backend: other.clone(),
                revision: other.revision()?,
                read_keys: BTreeMap::new(),
                read_ranges: Vec::new(),
                writes: BTreeMap::new(),
            }),
        };
        Ok(PyWriteTxn {
            txn: Mutex::new(Some(attempt)),
        })
    }

    /// Runs `f` on the attempt, or raises `ClosedError` if it has ended.
    fn with<T>(&self, f: impl FnOnce(&mut Attempt) -> PyResult<T>) -> PyResult<T> {
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
        self.with(|t| {
            Ok(match t {
                Attempt::Engine(t) => t.revision(),
                Attempt::Remote(t) => t.revision,
            })
        })
    }

    /// `(value, meta)` of `key`, or `(None, None)`. A key this transaction wrote reads back its
    /// new value (with zero revisions, since it has none yet).
    fn get(&self, py: Python<'_>, key: Bytes) -> PyResult<MaybeKv> {
        let kv = self.with(|t| match t {
            Attempt::Engine(t) => t.get(&key.0).py(),
            Attempt::Remote(t) => py.detach(|| t.get(&key.0)).py(),
        })?;
        Ok(match kv_opt(py, kv)? {
            Some((v, m)) => (Some(v), Some(m)),
            None => (None, None),
        })
    }

    /// `(value, meta)` of every key in `[key, range_end)` as of the snapshot (this transaction's
    /// own writes are not merged in). Any change to the range before commit makes it conflict.
    fn get_range(&self, py: Python<'_>, key: Bytes, range_end: Bytes) -> PyResult<Vec<KvTuple>> {
        let range = range_of(key, Some(range_end));
        let resp = self.with(|t| match t {
            Attempt::Engine(t) => t.range(range).py(),
            Attempt::Remote(t) => py.detach(|| t.range(range)).py(),
        })?;
        kv_list(py, resp.kvs)
    }

    /// Buffers a put.
    fn put(&self, key: Bytes, value: Bytes) -> PyResult<()> {
        self.with(|t| {
            match t {
                Attempt::Engine(t) => t.put(key.0, value.0),
                Attempt::Remote(t) => {
                    t.writes.insert(key.0, Some(value.0));
                }
            }
            Ok(())
        })
    }

    /// Buffers the deletion of one key.
    fn delete(&self, key: Bytes) -> PyResult<()> {
        self.with(|t| {
            match t {
                Attempt::Engine(t) => t.delete(key.0),
                Attempt::Remote(t) => {
                    t.writes.insert(key.0, None);
                }
            }
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
        match txn {
            Attempt::Engine(t) => py.detach(move || t.commit()).py(),
            Attempt::Remote(t) => py.detach(move || t.commit()).py(),
        }
    }

    /// Ends the attempt without writing.
    fn abort(&self) {
        self.txn.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
