//! Optimistic read-write transactions (etcd's STM idea), in the host language.
//!
//! [`Store::write`] runs a closure against a snapshot. Reads go through the [`WriteTxn`], which
//! remembers the mod revision of every key it read (0 for an absent key) and every range it
//! scanned; writes are buffered. At the end everything commits as one [`Txn`] guarded by those
//! observations: each key read must still have the mod revision seen, and no key in a scanned
//! range may have changed since the snapshot (which also catches keys inserted into it). If a
//! concurrent writer got there first, the closure runs again on a fresh snapshot, up to
//! `Options::write_attempts` times. Because the guard is an ordinary transaction, this works
//! unchanged over replication. [`Store::begin_write`] and [`WriteTxn::commit`] are the same
//! protocol one attempt at a time, for callers that cannot pass a closure (bindings).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::keyspace;
use crate::snapshot::ReadTxn;
use crate::store::Store;
use crate::txn::{Compare, CompareOp, Txn, TxnOp};
use crate::types::{KeyValue, PutOp, Range, RangeOptions, RangeResponse, Revision};

/// The view a [`Store::write`] closure works with, or one attempt from [`Store::begin_write`].
pub struct WriteTxn {
    store: Store,
    snapshot: ReadTxn,
    /// Keys read, with the mod revision seen (0 = absent).
    read_keys: BTreeMap<Vec<u8>, Revision>,
    /// Ranges scanned.
    read_ranges: Vec<Range>,
    /// Buffered writes by key: `Some(value)` put, `None` delete.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl WriteTxn {
    fn new(store: &Store) -> Result<WriteTxn> {
        Ok(WriteTxn {
            store: store.clone(),
            snapshot: store.read()?,
            read_keys: BTreeMap::new(),
            read_ranges: Vec::new(),
            writes: BTreeMap::new(),
        })
    }

    /// Applies the buffered writes at one revision if nothing this attempt read has changed
    /// since its snapshot.
    ///
    /// `Ok(Some(revision))`: committed, and `revision` is the one the writes were made at (the
    /// store's revision right after them). With nothing to write there is no new revision: it
    /// is the snapshot's, at which everything read was consistent by construction.
    /// `Ok(None)`: a concurrent writer got there first and nothing was written, so begin a new
    /// attempt.
    pub fn commit(self) -> Result<Option<Revision>> {
        if self.writes.is_empty() {
            return Ok(Some(self.revision()));
        }
        let store = self.store.clone();
        let limits = store.unbounded_op_limits();
        let resp = store.txn_with_limits(self.guarded_txn(), &limits)?;
        Ok(resp.succeeded.then_some(resp.header_revision))
    }

    /// Revision of the snapshot this attempt reads.
    pub fn revision(&self) -> Revision {
        self.snapshot.revision()
    }

    /// Reads a key. A key this transaction wrote reads back its new value (with zero
    /// revisions and version, since it has none yet) or `None` if it deleted it. A key no put
    /// could write is refused as [`Store::get`] refuses it: [`Error::EmptyKey`] or
    /// [`Error::KeyTooLarge`].
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        let key = key.as_ref();
        keyspace::check_key(key, &self.store.unbounded_op_limits())?;
        if let Some(w) = self.writes.get(key) {
            return Ok(w.as_ref().map(|v| KeyValue {
                key: key.to_vec(),
                value: v.clone(),
                ..Default::default()
            }));
        }
        let kv = self.snapshot.get(key)?;
        self.read_keys
            .entry(key.to_vec())
            .or_insert(kv.as_ref().map_or(0, |kv| kv.mod_revision));
        Ok(kv)
    }

    /// Reads the keys of a range as of the snapshot (this transaction's own writes are not
    /// merged in). Any change to the range before commit makes the attempt retry. An empty
    /// start key is [`Error::EmptyKey`] (every key is [`Range::all`]).
    pub fn range(&mut self, range: Range) -> Result<RangeResponse> {
        if range.start().is_empty() {
            return Err(Error::EmptyKey);
        }
        let resp = self.snapshot.range_with(&range, &RangeOptions::default())?;
        // The range compare catches keys changed or inserted since the snapshot; a compare per
        // key returned catches keys deleted since.
        for kv in &resp.kvs {
            self.read_keys
                .entry(kv.key.clone())
                .or_insert(kv.mod_revision);
        }
        self.read_ranges.push(range);
        Ok(resp)
    }

    /// Buffers a put.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.writes
            .insert(key.as_ref().to_vec(), Some(value.as_ref().to_vec()));
    }

    /// Buffers the deletion of one key.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.writes.insert(key.as_ref().to_vec(), None);
    }

    /// This attempt as the guarded transaction [`WriteTxn::commit`] would run, for a caller
    /// that commits it some other way (a replicated store proposes it through Raft): its
    /// compares are this attempt's observations, its success branch the buffered writes, its
    /// failure branch empty. A response with `succeeded == false` means a concurrent writer got
    /// there first: begin a new attempt. `None` when nothing was written (there is nothing to
    /// commit; the result holds at [`WriteTxn::revision`]). The transaction may hold more
    /// operations than `Options::max_txn_ops` allows a caller's own transaction.
    pub fn into_guarded_txn(self) -> Option<Txn> {
        (!self.writes.is_empty()).then(|| self.guarded_txn())
    }

    fn guarded_txn(self) -> Txn {
        guarded_txn(
            self.snapshot.revision(),
            self.read_keys,
            self.read_ranges,
            self.writes,
        )
    }
}

/// The guarded transaction that commits an optimistic attempt made on a snapshot at
/// `revision`: one compare per key read (its mod revision is still the one seen; 0 for a key
/// that was absent), one per range read (no key in it was changed after `revision`, which
/// also catches keys inserted into it), the buffered writes (a value puts, `None` deletes) as
/// the success branch, and no failure branch. [`WriteTxn`] commits this way; so do the
/// bindings' attempts over a remote backend, which read through its calls instead of a
/// snapshot.
pub fn guarded_txn(
    revision: Revision,
    read_keys: BTreeMap<Vec<u8>, Revision>,
    read_ranges: Vec<Range>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Txn {
    let next = revision + 1;
    let mut compare: Vec<Compare> = read_keys
        .into_iter()
        .map(|(k, rev)| Compare::mod_revision(k, CompareOp::Equal, rev))
        .collect();
    compare.extend(
        read_ranges
            .into_iter()
            .map(|r| Compare::mod_revision(b"\0", CompareOp::Less, next).over(r)),
    );
    let success = writes
        .into_iter()
        .map(|(k, w)| match w {
            Some(value) => TxnOp::Put(PutOp {
                key: k,
                value,
                ..Default::default()
            }),
            None => TxnOp::delete(Range::key(k)),
        })
        .collect();
    Txn {
        compare,
        success,
        failure: Vec::new(),
    }
}

impl Store {
    /// Runs `f` as an optimistic read-write transaction: reads through the [`WriteTxn`] are
    /// validated at commit, writes are applied atomically at one revision, and on a conflict
    /// with a concurrent writer `f` runs again on a fresh snapshot (so it must not have other
    /// side effects). Returns `f`'s result with the revision the writes were committed at (the
    /// snapshot's revision if `f` wrote nothing; see [`WriteTxn::commit`]), or
    /// [`Error::Conflict`] after the configured number of attempts; an error from `f` aborts
    /// without writing.
    ///
    /// ```no_run
    /// let db = etch_engine::Store::open("app.etch")?;
    /// // Move 10 from a to b, atomically with respect to every other writer.
    /// let ((), revision) = db.write(|tx| {
    ///     let a: i64 = tx.get("a")?.map_or(0, |kv| String::from_utf8_lossy(&kv.value).parse().unwrap_or(0));
    ///     let b: i64 = tx.get("b")?.map_or(0, |kv| String::from_utf8_lossy(&kv.value).parse().unwrap_or(0));
    ///     tx.put("a", (a - 10).to_string());
    ///     tx.put("b", (b + 10).to_string());
    ///     Ok(())
    /// })?;
    /// assert_eq!(db.get("a")?.unwrap().mod_revision, revision);
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn write<T>(&self, mut f: impl FnMut(&mut WriteTxn) -> Result<T>) -> Result<(T, Revision)> {
        let attempts = self.write_attempts();
        for _ in 0..attempts {
            let mut tx = self.begin_write()?;
            let out = f(&mut tx)?;
            if let Some(revision) = tx.commit()? {
                return Ok((out, revision));
            }
        }
        Err(Error::Conflict { attempts })
    }

    /// Starts one attempt of an optimistic read-write transaction on a fresh snapshot: read and
    /// buffer writes through it, then [`WriteTxn::commit`], and begin again if that reports a
    /// conflict. [`Store::write`] does this loop for a closure.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let db = etch_engine::Store::open(dir.path().join("doc.etch"))?;
    /// loop {
    ///     let mut tx = db.begin_write()?;
    ///     let n = tx.get("n")?.map_or(0, |kv| kv.value.len());
    ///     tx.put("n", vec![b'x'; n + 1]);
    ///     if let Some(revision) = tx.commit()? {
    ///         assert_eq!(db.get("n")?.unwrap().mod_revision, revision);
    ///         break;
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn begin_write(&self) -> Result<WriteTxn> {
        WriteTxn::new(self)
    }

    /// How many attempts [`Store::write`] makes before it gives up with [`Error::Conflict`]
    /// (`Options::write_attempts`).
    pub fn write_attempt_limit(&self) -> u32 {
        self.write_attempts()
    }
}
