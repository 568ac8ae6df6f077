//! Admission: the checks a proposer makes before a command enters the log, so that a command a
//! single-node store would refuse up front is refused here too, with the same error, and never
//! costs a log entry. They mirror the engine's static checks (`keyspace::validate`,
//! `txn::validate`): key emptiness and size, request size, operation counts, the `ignore_value`
//! / `ignore_lease` flag rules, a batch putting one key twice, and the lease TTL range.
//!
//! What is *not* repeated: the engine's checks that need the trees (a key must exist for
//! `ignore_value`, a lease must exist) run when the entry is applied, identically on every
//! member; etcd's rule that one transaction branch may not put and delete overlapping keys is
//! checked only for plain batches here. A public `Store::admit(&Command)` in the engine would
//! replace this module.
//!
//! The space quota ([`check_quota`]) is the proposer's decision, as in etcd: a write that adds
//! data is refused with `Error::QuotaExceeded` when the proposing member's own file is past the
//! quota. Applying never checks it, because members' files differ in size (free pages,
//! checkpoints) and every member must apply every committed entry alike.

use etch_engine as engine;

/// The limits admission enforces (the engine's defaults, which are etcd's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key in bytes.
    pub max_key_size: usize,
    /// Largest request (keys and values of one write) in bytes.
    pub max_request_bytes: usize,
    /// Most operations in a batch or one transaction branch.
    pub max_txn_ops: usize,
    /// Space quota in bytes of the member's file in use (`Options::quota_bytes`); `None` for
    /// none.
    pub quota_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_key_size: 960,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            quota_bytes: Some(8 << 30),
        }
    }
}

fn check_key(key: &[u8], limits: &Limits) -> engine::Result<()> {
    if key.is_empty() {
        return Err(engine::Error::EmptyKey);
    }
    if key.len() > limits.max_key_size {
        return Err(engine::Error::KeyTooLarge {
            len: key.len(),
            max: limits.max_key_size,
        });
    }
    Ok(())
}

fn check_put(p: &engine::PutOp, limits: &Limits, size: &mut usize) -> engine::Result<()> {
    check_key(&p.key, limits)?;
    if p.ignore_value && !p.value.is_empty() {
        return Err(engine::Error::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(engine::Error::LeaseProvided);
    }
    *size += p.key.len() + p.value.len();
    Ok(())
}

fn check_count(count: usize, limits: &Limits) -> engine::Result<()> {
    if count > limits.max_txn_ops {
        return Err(engine::Error::TooManyOps {
            count,
            max: limits.max_txn_ops,
        });
    }
    Ok(())
}

fn check_txn(txn: &engine::Txn, limits: &Limits, size: &mut usize) -> engine::Result<()> {
    for count in [txn.compare.len(), txn.success.len(), txn.failure.len()] {
        check_count(count, limits)?;
    }
    for c in &txn.compare {
        check_key(c.range.start(), limits)?;
        *size += c.range.start().len() + c.range.end().len();
        if let engine::CompareTarget::Value(v) = &c.target {
            *size += v.len();
        }
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            engine::TxnOp::Put(p) => check_put(p, limits, size)?,
            engine::TxnOp::Range { range, .. } | engine::TxnOp::DeleteRange { range, .. } => {
                check_key(range.start(), limits)?;
                *size += range.start().len() + range.end().len();
            }
            engine::TxnOp::Txn(inner) => check_txn(inner, limits, size)?,
        }
    }
    Ok(())
}

fn check_size(size: usize, limits: &Limits) -> engine::Result<()> {
    if size > limits.max_request_bytes {
        return Err(engine::Error::RequestTooLarge {
            size,
            max: limits.max_request_bytes,
        });
    }
    Ok(())
}

/// Checks `command` before it is proposed; the error is the one `etch_engine::Store` gives.
pub fn admit(command: &engine::Command, limits: &Limits) -> engine::Result<()> {
    match command {
        engine::Command::Batch(ops) => {
            check_count(ops.len(), limits)?;
            let mut size = 0;
            let mut keys: Vec<&[u8]> = Vec::new();
            for op in ops {
                match op {
                    engine::WriteOp::Put(p) => {
                        check_put(p, limits, &mut size)?;
                        keys.push(&p.key);
                    }
                    engine::WriteOp::DeleteRange { range, .. } => {
                        check_key(range.start(), limits)?;
                        size += range.start().len() + range.end().len();
                    }
                }
            }
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Err(engine::Error::DuplicateKey {
                    key: String::from_utf8_lossy(pair[0]).into_owned(),
                });
            }
            for op in ops {
                if let engine::WriteOp::DeleteRange { range, .. } = op {
                    if let Some(k) = keys.iter().find(|k| range.contains(k)) {
                        return Err(engine::Error::DuplicateKey {
                            key: String::from_utf8_lossy(k).into_owned(),
                        });
                    }
                }
            }
            check_size(size, limits)
        }
        engine::Command::Txn(txn) => {
            let mut size = 0;
            check_txn(txn, limits, &mut size)?;
            check_size(size, limits)
        }
        engine::Command::LeaseGrant { id, ttl } => {
            if !(1..=9_000_000_000).contains(ttl) {
                return Err(engine::Error::InvalidOption(format!(
                    "lease TTL {ttl} is not between 1 and 9000000000 seconds"
                )));
            }
            if *id <= 0 {
                return Err(engine::Error::InvalidOption(format!(
                    "lease id {id} is not positive"
                )));
            }
            Ok(())
        }
        engine::Command::Compact(_)
        | engine::Command::LeaseRevoke { .. }
        | engine::Command::Noop => Ok(()),
    }
}

/// Whether `command` adds data (a put, alone or in a transaction's branches): what the quota
/// refuses. Deletes, compaction and leases go on past the quota, so space can be won back.
pub fn adds_data(command: &engine::Command) -> bool {
    fn txn_puts(txn: &engine::Txn) -> bool {
        txn.success.iter().chain(&txn.failure).any(|op| match op {
            engine::TxnOp::Put(_) => true,
            engine::TxnOp::Txn(inner) => txn_puts(inner),
            _ => false,
        })
    }
    match command {
        engine::Command::Batch(ops) => ops.iter().any(|op| matches!(op, engine::WriteOp::Put(_))),
        engine::Command::Txn(txn) => txn_puts(txn),
        _ => false,
    }
}

/// Refuses `command` with the engine's `QuotaExceeded` if it adds data and `size_in_use`
/// (the proposing member's `Status::size_in_use`) is past `limits.quota_bytes`.
pub fn check_quota(
    command: &engine::Command,
    limits: &Limits,
    size_in_use: u64,
) -> engine::Result<()> {
    match limits.quota_bytes {
        Some(quota) if size_in_use > quota && adds_data(command) => {
            Err(engine::Error::QuotaExceeded {
                used: size_in_use,
                quota,
            })
        }
        _ => Ok(()),
    }
}
