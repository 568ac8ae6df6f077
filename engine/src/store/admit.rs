//! Admission: the checks a write passes before it is committed, offered on their own so that a
//! replicated store can make them where a command is proposed, before it costs a log entry.
//!
//! [`Store::admit`] makes exactly the static checks this store's own write methods make (key
//! emptiness and size, request size, operation counts, duplicate keys, the `ignore_value` /
//! `ignore_lease` rules, one transaction branch writing a key twice, the lease TTL range) with
//! the same errors, plus the space quota. What needs the trees (a key must exist for
//! `ignore_value`, a lease must exist, a transaction's compares) is decided when the command is
//! applied, identically on every member.

use super::Store;
use crate::command::Command;
use crate::error::{Error, Result};
use crate::txn::{Txn, TxnOp};
use crate::types::WriteOp;

impl Store {
    /// Refuses `command` with the error this store's own write method would give before
    /// committing it, or with [`Error::QuotaExceeded`] when it adds data and this store's file
    /// is past `Options::quota_bytes` (deletes, compaction and leases are never refused for
    /// space: they are how space is won back). `Ok` does not promise the command will succeed
    /// when applied: checks that need the trees are made then.
    pub fn admit(&self, command: &Command) -> Result<()> {
        self.admit_within(command, &self.shared.limits)
    }

    /// [`Store::admit`] without the limit on the number of operations: for the guarded
    /// transaction of an optimistic write ([`crate::WriteTxn::into_guarded_txn`]), which holds a
    /// compare per key read, as [`Store::write`] itself allows.
    pub fn admit_unbounded(&self, command: &Command) -> Result<()> {
        self.admit_within(command, &self.unbounded_op_limits())
    }

    fn admit_within(&self, command: &Command, limits: &crate::keyspace::Limits) -> Result<()> {
        self.check_open()?;
        match command {
            Command::Batch(ops) => crate::keyspace::validate(ops, limits)?,
            Command::Txn(txn) => crate::txn::validate(txn, limits)?,
            Command::LeaseGrant { id, ttl } => {
                if !(1..=9_000_000_000).contains(ttl) {
                    return Err(Error::InvalidOption(format!(
                        "lease TTL {ttl} is not between 1 and 9000000000 seconds"
                    )));
                }
                // A proposed grant carries the id it will have: the proposer picks one for 0.
                if *id <= 0 {
                    return Err(Error::InvalidOption(format!(
                        "lease id {id} is not positive"
                    )));
                }
            }
            Command::Compact(_) | Command::LeaseRevoke { .. } | Command::Noop => {}
        }
        if adds_data(command) {
            self.check_quota_now()?;
        }
        Ok(())
    }

    /// The quota check of the local write path, against the published state.
    fn check_quota_now(&self) -> Result<()> {
        let Some(quota) = self.shared.opts.quota_bytes else {
            return Ok(());
        };
        let used = self.status()?.size_in_use;
        if used > quota {
            return Err(Error::QuotaExceeded { used, quota });
        }
        Ok(())
    }
}

/// Whether `command` puts a key (alone or in any branch of a transaction): what the quota
/// refuses.
fn adds_data(command: &Command) -> bool {
    fn txn_puts(txn: &Txn) -> bool {
        txn.success.iter().chain(&txn.failure).any(|op| match op {
            TxnOp::Put(_) => true,
            TxnOp::Txn(inner) => txn_puts(inner),
            _ => false,
        })
    }
    match command {
        Command::Batch(ops) => ops.iter().any(|op| matches!(op, WriteOp::Put(_))),
        Command::Txn(txn) => txn_puts(txn),
        _ => false,
    }
}
