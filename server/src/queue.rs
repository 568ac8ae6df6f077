//! The waiting line behind Lock and Election, with etcd's `clientv3/concurrency` layout (the
//! engine's recipes use the same): each contender puts `<name>/<lease id in hex>` with its
//! lease if absent, its place is that key's create revision, and it is first once no key under
//! `<name>/` has a smaller create revision.
//!
//! The engine's `Mutex`/`Election` wait on a blocking thread with no way to abandon the wait
//! when the client goes away; a server must not hold a thread per waiting client. So the
//! waiting here is async: each time the store's revision moves (the server's revision
//! notifier) the contender checks for a predecessor with one short read, and a contender whose
//! client leaves is taken out of the line by a drop guard.

use etch_engine::{
    Compare, CompareOp, KeyValue, PutOp, Range, RangeOptions, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse,
};
use tonic::Status;

use crate::backend::{Backend, BackendResult};
use crate::errors;
use crate::node::Node;

/// The queue prefix for a lock or election name: `name/`, as etcd's `NewMutex`.
pub fn queue_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// A place in a line: the key and its create revision. Dropped without [`Place::keep`], it
/// deletes its key (the contender gave up or its client left).
pub struct Place {
    node: Node,
    /// The contender's key.
    pub key: Vec<u8>,
    /// The key's create revision (the place in line; a fencing token once first).
    pub revision: i64,
    armed: bool,
}

impl Place {
    /// Keeps the key when the place is dropped (the caller now holds the lock or leadership).
    pub fn keep(mut self) -> (Vec<u8>, i64) {
        self.armed = false;
        (std::mem::take(&mut self.key), self.revision)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let backend = self.node.backend().clone();
        let (key, revision) = (self.key.clone(), self.revision);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = delete_if_created_at(&backend, &key, revision).await {
                    tracing::warn!(error = ?e, "could not leave a lock/election line");
                }
            });
        }
    }
}

/// Deletes `key` only if it is still the incarnation created at `revision`.
pub async fn delete_if_created_at(
    backend: &Backend,
    key: &[u8],
    revision: i64,
) -> BackendResult<()> {
    backend
        .txn(
            Txn::new()
                .when([Compare::create_revision(key, CompareOp::Equal, revision)])
                .and_then([TxnOp::delete(Range::key(key))]),
        )
        .await
        .map(|_| ())
}

/// Joins the line under `prefix` with `lease` and `value` and waits to be first.
pub async fn join_and_wait(
    node: &Node,
    prefix: Vec<u8>,
    lease: i64,
    value: Vec<u8>,
) -> Result<Place, Status> {
    let mut key = prefix.clone();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    let put = PutOp {
        key: key.clone(),
        value,
        lease,
        ..Default::default()
    };
    let resp = node
        .backend()
        .txn(
            Txn::new()
                .when([Compare::create_revision(&key, CompareOp::Equal, 0)])
                .and_then([TxnOp::Put(put)])
                .or_else([TxnOp::get(&key)]),
        )
        .await
        .map_err(|e| node.fail(e))?;
    let revision = if resp.succeeded {
        resp.header_revision
    } else {
        match resp.responses.first() {
            Some(TxnOpResponse::Range(r)) => r.kvs.first().map_or(0, |kv| kv.create_revision),
            _ => 0,
        }
    };
    let place = Place {
        node: node.clone(),
        key,
        revision,
        armed: true,
    };
    let mut revisions = node.revisions();
    let mut shutdown = node.shutdown_signal();
    loop {
        revisions.borrow_and_update();
        let state = line_state(node.backend(), &prefix, &place.key, revision)
            .await
            .map_err(|e| node.fail(e))?;
        match state {
            LineState::First => return Ok(place),
            LineState::Gone => return Err(errors::lease_not_found()),
            LineState::Waiting => {}
        }
        tokio::select! {
            changed = revisions.changed() => if changed.is_err() {
                return Err(errors::stopped());
            },
            _ = shutdown.changed() => return Err(errors::stopped()),
        }
    }
}

enum LineState {
    First,
    Waiting,
    /// Our key is gone (its lease expired or was revoked).
    Gone,
}

/// Where the contender with `key` created at `revision` stands. Two reads: first whether any
/// key under `prefix` is older, then whether ours still exists. Older keys only ever go away
/// (new keys are younger), so "none older" still holds when the second read finds our key:
/// both hold at that moment.
async fn line_state(
    backend: &Backend,
    prefix: &[u8],
    key: &[u8],
    revision: i64,
) -> BackendResult<LineState> {
    let before = RangeOptions {
        limit: 1,
        keys_only: true,
        max_create_revision: revision - 1,
        ..Default::default()
    };
    let ahead = backend
        .range(Range::prefix(prefix), before, false)
        .await?
        .kvs;
    let ours = backend.get(key.to_vec()).await?;
    if ours.is_none_or(|kv| kv.create_revision != revision) {
        return Ok(LineState::Gone);
    }
    Ok(if ahead.is_empty() {
        LineState::First
    } else {
        LineState::Waiting
    })
}

/// The revision read at and the oldest key under `prefix` (the holder or leader), if any.
pub async fn front(backend: &Backend, prefix: &[u8]) -> BackendResult<(i64, Option<KeyValue>)> {
    let opts = RangeOptions {
        limit: 1,
        sort_order: SortOrder::Ascend,
        sort_target: SortTarget::Create,
        ..Default::default()
    };
    let resp = backend.range(Range::prefix(prefix), opts, false).await?;
    Ok((resp.header_revision, resp.kvs.into_iter().next()))
}
