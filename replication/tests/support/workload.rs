//! The client workload of the history simulations (sim_history, sim_power): one client's
//! operation per step on keys `k0`..`k2`, puts, linearizable gets, prefix deletes,
//! compare-and-put transactions and lease grants, lease puts, keep-alives and revocations,
//! chosen by (client, step, seed), with the checker's request and response for each.

use etch_engine::{
    Compare as EngineCompare, CompareOp, CompareTarget, PutOp, Range, RangeOptions, Txn, TxnOp,
    TxnOpResponse,
};
use etch_replication::check::{Compare, KeyValue, Outcome, Request, Response};
use etch_replication::{Error, ReadConsistency, ReplicatedStore};

/// The checker's form of an engine key-value.
pub fn kv(k: &etch_engine::KeyValue) -> KeyValue {
    KeyValue {
        value: k.value.clone(),
        create_revision: k.create_revision as u64,
        mod_revision: k.mod_revision as u64,
        version: k.version as u64,
    }
}

/// A lease's TTL in the history runs: far longer than a run, so no lease expires by time.
pub const LEASE_TTL: i64 = 600;

/// The lease a client works with: ids are the client's own, never reused.
#[derive(Default)]
pub struct ClientLease {
    /// The lease granted last (maybe with a lost answer), until the client revokes it.
    pub current: Option<i64>,
    /// Grants so far.
    pub grants: i64,
}

impl ClientLease {
    /// The current lease, or `None` with a grant request to make first.
    pub fn current_or_grant(&mut self, client: u64) -> Result<i64, i64> {
        match self.current {
            Some(id) => Ok(id),
            None => {
                self.grants += 1;
                let id = (client as i64 + 1) * 1_000 + self.grants;
                self.current = Some(id);
                Err(id)
            }
        }
    }
}

/// A lease request's result as the checker's response: "lease not found" is an answer.
pub fn lease_answer<T>(
    r: Result<T, Error>,
    ok: impl FnOnce(T) -> Response,
) -> Result<Response, Error> {
    match r {
        Ok(v) => Ok(ok(v)),
        Err(Error::Store(etch_engine::Error::LeaseNotFound { .. })) => Ok(Response::LeaseNotFound),
        Err(e) => Err(e),
    }
}

/// A lease operation of `client` against `m`: grant when it has no lease, else (by `kind`) a
/// put attached to it, a keep-alive, or a revocation. Returns the request, the result and the
/// revision a put created.
pub async fn lease_operate(
    m: &ReplicatedStore,
    lease: &mut ClientLease,
    client: u64,
    kind: u64,
    key: &str,
    value: &str,
) -> (Request, Result<Response, Error>, u64) {
    let id = match lease.current_or_grant(client) {
        Ok(id) => id,
        Err(id) => {
            let r = m
                .lease_grant(LEASE_TTL, id)
                .await
                .map(|_| Response::LeaseGrant);
            return (Request::LeaseGrant { lease: id }, r, 0);
        }
    };
    match kind {
        5 => {
            let op = PutOp {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                lease: id,
                ..Default::default()
            };
            let mut written = 0;
            let r = lease_answer(m.put_with(op).await, |p| {
                written = p.header_revision as u64;
                Response::Put {
                    revision: p.header_revision as u64,
                }
            });
            let request = Request::LeasePut {
                key: key.into(),
                value: value.into(),
                lease: id,
            };
            (request, r, written)
        }
        6 => {
            let r = lease_answer(m.lease_keep_alive(id).await, |_| Response::LeaseKeepAlive);
            (Request::LeaseKeepAlive { lease: id }, r, 0)
        }
        _ => {
            lease.current = None;
            let r = lease_answer(m.lease_revoke(id).await, |rev| Response::LeaseRevoke {
                revision: rev as u64,
            });
            (Request::LeaseRevoke { lease: id }, r, 0)
        }
    }
}

/// One client operation against `m`: returns the request, its outcome and the revision a
/// write created (0 for none). An error for which `unknown` holds leaves the outcome open (the
/// request may or may not have taken effect); any other error fails the test.
pub async fn operate(
    m: &ReplicatedStore,
    unknown: fn(&Error) -> bool,
    lease: &mut ClientLease,
    client: u64,
    step: u64,
    seed: u64,
    start: tokio::time::Instant,
) -> (Request, Outcome, u64) {
    let key = format!("k{}", (client + step * 7 + seed) % 3);
    let at = |t: tokio::time::Instant| t.duration_since(start).as_nanos() as u64;
    let value = format!("c{client}s{step}");
    let kind = (step * 13 + client * 5 + seed) % 8;
    let mut written = 0;
    let (request, result): (Request, Result<Response, Error>) = match kind {
        5..=7 => {
            let (request, result, w) = lease_operate(m, lease, client, kind, &key, &value).await;
            written = w;
            (request, result)
        }
        0 | 1 => {
            let r = m.put(&key, &value).await.map(|p| {
                written = p.header_revision as u64;
                Response::Put {
                    revision: p.header_revision as u64,
                }
            });
            (
                Request::Put {
                    key: key.clone().into(),
                    value: value.into(),
                },
                r,
            )
        }
        2 => {
            let r = m
                .range_with(&Range::key(&key), &RangeOptions::default())
                .await
                .map(|r| Response::Get {
                    revision: r.header_revision as u64,
                    kv: r.kvs.first().map(kv),
                });
            (
                Request::Get {
                    key: key.clone().into(),
                },
                r,
            )
        }
        3 => {
            // A delete range over a prefix that matches exactly this key (the keys are k0, k1,
            // k2), so the single-key model checks it.
            let r = m.delete_range(Range::prefix(&key), false).await.map(|d| {
                if d.deleted > 0 {
                    written = d.header_revision as u64;
                }
                Response::Delete {
                    revision: d.header_revision as u64,
                    deleted: d.deleted > 0,
                }
            });
            (
                Request::Delete {
                    key: key.clone().into(),
                },
                r,
            )
        }
        _ => {
            // Compare-and-put on the mod revision last seen by a serializable read (kind 4).
            let seen = m
                .get_consistent(&key, ReadConsistency::Serializable)
                .await
                .ok()
                .flatten()
                .map_or(0, |k| k.mod_revision);
            let txn = Txn::new()
                .when([EngineCompare {
                    range: Range::key(&key),
                    op: CompareOp::Equal,
                    target: CompareTarget::Mod(seen),
                }])
                .and_then([TxnOp::put(&key, &value)])
                .or_else([TxnOp::Range {
                    range: Range::key(&key),
                    options: RangeOptions::default(),
                }]);
            let r = m.txn(txn).await.map(|t| {
                if t.succeeded {
                    written = t.header_revision as u64;
                }
                let kv = match t.responses.first() {
                    Some(TxnOpResponse::Range(r)) if !t.succeeded => r.kvs.first().map(kv),
                    _ => None,
                };
                Response::Txn {
                    revision: t.header_revision as u64,
                    succeeded: t.succeeded,
                    kv,
                }
            });
            (
                Request::Txn {
                    key: key.clone().into(),
                    compare: Compare::ModRevision(seen as u64),
                    value: value.into(),
                },
                r,
            )
        }
    };
    let outcome = match result {
        Ok(response) => Outcome::Returned {
            at: at(tokio::time::Instant::now()),
            response,
        },
        Err(e) if unknown(&e) => Outcome::Unknown,
        Err(e) => panic!("client {client} step {step}: unexpected error {e}"),
    };
    (request, outcome, written)
}
