//! Compaction of history, as etcd's.

use super::*;
use crate::btree::{self, Cursor, KeyOrder, NodeSource};
use crate::error::{Error, Result};
use crate::pager::Pager;

/// Compacts history to revision `c`, as etcd: every version superseded at or before `c` is
/// dropped except, per key, the newest one at or before `c` when that is a put and the key's
/// live version is newer (it is the key's value as of `c`); tombstones at or before `c` go too;
/// change-log entries at or before `c` go. Freed pages (overflow values included) are reused
/// under the usual rules. Deterministic, so WAL replay reproduces it.
pub(crate) fn compact(pager: &mut Pager, st: &mut KsState, c: u64) -> Result<()> {
    // Keys changed at or before `c`: only their history can hold droppable versions (a key's
    // older versions were dropped by earlier compactions, or it has no log entry to find).
    let mut log_keys: Vec<[u8; 12]> = Vec::new();
    let mut keys: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
    {
        let mut cur = Cursor::new(&*pager, st.roots.log, KeyOrder::Bytes);
        cur.first()?;
        while let Some((k, v)) = cur.current() {
            let mut lk = [0u8; 12];
            if k.len() != 12 {
                return Err(Error::corrupt("change-log key is not 12 bytes"));
            }
            lk.copy_from_slice(k);
            let mut rev = [0u8; 8];
            rev.copy_from_slice(&k[..8]);
            if u64::from_be_bytes(rev) > c {
                break;
            }
            let entry = pager.value_bytes(v)?;
            keys.insert(entry.get(1..).unwrap_or(&[]).to_vec());
            log_keys.push(lk);
            cur.next()?;
        }
    }
    for key in keys {
        let live_mod = match btree::get(&*pager, st.roots.current, KeyOrder::Bytes, &key)? {
            Some(v) => Some(read_record(&*pager, v)?.0.modr),
            None => None,
        };
        // History entries of this key at or before `c`, oldest first: (tree key, kind).
        let mut entries: Vec<(Vec<u8>, u8)> = Vec::new();
        {
            let mut cur = Cursor::new(&*pager, st.roots.history, KeyOrder::RevSuffix);
            cur.seek_ge(&history_key(&key, 0))?;
            while let Some((k, v)) = cur.current() {
                let (user, rev) = k.split_at(k.len().saturating_sub(8));
                let mut r = [0u8; 8];
                r.copy_from_slice(rev);
                if user != key.as_slice() || u64::from_be_bytes(r) > c {
                    break;
                }
                let kind = read_record(&*pager, v)?.0.kind;
                entries.push((k.to_vec(), kind));
                cur.next()?;
            }
        }
        // The version readers at `c` need, if history must provide it.
        let keep = match live_mod {
            Some(m) if m <= c => None,
            _ => entries
                .last()
                .filter(|(_, kind)| *kind == KIND_PUT)
                .map(|(k, _)| k.clone()),
        };
        for (hk, _) in entries {
            if keep.as_ref() == Some(&hk) {
                continue;
            }
            if let Some(old) = btree::remove(
                pager,
                &mut st.roots.history,
                KeyOrder::RevSuffix,
                TAG_HISTORY,
                &hk,
            )? {
                pager.free_value(&old);
            }
        }
    }
    for lk in log_keys {
        btree::remove(pager, &mut st.roots.log, KeyOrder::Bytes, TAG_LOG, &lk)?;
    }
    st.compact_revision = c;
    Ok(())
}
