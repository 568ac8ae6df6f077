//! Leases: the `leases` and `lease_keys` trees.

use super::*;
use crate::btree::{self, Cursor, KeyOrder, NodeSource};
use crate::error::{Error, Result};
use crate::node::StoredValue;
use crate::pager::Pager;
use crate::types::{Range, WriteOp};

/// Granted TTL of lease `id`, if it exists.
pub(crate) fn lease_ttl<S: NodeSource>(src: &S, st: &KsState, id: i64) -> Result<Option<i64>> {
    match btree::get(
        src,
        st.roots.leases,
        KeyOrder::Bytes,
        &(id as u64).to_be_bytes(),
    )? {
        Some(v) => {
            let b = src.value_bytes(v)?;
            Ok(Some(crate::page::get_u64(b, 0) as i64))
        }
        None => Ok(None),
    }
}

/// Every lease: (id, granted TTL), by id.
pub(crate) fn lease_list<S: NodeSource>(src: &S, st: &KsState) -> Result<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    let mut cur = Cursor::new(src, st.roots.leases, KeyOrder::Bytes);
    cur.first()?;
    while let Some((k, v)) = cur.current() {
        let mut id = [0u8; 8];
        id.copy_from_slice(
            k.get(..8)
                .ok_or_else(|| Error::corrupt("lease key is short"))?,
        );
        out.push((
            u64::from_be_bytes(id) as i64,
            crate::page::get_u64(src.value_bytes(v)?, 0) as i64,
        ));
        cur.next()?;
    }
    Ok(out)
}

/// Keys attached to lease `id`, in key order.
pub(crate) fn lease_keys<S: NodeSource>(src: &S, st: &KsState, id: i64) -> Result<Vec<Vec<u8>>> {
    let prefix = (id as u64).to_be_bytes();
    let mut out = Vec::new();
    let mut cur = Cursor::new(src, st.roots.lease_keys, KeyOrder::Bytes);
    cur.seek_ge(&prefix)?;
    while let Some((k, _)) = cur.current() {
        if !k.starts_with(&prefix) {
            break;
        }
        out.push(k[8..].to_vec());
        cur.next()?;
    }
    Ok(out)
}

/// Records a new lease (no revision: as in etcd, granting changes no key).
pub(crate) fn lease_grant(pager: &mut Pager, st: &mut KsState, id: i64, ttl: i64) -> Result<()> {
    btree::insert(
        pager,
        &mut st.roots.leases,
        KeyOrder::Bytes,
        TAG_LEASES,
        append_fill(TAG_LEASES),
        &(id as u64).to_be_bytes(),
        StoredValue::Inline(ttl.to_le_bytes().to_vec()),
    )?;
    Ok(())
}

/// Revokes lease `id`: deletes every key attached to it at one revision (if there are any) and
/// removes the lease. Deterministic, so WAL replay reproduces it.
pub(crate) fn lease_revoke(pager: &mut Pager, st: &mut KsState, id: i64) -> Result<()> {
    let keys = lease_keys(&*pager, st, id)?;
    let mut applier = Applier::new(st);
    for key in keys {
        applier.write(
            pager,
            st,
            &WriteOp::DeleteRange {
                range: Range::key(key),
                prev_kv: false,
            },
        )?;
    }
    applier.finish(st);
    btree::remove(
        pager,
        &mut st.roots.leases,
        KeyOrder::Bytes,
        TAG_LEASES,
        &(id as u64).to_be_bytes(),
    )?;
    Ok(())
}
