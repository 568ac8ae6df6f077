//! Byte layout of the keyspace's tree entries: records, history keys, change-log keys.

use crate::btree::NodeSource;
use crate::error::{Error, Result};
use crate::node::ValueRef;
use crate::types::{KeyValue, KeyValueRef};

pub(super) const RECORD_HEADER: usize = 33;
pub(super) const KIND_PUT: u8 = 1;
pub(super) const KIND_TOMBSTONE: u8 = 2;

/// Key of the lease-index tree: lease id (big-endian) then user key.
pub(super) fn lease_index_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&(id as u64).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Decoded record header.
#[derive(Clone, Copy, Debug)]
pub(super) struct RecordHeader {
    pub(super) kind: u8,
    pub(super) create: u64,
    pub(super) modr: u64,
    pub(super) version: u64,
    pub(super) lease: i64,
}

pub(super) fn encode_record(h: RecordHeader, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER + value.len());
    out.push(h.kind);
    out.extend_from_slice(&h.create.to_le_bytes());
    out.extend_from_slice(&h.modr.to_le_bytes());
    out.extend_from_slice(&h.version.to_le_bytes());
    out.extend_from_slice(&h.lease.to_le_bytes());
    out.extend_from_slice(value);
    out
}

pub(super) fn decode_header(b: &[u8]) -> Result<RecordHeader> {
    if b.len() < RECORD_HEADER || !(b[0] == KIND_PUT || b[0] == KIND_TOMBSTONE) {
        return Err(Error::corrupt(format!(
            "key record of {} bytes is malformed",
            b.len()
        )));
    }
    Ok(RecordHeader {
        kind: b[0],
        create: crate::page::get_u64(b, 1),
        modr: crate::page::get_u64(b, 9),
        version: crate::page::get_u64(b, 17),
        lease: crate::page::get_u64(b, 25) as i64,
    })
}

pub(super) fn to_kv(key: &[u8], h: RecordHeader, value: &[u8], keys_only: bool) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: if keys_only {
            Vec::new()
        } else {
            value.to_vec()
        },
        create_revision: h.create as i64,
        mod_revision: h.modr as i64,
        version: h.version as i64,
        lease: h.lease,
    }
}

/// A borrowed key-value from a `current` entry.
pub(crate) fn to_kv_ref<'a, S: NodeSource>(
    src: &'a S,
    key: &'a [u8],
    v: ValueRef<'a>,
) -> Result<KeyValueRef<'a>> {
    let (h, value) = read_record(src, v)?;
    Ok(KeyValueRef {
        key,
        value,
        create_revision: h.create as i64,
        mod_revision: h.modr as i64,
        version: h.version as i64,
        lease: h.lease,
    })
}

/// Reads a record: header and value bytes.
pub(super) fn read_record<'a, S: NodeSource>(
    src: &'a S,
    v: ValueRef<'a>,
) -> Result<(RecordHeader, &'a [u8])> {
    let bytes = src.value_bytes(v)?;
    let h = decode_header(bytes)?;
    Ok((h, &bytes[RECORD_HEADER..]))
}

pub(super) fn history_key(key: &[u8], rev: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 8);
    k.extend_from_slice(key);
    k.extend_from_slice(&rev.to_be_bytes());
    k
}

pub(super) fn log_key(rev: u64, sub: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&rev.to_be_bytes());
    k[8..].copy_from_slice(&sub.to_be_bytes());
    k
}
