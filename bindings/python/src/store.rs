//! The native store: every call of a local file, a cluster member or a remote server (see
//! `backend.rs`), with the GIL released around anything that may block, sync, scan or wait on
//! the network. `etch.Store` (Python) wraps it with python-etcd3's method names.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use etch_client::{ClientOptions, TlsOptions};
use etch_engine::{PutOp, Range, RangeOptions, SortOrder, SortTarget, Store, WatchOptions};
use etch_replication::quic::PeerTlsOptions;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::backend::{Backend, BackendError, Cluster, ClusterOptions, RemoteOptions};

use crate::convert::{kv_list, kv_opt, seconds, Bytes, KvMeta};
use crate::errors::{closed, IntoPyResult, InvalidOptionError};
use crate::lock::PyLockGuard;
use crate::options;
use crate::stm::PyWriteTxn;
use crate::txn::{self, range_of};
use crate::types::{
    delete_response, put_response, PyCheckReport, PyDeleteResponse, PyPutResponse, PyStatus,
    PyWalRepair,
};
use crate::watch::PyWatcher;

type KvTuple = (Py<PyBytes>, Py<KvMeta>);

/// An open store, from the native module; `etch.open` and `etch.connect` return an
/// `etch.Store` wrapping it. Safe to share between threads.
#[pyclass(frozen, module = "etch._etch", name = "NativeStore")]
pub struct PyStore {
    inner: Mutex<Option<Backend>>,
    path: PathBuf,
    kind: &'static str,
    member_id: Option<u64>,
    max_txn_ops: usize,
    max_key_size: usize,
    write_attempts: u32,
}

impl PyStore {
    /// A handle on the backend, or `ClosedError` after `close`.
    fn backend(&self) -> PyResult<Backend> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(closed)
    }

    /// The local engine store, or `UnsupportedError` naming `what` on another backend.
    fn store(&self, what: &'static str) -> PyResult<Store> {
        self.backend()?.local(what).cloned().py()
    }

    fn wrap(backend: Backend, path: PathBuf, o: &options::OpenOptions) -> Self {
        let (kind, member_id) = match &backend {
            Backend::Local(_) => ("local", None),
            Backend::Member(m) => ("member", Some(m.member.id())),
            Backend::Remote(_) => ("remote", None),
        };
        PyStore {
            inner: Mutex::new(Some(backend)),
            path,
            kind,
            member_id,
            max_txn_ops: o.max_txn_ops,
            max_key_size: o.max_key_size,
            write_attempts: o.write_attempts,
        }
    }
}

/// A required key of the cluster dictionary.
fn required<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| PyTypeError::new_err(format!("cluster needs {key:?}")))
}

/// `host:port` (an IP or a name that resolves) as a socket address.
fn socket_addr(what: &str, s: &str) -> PyResult<SocketAddr> {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| InvalidOptionError::new_err(format!("{what}: {s:?} is not host:port")))
}

/// A duration in seconds from the cluster dictionary, or `default`.
fn secs_or(d: &Bound<'_, PyDict>, key: &str, default: Duration) -> PyResult<Duration> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(seconds(key, Some(v.extract()?))?.unwrap_or(default)),
        _ => Ok(default),
    }
}

/// The names the cluster dictionary accepts.
const CLUSTER_KEYS: &[&str] = &[
    "id",
    "peers",
    "token",
    "initialize",
    "heartbeat",
    "election_timeout",
    "request_timeout",
    "peer_cert_file",
    "peer_key_file",
    "peer_trusted_ca_file",
    "peer_client_cert_auth",
    "peer_auto_tls",
];

/// Parses `etch.open`'s `cluster` dictionary.
fn cluster_options(d: &Bound<'_, PyDict>) -> PyResult<ClusterOptions> {
    for k in d.keys() {
        let k: String = k.extract()?;
        if !CLUSTER_KEYS.contains(&k.as_str()) {
            return Err(PyTypeError::new_err(format!(
                "unknown cluster setting {k:?}"
            )));
        }
    }
    let id: u64 = required(d, "id")?.extract()?;
    let raw: BTreeMap<u64, String> = required(d, "peers")?.extract()?;
    let mut peers = BTreeMap::new();
    for (pid, addr) in raw {
        peers.insert(pid, socket_addr(&format!("peers[{pid}]"), &addr)?);
    }
    let path = |k: &str| -> PyResult<Option<PathBuf>> {
        match d.get_item(k)? {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let flag = |k: &str| -> PyResult<bool> {
        match d.get_item(k)? {
            Some(v) => v.extract(),
            None => Ok(false),
        }
    };
    Ok(ClusterOptions {
        id,
        peers,
        token: match d.get_item("token")? {
            Some(v) => v.extract()?,
            None => "etch-cluster".to_string(),
        },
        initialize: flag("initialize")?,
        tls: PeerTlsOptions {
            cert_file: path("peer_cert_file")?,
            key_file: path("peer_key_file")?,
            trusted_ca_file: path("peer_trusted_ca_file")?,
            client_cert_auth: flag("peer_client_cert_auth")?,
            auto_tls: flag("peer_auto_tls")?,
        },
        heartbeat: secs_or(d, "heartbeat", Duration::from_millis(100))?,
        election_timeout: secs_or(d, "election_timeout", Duration::from_secs(1))?,
        request_timeout: secs_or(d, "request_timeout", Duration::from_secs(5))?,
    })
}

/// Opens (or creates) the store at `path` with keyword options; with `cluster`, as a member
/// of a Raft cluster over QUIC.
#[pyfunction]
#[pyo3(signature = (path, cluster=None, **options))]
pub fn open(
    py: Python<'_>,
    path: PathBuf,
    cluster: Option<&Bound<'_, PyDict>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyStore> {
    let o = options::parse(options)?;
    let engine_opts = o.options.clone();
    let p = path.clone();
    let backend = match cluster {
        None => Backend::Local(py.detach(move || engine_opts.open(&p)).py()?),
        Some(c) => {
            let c = cluster_options(c)?;
            let m = py
                .detach(move || Cluster::open(p, engine_opts, c))
                .map_err(crate::errors::backend_to_py)?;
            Backend::Member(std::sync::Arc::new(m))
        }
    };
    Ok(PyStore::wrap(backend, path, &o))
}

/// A store on remote servers (`etch serve` or etcd v3): `endpoints` as `host:port`,
/// `http://host:port` or `https://host:port`. Nothing is dialed until the first call.
#[pyfunction]
#[pyo3(signature = (endpoints, *, dial_timeout=2.0, request_timeout=5.0, retries=None,
    ca_cert=None, cert=None, key=None, server_name=None, write_attempts=16))]
#[allow(clippy::too_many_arguments)]
pub fn connect(
    py: Python<'_>,
    endpoints: Vec<String>,
    dial_timeout: f64,
    request_timeout: f64,
    retries: Option<u32>,
    ca_cert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    server_name: Option<String>,
    write_attempts: u32,
) -> PyResult<PyStore> {
    let mut client = ClientOptions::default();
    if let Some(t) = seconds("dial_timeout", Some(dial_timeout))? {
        client = client.dial_timeout(t);
    }
    if let Some(t) = seconds("request_timeout", Some(request_timeout))? {
        client = client.request_timeout(t);
    }
    if let Some(r) = retries {
        client = client.retries(r);
    }
    if ca_cert.is_some() || cert.is_some() || key.is_some() || server_name.is_some() {
        let mut tls = TlsOptions::from_files(ca_cert.as_deref(), cert.as_deref(), key.as_deref())
            .map_err(|e| crate::errors::backend_to_py(e.into()))?;
        if let Some(name) = server_name {
            tls = tls.server_name(name);
        }
        client = client.tls(tls);
    }
    let path = PathBuf::from(endpoints.join(","));
    let backend = py
        .detach(move || Backend::connect(RemoteOptions { endpoints, client }))
        .map_err(crate::errors::backend_to_py)?;
    let mut o = options::parse(None)?;
    o.write_attempts = write_attempts;
    Ok(PyStore::wrap(backend, path, &o))
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
    Ok(PyStore::wrap(Backend::Local(store), output, &o))
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
    /// Path of the main file (a member's file; a remote store's endpoints, joined by commas).
    #[getter]
    fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Where the store lives: "local", "member" or "remote".
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// A member's id (also after `close`); None for a local or remote store.
    #[getter]
    fn member_id(&self) -> Option<u64> {
        self.member_id
    }

    /// The leader a member knows of (None while there is none); None for a local or remote
    /// store.
    #[getter]
    fn leader(&self) -> PyResult<Option<u64>> {
        Ok(match self.backend()? {
            Backend::Member(m) => m.member.leader(),
            _ => None,
        })
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

    /// Current revision (a member's applied revision; a server's, asked for).
    #[getter]
    fn revision(&self, py: Python<'_>) -> PyResult<i64> {
        let b = self.backend()?;
        py.detach(move || b.revision()).py()
    }

    /// True if the store was opened with `read_only=True` (every write raises
    /// `ReadOnlyError`).
    #[getter]
    fn read_only(&self) -> PyResult<bool> {
        Ok(match self.backend()? {
            Backend::Local(s) => s.is_read_only(),
            _ => false,
        })
    }

    /// What the open repaired in a damaged WAL (`repair_wal=True`), or None if it repaired
    /// nothing.
    #[getter]
    fn wal_repair(&self) -> PyResult<Option<PyWalRepair>> {
        Ok(match self.backend()? {
            Backend::Local(s) => s.wal_repair().map(PyWalRepair::from),
            _ => None,
        })
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
        let backend = self.backend()?;
        let max_key_size = self.max_key_size;
        let kv = py
            .detach(move || {
                if revision > 0 {
                    // A range read takes any bound; a single-key read refuses a key no put
                    // could write, as Store::get does for the current revision.
                    if key.0.is_empty() {
                        return Err(etch_engine::Error::EmptyKey.into());
                    }
                    if matches!(backend, Backend::Local(_)) && key.0.len() > max_key_size {
                        return Err(etch_engine::Error::KeyTooLarge {
                            len: key.0.len(),
                            max: max_key_size,
                        }
                        .into());
                    }
                    let opts = RangeOptions {
                        revision,
                        ..Default::default()
                    };
                    let r = backend.range_with(&range_of(key, None), &opts)?;
                    Ok(r.kvs.into_iter().next())
                } else {
                    backend.get(&key.0)
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
        let backend = self.backend()?;
        let range = range_of(key, range_end);
        let r = py.detach(move || backend.range_with(&range, &opts)).py()?;
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
        let backend = self.backend()?;
        let op = PutOp {
            key: key.0,
            value: value.0,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        };
        let r = py.detach(move || backend.put_with(op)).py()?;
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
        let backend = self.backend()?;
        let range = range_of(key, range_end);
        let r = py
            .detach(move || backend.delete_range(range, prev_kv))
            .py()?;
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
        let backend = self.backend()?;
        let r = py.detach(move || backend.txn(t)).py()?;
        txn::response(py, r)
    }

    /// Compacts history below `revision`; returns the current revision.
    fn compact(&self, py: Python<'_>, revision: i64) -> PyResult<i64> {
        let backend = self.backend()?;
        py.detach(move || backend.compact(revision)).py()
    }

    /// Grants a lease of `ttl` seconds (`id` 0 picks one); returns `(id, ttl)`.
    #[pyo3(signature = (ttl, id=0))]
    fn lease_grant(&self, py: Python<'_>, ttl: i64, id: i64) -> PyResult<(i64, i64)> {
        let backend = self.backend()?;
        let g = py.detach(move || backend.lease_grant(ttl, id)).py()?;
        Ok((g.id, g.ttl))
    }

    /// Revokes a lease, deleting its keys; returns the revision.
    fn lease_revoke(&self, py: Python<'_>, id: i64) -> PyResult<i64> {
        let backend = self.backend()?;
        py.detach(move || backend.lease_revoke(id)).py()
    }

    /// Renews a lease for its full TTL; returns the TTL.
    fn lease_keep_alive(&self, py: Python<'_>, id: i64) -> PyResult<i64> {
        let backend = self.backend()?;
        py.detach(move || backend.lease_keep_alive(id)).py()
    }

    /// `(remaining_ttl, granted_ttl, keys)` of a lease (keys only if `keys` is true).
    #[pyo3(signature = (id, keys=false))]
    fn lease_time_to_live(
        &self,
        py: Python<'_>,
        id: i64,
        keys: bool,
    ) -> PyResult<(i64, i64, Vec<Py<PyBytes>>)> {
        let backend = self.backend()?;
        let info = py
            .detach(move || backend.lease_time_to_live(id, keys))
            .py()?;
        let keys = info
            .keys
            .iter()
            .map(|k| PyBytes::new(py, k).unbind())
            .collect();
        Ok((info.ttl, info.granted_ttl, keys))
    }

    /// Every lease as `(id, granted_ttl)`.
    fn lease_list(&self, py: Python<'_>) -> PyResult<Vec<(i64, i64)>> {
        let backend = self.backend()?;
        let l = py.detach(move || backend.lease_list()).py()?;
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
        let backend = self.backend()?;
        let range = range_of(key, range_end);
        let w = py.detach(move || backend.watch_with(range, opts)).py()?;
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
        let backend = self.backend()?;
        let name = name.to_owned();
        py.detach(move || crate::lock::acquire(&backend, &name, lease, timeout))
            .py()
    }

    /// Starts one attempt of an optimistic read-write transaction.
    fn begin_write(&self, py: Python<'_>) -> PyResult<PyWriteTxn> {
        let backend = self.backend()?;
        py.detach(move || PyWriteTxn::begin(&backend)).py()
    }

    /// Writes a compact copy of the store to `path` (which must not exist); returns
    /// `(revision, size)`. A remote store streams the server's snapshot; its revision is the
    /// server's when the snapshot began (a lower bound of the one it holds).
    fn snapshot(&self, py: Python<'_>, path: PathBuf) -> PyResult<(i64, u64)> {
        let backend = self.backend()?;
        py.detach(move || match &backend {
            Backend::Local(s) => Ok(s.snapshot(&path)?),
            Backend::Remote(r) => {
                let revision = backend.revision()?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(etch_engine::Error::Io)?;
                let size = r.run(r.client.snapshot(&mut file))?;
                file.sync_all().map_err(etch_engine::Error::Io)?;
                Ok((revision, size))
            }
            Backend::Member(_) => Err(BackendError::Unsupported("snapshot of a cluster member")),
        })
        .py()
    }

    /// A hash of the keyspace at `revision` (0: current), for comparing copies.
    #[pyo3(signature = (revision=0))]
    fn hash_kv(&self, py: Python<'_>, revision: i64) -> PyResult<u32> {
        let backend = self.backend()?;
        py.detach(move || backend.hash_kv(revision)).py()
    }

    /// Rewrites the file compactly; returns `(size_before, size_after)`.
    fn defrag(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        let store = self.store("defrag")?;
        py.detach(move || store.defrag()).py()
    }

    /// Status figures. A remote store reports the server's revision, key count, database
    /// sizes and applied Raft index (no compact revision, WAL size or page size: 0).
    fn status(&self, py: Python<'_>) -> PyResult<PyStatus> {
        let backend = self.backend()?;
        py.detach(move || -> Result<PyStatus, BackendError> {
            Ok(match &backend {
                Backend::Local(s) => s.status()?.into(),
                Backend::Member(m) => m.member.status()?.into(),
                Backend::Remote(r) => {
                    let st = r.run(r.client.status())?;
                    let opts = RangeOptions {
                        count_only: true,
                        ..Default::default()
                    };
                    let count = backend.range_with(&Range::all(), &opts)?.count;
                    PyStatus::remote(
                        st.revision,
                        count.max(0) as u64,
                        st.db_size.max(0) as u64,
                        st.db_size_in_use.max(0) as u64,
                        st.raft_applied_index,
                    )
                }
            })
        })
        .py()
    }

    /// Full integrity check.
    fn check(&self, py: Python<'_>) -> PyResult<PyCheckReport> {
        let backend = self.backend()?;
        py.detach(move || -> Result<PyCheckReport, BackendError> {
            Ok(match &backend {
                Backend::Local(s) => s.check()?.into(),
                Backend::Member(m) => m.member.check()?.into(),
                Backend::Remote(_) => {
                    return Err(BackendError::Unsupported("check of a remote store"))
                }
            })
        })
        .py()
    }

    /// Makes every commit so far durable. A member's and a server's writes are durable when
    /// acknowledged, so there it does nothing.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        match self.backend()? {
            Backend::Local(store) => py.detach(move || store.sync()).py(),
            _ => Ok(()),
        }
    }

    /// Checkpoints the WAL into the main file.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.store("checkpoint")?;
        py.detach(move || store.checkpoint()).py()
    }

    /// Closes the file (checkpointing, removing the WAL), stops a member, or drops a remote
    /// store's connections. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(backend) => py.detach(move || backend.close()).py(),
            None => Ok(()),
        }
    }
}
