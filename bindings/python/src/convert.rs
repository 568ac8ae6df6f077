//! Conversions at the boundary: bytes-or-str arguments, key-values as `(value, meta)` tuples,
//! and the metadata class.

use etch_engine::KeyValue;
use pyo3::exceptions::PyTypeError;
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
