//! Optimistic read-write transactions driven from Python.
//!
//! The engine's `Store::write` hands its closure a `&mut WriteTxn` that cannot outlive the call,
//! so a Python object cannot hold it. This is the same protocol built from public engine parts:
//! reads go through one snapshot and are remembered (the mod revision of every key read, every
//! range scanned); writes are buffered; `commit` applies the writes in one transaction guarded
//! by compares that every observation still holds. The guard may need more compares than one
//! transaction allows (`max_txn_ops`), so they are split over nested transactions: the writes
//! sit in the innermost one and run only if every level's compares hold.

use std::collections::BTreeMap;
use std::sync::Mutex;

use etch_engine::{
    Compare, CompareOp, PutOp, Range, RangeOptions, ReadTxn, Store, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::{kv_list, kv_opt, Bytes, KvMeta};
use crate::errors::{ClosedError, IntoPyResult};
use crate::txn::range_of;

type KvTuple = (Py<PyBytes>, Py<KvMeta>);
/// `(value, meta)` or `(None, None)`, as python-etcd3's `get`.
type MaybeKv = (Option<Py<PyBytes>>, Option<Py<KvMeta>>);

struct State {
    snapshot: ReadTxn,
    read_keys: BTreeMap<Vec<u8>, i64>,
    read_ranges: Vec<Range>,
    /// Buffered writes: `Some(value)` put, `None` delete.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    done: bool,
}

/// One attempt of an optimistic read-write transaction (from the native module; `etch.Store.write`
/// drives it).
#[pyclass(frozen, module = "etch._etch", name = "WriteTxn")]
pub struct PyWriteTxn {
    store: Store,
    max_txn_ops: usize,
    state: Mutex<State>,
}

impl PyWriteTxn {
    /// Starts an attempt on a fresh snapshot.
    pub fn begin(store: Store, max_txn_ops: usize) -> etch_engine::Result<Self> {
        let snapshot = store.read()?;
        Ok(PyWriteTxn {
            store,
            max_txn_ops: max_txn_ops.max(1),
            state: Mutex::new(State {
                snapshot,
                read_keys: BTreeMap::new(),
                read_ranges: Vec::new(),
                writes: BTreeMap::new(),
                done: false,
            }),
        })
    }

    fn state(&self) -> PyResult<std::sync::MutexGuard<'_, State>> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.done {
            return Err(ClosedError::new_err(
                "this write transaction has already ended",
            ));
        }
        Ok(st)
    }
}

#[pymethods]
impl PyWriteTxn {
    /// Revision of the snapshot this attempt reads.
    #[getter]
    fn revision(&self) -> PyResult<i64> {
        Ok(self.state()?.snapshot.revision())
    }

    /// `(value, meta)` of `key`, or `(None, None)`. A key this transaction wrote reads back its
    /// new value (with zero revisions, since it has none yet).
    fn get(&self, py: Python<'_>, key: Bytes) -> PyResult<MaybeKv> {
        let mut st = self.state()?;
        if let Some(w) = st.writes.get(&key.0) {
            let kv = w.as_ref().map(|v| etch_engine::KeyValue {
                key: key.0.clone(),
                value: v.clone(),
                ..Default::default()
            });
            return Ok(split(kv_opt(py, kv)?));
        }
        let kv = st.snapshot.get(&key.0).py()?;
        let seen = kv.as_ref().map_or(0, |kv| kv.mod_revision);
        st.read_keys.entry(key.0).or_insert(seen);
        Ok(split(kv_opt(py, kv)?))
    }

    /// `(value, meta)` of every key in `[key, range_end)` as of the snapshot (this transaction's
    /// own writes are not merged in). Any change to the range before commit makes it conflict.
    fn get_range(&self, py: Python<'_>, key: Bytes, range_end: Bytes) -> PyResult<Vec<KvTuple>> {
        let mut st = self.state()?;
        let range = range_of(key, Some(range_end));
        let resp = st
            .snapshot
            .range_with(&range, &RangeOptions::default())
            .py()?;
        for kv in &resp.kvs {
            st.read_keys
                .entry(kv.key.clone())
                .or_insert(kv.mod_revision);
        }
        st.read_ranges.push(range);
        kv_list(py, resp.kvs)
    }

    /// Buffers a put.
    fn put(&self, key: Bytes, value: Bytes) -> PyResult<()> {
        self.state()?.writes.insert(key.0, Some(value.0));
        Ok(())
    }

    /// Buffers the deletion of one key.
    fn delete(&self, key: Bytes) -> PyResult<()> {
        self.state()?.writes.insert(key.0, None);
        Ok(())
    }

    /// Applies the buffered writes if nothing read has changed since the snapshot. Returns True
    /// if committed (or there was nothing to write), False on a conflict. Ends the attempt.
    fn commit(&self, py: Python<'_>) -> PyResult<bool> {
        let mut st = self.state()?;
        st.done = true;
        if st.writes.is_empty() {
            return Ok(true); // read-only: the snapshot was consistent by construction
        }
        let txn = guarded_txn(&mut st, self.max_txn_ops);
        let store = self.store.clone();
        let resp = py.detach(move || store.txn(txn)).py()?;
        Ok(all_succeeded(&resp))
    }

    /// Ends the attempt without writing.
    fn abort(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).done = true;
    }
}

fn split(kv: Option<KvTuple>) -> MaybeKv {
    match kv {
        Some((v, m)) => (Some(v), Some(m)),
        None => (None, None),
    }
}

/// The guarded transaction of an attempt: its compares in levels of at most `max` each.
fn guarded_txn(st: &mut State, max: usize) -> Txn {
    let next = st.snapshot.revision() + 1;
    let mut compares: Vec<Compare> = std::mem::take(&mut st.read_keys)
        .into_iter()
        .map(|(k, rev)| Compare::mod_revision(k, CompareOp::Equal, rev))
        .collect();
    compares.extend(
        std::mem::take(&mut st.read_ranges)
            .into_iter()
            .map(|r| Compare::mod_revision(b"\0", CompareOp::Less, next).over(r)),
    );
    let writes: Vec<TxnOp> = std::mem::take(&mut st.writes)
        .into_iter()
        .map(|(k, w)| match w {
            Some(value) => TxnOp::Put(PutOp {
                key: k,
                value,
                ..Default::default()
            }),
            None => TxnOp::delete(Range::key(k)),
        })
        .collect();
    nest(compares, writes, max)
}

fn nest(mut compares: Vec<Compare>, writes: Vec<TxnOp>, max: usize) -> Txn {
    if compares.len() <= max {
        return Txn {
            compare: compares,
            success: writes,
            failure: Vec::new(),
        };
    }
    let rest = compares.split_off(max);
    Txn {
        compare: compares,
        success: vec![TxnOp::Txn(nest(rest, writes, max))],
        failure: Vec::new(),
    }
}

/// True if every level of a (possibly nested) guarded transaction succeeded.
fn all_succeeded(resp: &TxnResponse) -> bool {
    resp.succeeded
        && match resp.responses.as_slice() {
            [TxnOpResponse::Txn(inner)] => all_succeeded(inner),
            _ => true,
        }
}
