//! The held side of the engine's lock recipe.

use std::sync::Mutex;

use etch_engine::MutexGuard;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::IntoPyResult;

/// A held lock from the native module; `etch.Lock` wraps it. Holds the lock key (created with
/// the holder's lease) until `unlock`.
#[pyclass(frozen, module = "etch._etch", name = "LockGuard")]
pub struct PyLockGuard {
    guard: Mutex<Option<MutexGuard>>,
    key: Vec<u8>,
    revision: i64,
}

impl PyLockGuard {
    /// Wraps an engine guard.
    pub fn new(g: MutexGuard) -> Self {
        PyLockGuard {
            key: g.key().to_vec(),
            revision: g.revision(),
            guard: Mutex::new(Some(g)),
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
        py.detach(|| {
            let g = self.guard.lock().unwrap_or_else(|e| e.into_inner());
            match g.as_ref() {
                Some(g) => g.is_held(),
                None => Ok(false),
            }
        })
        .py()
    }

    /// Releases the lock; returns False if it was already released through this guard.
    fn unlock(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| {
            let taken = self.guard.lock().unwrap_or_else(|e| e.into_inner()).take();
            match taken {
                Some(g) => g.unlock().map(|_| true),
                None => Ok(false),
            }
        })
        .py()
    }
}
