//! Conversions between etcd's protobuf messages and the engine's types, with etcd's request
//! checks (empty keys, sort options, operation counts).

use etch_engine as engine;
use tonic::Status;

use crate::errors;
use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;

/// A key-value as etcd sends it.
pub fn kv_to_pb(kv: engine::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// The engine range for etcd's `(key, range_end)`, refusing an empty key as etcd does.
pub fn range_of(key: &[u8], range_end: &[u8]) -> Result<engine::Range, Status> {
    if key.is_empty() {
        return Err(errors::empty_key());
    }
    Ok(engine::Range::from_raw(key, range_end))
}

/// The engine's range options for a RangeRequest.
pub fn range_options(req: &pb::RangeRequest) -> Result<engine::RangeOptions, Status> {
    use pb::range_request::{SortOrder, SortTarget};
    let sort_order = match SortOrder::try_from(req.sort_order) {
        Ok(SortOrder::None) => engine::SortOrder::None,
        Ok(SortOrder::Ascend) => engine::SortOrder::Ascend,
        Ok(SortOrder::Descend) => engine::SortOrder::Descend,
        Err(_) => return Err(errors::invalid_sort_option()),
    };
    let sort_target = match SortTarget::try_from(req.sort_target) {
        Ok(SortTarget::Key) => engine::SortTarget::Key,
        Ok(SortTarget::Version) => engine::SortTarget::Version,
        Ok(SortTarget::Create) => engine::SortTarget::Create,
        Ok(SortTarget::Mod) => engine::SortTarget::Mod,
        Ok(SortTarget::Value) => engine::SortTarget::Value,
        Err(_) => return Err(errors::invalid_sort_option()),
    };
    Ok(engine::RangeOptions {
        limit: req.limit.max(0),
        revision: req.revision,
        sort_order,
        sort_target,
        keys_only: req.keys_only,
        count_only: req.count_only,
        min_mod_revision: req.min_mod_revision,
        max_mod_revision: req.max_mod_revision,
        min_create_revision: req.min_create_revision,
        max_create_revision: req.max_create_revision,
    })
}

/// A RangeResponse body (the caller sets the header).
pub fn range_response_to_pb(resp: engine::RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: None,
        kvs: resp.kvs.into_iter().map(kv_to_pb).collect(),
        more: resp.more,
        count: resp.count,
    }
}

/// The engine's put for a PutRequest.
pub fn put_op(req: pb::PutRequest) -> Result<engine::PutOp, Status> {
    if req.key.is_empty() {
        return Err(errors::empty_key());
    }
    Ok(engine::PutOp {
        key: req.key,
        value: req.value,
        lease: req.lease,
        prev_kv: req.prev_kv,
        ignore_value: req.ignore_value,
        ignore_lease: req.ignore_lease,
    })
}

/// The engine transaction for a TxnRequest, nested transactions included; refuses more than
/// `max_ops` compares or operations on either branch of any level, as etcd.
pub fn txn_of(req: pb::TxnRequest, max_ops: usize) -> Result<engine::Txn, Status> {
    if req.compare.len() > max_ops || req.success.len() > max_ops || req.failure.len() > max_ops {
        return Err(errors::too_many_ops());
    }
    let compare = req
        .compare
        .into_iter()
        .map(compare_of)
        .collect::<Result<Vec<_>, _>>()?;
    let ops = |ops: Vec<pb::RequestOp>| {
        ops.into_iter()
            .map(|op| txn_op_of(op, max_ops))
            .collect::<Result<Vec<_>, Status>>()
    };
    Ok(engine::Txn {
        compare,
        success: ops(req.success)?,
        failure: ops(req.failure)?,
    })
}

fn compare_of(c: pb::Compare) -> Result<engine::Compare, Status> {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let range = range_of(&c.key, &c.range_end)?;
    let op = match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => engine::CompareOp::Equal,
        Ok(CompareResult::Greater) => engine::CompareOp::Greater,
        Ok(CompareResult::Less) => engine::CompareOp::Less,
        Ok(CompareResult::NotEqual) => engine::CompareOp::NotEqual,
        Err(_) => {
            return Err(Status::invalid_argument(
                "etcdserver: invalid compare result",
            ))
        }
    };
    // etcd reads the operand for the declared target; an absent operand is its zero value.
    let union = c.target_union;
    let int = |pick: fn(&TargetUnion) -> Option<i64>| union.as_ref().and_then(pick).unwrap_or(0);
    let target = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Version) => engine::CompareTarget::Version(int(|u| match u {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Create) => engine::CompareTarget::Create(int(|u| match u {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => engine::CompareTarget::Mod(int(|u| match u {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Lease) => engine::CompareTarget::Lease(int(|u| match u {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Value) => engine::CompareTarget::Value(match union {
            Some(TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        Err(_) => {
            return Err(Status::invalid_argument(
                "etcdserver: invalid compare target",
            ))
        }
    };
    Ok(engine::Compare { range, op, target })
}

fn txn_op_of(op: pb::RequestOp, max_ops: usize) -> Result<engine::TxnOp, Status> {
    use pb::request_op::Request;
    match op.request {
        Some(Request::RequestRange(r)) => {
            let options = range_options(&r)?;
            Ok(engine::TxnOp::Range {
                range: range_of(&r.key, &r.range_end)?,
                options,
            })
        }
        Some(Request::RequestPut(p)) => Ok(engine::TxnOp::Put(put_op(p)?)),
        Some(Request::RequestDeleteRange(d)) => Ok(engine::TxnOp::DeleteRange {
            range: range_of(&d.key, &d.range_end)?,
            prev_kv: d.prev_kv,
        }),
        Some(Request::RequestTxn(t)) => Ok(engine::TxnOp::Txn(txn_of(t, max_ops)?)),
        None => Err(Status::invalid_argument(
            "etcdserver: a transaction operation is empty",
        )),
    }
}

/// True if the transaction (at any nesting level) writes a key: such a transaction is
/// refused while the NOSPACE alarm is active.
pub fn txn_puts(req: &pb::TxnRequest) -> bool {
    use pb::request_op::Request;
    req.success
        .iter()
        .chain(&req.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_)) => true,
            Some(Request::RequestTxn(t)) => txn_puts(t),
            _ => false,
        })
}

/// A DeleteRangeResponse body.
pub fn delete_response_to_pb(resp: engine::DeleteResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: None,
        deleted: resp.deleted,
        prev_kvs: resp.prev_kvs.into_iter().map(kv_to_pb).collect(),
    }
}

/// A TxnResponse with `header`; the responses inside carry only the revision in their
/// headers, as etcd's do.
pub fn txn_response_to_pb(
    resp: engine::TxnResponse,
    header: Option<pb::ResponseHeader>,
) -> pb::TxnResponse {
    let inner = header.map(|h| pb::ResponseHeader {
        revision: h.revision,
        ..Default::default()
    });
    pb::TxnResponse {
        header,
        succeeded: resp.succeeded,
        responses: op_responses_to_pb(resp.responses, inner),
    }
}

fn op_responses_to_pb(
    responses: Vec<engine::TxnOpResponse>,
    header: Option<pb::ResponseHeader>,
) -> Vec<pb::ResponseOp> {
    use pb::response_op::Response;
    responses
        .into_iter()
        .map(|r| pb::ResponseOp {
            response: Some(match r {
                engine::TxnOpResponse::Put(p) => Response::ResponsePut(pb::PutResponse {
                    header,
                    prev_kv: p.prev_kv.map(kv_to_pb),
                }),
                engine::TxnOpResponse::Range(r) => Response::ResponseRange(pb::RangeResponse {
                    header,
                    ..range_response_to_pb(r)
                }),
                engine::TxnOpResponse::Delete(d) => {
                    Response::ResponseDeleteRange(pb::DeleteRangeResponse {
                        header,
                        ..delete_response_to_pb(d)
                    })
                }
                engine::TxnOpResponse::Txn(t) => Response::ResponseTxn(pb::TxnResponse {
                    header,
                    succeeded: t.succeeded,
                    responses: op_responses_to_pb(t.responses, header),
                }),
            }),
        })
        .collect()
}
