//! Conversions at the boundary: bytes-or-str arguments, key-values as `(value, meta)` tuples,
//! the metadata class, and durations in seconds.

use std::time::Duration;

use etch_engine::KeyValue;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

/// A key or value argument: `bytes`, `bytearray`, or `str` (encoded as UTF-8). Anything else is
/// a `TypeError`.
pub struct Bytes(pub Vec<u8>);

impl<'a, 'py> FromPyObject<'a, 'py> for Bytes {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = ob.cast::<PyBytes>() {
            return Ok(Bytes(b.as_bytes().to_vec()));
        }
        if let Ok(s) = ob.cast::<PyString>() {
            return Ok(Bytes(s.to_cow()?.as_bytes().to_vec()));
        }
        if let Ok(b) = ob.cast::<PyByteArray>() {
            return Ok(Bytes(b.to_vec()));
        }
        Err(PyTypeError::new_err(format!(
            "keys and values must be bytes or str, not {}",
            ob.get_type().name()?
        )))
    }
}

/// Metadata of a key, as python-etcd3's `KVMetadata`.
#[pyclass(frozen, module = "etch", name = "KVMetadata", eq)]
#[derive(Clone, PartialEq, Eq)]
pub struct KvMeta {
    /// The key.
    pub key: Vec<u8>,
    /// Revision of the last creation of the key.
    #[pyo3(get)]
    pub create_revision: i64,
    /// Revision of the last modification of the key.
    #[pyo3(get)]
    pub mod_revision: i64,
    /// Number of modifications since creation (1 after creation).
    #[pyo3(get)]
    pub version: i64,
    /// The lease attached to the key, 0 for none.
    #[pyo3(get)]
    pub lease_id: i64,
}

#[pymethods]
impl KvMeta {
    /// The key (bytes).
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.key)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "KVMetadata(key={}, create_revision={}, mod_revision={}, version={}, lease_id={})",
            PyBytes::new(py, &self.key).repr()?,
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease_id
        ))
    }
}

/// `(value, KVMetadata)` for one key-value.
pub fn kv_tuple(py: Python<'_>, kv: KeyValue) -> PyResult<(Py<PyBytes>, Py<KvMeta>)> {
    let value = PyBytes::new(py, &kv.value).unbind();
    let meta = KvMeta {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease_id: kv.lease,
    };
    Ok((value, Py::new(py, meta)?))
}

/// A list of `(value, KVMetadata)` tuples.
pub fn kv_list(py: Python<'_>, kvs: Vec<KeyValue>) -> PyResult<Vec<(Py<PyBytes>, Py<KvMeta>)>> {
    kvs.into_iter().map(|kv| kv_tuple(py, kv)).collect()
}

/// An optional key-value as an optional tuple.
pub fn kv_opt(py: Python<'_>, kv: Option<KeyValue>) -> PyResult<Option<(Py<PyBytes>, Py<KvMeta>)>> {
    kv.map(|kv| kv_tuple(py, kv)).transpose()
}

/// Longest wait taken literally; longer ones (and `inf`) mean "no limit", so that adding one to
/// `Instant::now()` can never overflow.
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration argument in seconds: `None` (or one longer than a century, or `inf`) for no
/// limit, negative values as zero, NaN a `ValueError`.
pub fn seconds(what: &str, secs: Option<f64>) -> PyResult<Option<Duration>> {
    let Some(secs) = secs else { return Ok(None) };
    if secs.is_nan() {
        return Err(PyValueError::new_err(format!(
            "{what} must be a number of seconds, not NaN"
        )));
    }
    match Duration::try_from_secs_f64(secs.max(0.0)) {
        Ok(d) if d <= FOREVER => Ok(Some(d)),
        _ => Ok(None),
    }
}
