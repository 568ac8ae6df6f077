//! Between the engine's request and response types (what the command line builds and the
//! printers print) and etcd's protobuf messages, so client mode reuses both unchanged.

use etch::{
    Compare, CompareOp, CompareTarget, DeleteResponse, Event, EventKind, KeyValue, PutOp,
    PutResponse, Range, RangeOptions, RangeResponse, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse, TxnResponse,
};
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::compare::{CompareResult, TargetUnion};
use etch_server::proto::etcdserverpb::request_op::Request;
use etch_server::proto::etcdserverpb::response_op::Response;
use etch_server::proto::mvccpb;

use super::revision;

/// A key-value from the wire.
pub fn kv(kv: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// A range request for `range` with `opts`; `serializable` for `--consistency s`.
pub fn range_request(range: &Range, opts: &RangeOptions, serializable: bool) -> pb::RangeRequest {
    use pb::range_request::{SortOrder as O, SortTarget as T};
    let sort_order = match opts.sort_order {
        SortOrder::None => O::None,
        SortOrder::Ascend => O::Ascend,
        SortOrder::Descend => O::Descend,
    };
    let sort_target = match opts.sort_target {
        SortTarget::Key => T::Key,
        SortTarget::Version => T::Version,
        SortTarget::Create => T::Create,
        SortTarget::Mod => T::Mod,
        SortTarget::Value => T::Value,
    };
    pb::RangeRequest {
        key: range.start().to_vec(),
        range_end: range.end().to_vec(),
        limit: opts.limit,
        revision: opts.revision,
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        serializable,
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

/// A delete request.
pub fn delete_request(range: &Range, prev_kv: bool) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest {
        key: range.start().to_vec(),
        range_end: range.end().to_vec(),
        prev_kv,
    }
}

fn compare(c: Compare) -> pb::Compare {
    use pb::compare::CompareTarget as T;
    let result = match c.op {
        CompareOp::Equal => CompareResult::Equal,
        CompareOp::NotEqual => CompareResult::NotEqual,
        CompareOp::Less => CompareResult::Less,
        CompareOp::Greater => CompareResult::Greater,
    };
    let (target, union) = match c.target {
        CompareTarget::Value(v) => (T::Value, TargetUnion::Value(v)),
        CompareTarget::Version(n) => (T::Version, TargetUnion::Version(n)),
        CompareTarget::Create(n) => (T::Create, TargetUnion::CreateRevision(n)),
        CompareTarget::Mod(n) => (T::Mod, TargetUnion::ModRevision(n)),
        CompareTarget::Lease(n) => (T::Lease, TargetUnion::Lease(n)),
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: c.range.start().to_vec(),
        range_end: c.range.end().to_vec(),
        target_union: Some(union),
    }
}

fn request_op(op: TxnOp) -> pb::RequestOp {
    let request = match op {
        TxnOp::Put(p) => Request::RequestPut(put_request(p)),
        TxnOp::Range { range, options } => {
            Request::RequestRange(range_request(&range, &options, false))
        }
        TxnOp::DeleteRange { range, prev_kv } => {
            Request::RequestDeleteRange(delete_request(&range, prev_kv))
        }
        TxnOp::Txn(t) => Request::RequestTxn(txn_request(t)),
    };
    pb::RequestOp {
        request: Some(request),
    }
}

/// A transaction request (nested transactions included).
pub fn txn_request(t: Txn) -> pb::TxnRequest {
    pb::TxnRequest {
        compare: t.compare.into_iter().map(compare).collect(),
        success: t.success.into_iter().map(request_op).collect(),
        failure: t.failure.into_iter().map(request_op).collect(),
    }
}

/// A range response.
pub fn range_response(r: pb::RangeResponse) -> RangeResponse {
    RangeResponse {
        header_revision: revision(r.header.as_ref()),
        kvs: r.kvs.into_iter().map(kv).collect(),
        more: r.more,
        count: r.count,
    }
}

/// A put response.
pub fn put_response(r: pb::PutResponse) -> PutResponse {
    PutResponse {
        header_revision: revision(r.header.as_ref()),
        prev_kv: r.prev_kv.map(kv),
    }
}

/// A delete response.
pub fn delete_response(r: pb::DeleteRangeResponse) -> DeleteResponse {
    DeleteResponse {
        header_revision: revision(r.header.as_ref()),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(kv).collect(),
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

/// A watch event.
pub fn event(e: mvccpb::Event) -> Event {
    let kind = if e.r#type == mvccpb::event::EventType::Delete as i32 {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    Event {
        kind,
        kv: e.kv.map(kv).unwrap_or_default(),
        prev_kv: e.prev_kv.map(kv),
    }
}

/// A watch response as the printers take it.
pub fn watch_response(r: pb::WatchResponse) -> etch::WatchResponse {
    etch::WatchResponse {
        header_revision: revision(r.header.as_ref()),
        events: r.events.into_iter().map(event).collect(),
        canceled: r.canceled,
        compact_revision: r.compact_revision,
        caught_up: false,
    }
}
