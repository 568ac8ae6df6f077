//! Checks of a batch before anything changes: static limits, then what needs the trees.

use super::*;
use crate::btree::{self, KeyOrder, NodeSource};
use crate::error::{Error, Result};
use crate::types::WriteOp;

/// Static checks of a batch that need no tree access: key sizes, request size, op count,
/// duplicate keys, flag combinations. Runs before anything is changed.
pub(crate) fn validate(ops: &[WriteOp], limits: &Limits) -> Result<()> {
    if ops.len() > limits.max_txn_ops {
        return Err(Error::TooManyOps {
            count: ops.len(),
            max: limits.max_txn_ops,
        });
    }
    let mut size = 0usize;
    let mut put_keys: Vec<&[u8]> = Vec::new();
    for op in ops {
        match op {
            WriteOp::Put(p) => {
                check_key(&p.key, limits)?;
                if p.ignore_value && !p.value.is_empty() {
                    return Err(Error::ValueProvided);
                }
                if p.ignore_lease && p.lease != 0 {
                    return Err(Error::LeaseProvided);
                }
                size += p.key.len() + p.value.len();
                put_keys.push(&p.key);
            }
            WriteOp::DeleteRange { range, .. } => {
                check_key(&range.start, limits)?;
                size += range.start.len() + range.end.len();
            }
        }
    }
    // Sorted, duplicates are neighbours and the keys a delete covers are one run (sorting is
    // cheaper than hashing every key of a large batch).
    put_keys.sort_unstable_by(|a, b| btree::compare_bytes(a, b));
    if let Some(pair) = put_keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::DuplicateKey {
            key: String::from_utf8_lossy(pair[0]).into_owned(),
        });
    }
    // etcd also rejects a put to a key that a delete in the same transaction covers: the first
    // put key at or after the start of the delete's range is in it if any is.
    for op in ops {
        if let WriteOp::DeleteRange { range, .. } = op {
            let from = if range.is_single() {
                range.start()
            } else {
                range.scan_start()
            };
            let at = put_keys.partition_point(|k| btree::compare_bytes(k, from).is_lt());
            if let Some(k) = put_keys.get(at).filter(|k| range.contains(k)) {
                return Err(Error::DuplicateKey {
                    key: String::from_utf8_lossy(k).into_owned(),
                });
            }
        }
    }
    if size > limits.max_request_bytes {
        return Err(Error::RequestTooLarge {
            size,
            max: limits.max_request_bytes,
        });
    }
    Ok(())
}

pub(crate) fn check_key(key: &[u8], limits: &Limits) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if key.len() > limits.max_key_size {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: limits.max_key_size,
        });
    }
    Ok(())
}

/// Checks that depend on the tree but must hold before any change: `ignore_value` and
/// `ignore_lease` need the key to exist. (No earlier op in the batch can change that, since
/// a batch never touches a key twice.)
pub(crate) fn precheck<S: NodeSource>(src: &S, st: &KsState, ops: &[WriteOp]) -> Result<()> {
    for op in ops {
        if let WriteOp::Put(p) = op {
            if (p.ignore_value || p.ignore_lease)
                && btree::get(src, st.roots.current, KeyOrder::Bytes, &p.key)?.is_none()
            {
                return Err(Error::KeyNotFound);
            }
            if p.lease != 0 && lease_ttl(src, st, p.lease)?.is_none() {
                return Err(Error::LeaseNotFound { id: p.lease });
            }
        }
    }
    Ok(())
}
