//! Between the engine's request and response types and etcd's protobuf messages: what the
//! client sends and decodes, public so that other etcd-protocol code (the `etch` CLI's client
//! mode) converts the same way instead of keeping a copy.

use etch_engine::{
    Compare, CompareOp, CompareTarget, DeleteResponse, Event, EventKind, KeyValue, OpResponse,
    PutOp, PutResponse, Range, RangeOptions, RangeResponse, Revision, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse, TxnResponse, WriteOp,
};
use etch_proto::etcdserverpb as pb;
use etch_proto::etcdserverpb::compare::{CompareResult, TargetUnion};
use etch_proto::etcdserverpb::request_op::Request;
use etch_proto::etcdserverpb::response_op::Response;
use etch_proto::mvccpb;

/// The revision of a response header (0 if the server sent none).
pub fn revision(header: Option<&pb::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision)
}

/// A key-value from the wire.
pub fn key_value(kv: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

/// A range request (linearizable, as the local store's reads are).
pub fn range_request(range: &Range, opts: &RangeOptions) -> pb::RangeRequest {
    use pb::range_request::{SortOrder as Order, SortTarget as Target};
    let sort_order = match opts.sort_order {
        SortOrder::None => Order::None,
        SortOrder::Ascend => Order::Ascend,
        SortOrder::Descend => Order::Descend,
    };
    let sort_target = match opts.sort_target {
        SortTarget::Key => Target::Key,
        SortTarget::Version => Target::Version,
        SortTarget::Create => Target::Create,
        SortTarget::Mod => Target::Mod,
        SortTarget::Value => Target::Value,
    };
    pb::RangeRequest {
        key: range.start().to_vec(),
        range_end: range.end().to_vec(),
        limit: opts.limit,
        revision: opts.revision,
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        serializable: false,
        keys_only: opts.keys_only,
        count_only: opts.count_only,
        min_mod_revision: opts.min_mod_revision,
        max_mod_revision: opts.max_mod_revision,
        min_create_revision: opts.min_create_revision,
        max_create_revision: opts.max_create_revision,
    }
}

/// A put request.
pub fn put_request(op: PutOp) -> pb::PutRequest {
    pb::PutRequest {
        key: op.key,
        value: op.value,
        lease: op.lease,
        prev_kv: op.prev_kv,
        ignore_value: op.ignore_value,
        ignore_lease: op.ignore_lease,
    }
}

/// A delete-range request.
pub fn delete_request(range: &Range, prev_kv: bool) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest {
        key: range.start().to_vec(),
        range_end: range.end().to_vec(),
        prev_kv,
    }
}

fn compare(c: Compare) -> pb::Compare {
    use pb::compare::CompareTarget as Target;
    let result = match c.op {
        CompareOp::Equal => CompareResult::Equal,
        CompareOp::NotEqual => CompareResult::NotEqual,
        CompareOp::Less => CompareResult::Less,
        CompareOp::Greater => CompareResult::Greater,
    };
    let (target, operand) = match c.target {
        CompareTarget::Value(v) => (Target::Value, TargetUnion::Value(v)),
        CompareTarget::Version(n) => (Target::Version, TargetUnion::Version(n)),
        CompareTarget::Create(n) => (Target::Create, TargetUnion::CreateRevision(n)),
        CompareTarget::Mod(n) => (Target::Mod, TargetUnion::ModRevision(n)),
        CompareTarget::Lease(n) => (Target::Lease, TargetUnion::Lease(n)),
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: c.range.start().to_vec(),
        range_end: c.range.end().to_vec(),
        target_union: Some(operand),
    }
}

fn request_op(op: TxnOp) -> pb::RequestOp {
    let request = match op {
        TxnOp::Put(p) => Request::RequestPut(put_request(p)),
        TxnOp::Range { range, options } => Request::RequestRange(range_request(&range, &options)),
        TxnOp::DeleteRange { range, prev_kv } => {
            Request::RequestDeleteRange(delete_request(&range, prev_kv))
        }
        TxnOp::Txn(t) => Request::RequestTxn(txn_request(t)),
    };
    pb::RequestOp {
        request: Some(request),
    }
}

/// A transaction request, nested transactions included.
pub fn txn_request(t: Txn) -> pb::TxnRequest {
    pb::TxnRequest {
        compare: t.compare.into_iter().map(compare).collect(),
        success: t.success.into_iter().map(request_op).collect(),
        failure: t.failure.into_iter().map(request_op).collect(),
    }
}

/// The transaction that carries a batch: no compares, the writes as the success branch.
pub fn batch_txn(ops: Vec<WriteOp>) -> Txn {
    Txn::new().and_then(ops.into_iter().map(|op| match op {
        WriteOp::Put(p) => TxnOp::Put(p),
        WriteOp::DeleteRange { range, prev_kv } => TxnOp::DeleteRange { range, prev_kv },
    }))
}

/// The operation count a server checks against its `--max-txn-ops`: etcd checks the compares
/// and each branch, so the largest of the three.
pub fn txn_ops(t: &Txn) -> usize {
    t.compare.len().max(t.success.len()).max(t.failure.len())
}

/// A range response.
pub fn range_response(r: pb::RangeResponse) -> RangeResponse {
    RangeResponse {
        header_revision: revision(r.header.as_ref()),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

/// A put response.
pub fn put_response(r: pb::PutResponse) -> PutResponse {
    PutResponse {
        header_revision: revision(r.header.as_ref()),
        prev_kv: r.prev_kv.map(key_value),
    }
}

/// A delete-range response.
pub fn delete_response(r: pb::DeleteRangeResponse) -> DeleteResponse {
    DeleteResponse {
        header_revision: revision(r.header.as_ref()),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// A transaction response; an entry the server left empty is skipped.
pub fn txn_response(r: pb::TxnResponse) -> TxnResponse {
    TxnResponse {
        succeeded: r.succeeded,
        header_revision: revision(r.header.as_ref()),
        responses: r
            .responses
            .into_iter()
            .filter_map(|op| {
                Some(match op.response? {
                    Response::ResponseRange(g) => TxnOpResponse::Range(range_response(g)),
                    Response::ResponsePut(p) => TxnOpResponse::Put(put_response(p)),
                    Response::ResponseDeleteRange(d) => TxnOpResponse::Delete(delete_response(d)),
                    Response::ResponseTxn(t) => TxnOpResponse::Txn(txn_response(t)),
                })
            })
            .collect(),
    }
}

/// The batch's responses from the transaction that carried it (puts and deletes only).
pub fn batch_response(t: TxnResponse) -> etch_engine::BatchResponse {
    etch_engine::BatchResponse {
        header_revision: t.header_revision,
        responses: t
            .responses
            .into_iter()
            .filter_map(|r| match r {
                TxnOpResponse::Put(p) => Some(OpResponse::Put(p)),
                TxnOpResponse::Delete(d) => Some(OpResponse::Delete(d)),
                TxnOpResponse::Range(_) | TxnOpResponse::Txn(_) => None,
            })
            .collect(),
    }
}

/// A watch event.
pub fn event(e: mvccpb::Event) -> Event {
    let kind = if e.r#type == mvccpb::event::EventType::Delete as i32 {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    Event {
        kind,
        kv: e.kv.map(key_value).unwrap_or_default(),
        prev_kv: e.prev_kv.map(key_value),
    }
}

/// A watch response as the local store reports one. `caught_up` is never set: etcd's protocol
/// does not mark the end of a replay.
pub fn watch_response(r: pb::WatchResponse) -> etch_engine::WatchResponse {
    etch_engine::WatchResponse {
        header_revision: revision(r.header.as_ref()),
        events: r.events.into_iter().map(event).collect(),
        canceled: r.canceled,
        compact_revision: r.compact_revision,
        caught_up: false,
    }
}
