//! The write commands a Raft log entry carries: every change to the keyspace, as data.
//!
//! These types are the replicated wire and log form of the engine's write API (`Store::batch`,
//! `txn`, `compact`, `lease_grant`, `lease_revoke`). They mirror the engine's types field for
//! field and convert both ways without loss; the engine's own types stay free of serde. Commands
//! are validated by the engine when applied, not here: a command that the engine refuses is
//! refused identically on every member, which keeps replicas equal.

use etch_engine as engine;
use serde::{Deserialize, Deserializer, Serialize};

/// One replicated change to the keyspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// An atomic batch of puts and range deletes, at one revision (`Store::batch`).
    Batch(Vec<WriteOp>),
    /// A transaction whose compares are evaluated when it is applied (`Store::txn`).
    Txn(Txn),
    /// Compact history up to a revision (`Store::compact`).
    Compact {
        /// The revision.
        revision: i64,
    },
    /// Grant a lease (`Store::lease_grant`). The id is chosen by the proposer, so every member
    /// grants the same one.
    LeaseGrant {
        /// The lease id (non-zero).
        id: i64,
        /// TTL in seconds.
        ttl: i64,
    },
    /// Revoke a lease and delete its keys (`Store::lease_revoke`); also how the leader expires one.
    LeaseRevoke {
        /// The lease id.
        id: i64,
    },
}

/// A key range as etcd's (key, range_end) pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    /// First key.
    pub start: Vec<u8>,
    /// etcd's range_end: empty for the single key `start`, `[0]` for every key from `start`.
    pub end: Vec<u8>,
}

/// A put with etcd's options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Lease to attach (0 for none).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value.
    pub ignore_value: bool,
    /// Keep the current lease.
    pub ignore_lease: bool,
}

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// A put.
    Put(Put),
    /// Delete every key of a range.
    DeleteRange {
        /// The keys.
        range: KeyRange,
        /// Return the deleted key-values.
        prev_kv: bool,
    },
}

/// etcd's transaction: compares, then one of two branches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// All must hold for `success` to run.
    pub compare: Vec<Compare>,
    /// Run when every compare holds.
    pub success: Vec<TxnOp>,
    /// Run otherwise.
    pub failure: Vec<TxnOp>,
}

/// A transaction guard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key or keys compared.
    pub range: KeyRange,
    /// The relation.
    pub op: CompareOp,
    /// The field and operand.
    pub target: CompareTarget,
}

/// A compare's relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// Equal.
    Equal,
    /// Not equal.
    NotEqual,
    /// Less than.
    Less,
    /// Greater than.
    Greater,
}

/// A compare's field and operand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The value.
    Value(Vec<u8>),
    /// The version.
    Version(i64),
    /// The create revision.
    Create(i64),
    /// The mod revision.
    Mod(i64),
    /// The lease id.
    Lease(i64),
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// A put.
    Put(Put),
    /// A range read (its result is part of the transaction's response).
    Range {
        /// The keys.
        range: KeyRange,
        /// etcd's range options.
        options: RangeOptions,
    },
    /// A range delete.
    DeleteRange {
        /// The keys.
        range: KeyRange,
        /// Return the deleted key-values.
        prev_kv: bool,
    },
    /// A nested transaction. Decoding refuses nesting deeper than [`MAX_TXN_DEPTH`].
    Txn(#[serde(deserialize_with = "nested_txn")] Txn),
}

/// How deep transactions may nest in a decoded command: decoding is recursive, and untrusted
/// bytes must not be able to exhaust the stack.
pub const MAX_TXN_DEPTH: usize = 32;

thread_local! {
    static TXN_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Restores the nesting depth when a nested decode ends, by success, error or unwind.
struct DepthGuard;

impl Drop for DepthGuard {
    fn drop(&mut self) {
        TXN_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

fn nested_txn<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Txn, D::Error> {
    let depth = TXN_DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    let _guard = DepthGuard;
    if depth > MAX_TXN_DEPTH {
        return Err(serde::de::Error::custom(format!(
            "transactions nested deeper than {MAX_TXN_DEPTH}"
        )));
    }
    Txn::deserialize(deserializer)
}

/// etcd's range options (see the engine's `RangeOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeOptions {
    /// Most keys returned (0 = no limit).
    pub limit: i64,
    /// Read at this revision (0 = current).
    pub revision: i64,
    /// Sort order: 0 none, 1 ascending, 2 descending.
    pub sort_order: u8,
    /// Sort target: 0 key, 1 version, 2 create, 3 mod, 4 value.
    pub sort_target: u8,
    /// Return keys only.
    pub keys_only: bool,
    /// Return the count only.
    pub count_only: bool,
    /// Filters (0 = none).
    pub min_mod_revision: i64,
    /// Filter.
    pub max_mod_revision: i64,
    /// Filter.
    pub min_create_revision: i64,
    /// Filter.
    pub max_create_revision: i64,
}

impl From<&engine::Range> for KeyRange {
    fn from(r: &engine::Range) -> KeyRange {
        KeyRange {
            start: r.start().to_vec(),
            end: r.end().to_vec(),
        }
    }
}

impl From<&KeyRange> for engine::Range {
    fn from(r: &KeyRange) -> engine::Range {
        engine::Range::from_raw(&r.start, &r.end)
    }
}

impl From<&engine::PutOp> for Put {
    fn from(p: &engine::PutOp) -> Put {
        Put {
            key: p.key.clone(),
            value: p.value.clone(),
            lease: p.lease,
            prev_kv: p.prev_kv,
            ignore_value: p.ignore_value,
            ignore_lease: p.ignore_lease,
        }
    }
}

impl From<&Put> for engine::PutOp {
    fn from(p: &Put) -> engine::PutOp {
        engine::PutOp {
            key: p.key.clone(),
            value: p.value.clone(),
            lease: p.lease,
            prev_kv: p.prev_kv,
            ignore_value: p.ignore_value,
            ignore_lease: p.ignore_lease,
        }
    }
}

impl From<&engine::WriteOp> for WriteOp {
    fn from(op: &engine::WriteOp) -> WriteOp {
        match op {
            engine::WriteOp::Put(p) => WriteOp::Put(p.into()),
            engine::WriteOp::DeleteRange { range, prev_kv } => WriteOp::DeleteRange {
                range: range.into(),
                prev_kv: *prev_kv,
            },
        }
    }
}

impl From<&WriteOp> for engine::WriteOp {
    fn from(op: &WriteOp) -> engine::WriteOp {
        match op {
            WriteOp::Put(p) => engine::WriteOp::Put(p.into()),
            WriteOp::DeleteRange { range, prev_kv } => engine::WriteOp::DeleteRange {
                range: range.into(),
                prev_kv: *prev_kv,
            },
        }
    }
}

impl From<engine::CompareOp> for CompareOp {
    fn from(op: engine::CompareOp) -> CompareOp {
        match op {
            engine::CompareOp::Equal => CompareOp::Equal,
            engine::CompareOp::NotEqual => CompareOp::NotEqual,
            engine::CompareOp::Less => CompareOp::Less,
            engine::CompareOp::Greater => CompareOp::Greater,
        }
    }
}

impl From<CompareOp> for engine::CompareOp {
    fn from(op: CompareOp) -> engine::CompareOp {
        match op {
            CompareOp::Equal => engine::CompareOp::Equal,
            CompareOp::NotEqual => engine::CompareOp::NotEqual,
            CompareOp::Less => engine::CompareOp::Less,
            CompareOp::Greater => engine::CompareOp::Greater,
        }
    }
}

impl From<&engine::CompareTarget> for CompareTarget {
    fn from(t: &engine::CompareTarget) -> CompareTarget {
        match t {
            engine::CompareTarget::Value(v) => CompareTarget::Value(v.clone()),
            engine::CompareTarget::Version(v) => CompareTarget::Version(*v),
            engine::CompareTarget::Create(r) => CompareTarget::Create(*r),
            engine::CompareTarget::Mod(r) => CompareTarget::Mod(*r),
            engine::CompareTarget::Lease(l) => CompareTarget::Lease(*l),
        }
    }
}

impl From<&CompareTarget> for engine::CompareTarget {
    fn from(t: &CompareTarget) -> engine::CompareTarget {
        match t {
            CompareTarget::Value(v) => engine::CompareTarget::Value(v.clone()),
            CompareTarget::Version(v) => engine::CompareTarget::Version(*v),
            CompareTarget::Create(r) => engine::CompareTarget::Create(*r),
            CompareTarget::Mod(r) => engine::CompareTarget::Mod(*r),
            CompareTarget::Lease(l) => engine::CompareTarget::Lease(*l),
        }
    }
}

fn sort_order_code(o: engine::SortOrder) -> u8 {
    match o {
        engine::SortOrder::None => 0,
        engine::SortOrder::Ascend => 1,
        engine::SortOrder::Descend => 2,
    }
}

fn sort_target_code(t: engine::SortTarget) -> u8 {
    match t {
        engine::SortTarget::Key => 0,
        engine::SortTarget::Version => 1,
        engine::SortTarget::Create => 2,
        engine::SortTarget::Mod => 3,
        engine::SortTarget::Value => 4,
    }
}

impl From<&engine::RangeOptions> for RangeOptions {
    fn from(o: &engine::RangeOptions) -> RangeOptions {
        RangeOptions {
            limit: o.limit,
            revision: o.revision,
            sort_order: sort_order_code(o.sort_order),
            sort_target: sort_target_code(o.sort_target),
            keys_only: o.keys_only,
            count_only: o.count_only,
            min_mod_revision: o.min_mod_revision,
            max_mod_revision: o.max_mod_revision,
            min_create_revision: o.min_create_revision,
            max_create_revision: o.max_create_revision,
        }
    }
}

impl TryFrom<&RangeOptions> for engine::RangeOptions {
    type Error = CommandError;

    fn try_from(o: &RangeOptions) -> Result<engine::RangeOptions, CommandError> {
        let sort_order = match o.sort_order {
            0 => engine::SortOrder::None,
            1 => engine::SortOrder::Ascend,
            2 => engine::SortOrder::Descend,
            code => return Err(CommandError::SortOrder(code)),
        };
        let sort_target = match o.sort_target {
            0 => engine::SortTarget::Key,
            1 => engine::SortTarget::Version,
            2 => engine::SortTarget::Create,
            3 => engine::SortTarget::Mod,
            4 => engine::SortTarget::Value,
            code => return Err(CommandError::SortTarget(code)),
        };
        Ok(engine::RangeOptions {
            limit: o.limit,
            revision: o.revision,
            sort_order,
            sort_target,
            keys_only: o.keys_only,
            count_only: o.count_only,
            min_mod_revision: o.min_mod_revision,
            max_mod_revision: o.max_mod_revision,
            min_create_revision: o.min_create_revision,
            max_create_revision: o.max_create_revision,
        })
    }
}

impl From<&engine::Txn> for Txn {
    fn from(t: &engine::Txn) -> Txn {
        let ops = |ops: &[engine::TxnOp]| ops.iter().map(TxnOp::from).collect();
        Txn {
            compare: t
                .compare
                .iter()
                .map(|c| Compare {
                    range: (&c.range).into(),
                    op: c.op.into(),
                    target: (&c.target).into(),
                })
                .collect(),
            success: ops(&t.success),
            failure: ops(&t.failure),
        }
    }
}

impl From<&engine::TxnOp> for TxnOp {
    fn from(op: &engine::TxnOp) -> TxnOp {
        match op {
            engine::TxnOp::Put(p) => TxnOp::Put(p.into()),
            engine::TxnOp::Range { range, options } => TxnOp::Range {
                range: range.into(),
                options: options.into(),
            },
            engine::TxnOp::DeleteRange { range, prev_kv } => TxnOp::DeleteRange {
                range: range.into(),
                prev_kv: *prev_kv,
            },
            engine::TxnOp::Txn(t) => TxnOp::Txn(t.into()),
        }
    }
}

impl TryFrom<&Txn> for engine::Txn {
    type Error = CommandError;

    fn try_from(t: &Txn) -> Result<engine::Txn, CommandError> {
        let ops = |ops: &[TxnOp]| {
            ops.iter()
                .map(engine::TxnOp::try_from)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(engine::Txn {
            compare: t
                .compare
                .iter()
                .map(|c| engine::Compare {
                    range: (&c.range).into(),
                    op: c.op.into(),
                    target: (&c.target).into(),
                })
                .collect(),
            success: ops(&t.success)?,
            failure: ops(&t.failure)?,
        })
    }
}

impl TryFrom<&TxnOp> for engine::TxnOp {
    type Error = CommandError;

    fn try_from(op: &TxnOp) -> Result<engine::TxnOp, CommandError> {
        Ok(match op {
            TxnOp::Put(p) => engine::TxnOp::Put(p.into()),
            TxnOp::Range { range, options } => engine::TxnOp::Range {
                range: range.into(),
                options: options.try_into()?,
            },
            TxnOp::DeleteRange { range, prev_kv } => engine::TxnOp::DeleteRange {
                range: range.into(),
                prev_kv: *prev_kv,
            },
            TxnOp::Txn(t) => engine::TxnOp::Txn(t.try_into()?),
        })
    }
}

impl From<&engine::Command> for Command {
    /// The wire form of an engine command. `engine::Command::Noop` has no wire form of its own:
    /// blank entries are openraft's `EntryPayload::Blank`, so it maps to an empty batch.
    fn from(c: &engine::Command) -> Command {
        match c {
            engine::Command::Batch(ops) => Command::Batch(ops.iter().map(WriteOp::from).collect()),
            engine::Command::Txn(t) => Command::Txn(t.into()),
            engine::Command::Compact(r) => Command::Compact { revision: *r },
            engine::Command::LeaseGrant { id, ttl } => Command::LeaseGrant { id: *id, ttl: *ttl },
            engine::Command::LeaseRevoke { id } => Command::LeaseRevoke { id: *id },
            engine::Command::Noop => Command::Batch(Vec::new()),
        }
    }
}

impl TryFrom<&Command> for engine::Command {
    type Error = CommandError;

    /// The engine command a replicated entry applies as.
    fn try_from(c: &Command) -> Result<engine::Command, CommandError> {
        Ok(match c {
            Command::Batch(ops) => {
                engine::Command::Batch(ops.iter().map(engine::WriteOp::from).collect())
            }
            Command::Txn(t) => engine::Command::Txn(t.try_into()?),
            Command::Compact { revision } => engine::Command::Compact(*revision),
            Command::LeaseGrant { id, ttl } => engine::Command::LeaseGrant { id: *id, ttl: *ttl },
            Command::LeaseRevoke { id } => engine::Command::LeaseRevoke { id: *id },
        })
    }
}

/// A decoded command that names something the engine has no value for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// An unknown sort-order code.
    SortOrder(u8),
    /// An unknown sort-target code.
    SortTarget(u8),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::SortOrder(c) => write!(f, "unknown sort order code {c}"),
            CommandError::SortTarget(c) => write!(f, "unknown sort target code {c}"),
        }
    }
}

impl std::error::Error for CommandError {}
