//! Transactions with compares, as etcd's `Txn`: if every compare holds, the `success` operations
//! run, otherwise the `failure` operations; all writes happen at one revision, and reads inside
//! the transaction see its earlier writes. Branches may nest transactions; as in etcd, every
//! compare on the chosen path is evaluated against the state before the transaction.

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::btree::NodeSource;
use crate::error::{Error, Result};
use crate::keyspace::{self, Applier, KsState, Limits};
use crate::pager::Pager;
use crate::types::{
    DeleteResponse, KeyValue, OpResponse, PutOp, PutResponse, Range, RangeOptions, RangeResponse,
    Revision, WriteOp,
};

/// What a compare looks at, with the operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The value bytes. A missing key never satisfies a value compare.
    Value(Vec<u8>),
    /// The version (0 for a missing key).
    Version(i64),
    /// The create revision (0 for a missing key).
    Create(Revision),
    /// The mod revision (0 for a missing key).
    Mod(Revision),
    /// The lease id (0 for a missing key or no lease).
    Lease(i64),
}

/// How a compare relates the key's field to the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// Field equals operand.
    Equal,
    /// Field differs from operand.
    NotEqual,
    /// Field is less than operand.
    Less,
    /// Field is greater than operand.
    Greater,
}

/// One condition of a transaction, over one key or every key of a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key (or keys: every key of the range must satisfy the compare).
    pub range: Range,
    /// The relation.
    pub op: CompareOp,
    /// The field and operand.
    pub target: CompareTarget,
}

impl Compare {
    /// Compare the value of `key`.
    pub fn value(key: impl AsRef<[u8]>, op: CompareOp, value: impl AsRef<[u8]>) -> Compare {
        Compare {
            range: Range::key(key),
            op,
            target: CompareTarget::Value(value.as_ref().to_vec()),
        }
    }

    /// Compare the version of `key` (0 if absent: `version(k, Equal, 0)` means "k does not exist").
    pub fn version(key: impl AsRef<[u8]>, op: CompareOp, version: i64) -> Compare {
        Compare {
            range: Range::key(key),
            op,
            target: CompareTarget::Version(version),
        }
    }

    /// Compare the create revision of `key`.
    pub fn create_revision(key: impl AsRef<[u8]>, op: CompareOp, revision: Revision) -> Compare {
        Compare {
            range: Range::key(key),
            op,
            target: CompareTarget::Create(revision),
        }
    }

    /// Compare the mod revision of `key`.
    pub fn mod_revision(key: impl AsRef<[u8]>, op: CompareOp, revision: Revision) -> Compare {
        Compare {
            range: Range::key(key),
            op,
            target: CompareTarget::Mod(revision),
        }
    }

    /// Compare the lease of `key`.
    pub fn lease(key: impl AsRef<[u8]>, op: CompareOp, lease: i64) -> Compare {
        Compare {
            range: Range::key(key),
            op,
            target: CompareTarget::Lease(lease),
        }
    }

    /// The same compare over every key of `range` instead of one key.
    pub fn over(mut self, range: Range) -> Compare {
        self.range = range;
        self
    }

    fn holds_for(&self, kv: Option<&KeyValue>) -> bool {
        let ord = match (&self.target, kv) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(v), Some(kv)) => kv.value.as_slice().cmp(v.as_slice()),
            (CompareTarget::Version(n), kv) => kv.map_or(0, |kv| kv.version).cmp(n),
            (CompareTarget::Create(n), kv) => kv.map_or(0, |kv| kv.create_revision).cmp(n),
            (CompareTarget::Mod(n), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(n),
            (CompareTarget::Lease(n), kv) => kv.map_or(0, |kv| kv.lease).cmp(n),
        };
        match self.op {
            CompareOp::Equal => ord == Ordering::Equal,
            CompareOp::NotEqual => ord != Ordering::Equal,
            CompareOp::Less => ord == Ordering::Less,
            CompareOp::Greater => ord == Ordering::Greater,
        }
    }
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// A put.
    Put(PutOp),
    /// A range read (sees the transaction's earlier writes).
    Range {
        /// Keys to read.
        range: Range,
        /// Read options.
        options: RangeOptions,
    },
    /// Delete the keys of a range.
    DeleteRange {
        /// Keys to delete.
        range: Range,
        /// Return the deleted key-values.
        prev_kv: bool,
    },
    /// A nested transaction.
    Txn(Txn),
}

impl TxnOp {
    /// A plain put.
    pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> TxnOp {
        TxnOp::Put(PutOp {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
            ..Default::default()
        })
    }

    /// A get of one key.
    pub fn get(key: impl AsRef<[u8]>) -> TxnOp {
        TxnOp::Range {
            range: Range::key(key),
            options: RangeOptions::default(),
        }
    }

    /// Delete the keys of a range.
    pub fn delete(range: Range) -> TxnOp {
        TxnOp::DeleteRange {
            range,
            prev_kv: false,
        }
    }
}

/// A transaction: `if compare { success } else { failure }`.
///
/// ```no_run
/// use etch_engine::{Compare, CompareOp, Store, Txn, TxnOp};
/// let db = Store::open("app.etch")?;
/// // Create "leader" only if it does not exist yet.
/// let resp = db.txn(
///     Txn::new()
///         .when([Compare::version("leader", CompareOp::Equal, 0)])
///         .and_then([TxnOp::put("leader", "node-1")])
///         .or_else([TxnOp::get("leader")]),
/// )?;
/// println!("became leader: {}", resp.succeeded);
/// # Ok::<(), etch_engine::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold for `success` to run.
    pub compare: Vec<Compare>,
    /// Operations if every compare holds.
    pub success: Vec<TxnOp>,
    /// Operations otherwise.
    pub failure: Vec<TxnOp>,
}

impl Txn {
    /// An empty transaction (no compares: `success` runs).
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Adds compares.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Txn {
        self.compare.extend(compares);
        self
    }

    /// Adds operations to the success branch.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Txn {
        self.success.extend(ops);
        self
    }

    /// Adds operations to the failure branch.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Txn {
        self.failure.extend(ops);
        self
    }
}

/// Result of one transaction operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOpResponse {
    /// Result of a put.
    Put(PutResponse),
    /// Result of a range read.
    Range(RangeResponse),
    /// Result of a delete.
    Delete(DeleteResponse),
    /// Result of a nested transaction.
    Txn(TxnResponse),
}

/// Result of a transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// True if every compare held and `success` ran.
    pub succeeded: bool,
    /// Revision of the store after the transaction (unchanged if it wrote nothing).
    pub header_revision: Revision,
    /// One response per operation of the branch that ran.
    pub responses: Vec<TxnOpResponse>,
}

/// Static checks: limits, key sizes, request size, and etcd's rule that one branch may not
/// write a key twice (a put overlapping another put or a delete, nested branches included).
pub(crate) fn validate(txn: &Txn, limits: &Limits) -> Result<()> {
    let mut size = 0;
    check_txn(txn, limits, &mut size)?;
    if size > limits.max_request_bytes {
        return Err(Error::RequestTooLarge {
            size,
            max: limits.max_request_bytes,
        });
    }
    Ok(())
}

fn check_txn(txn: &Txn, limits: &Limits, size: &mut usize) -> Result<()> {
    for count in [txn.compare.len(), txn.success.len(), txn.failure.len()] {
        if count > limits.max_txn_ops {
            return Err(Error::TooManyOps {
                count,
                max: limits.max_txn_ops,
            });
        }
    }
    for c in &txn.compare {
        keyspace::check_key(&c.range.start, limits)?;
        *size += c.range.start.len() + c.range.end.len();
        if let CompareTarget::Value(v) = &c.target {
            *size += v.len();
        }
    }
    branch_writes(&txn.success, limits, size)?;
    branch_writes(&txn.failure, limits, size)?;
    Ok(())
}

/// The keys a branch puts and the ranges it deletes, after checking it writes no key twice.
fn branch_writes(
    ops: &[TxnOp],
    limits: &Limits,
    size: &mut usize,
) -> Result<(HashSet<Vec<u8>>, Vec<Range>)> {
    let dup = |k: &[u8]| Error::DuplicateKey {
        key: String::from_utf8_lossy(k).into_owned(),
    };
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    let mut dels: Vec<Range> = Vec::new();
    let mut nested: Vec<(HashSet<Vec<u8>>, Vec<Range>)> = Vec::new();
    for op in ops {
        match op {
            TxnOp::Put(p) => {
                keyspace::validate(std::slice::from_ref(&WriteOp::Put(p.clone())), limits)?;
                *size += p.key.len() + p.value.len();
                if !puts.insert(p.key.clone()) {
                    return Err(dup(&p.key));
                }
            }
            TxnOp::DeleteRange { range, .. } => {
                keyspace::check_key(&range.start, limits)?;
                *size += range.start.len() + range.end.len();
                dels.push(range.clone());
            }
            TxnOp::Range { range, .. } => {
                keyspace::check_key(&range.start, limits)?;
                *size += range.start.len() + range.end.len();
            }
            TxnOp::Txn(t) => {
                check_txn(t, limits, size)?;
                let (sp, sd) = branch_writes(&t.success, limits, &mut 0)?;
                let (fp, fd) = branch_writes(&t.failure, limits, &mut 0)?;
                // Only one nested branch runs, so they may write the same keys.
                nested.push((
                    sp.into_iter().chain(fp).collect(),
                    sd.into_iter().chain(fd).collect(),
                ));
            }
        }
    }
    if let Some(k) = puts.iter().find(|k| dels.iter().any(|r| r.contains(k))) {
        return Err(dup(k));
    }
    for (np, nd) in nested {
        if let Some(k) = np
            .iter()
            .find(|k| puts.contains(*k) || dels.iter().any(|r| r.contains(k)))
        {
            return Err(dup(k));
        }
        if let Some(k) = puts.iter().find(|k| nd.iter().any(|r| r.contains(k))) {
            return Err(dup(k));
        }
        puts.extend(np);
        dels.extend(nd);
    }
    Ok((puts, dels))
}

/// True if any branch of `txn` (nested ones included) puts a key: such a transaction is
/// refused past the space quota.
pub(crate) fn has_put(txn: &Txn) -> bool {
    txn.success.iter().chain(&txn.failure).any(|op| match op {
        TxnOp::Put(_) => true,
        TxnOp::Txn(t) => has_put(t),
        _ => false,
    })
}

/// Which branch each transaction on the chosen path takes, decided before any write.
pub(crate) struct Plan {
    succeeded: bool,
    /// Plans of the nested transactions of the chosen branch, in order.
    nested: Vec<Plan>,
}

/// Evaluates the compares on the path (against the state before the transaction) and checks
/// what must hold before anything is written: `ignore_value`/`ignore_lease` keys exist, range
/// revisions are valid.
pub(crate) fn plan<S: NodeSource>(src: &S, st: &KsState, txn: &Txn) -> Result<Plan> {
    let mut succeeded = true;
    for c in &txn.compare {
        let kvs = keyspace::range(src, st, &c.range, &RangeOptions::default())?.kvs;
        let holds = if kvs.is_empty() {
            c.holds_for(None)
        } else {
            kvs.iter().all(|kv| c.holds_for(Some(kv)))
        };
        if !holds {
            succeeded = false;
            break;
        }
    }
    let branch = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let mut nested = Vec::new();
    let mut writes = Vec::new();
    for op in branch {
        match op {
            TxnOp::Txn(t) => nested.push(plan(src, st, t)?),
            TxnOp::Put(p) => writes.push(WriteOp::Put(p.clone())),
            TxnOp::Range { options, .. } => {
                let current = st.revision as i64;
                if options.revision > current {
                    return Err(Error::FutureRevision {
                        requested: options.revision,
                        current,
                    });
                }
                if options.revision > 0 && options.revision < st.compact_revision as i64 {
                    return Err(Error::Compacted {
                        requested: options.revision,
                        compacted: st.compact_revision as i64,
                    });
                }
            }
            TxnOp::DeleteRange { .. } => {}
        }
    }
    keyspace::precheck(src, st, &writes)?;
    Ok(Plan { succeeded, nested })
}

/// Runs the planned path: writes through `applier`, reads of the working state. Appends every
/// write, in order, to `log` (the WAL record).
pub(crate) fn execute(
    pager: &mut Pager,
    st: &mut KsState,
    applier: &mut Applier,
    txn: &Txn,
    plan: &Plan,
    log: &mut Vec<WriteOp>,
) -> Result<TxnResponse> {
    let branch = if plan.succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let mut nested = plan.nested.iter();
    let mut responses = Vec::with_capacity(branch.len());
    for op in branch {
        let resp = match op {
            TxnOp::Put(p) => {
                let w = WriteOp::Put(p.clone());
                let r = applier.write(pager, st, &w)?;
                log.push(w);
                match r {
                    OpResponse::Put(p) => TxnOpResponse::Put(p),
                    OpResponse::Delete(d) => TxnOpResponse::Delete(d),
                }
            }
            TxnOp::DeleteRange { range, prev_kv } => {
                let w = WriteOp::DeleteRange {
                    range: range.clone(),
                    prev_kv: *prev_kv,
                };
                let r = applier.write(pager, st, &w)?;
                log.push(w);
                match r {
                    OpResponse::Put(p) => TxnOpResponse::Put(p),
                    OpResponse::Delete(d) => TxnOpResponse::Delete(d),
                }
            }
            TxnOp::Range { range, options } => {
                TxnOpResponse::Range(keyspace::range(&*pager, st, range, options)?)
            }
            TxnOp::Txn(t) => {
                let p = nested
                    .next()
                    .ok_or_else(|| Error::corrupt("internal: transaction plan is short"))?;
                TxnOpResponse::Txn(execute(pager, st, applier, t, p, log)?)
            }
        };
        responses.push(resp);
    }
    Ok(TxnResponse {
        succeeded: plan.succeeded,
        header_revision: 0,
        responses,
    })
}

/// Sets the header revision of a response and everything nested in it.
pub(crate) fn stamp(resp: &mut TxnResponse, revision: Revision) {
    resp.header_revision = revision;
    for r in &mut resp.responses {
        match r {
            TxnOpResponse::Put(p) => p.header_revision = revision,
            TxnOpResponse::Delete(d) => d.header_revision = revision,
            TxnOpResponse::Range(rr) => rr.header_revision = revision,
            TxnOpResponse::Txn(t) => stamp(t, revision),
        }
    }
}
