//! The state machine's input: every change to the keyspace as a [`Command`], and the one function
//! that applies a command to the trees.
//!
//! Local commits, WAL replay and [`Store::apply`](crate::Store::apply) (the entry point of
//! replicated commits) all apply through [`apply`], so a command has the same effect whichever
//! way it arrives. What is *not* in here is admission: validation of sizes and limits, the
//! quota, and choosing a random lease id happen before a command is built
//! ([`Store::admit`](crate::Store::admit) offers those checks to a proposer), because a replica
//! must never refuse, or decide differently, what the proposer accepted.

use std::borrow::Cow;

use crate::error::Error;
use crate::keyspace::{self, KsState};
use crate::pager::Pager;
use crate::record::{self, Payload};
use crate::store::LeaseGrant;
use crate::txn::{Txn, TxnResponse};
use crate::types::{BatchResponse, Revision, WriteOp};

/// One change to the keyspace, as the state machine applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Puts and range deletes at one revision ([`Store::batch`](crate::Store::batch)).
    Batch(Vec<WriteOp>),
    /// A transaction; its compares are evaluated when it is applied, as etcd does.
    Txn(Txn),
    /// Compact history up to a revision.
    Compact(Revision),
    /// Grant a lease with a given (non-zero) id and TTL in seconds.
    LeaseGrant {
        /// The lease id.
        id: i64,
        /// TTL in seconds.
        ttl: i64,
    },
    /// Revoke a lease, deleting its keys at one revision.
    LeaseRevoke {
        /// The lease id.
        id: i64,
    },
    /// Nothing: a log position that changes no key (a Raft blank or membership entry).
    Noop,
}

/// What applying a [`Command`] returned, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandResponse {
    /// Answer to [`Command::Batch`].
    Batch(BatchResponse),
    /// Answer to [`Command::Txn`].
    Txn(TxnResponse),
    /// Answer to [`Command::Compact`]: the store's revision.
    Compact(Revision),
    /// Answer to [`Command::LeaseGrant`].
    LeaseGrant(LeaseGrant),
    /// Answer to [`Command::LeaseRevoke`]: the revision after the deletes.
    LeaseRevoke(Revision),
    /// Answer to [`Command::Noop`].
    Noop,
}

/// Why a command was not applied.
pub(crate) enum ApplyError {
    /// Refused before anything changed (a missing lease, a compacted revision, ...): the trees
    /// are as they were.
    Refused(Error),
    /// Failed while changing the trees: the working state may be half-changed and must be
    /// thrown away (the writer is poisoned).
    Failed(Error),
}

/// The result of applying a command: its response, and the WAL record that reproduces it when
/// replayed (`None` if nothing changed).
pub(crate) struct Applied<'c> {
    pub(crate) response: CommandResponse,
    pub(crate) record: Option<Payload<'c>>,
}

/// Where a command being applied comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Applied for the first time (a local commit or a replicated entry).
    New,
    /// Replayed from a WAL record. A write record holds writes that were checked when first
    /// applied; a transaction's record may even hold writes that only make sense in order (a put
    /// with `ignore_value` of a key the same transaction created), which the batch precheck,
    /// reading the state before the batch, would refuse. So replay skips the precheck.
    Replay,
}

/// Applies `command` to the working trees. The caller has numbered the commit (`pager.seq`).
pub(crate) fn apply<'c>(
    pager: &mut Pager,
    st: &mut KsState,
    command: &'c Command,
    origin: Origin,
) -> std::result::Result<Applied<'c>, ApplyError> {
    use ApplyError::{Failed, Refused};
    match command {
        Command::Batch(ops) => {
            if origin == Origin::New {
                keyspace::precheck(&*pager, st, ops).map_err(Refused)?;
            }
            let before = st.revision;
            let response = keyspace::apply(pager, st, ops).map_err(Failed)?;
            let record = (st.revision != before).then_some(Payload::Write {
                revision: st.revision,
                ops: Cow::Borrowed(ops),
            });
            Ok(Applied {
                response: CommandResponse::Batch(response),
                record,
            })
        }
        Command::Txn(txn) => {
            let plan = crate::txn::plan(&*pager, st, txn).map_err(Refused)?;
            let before = st.revision;
            let mut log = Vec::new();
            let mut applier = keyspace::Applier::new(st);
            let mut response = crate::txn::execute(pager, st, &mut applier, txn, &plan, &mut log)
                .map_err(Failed)?;
            applier.finish(st);
            crate::txn::stamp(&mut response, st.revision as i64);
            let record = (st.revision != before).then_some(Payload::Write {
                revision: st.revision,
                ops: Cow::Owned(log),
            });
            Ok(Applied {
                response: CommandResponse::Txn(response),
                record,
            })
        }
        Command::Compact(revision) => {
            let (current, compacted) = (st.revision as i64, st.compact_revision as i64);
            if *revision <= compacted {
                return Err(Refused(Error::Compacted {
                    requested: *revision,
                    compacted,
                }));
            }
            if *revision > current {
                return Err(Refused(Error::FutureRevision {
                    requested: *revision,
                    current,
                }));
            }
            let target = *revision as u64;
            // The decision only: the physical work follows in local steps (see
            // `keyspace/compact.rs`), invisible to every read.
            keyspace::compact(st, target);
            Ok(Applied {
                response: CommandResponse::Compact(current),
                record: Some(Payload::Encoded(record::encode_compact(target))),
            })
        }
        Command::LeaseGrant { id, ttl } => {
            if *id <= 0 {
                return Err(Refused(Error::InvalidOption(format!(
                    "lease id {id} is not positive"
                ))));
            }
            if keyspace::lease_ttl(&*pager, st, *id)
                .map_err(Refused)?
                .is_some()
            {
                return Err(Refused(Error::LeaseExists { id: *id }));
            }
            keyspace::lease_grant(pager, st, *id, *ttl).map_err(Failed)?;
            Ok(Applied {
                response: CommandResponse::LeaseGrant(LeaseGrant { id: *id, ttl: *ttl }),
                record: Some(Payload::Encoded(record::encode_lease_grant(*id, *ttl))),
            })
        }
        Command::LeaseRevoke { id } => {
            if keyspace::lease_ttl(&*pager, st, *id)
                .map_err(Refused)?
                .is_none()
            {
                return Err(Refused(Error::LeaseNotFound { id: *id }));
            }
            keyspace::lease_revoke(pager, st, *id).map_err(Failed)?;
            Ok(Applied {
                response: CommandResponse::LeaseRevoke(st.revision as i64),
                record: Some(Payload::Encoded(record::encode_lease_revoke(*id))),
            })
        }
        Command::Noop => Ok(Applied {
            response: CommandResponse::Noop,
            record: None,
        }),
    }
}

/// The command a decoded WAL record replays as, with the revision a write record must create.
pub(crate) fn from_record(r: record::Record) -> (Command, Option<u64>) {
    match r {
        record::Record::Write { revision, ops } => (Command::Batch(ops), Some(revision)),
        record::Record::Compact { revision } => (Command::Compact(revision as i64), None),
        record::Record::LeaseGrant { id, ttl } => (Command::LeaseGrant { id, ttl }, None),
        record::Record::LeaseRevoke { id } => (Command::LeaseRevoke { id }, None),
        record::Record::Noop => (Command::Noop, None),
    }
}
