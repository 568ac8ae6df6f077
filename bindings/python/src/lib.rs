//! `etch._etch`: the native half of etch's Python bindings.
//!
//! The Python package `etch` (in `python/etch/`) wraps these classes with python-etcd3's method
//! names, context managers, iterators and the transaction builder. Everything here converts at
//! the boundary and releases the GIL around calls that may block, sync or wait on the network.
//! A store lives in a local file, in an in-process cluster member or on a remote server
//! (`backend.rs`); every class here works the same on all three.

mod backend;
mod convert;
mod errors;
mod lock;
mod options;
mod stm;
mod store;
mod txn;
mod types;
mod watch;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _etch(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<store::PyStore>()?;
    m.add_class::<watch::PyWatcher>()?;
    m.add_class::<lock::PyLockGuard>()?;
    m.add_class::<stm::PyWriteTxn>()?;
    m.add_class::<convert::KvMeta>()?;
    m.add_class::<types::PyPutResponse>()?;
    m.add_class::<types::PyDeleteResponse>()?;
    m.add_class::<types::PyStatus>()?;
    m.add_class::<types::PyCheckReport>()?;
    m.add_class::<types::PyWalRepair>()?;
    m.add_function(wrap_pyfunction!(store::open, m)?)?;
    m.add_function(wrap_pyfunction!(store::restore, m)?)?;
    m.add_function(wrap_pyfunction!(store::connect, m)?)?;
    m.add_function(wrap_pyfunction!(store::prefix_end, m)?)?;
    m.add("OPTION_NAMES", options::NAMES.to_vec())?;
    Ok(())
}
