//! Result classes: put and delete responses, status, integrity report, WAL repair report.

use etch_engine::{CheckReport, DeleteResponse, PutResponse, Status, WalRepair};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::{kv_list, kv_opt, KvMeta};

type KvTuple = (Py<PyBytes>, Py<KvMeta>);

/// Result of a put: the store's revision after it and, if asked for, the previous key-value.
#[pyclass(frozen, module = "etch", name = "PutResponse")]
pub struct PyPutResponse {
    /// Revision of the store after the write.
    #[pyo3(get)]
    revision: i64,
    /// `(value, meta)` of the key before the put, if `prev_kv` was asked for and it existed.
    #[pyo3(get)]
    prev_kv: Option<KvTuple>,
}

#[pymethods]
impl PyPutResponse {
    fn __repr__(&self) -> String {
        format!(
            "PutResponse(revision={}, prev_kv={})",
            self.revision,
            if self.prev_kv.is_some() {
                "(...)"
            } else {
                "None"
            }
        )
    }
}

/// Converts an engine put response.
pub fn put_response(py: Python<'_>, r: PutResponse) -> PyResult<PyPutResponse> {
    Ok(PyPutResponse {
        revision: r.header_revision,
        prev_kv: kv_opt(py, r.prev_kv)?,
    })
}

/// Result of a delete: the store's revision after it, how many keys went, and (if asked for)
/// their key-values.
#[pyclass(frozen, module = "etch", name = "DeleteResponse")]
pub struct PyDeleteResponse {
    /// Revision of the store after the write (unchanged if nothing was deleted).
    #[pyo3(get)]
    revision: i64,
    /// Number of keys deleted.
    #[pyo3(get)]
    deleted: i64,
    /// `(value, meta)` of every deleted key, if `prev_kv` was asked for.
    #[pyo3(get)]
    prev_kvs: Vec<KvTuple>,
}

#[pymethods]
impl PyDeleteResponse {
    fn __repr__(&self) -> String {
        format!(
            "DeleteResponse(revision={}, deleted={}, prev_kvs=[{} items])",
            self.revision,
            self.deleted,
            self.prev_kvs.len()
        )
    }
}

/// Converts an engine delete response.
pub fn delete_response(py: Python<'_>, r: DeleteResponse) -> PyResult<PyDeleteResponse> {
    Ok(PyDeleteResponse {
        revision: r.header_revision,
        deleted: r.deleted,
        prev_kvs: kv_list(py, r.prev_kvs)?,
    })
}

/// Store status: revisions, key count, file and WAL sizes.
#[pyclass(frozen, module = "etch", name = "Status", get_all)]
pub struct PyStatus {
    /// Current revision.
    revision: i64,
    /// Compact revision (history below it is gone).
    compact_revision: i64,
    /// Number of live keys.
    key_count: u64,
    /// Size of the main file in bytes (etcd's `db_size`).
    db_size: u64,
    /// Bytes of the main file holding live pages (etcd's `db_size_in_use`).
    db_size_in_use: u64,
    /// Bytes of WAL records not yet checkpointed.
    wal_size: u64,
    /// Page size in bytes.
    page_size: u32,
    /// Last applied WAL sequence number (etcd's `raft_index` on a single node).
    applied_index: u64,
}

#[pymethods]
impl PyStatus {
    fn __repr__(&self) -> String {
        format!(
            "Status(revision={}, compact_revision={}, key_count={}, db_size={}, db_size_in_use={}, wal_size={}, page_size={}, applied_index={})",
            self.revision, self.compact_revision, self.key_count, self.db_size,
            self.db_size_in_use, self.wal_size, self.page_size, self.applied_index
        )
    }
}

impl PyStatus {
    /// A remote server's figures (the fields a server does not report are 0).
    pub fn remote(
        revision: i64,
        key_count: u64,
        db_size: u64,
        db_size_in_use: u64,
        applied_index: u64,
    ) -> Self {
        PyStatus {
            revision,
            compact_revision: 0,
            key_count,
            db_size,
            db_size_in_use,
            wal_size: 0,
            page_size: 0,
            applied_index,
        }
    }
}

impl From<Status> for PyStatus {
    fn from(s: Status) -> Self {
        PyStatus {
            revision: s.revision,
            compact_revision: s.compact_revision,
            key_count: s.key_count,
            db_size: s.file_size,
            db_size_in_use: s.size_in_use,
            wal_size: s.wal_size,
            page_size: s.page_size,
            applied_index: s.applied_index,
        }
    }
}

/// What an integrity check examined (every page it visited was verified).
#[pyclass(frozen, module = "etch", name = "CheckReport", get_all)]
pub struct PyCheckReport {
    /// Tree pages visited.
    tree_pages: u64,
    /// Overflow pages visited.
    overflow_pages: u64,
    /// Pages not in use (free or waiting for reuse).
    free_pages: u64,
    /// Live keys.
    keys: u64,
    /// History records (superseded versions and tombstones).
    history_records: u64,
    /// Change-log records.
    log_records: u64,
}

#[pymethods]
impl PyCheckReport {
    fn __repr__(&self) -> String {
        format!(
            "CheckReport(tree_pages={}, overflow_pages={}, free_pages={}, keys={}, history_records={}, log_records={})",
            self.tree_pages, self.overflow_pages, self.free_pages, self.keys,
            self.history_records, self.log_records
        )
    }
}

impl From<CheckReport> for PyCheckReport {
    fn from(c: CheckReport) -> Self {
        PyCheckReport {
            tree_pages: c.tree_pages,
            overflow_pages: c.overflow_pages,
            free_pages: c.free_pages,
            keys: c.keys,
            history_records: c.history_records,
            log_records: c.log_records,
        }
    }
}

/// What an open with `repair_wal=True` found and did: where the WAL broke, what it kept, and
/// how many records after the damage it dropped.
#[pyclass(frozen, module = "etch", name = "WalRepair", get_all)]
pub struct PyWalRepair {
    /// Byte offset in the WAL of the first frame that could not be read.
    offset: u64,
    /// Sequence number of the last record read intact: the store was recovered up to it.
    last_good_seq: u64,
    /// Valid records after the damage, all dropped by the repair.
    records_after: u64,
    /// Path of the kept copy of the damaged WAL (`<file>-wal.damaged`, or numbered).
    copy: String,
}

#[pymethods]
impl PyWalRepair {
    fn __repr__(&self) -> String {
        format!(
            "WalRepair(offset={}, last_good_seq={}, records_after={}, copy={:?})",
            self.offset, self.last_good_seq, self.records_after, self.copy
        )
    }
}

impl From<&WalRepair> for PyWalRepair {
    fn from(r: &WalRepair) -> Self {
        PyWalRepair {
            offset: r.damage.offset,
            last_good_seq: r.damage.last_good_seq,
            records_after: r.damage.records_after,
            copy: r.copy.to_string_lossy().into_owned(),
        }
    }
}
