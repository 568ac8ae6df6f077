//! The logical WAL record: the operations of one commit, not page images.
//!
//! Payload layout (version 1, little-endian):
//!
//! ```text
//! u8  record version (1)
//! u64 revision the commit creates (replay checks it equals current + 1)
//! u32 number of operations, then per operation:
//!     u8 tag 1 = put:    u8 flags (1 = ignore_value, 2 = ignore_lease) | i64 lease
//!                        | u32 key length | key | u32 value length | value
//!     u8 tag 2 = delete: u32 start length | start | u32 end length | end (etcd's range_end)
//! ```
//!
//! Records that are not write batches start with their own first byte: a compaction
//! `u8 2 | u64 compact revision`; a lease grant `u8 3 | i64 id | i64 ttl`; a lease revocation
//! `u8 4 | i64 id`.
//!
//! Replaying the operations against the checkpointed tree reproduces the commit exactly, because
//! applying a batch is a deterministic function of the tree and the operations. The same record
//! will be a Raft log entry's payload.

use crate::error::{Error, Result};
use crate::types::{PutOp, Range, WriteOp};

const RECORD_VERSION: u8 = 1;
const RECORD_COMPACT: u8 = 2;
const RECORD_LEASE_GRANT: u8 = 3;
const RECORD_LEASE_REVOKE: u8 = 4;
const RECORD_NOOP: u8 = 5;

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Writes creating `revision`.
    Write { revision: u64, ops: Vec<WriteOp> },
    /// Compaction of history up to `revision`.
    Compact { revision: u64 },
    /// A lease granted.
    LeaseGrant { id: i64, ttl: i64 },
    /// A lease revoked (or expired): its keys deleted at one revision.
    LeaseRevoke { id: i64 },
    /// A log position that changed nothing (an applied command that was refused or had no
    /// effect): it keeps sequence numbers consecutive when they are Raft indexes.
    Noop,
}

/// Encodes a no-op record.
pub(crate) fn encode_noop() -> Vec<u8> {
    vec![RECORD_NOOP]
}

/// Encodes a lease grant.
pub(crate) fn encode_lease_grant(id: i64, ttl: i64) -> Vec<u8> {
    let mut out = vec![RECORD_LEASE_GRANT];
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&ttl.to_le_bytes());
    out
}

/// Encodes a lease revocation.
pub(crate) fn encode_lease_revoke(id: i64) -> Vec<u8> {
    let mut out = vec![RECORD_LEASE_REVOKE];
    out.extend_from_slice(&id.to_le_bytes());
    out
}

/// Encodes a compaction record.
pub(crate) fn encode_compact(revision: u64) -> Vec<u8> {
    let mut out = vec![RECORD_COMPACT];
    out.extend_from_slice(&revision.to_le_bytes());
    out
}
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// A commit's WAL record, encoded or (a write) still to encode: a write too large for the WAL
/// is made durable by a checkpoint and never encoded (a bulk load's record would double its
/// memory).
pub(crate) enum Payload<'a> {
    /// Already encoded (compaction, lease records).
    Encoded(Vec<u8>),
    /// A write of `ops` creating `revision` (a transaction's writes are collected, hence owned).
    Write {
        revision: u64,
        ops: std::borrow::Cow<'a, [WriteOp]>,
    },
}

impl Payload<'_> {
    /// Bytes of the encoded record.
    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            Payload::Encoded(b) => b.len(),
            Payload::Write { ops, .. } => encoded_len(ops),
        }
    }

    /// The encoded record.
    pub(crate) fn encode(self) -> Vec<u8> {
        match self {
            Payload::Encoded(b) => b,
            Payload::Write { revision, ops } => encode(revision, &ops),
        }
    }
}

/// Bytes [`encode`] produces for `ops`, without encoding them.
pub(crate) fn encoded_len(ops: &[WriteOp]) -> usize {
    13 + ops.iter().map(op_size).sum::<usize>()
}

/// Encodes a batch committed at `revision`.
pub(crate) fn encode(revision: u64, ops: &[WriteOp]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(ops));
    out.push(RECORD_VERSION);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        match op {
            WriteOp::Put(p) => {
                out.push(TAG_PUT);
                out.push(u8::from(p.ignore_value) | (u8::from(p.ignore_lease) << 1));
                out.extend_from_slice(&p.lease.to_le_bytes());
                put_bytes(&mut out, &p.key);
                put_bytes(&mut out, &p.value);
            }
            WriteOp::DeleteRange { range, .. } => {
                out.push(TAG_DELETE);
                put_bytes(&mut out, &range.start);
                put_bytes(&mut out, &range.end);
            }
        }
    }
    out
}

fn op_size(op: &WriteOp) -> usize {
    match op {
        WriteOp::Put(p) => 18 + p.key.len() + p.value.len(),
        WriteOp::DeleteRange { range, .. } => 9 + range.start.len() + range.end.len(),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| Error::corrupt("WAL record is truncated"))?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(crate::page::get_u32(self.take(4)?, 0))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(crate::page::get_u64(self.take(8)?, 0))
    }
    fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

/// Decodes a record.
pub(crate) fn decode(payload: &[u8]) -> Result<Record> {
    let mut r = Reader { b: payload, at: 0 };
    let version = r.u8()?;
    let small = match version {
        RECORD_COMPACT => Some(Record::Compact { revision: r.u64()? }),
        RECORD_LEASE_GRANT => Some(Record::LeaseGrant {
            id: r.u64()? as i64,
            ttl: r.u64()? as i64,
        }),
        RECORD_LEASE_REVOKE => Some(Record::LeaseRevoke {
            id: r.u64()? as i64,
        }),
        RECORD_NOOP => Some(Record::Noop),
        _ => None,
    };
    if let Some(record) = small {
        if r.at != payload.len() {
            return Err(Error::corrupt("WAL record has trailing bytes"));
        }
        return Ok(record);
    }
    if version != RECORD_VERSION {
        return Err(Error::corrupt(format!(
            "WAL record version {version} is unknown"
        )));
    }
    let revision = r.u64()?;
    let count = r.u32()? as usize;
    let mut ops = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        match r.u8()? {
            TAG_PUT => {
                let flags = r.u8()?;
                let lease = r.u64()? as i64;
                let key = r.bytes()?;
                let value = r.bytes()?;
                ops.push(WriteOp::Put(PutOp {
                    key,
                    value,
                    lease,
                    prev_kv: false,
                    ignore_value: flags & 1 != 0,
                    ignore_lease: flags & 2 != 0,
                }));
            }
            TAG_DELETE => {
                let start = r.bytes()?;
                let end = r.bytes()?;
                ops.push(WriteOp::DeleteRange {
                    range: Range::from_raw(start, end),
                    prev_kv: false,
                });
            }
            t => {
                return Err(Error::corrupt(format!(
                    "WAL record has unknown operation tag {t}"
                )))
            }
        }
    }
    if r.at != payload.len() {
        return Err(Error::corrupt("WAL record has trailing bytes"));
    }
    Ok(Record::Write { revision, ops })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ops = vec![
            WriteOp::Put(PutOp {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
                lease: 7,
                ignore_lease: true,
                ..Default::default()
            }),
            WriteOp::DeleteRange {
                range: Range::prefix("p/"),
                prev_kv: true,
            },
        ];
        let Record::Write {
            revision: rev,
            ops: back,
        } = decode(&encode(42, &ops)).unwrap()
        else {
            panic!("not a write record")
        };
        assert_eq!(rev, 42);
        assert_eq!(encoded_len(&ops), encode(42, &ops).len());
        assert_eq!(encoded_len(&[]), encode(1, &[]).len());
        assert_eq!(back[0], ops[0]);
        assert_eq!(
            back[1],
            WriteOp::DeleteRange {
                range: Range::prefix("p/"),
                prev_kv: false
            }
        );
        assert!(decode(&encode(42, &ops)[..10]).is_err());
        assert_eq!(
            decode(&encode_compact(9)).unwrap(),
            Record::Compact { revision: 9 }
        );
        assert_eq!(decode(&encode_noop()).unwrap(), Record::Noop);
        assert!(decode(&[RECORD_NOOP, 0]).is_err(), "a no-op has no body");
    }
}
