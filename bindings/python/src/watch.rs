//! The native watcher: waits for responses with the GIL released, in one blocking wait on the
//! engine's watcher (woken by the commit that publishes an event, never cut into slices).
//! `cancel()` from another thread wakes a waiting `recv` at once (through the engine's
//! `WatchCanceller`), and so does closing the store. A remote watch waits on the client's
//! stream raced against a cancel signal on the connection's runtime: the same single wait,
//! woken by the server's event or by `cancel()`. Ctrl-C is the Python side's business:
//! `etch._wait` runs a main-thread wait on a helper thread and waits for it interruptibly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etch_engine::{EventKind, WatchCanceller, WatchResponse};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use tokio::sync::Notify;

use crate::backend::{AnyWatcher, BResult, BackendError};
use crate::convert::{kv_opt, kv_tuple, seconds, KvMeta};
use crate::errors::IntoPyResult;

/// What wakes a waiting `recv` from another thread.
enum Canceller {
    Engine(WatchCanceller),
    /// Stores a permit if nobody waits yet, so a cancel just before a wait is not lost.
    Remote(Arc<Notify>),
}

/// A watch on a key or range, from the native module. `etch.Store.watch` wraps it in an
/// iterator of events; use that.
#[pyclass(frozen, module = "etch._etch", name = "Watcher")]
pub struct PyWatcher {
    inner: Mutex<AnyWatcher>,
    /// Wakes `recv` from another thread without taking `inner` (which `recv` holds).
    canceller: Canceller,
    cancelled: AtomicBool,
    /// The engine watcher's `caught_up()`, readable while `recv` holds `inner`.
    caught_up: AtomicBool,
}

impl PyWatcher {
    /// Wraps an engine watcher.
    pub fn new(w: AnyWatcher) -> Self {
        let (canceller, caught_up) = match &w {
            AnyWatcher::Engine(w) => (Canceller::Engine(w.canceller()), w.caught_up()),
            AnyWatcher::Remote(..) => (Canceller::Remote(Arc::new(Notify::new())), false),
        };
        PyWatcher {
            canceller,
            caught_up: AtomicBool::new(caught_up),
            inner: Mutex::new(w),
            cancelled: AtomicBool::new(false),
        }
    }

    /// One wait for the next response (None: timed out, cancelled or ended).
    fn wait(&self, timeout: Option<Duration>) -> BResult<Option<WatchResponse>> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *guard {
            AnyWatcher::Engine(w) => {
                let got = match timeout {
                    Some(t) => w.recv_timeout(t),
                    None => w.recv(),
                };
                self.caught_up.store(w.caught_up(), Ordering::Release);
                match got {
                    Err(etch_engine::Error::Closed) => Ok(None),
                    other => Ok(other?),
                }
            }
            AnyWatcher::Remote(stream, remote) => {
                let Canceller::Remote(notify) = &self.canceller else {
                    unreachable!("a remote watcher has a remote canceller")
                };
                if self.cancelled.load(Ordering::Acquire) {
                    stream.cancel();
                    return Ok(None);
                }
                let mut closed = remote.closed();
                let got = remote.runtime.block_on(async {
                    let next = async {
                        tokio::select! {
                            r = stream.recv() => Some(r),
                            _ = notify.notified() => None,
                            // The store was closed: the watch ends, as on a local store.
                            _ = closed.wait_for(|c| *c) => None,
                        }
                    };
                    match timeout {
                        // Timed out: as if nothing came (no cancel).
                        Some(t) => tokio::time::timeout(t, next).await.unwrap_or(Some(None)),
                        None => next.await,
                    }
                });
                match got {
                    Some(Some(r)) => r.map(Some).map_err(BackendError::from),
                    // The stream ended.
                    Some(None) => Ok(None),
                    None => {
                        stream.cancel();
                        Ok(None)
                    }
                }
            }
        }
    }
}

/// `(header_revision, events, canceled, compact_revision, caught_up)`, each event
/// `(is_put, value, meta, prev_kv | None)`.
type Response = (i64, Py<PyList>, bool, i64, bool);

#[pymethods]
impl PyWatcher {
    /// Waits up to `timeout` seconds (forever if None) for the next response and returns it,
    /// or None on timeout or once the watch is cancelled or the store closed.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Response>> {
        let timeout = seconds("timeout", timeout)?;
        if self.cancelled.load(Ordering::Acquire) {
            return Ok(None);
        }
        let got = py.detach(|| self.wait(timeout)).py()?;
        match got {
            Some(resp) => {
                if resp.canceled {
                    self.cancelled.store(true, Ordering::Release);
                }
                Ok(Some(convert(py, resp)?))
            }
            None => Ok(None),
        }
    }

    /// Ends the watch; a `recv` blocked in another thread returns None at once.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        match &self.canceller {
            Canceller::Engine(c) => c.cancel(),
            Canceller::Remote(n) => {
                n.notify_one();
                // Not waiting now: end the stream here (a waiting recv ends it itself).
                if let Ok(mut w) = self.inner.try_lock() {
                    if let AnyWatcher::Remote(stream, _) = &mut *w {
                        stream.cancel();
                    }
                }
            }
        }
    }

    /// True once every matching change up to the revision current when the watch was created
    /// has been delivered (at once for a watch from now; for a replay, from the response
    /// flagged `caught_up` on).
    #[getter]
    fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// True once the watch was cancelled (by `cancel` or by compaction past its position).
    #[getter]
    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

fn convert(py: Python<'_>, r: WatchResponse) -> PyResult<Response> {
    let events = PyList::empty(py);
    for ev in r.events {
        let (value, meta): (Py<PyBytes>, Py<KvMeta>) = kv_tuple(py, ev.kv)?;
        let prev = kv_opt(py, ev.prev_kv)?;
        let t = (ev.kind == EventKind::Put, value, meta, prev).into_pyobject(py)?;
        events.append::<Bound<'_, PyTuple>>(t)?;
    }
    Ok((
        r.header_revision,
        events.unbind(),
        r.canceled,
        r.compact_revision,
        r.caught_up,
    ))
}
