//! JSON documents in etcdctl's response shapes.
//!
//! Invariants: keys and values are standard base64 (as etcdctl's protobuf JSON); revisions,
//! versions and counts are JSON numbers (they grow by one per write and stay far below 2^53);
//! 64-bit ids (lease ids, hashes are 32-bit) are decimal strings, because random 63-bit ids
//! lose precision as JSON numbers in JavaScript and jq. The header carries only the revision:
//! a local file has no cluster, member or raft term.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use etch::{DeleteResponse, Event, EventKind, KeyValue, PutResponse, RangeResponse, TxnOpResponse};
use etch::{TxnResponse, WatchResponse};
use serde_json::{json, Value};

/// `{"revision": N}`.
pub fn header(revision: i64) -> Value {
    json!({ "revision": revision })
}

/// Bytes as base64.
pub fn b64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

/// An id as a decimal string.
pub fn id(id: i64) -> Value {
    Value::String(id.to_string())
}

/// One key-value.
pub fn kv(kv: &KeyValue) -> Value {
    json!({
        "key": b64(&kv.key),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "value": b64(&kv.value),
        "lease": id(kv.lease),
    })
}

/// A range (get) response.
pub fn range(r: &RangeResponse) -> Value {
    json!({
        "header": header(r.header_revision),
        "kvs": r.kvs.iter().map(kv).collect::<Vec<_>>(),
        "more": r.more,
        "count": r.count,
    })
}

/// A put response.
pub fn put(r: &PutResponse) -> Value {
    let mut v = json!({ "header": header(r.header_revision) });
    if let Some(prev) = &r.prev_kv {
        v["prev_kv"] = kv(prev);
    }
    v
}

/// A delete response.
pub fn delete(r: &DeleteResponse) -> Value {
    json!({
        "header": header(r.header_revision),
        "deleted": r.deleted,
        "prev_kvs": r.prev_kvs.iter().map(kv).collect::<Vec<_>>(),
    })
}

/// A transaction response; each response is wrapped as in etcd's gRPC gateway JSON.
pub fn txn(r: &TxnResponse) -> Value {
    let responses: Vec<Value> = r
        .responses
        .iter()
        .map(|op| match op {
            TxnOpResponse::Put(p) => json!({ "response_put": put(p) }),
            TxnOpResponse::Range(g) => json!({ "response_range": range(g) }),
            TxnOpResponse::Delete(d) => json!({ "response_delete_range": delete(d) }),
            TxnOpResponse::Txn(t) => json!({ "response_txn": txn(t) }),
        })
        .collect();
    json!({
        "header": header(r.header_revision),
        "succeeded": r.succeeded,
        "responses": responses,
    })
}

/// One watch event.
pub fn event(e: &Event) -> Value {
    let mut v = json!({ "type": event_type(e.kind), "kv": kv(&e.kv) });
    if let Some(prev) = &e.prev_kv {
        v["prev_kv"] = kv(prev);
    }
    v
}

/// A watch response.
pub fn watch(r: &WatchResponse) -> Value {
    json!({
        "header": header(r.header_revision),
        "events": r.events.iter().map(event).collect::<Vec<_>>(),
        "compact_revision": r.compact_revision,
        "canceled": r.canceled,
    })
}

/// "PUT" or "DELETE", as etcd names event types.
pub fn event_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Put => "PUT",
        EventKind::Delete => "DELETE",
    }
}
