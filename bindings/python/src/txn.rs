//! Transactions: the compare and operation tuples built by `etch.transactions` into an engine
//! `Txn`, and its responses back into Python objects.
//!
//! A compare is `(key, range_end | None, target, op, operand)` with `target` one of `"value"`,
//! `"version"`, `"create"`, `"mod"`, `"lease"` and `op` one of `"=="`, `"!="`, `"<"`, `">"`.
//! An operation is `("put", key, value, lease, prev_kv)`, `("get", key, range_end | None)`,
//! `("delete", key, range_end | None, prev_kv)` or `("txn", compares, success, failure)`.

use etch_engine::{
    Compare, CompareOp, CompareTarget, PutOp, Range, RangeOptions, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::convert::{kv_list, Bytes};
use crate::types::{delete_response, put_response};

/// A key, or etcd's raw `(key, range_end)` pair when `end` is given.
pub fn range_of(key: Bytes, end: Option<Bytes>) -> Range {
    match end {
        None => Range::key(key.0),
        Some(end) => Range::from_raw(key.0, end.0),
    }
}

/// Builds a `Txn` from lists of compare and operation tuples.
pub fn build(
    compare: &Bound<'_, PyAny>,
    success: &Bound<'_, PyAny>,
    failure: &Bound<'_, PyAny>,
) -> PyResult<Txn> {
    Ok(Txn {
        compare: each(compare, compare_of)?,
        success: each(success, op_of)?,
        failure: each(failure, op_of)?,
    })
}

fn each<T>(
    items: &Bound<'_, PyAny>,
    f: impl Fn(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    items.try_iter()?.map(|item| f(&item?)).collect()
}

fn tuple<'py>(item: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyTuple>> {
    item.cast::<PyTuple>().cloned().map_err(|_| {
        PyTypeError::new_err(format!(
            "expected a {what} built with store.transactions, got {}",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

fn compare_of(item: &Bound<'_, PyAny>) -> PyResult<Compare> {
    let (key, end, target, op, operand): (Bytes, Option<Bytes>, String, String, Bound<'_, PyAny>) =
        tuple(item, "compare")?.extract()?;
    let op = match op.as_str() {
        "==" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        "<" => CompareOp::Less,
        ">" => CompareOp::Greater,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown compare operator {other:?}"
            )))
        }
    };
    let target = match target.as_str() {
        "value" => CompareTarget::Value(operand.extract::<Bytes>()?.0),
        "version" => CompareTarget::Version(operand.extract()?),
        "create" => CompareTarget::Create(operand.extract()?),
        "mod" => CompareTarget::Mod(operand.extract()?),
        "lease" => CompareTarget::Lease(operand.extract()?),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown compare target {other:?}"
            )))
        }
    };
    Ok(Compare {
        range: range_of(key, end),
        op,
        target,
    })
}

fn op_of(item: &Bound<'_, PyAny>) -> PyResult<TxnOp> {
    let t = tuple(item, "transaction operation")?;
    let tag: String = t.get_item(0)?.extract()?;
    match tag.as_str() {
        "put" => {
            let (_, key, value, lease, prev_kv): (String, Bytes, Bytes, i64, bool) = t.extract()?;
            Ok(TxnOp::Put(PutOp {
                key: key.0,
                value: value.0,
                lease,
                prev_kv,
                ..Default::default()
            }))
        }
        "get" => {
            let (_, key, end): (String, Bytes, Option<Bytes>) = t.extract()?;
            Ok(TxnOp::Range {
                range: range_of(key, end),
                options: RangeOptions::default(),
            })
        }
        "delete" => {
            let (_, key, end, prev_kv): (String, Bytes, Option<Bytes>, bool) = t.extract()?;
            Ok(TxnOp::DeleteRange {
                range: range_of(key, end),
                prev_kv,
            })
        }
        "txn" => {
            let (_, c, s, f): (String, Bound<'_, PyAny>, Bound<'_, PyAny>, Bound<'_, PyAny>) =
                t.extract()?;
            Ok(TxnOp::Txn(build(&c, &s, &f)?))
        }
        other => Err(PyValueError::new_err(format!(
            "unknown transaction operation {other:?}"
        ))),
    }
}

/// `(succeeded, responses)`: a `PutResponse` per put, a list of `(value, meta)` per get, a
/// `DeleteResponse` per delete, and a nested `(succeeded, responses)` per nested transaction.
pub fn response<'py>(py: Python<'py>, r: TxnResponse) -> PyResult<Bound<'py, PyTuple>> {
    let list = PyList::empty(py);
    for op in r.responses {
        let item: Bound<'py, PyAny> = match op {
            TxnOpResponse::Put(p) => Bound::new(py, put_response(py, p)?)?.into_any(),
            TxnOpResponse::Range(rr) => kv_list(py, rr.kvs)?.into_pyobject(py)?.into_any(),
            TxnOpResponse::Delete(d) => Bound::new(py, delete_response(py, d)?)?.into_any(),
            TxnOpResponse::Txn(t) => response(py, t)?.into_any(),
        };
        list.append(item)?;
    }
    PyTuple::new(
        py,
        [
            r.succeeded.into_pyobject(py)?.to_owned().into_any(),
            list.into_any(),
        ],
    )
}
