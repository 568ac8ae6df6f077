//! Transactions (etcd's Txn): an `etch_txn` builder of compares and then/else operations,
//! committed atomically by `etch_txn_commit()`, and the `etch_txn_result` reader.

use std::ffi::c_int;

use etch_engine::{Compare, CompareOp, CompareTarget, Txn, TxnOp, TxnOpResponse, TxnResponse};

use crate::boundary::{bytes, call, call_db, clear, flag, object, object_mut, out};
use crate::db::etch_db;
use crate::error::{Failure, FfiResult};
use crate::iter::{etch_iter, etch_range_opts, Iter};
use crate::kv::{etch_put_opts, put_op, raw_range};

/// A transaction being built: compares, then the operations of the "then" branch (run if every
/// compare holds) and of the "else" branch. Opaque; created by etch_txn_new(), released by
/// etch_txn_free(). Building never touches the store; etch_txn_commit() may be called any
/// number of times on one builder. Thread safety: not for concurrent use; it may be moved
/// to another thread.
pub struct etch_txn {
    txn: Txn,
}

/// The outcome of a committed transaction. Opaque; created by etch_txn_commit() or
/// etch_txn_result_nested(), released by etch_txn_result_free(). Owns its data (valid after
/// etch_close()). Thread safety: read-only, so it may be read from several threads at once.
pub struct etch_txn_result {
    resp: TxnResponse,
}

/// Branch selector: the operations run when every compare holds.
pub const ETCH_TXN_THEN: c_int = 0;
/// Branch selector: the operations run when some compare fails.
pub const ETCH_TXN_ELSE: c_int = 1;

/// Compare target: the value bytes (a missing key never satisfies a value compare).
pub const ETCH_CMP_VALUE: c_int = 0;
/// Compare target: the version (0 for a missing key: version == 0 means "does not exist").
pub const ETCH_CMP_VERSION: c_int = 1;
/// Compare target: the create revision (0 for a missing key).
pub const ETCH_CMP_CREATE: c_int = 2;
/// Compare target: the mod revision (0 for a missing key).
pub const ETCH_CMP_MOD: c_int = 3;
/// Compare target: the lease id (0 for a missing key or no lease).
pub const ETCH_CMP_LEASE: c_int = 4;

/// Compare relation: field == operand.
pub const ETCH_CMP_EQUAL: c_int = 0;
/// Compare relation: field != operand.
pub const ETCH_CMP_NOT_EQUAL: c_int = 1;
/// Compare relation: field < operand.
pub const ETCH_CMP_LESS: c_int = 2;
/// Compare relation: field > operand.
pub const ETCH_CMP_GREATER: c_int = 3;

/// Operation kind in a result: a put.
pub const ETCH_OP_PUT: c_int = 0;
/// Operation kind in a result: a range read.
pub const ETCH_OP_RANGE: c_int = 1;
/// Operation kind in a result: a delete-range.
pub const ETCH_OP_DELETE: c_int = 2;
/// Operation kind in a result: a nested transaction.
pub const ETCH_OP_TXN: c_int = 3;

/// Summary of one operation's result (filled by etch_txn_result_op()).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct etch_txn_op_result {
    /// ETCH_OP_PUT, ETCH_OP_RANGE, ETCH_OP_DELETE or ETCH_OP_TXN.
    pub kind: c_int,
    /// Store revision after the operation (the header revision of its response).
    pub revision: i64,
    /// RANGE: keys matched (ignoring limit); DELETE: keys deleted; PUT: 1 if a previous
    /// key-value was returned, else 0; TXN: number of operations in the nested result.
    pub count: i64,
    /// RANGE: 1 if limit cut the result short. Otherwise 0.
    pub more: c_int,
    /// TXN: 1 if the nested transaction's compares held. Otherwise 0.
    pub succeeded: c_int,
}

/// Creates an empty transaction builder (no compares: the "then" branch runs). On ETCH_OK
/// `*txn` receives it, owned by the caller (etch_txn_free()). ETCH_INVALID if `txn` is NULL.
#[no_mangle]
pub unsafe extern "C" fn etch_txn_new(txn: *mut *mut etch_txn) -> c_int {
    // SAFETY: by the header's contract `txn` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(txn) };
    call(|| {
        // SAFETY: by the header's contract a non-NULL txn is writable.
        let txn = unsafe { out(txn, "txn") }?;
        txn.set(Box::into_raw(Box::new(etch_txn { txn: Txn::new() })));
        Ok(())
    })
}

/// Releases a transaction builder (exactly once). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn etch_txn_free(txn: *mut etch_txn) {
    if txn.is_null() {
        return;
    }
    // SAFETY: by the header's contract txn came from etch_txn_new (a leaked Box), freed once.
    drop(unsafe { Box::from_raw(txn) });
}

/// The branch a selector names.
fn branch(txn: &mut Txn, which: c_int) -> FfiResult<&mut Vec<TxnOp>> {
    match which {
        ETCH_TXN_THEN => Ok(&mut txn.success),
        ETCH_TXN_ELSE => Ok(&mut txn.failure),
        other => Err(Failure::invalid(format!("unknown branch {other}"))),
    }
}

/// Adds a compare: the field `target` of the key `(key, range_end)` (of every key of the
/// range, when range_end is non-empty) must relate to the operand by `op`.
///
/// The operand is `value`/`value_len` for ETCH_CMP_VALUE and `number` for the other targets
/// (the unused one is ignored; value may be NULL when value_len is 0). All bytes are copied.
/// Returns ETCH_OK or ETCH_INVALID (NULL txn, unknown target/op). Empty keys and limits are
/// checked by etch_txn_commit().
#[no_mangle]
pub unsafe extern "C" fn etch_txn_compare(
    txn: *mut etch_txn,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    target: c_int,
    op: c_int,
    number: i64,
    value: *const u8,
    value_len: usize,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract txn is a live builder used by this thread only, and
        // each buffer is NULL or valid for its length.
        let (txn, range, value) = unsafe {
            (
                object_mut(txn, "txn")?,
                raw_range(key, key_len, range_end, range_end_len)?,
                bytes(value, value_len, "value")?,
            )
        };
        let op = match op {
            ETCH_CMP_EQUAL => CompareOp::Equal,
            ETCH_CMP_NOT_EQUAL => CompareOp::NotEqual,
            ETCH_CMP_LESS => CompareOp::Less,
            ETCH_CMP_GREATER => CompareOp::Greater,
            other => return Err(Failure::invalid(format!("unknown compare op {other}"))),
        };
        let target = match target {
            ETCH_CMP_VALUE => CompareTarget::Value(value.to_vec()),
            ETCH_CMP_VERSION => CompareTarget::Version(number),
            ETCH_CMP_CREATE => CompareTarget::Create(number),
            ETCH_CMP_MOD => CompareTarget::Mod(number),
            ETCH_CMP_LEASE => CompareTarget::Lease(number),
            other => return Err(Failure::invalid(format!("unknown compare target {other}"))),
        };
        txn.txn.compare.push(Compare { range, op, target });
        Ok(())
    })
}

/// Adds a put to branch `which` (ETCH_TXN_THEN or ETCH_TXN_ELSE). `opts` may be NULL; non-zero
/// `prev_kv` asks for the previous key-value in the result (etch_txn_result_kvs()). Bytes are
/// copied. Returns ETCH_OK or ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_txn_put(
    txn: *mut etch_txn,
    which: c_int,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    opts: *const etch_put_opts,
    prev_kv: c_int,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract txn is a live builder used by this thread only, and
        // every other pointer is NULL or valid for its length.
        let (txn, op) = unsafe {
            (
                object_mut(txn, "txn")?,
                put_op(key, key_len, value, value_len, opts, flag(prev_kv))?,
            )
        };
        branch(&mut txn.txn, which)?.push(TxnOp::Put(op));
        Ok(())
    })
}

/// Adds a delete of the range `(key, range_end)` (as etch_delete_range()) to branch `which`;
/// non-zero `prev_kv` asks for the deleted key-values in the result. Returns ETCH_OK or
/// ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_txn_delete_range(
    txn: *mut etch_txn,
    which: c_int,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    prev_kv: c_int,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract txn is a live builder used by this thread only, and
        // the key buffers are NULL or valid for their lengths.
        let (txn, range) = unsafe {
            (
                object_mut(txn, "txn")?,
                raw_range(key, key_len, range_end, range_end_len)?,
            )
        };
        branch(&mut txn.txn, which)?.push(TxnOp::DeleteRange {
            range,
            prev_kv: flag(prev_kv),
        });
        Ok(())
    })
}

/// Adds a range read of `(key, range_end)` (as etch_range(); `opts` may be NULL) to branch
/// `which`. It sees the transaction's earlier writes. Returns ETCH_OK or ETCH_INVALID.
#[no_mangle]
pub unsafe extern "C" fn etch_txn_range(
    txn: *mut etch_txn,
    which: c_int,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    opts: *const etch_range_opts,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract txn is a live builder used by this thread only, the
        // key buffers are NULL or valid for their lengths, and opts is NULL or readable.
        let (txn, range, opts) = unsafe {
            (
                object_mut(txn, "txn")?,
                raw_range(key, key_len, range_end, range_end_len)?,
                opts.as_ref().copied().unwrap_or_default(),
            )
        };
        let options = opts.to_engine()?;
        branch(&mut txn.txn, which)?.push(TxnOp::Range { range, options });
        Ok(())
    })
}

/// Adds a copy of the transaction `child` as a nested transaction in branch `which` of `txn`.
/// `child` stays owned by the caller (free it as usual). Its compares are evaluated against the
/// state before the outer transaction, as in etcd. Returns ETCH_OK or ETCH_INVALID (NULL, or
/// `child == txn`).
#[no_mangle]
pub unsafe extern "C" fn etch_txn_nest(
    txn: *mut etch_txn,
    which: c_int,
    child: *const etch_txn,
) -> c_int {
    call(|| {
        if std::ptr::eq(txn, child) {
            return Err(Failure::invalid("a transaction cannot contain itself"));
        }
        // SAFETY: by the header's contract both are live builders used by this thread only;
        // they are distinct (checked above), so the mutable and shared borrows do not alias.
        let (txn, child) = unsafe { (object_mut(txn, "txn")?, object(child, "child")?) };
        let nested = child.txn.clone();
        branch(&mut txn.txn, which)?.push(TxnOp::Txn(nested));
        Ok(())
    })
}

/// Runs the transaction atomically: if every compare holds the "then" operations run,
/// otherwise the "else" operations; all its writes happen at one revision. The builder is not
/// consumed. On ETCH_OK `*result` receives the outcome, owned by the caller
/// (etch_txn_result_free()); on failure it is NULL and nothing was written.
///
/// Returns ETCH_OK (whichever branch ran), ETCH_INVALID (empty key, a key written twice in one
/// branch, ignore_* misuse), ETCH_NOT_FOUND (a put's lease does not exist), ETCH_TOO_LARGE
/// (over max_txn_ops or max_request_bytes), ETCH_COMPACTED / ETCH_FUTURE_REV (a range op's
/// revision), ETCH_QUOTA, ETCH_IO, ETCH_NOSPACE, ETCH_POISONED. May run concurrently with any
/// call on the handle except etch_close() (the builder itself must not be shared).
#[no_mangle]
pub unsafe extern "C" fn etch_txn_commit(
    db: *const etch_db,
    txn: *const etch_txn,
    result: *mut *mut etch_txn_result,
) -> c_int {
    // SAFETY: by the header's contract `result` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(result) };
    call_db(db, |db| {
        // SAFETY: by the header's contract result is writable and txn a live builder.
        let (result, txn) = unsafe {
            let result = out(result, "result")?;
            result.set(std::ptr::null_mut());
            (result, object(txn, "txn")?)
        };
        let resp = db.store.txn(txn.txn.clone())?;
        result.set(Box::into_raw(Box::new(etch_txn_result { resp })));
        Ok(())
    })
}

/// Releases a transaction result (exactly once). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn etch_txn_result_free(result: *mut etch_txn_result) {
    if result.is_null() {
        return;
    }
    // SAFETY: by the header's contract result came from etch_txn_commit or
    // etch_txn_result_nested (a leaked Box) and is freed once.
    drop(unsafe { Box::from_raw(result) });
}

/// Reads a result's summary: `succeeded` (1 if the compares held and "then" ran),
/// `revision` (store revision after the transaction; unchanged if it wrote nothing) and
/// `count` (number of operation results, one per operation of the branch that ran). Each
/// output is optional (NULL to skip). Returns ETCH_OK or ETCH_INVALID (NULL result).
#[no_mangle]
pub unsafe extern "C" fn etch_txn_result_info(
    result: *const etch_txn_result,
    succeeded: *mut c_int,
    revision: *mut i64,
    count: *mut usize,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract result is live and each output NULL or writable.
        let (r, succeeded, revision, count) = unsafe {
            (
                object(result, "result")?,
                crate::boundary::opt_out(succeeded),
                crate::boundary::opt_out(revision),
                crate::boundary::opt_out(count),
            )
        };
        if let Some(s) = succeeded {
            s.set(c_int::from(r.resp.succeeded));
        }
        if let Some(v) = revision {
            v.set(r.resp.header_revision);
        }
        if let Some(c) = count {
            c.set(r.resp.responses.len());
        }
        Ok(())
    })
}

/// The response of operation `index`, or ETCH_INVALID if out of range.
fn op_at(r: &etch_txn_result, index: usize) -> FfiResult<&TxnOpResponse> {
    r.resp.responses.get(index).ok_or_else(|| {
        Failure::invalid(format!(
            "operation index {index} out of range ({} results)",
            r.resp.responses.len()
        ))
    })
}

/// Fills `*op` with the summary of operation `index` (0-based, in branch order). Returns
/// ETCH_OK, or ETCH_INVALID (NULL arguments, index out of range).
#[no_mangle]
pub unsafe extern "C" fn etch_txn_result_op(
    result: *const etch_txn_result,
    index: usize,
    op: *mut etch_txn_op_result,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract result is live and op writable.
        let (r, op) = unsafe { (object(result, "result")?, out(op, "op")?) };
        let summary = match op_at(r, index)? {
            TxnOpResponse::Put(p) => etch_txn_op_result {
                kind: ETCH_OP_PUT,
                revision: p.header_revision,
                count: i64::from(p.prev_kv.is_some()),
                ..Default::default()
            },
            TxnOpResponse::Range(g) => etch_txn_op_result {
                kind: ETCH_OP_RANGE,
                revision: g.header_revision,
                count: g.count,
                more: c_int::from(g.more),
                ..Default::default()
            },
            TxnOpResponse::Delete(d) => etch_txn_op_result {
                kind: ETCH_OP_DELETE,
                revision: d.header_revision,
                count: d.deleted,
                ..Default::default()
            },
            TxnOpResponse::Txn(t) => etch_txn_op_result {
                kind: ETCH_OP_TXN,
                revision: t.header_revision,
                count: t.responses.len() as i64,
                succeeded: c_int::from(t.succeeded),
                ..Default::default()
            },
        };
        op.set(summary);
        Ok(())
    })
}

/// The key-values of operation `index` as a new iterator owned by the caller
/// (etch_iter_free()): a range's key-values (with its count and more), a put's previous
/// key-value (0 or 1 of them, if prev_kv was asked), a delete's deleted key-values (if prev_kv
/// was asked). Returns ETCH_OK, or ETCH_INVALID (NULL arguments, index out of range, or a
/// nested transaction: use etch_txn_result_nested()). On failure `*iter` is NULL.
#[no_mangle]
pub unsafe extern "C" fn etch_txn_result_kvs(
    result: *const etch_txn_result,
    index: usize,
    iter: *mut *mut etch_iter,
) -> c_int {
    // SAFETY: by the header's contract `iter` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(iter) };
    call(|| {
        // SAFETY: by the header's contract result is live and iter writable.
        let (r, iter) = unsafe {
            let iter = out(iter, "iter")?;
            iter.set(std::ptr::null_mut());
            (object(result, "result")?, iter)
        };
        let it = match op_at(r, index)? {
            TxnOpResponse::Put(p) => {
                let kvs: Vec<_> = p.prev_kv.iter().cloned().collect();
                let n = kvs.len() as i64;
                Iter::new(kvs, n, false, p.header_revision)
            }
            TxnOpResponse::Range(g) => Iter::new(g.kvs.clone(), g.count, g.more, g.header_revision),
            TxnOpResponse::Delete(d) => {
                let n = d.prev_kvs.len() as i64;
                Iter::new(d.prev_kvs.clone(), n, false, d.header_revision)
            }
            TxnOpResponse::Txn(_) => {
                return Err(Failure::invalid(format!(
                    "operation {index} is a nested transaction; use etch_txn_result_nested"
                )))
            }
        };
        iter.set(it.into_raw());
        Ok(())
    })
}

/// The result of the nested transaction at operation `index`, as a new result owned by the
/// caller (etch_txn_result_free()). Returns ETCH_OK, or ETCH_INVALID (NULL arguments, index
/// out of range, or not a nested transaction). On failure `*nested` is NULL.
#[no_mangle]
pub unsafe extern "C" fn etch_txn_result_nested(
    result: *const etch_txn_result,
    index: usize,
    nested: *mut *mut etch_txn_result,
) -> c_int {
    // SAFETY: by the header's contract `nested` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(nested) };
    call(|| {
        // SAFETY: by the header's contract result is live and nested writable.
        let (r, nested) = unsafe {
            let nested = out(nested, "nested")?;
            nested.set(std::ptr::null_mut());
            (object(result, "result")?, nested)
        };
        match op_at(r, index)? {
            TxnOpResponse::Txn(t) => {
                nested.set(Box::into_raw(Box::new(etch_txn_result { resp: t.clone() })));
                Ok(())
            }
            _ => Err(Failure::invalid(format!(
                "operation {index} is not a nested transaction"
            ))),
        }
    })
}
