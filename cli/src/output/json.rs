//! JSON documents exactly as etcdctl 3.4 prints them with `-w json`.
//!
//! etcdctl marshals etcd's Go response structs with Go's `encoding/json`, so the rules are
//! those of their field tags:
//! - Protobuf messages (key-values, range/put/delete/txn responses, headers) use snake_case
//!   names and `omitempty`: a zero number, `false`, an empty byte string or an empty list is
//!   left out (`{"header":{...}}` is a whole get response that found nothing).
//! - Keys and values are standard base64; a delete event's key-value has no value.
//! - Ids are JSON numbers, as Go writes int64: exact in the text, but JavaScript and jq read
//!   numbers above 2^53 inexactly, so [`Json::string_ids`] writes them as decimal strings.
//! - Client-side wrappers keep Go's field names: a watch response is
//!   `{"Header":..,"Events":..,"CompactRevision":..,"Canceled":..,"Created":..}` and a txn
//!   response's entries are `{"Response":{"ResponsePut":{..}}}`; the lease responses embed the
//!   header's fields at the top level.
//! - The header carries only the revision: a local file has no cluster, member or raft term.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use etch::{DeleteResponse, Event, EventKind, KeyValue, PutResponse, RangeResponse, TxnOpResponse};
use etch::{TxnResponse, WatchResponse};
use serde_json::{json, Map, Value};

/// Bytes as base64.
pub fn b64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

/// `"PUT"` or `"DELETE"`, as etcd names event types in text output.
pub fn event_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Put => "PUT",
        EventKind::Delete => "DELETE",
    }
}

/// Inserts `key: value` unless `value` is what Go's `omitempty` leaves out.
fn put_nonzero(map: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0) || n.as_u64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    };
    if !empty {
        map.insert(key.to_string(), value);
    }
}

/// What a server's response header says besides the revision: zero for a local file, which
/// has no cluster, member or Raft term (and then left out, as Go's `omitempty` does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerIds {
    /// The cluster id.
    pub cluster_id: u64,
    /// The id of the member that answered.
    pub member_id: u64,
    /// The Raft term.
    pub raft_term: u64,
}

/// The JSON writer, configured by the command line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json {
    /// Write 64-bit ids as decimal strings (lossless in JavaScript) instead of numbers.
    pub string_ids: bool,
    /// The header fields of the response being printed (client mode).
    pub server: ServerIds,
}

impl Json {
    /// A 64-bit id: a number, or a decimal string with `string_ids`.
    pub fn id(&self, id: i64) -> Value {
        if self.string_ids {
            Value::String(id.to_string())
        } else {
            Value::from(id)
        }
    }

    /// An unsigned 64-bit id (cluster, member): a number, or a decimal string.
    pub fn uid(&self, id: u64) -> Value {
        if self.string_ids {
            Value::String(id.to_string())
        } else {
            Value::from(id)
        }
    }

    /// A response header: `{"revision": N}` for a file; a server's adds its cluster id,
    /// member id and Raft term, in etcd's order.
    pub fn header(&self, revision: i64) -> Value {
        let mut m = Map::new();
        self.header_fields(&mut m, revision);
        Value::Object(m)
    }

    /// The header's fields, for the lease responses that embed them at the top level.
    pub fn header_fields(&self, m: &mut Map<String, Value>, revision: i64) {
        let s = self.server;
        if s.cluster_id != 0 {
            m.insert("cluster_id".into(), self.uid(s.cluster_id));
        }
        if s.member_id != 0 {
            m.insert("member_id".into(), self.uid(s.member_id));
        }
        put_nonzero(m, "revision", revision.into());
        put_nonzero(m, "raft_term", s.raft_term.into());
    }

    /// One key-value (`mvccpb.KeyValue`).
    pub fn kv(&self, kv: &KeyValue) -> Value {
        let mut m = Map::new();
        let lease = if kv.lease == 0 {
            Value::Null
        } else {
            self.id(kv.lease)
        };
        let fields = [
            ("key", b64(&kv.key)),
            ("create_revision", kv.create_revision.into()),
            ("mod_revision", kv.mod_revision.into()),
            ("version", kv.version.into()),
            ("value", b64(&kv.value)),
            ("lease", lease),
        ];
        for (k, v) in fields {
            put_nonzero(&mut m, k, v);
        }
        Value::Object(m)
    }

    fn kvs(&self, kvs: &[KeyValue]) -> Value {
        Value::Array(kvs.iter().map(|kv| self.kv(kv)).collect())
    }

    /// A range (get) response.
    pub fn range(&self, r: &RangeResponse) -> Value {
        let mut m = Map::new();
        m.insert("header".into(), self.header(r.header_revision));
        put_nonzero(&mut m, "kvs", self.kvs(&r.kvs));
        put_nonzero(&mut m, "more", r.more.into());
        put_nonzero(&mut m, "count", r.count.into());
        Value::Object(m)
    }

    /// A put response.
    pub fn put(&self, r: &PutResponse) -> Value {
        let mut m = Map::new();
        m.insert("header".into(), self.header(r.header_revision));
        if let Some(prev) = &r.prev_kv {
            m.insert("prev_kv".into(), self.kv(prev));
        }
        Value::Object(m)
    }

    /// A delete response.
    pub fn delete(&self, r: &DeleteResponse) -> Value {
        let mut m = Map::new();
        m.insert("header".into(), self.header(r.header_revision));
        put_nonzero(&mut m, "deleted", r.deleted.into());
        put_nonzero(&mut m, "prev_kvs", self.kvs(&r.prev_kvs));
        Value::Object(m)
    }

    /// A transaction response; each entry is Go's wrapping of the protobuf `oneof`.
    pub fn txn(&self, r: &TxnResponse) -> Value {
        // A server fills only the revision in the headers of the responses inside.
        let inner = Json {
            server: ServerIds::default(),
            ..*self
        };
        let responses: Vec<Value> = r
            .responses
            .iter()
            .map(|op| {
                let (name, body) = match op {
                    TxnOpResponse::Put(p) => ("ResponsePut", inner.put(p)),
                    TxnOpResponse::Range(g) => ("ResponseRange", inner.range(g)),
                    TxnOpResponse::Delete(d) => ("ResponseDeleteRange", inner.delete(d)),
                    TxnOpResponse::Txn(t) => ("ResponseTxn", inner.txn(t)),
                };
                json!({ "Response": { name: body } })
            })
            .collect();
        let mut m = Map::new();
        m.insert("header".into(), self.header(r.header_revision));
        put_nonzero(&mut m, "succeeded", r.succeeded.into());
        put_nonzero(&mut m, "responses", Value::Array(responses));
        Value::Object(m)
    }

    /// One watch event (`mvccpb.Event`): the type is a number, PUT (0) left out.
    pub fn event(&self, e: &Event) -> Value {
        let mut m = Map::new();
        if e.kind == EventKind::Delete {
            m.insert("type".into(), 1.into());
        }
        m.insert("kv".into(), self.kv(&e.kv));
        if let Some(prev) = &e.prev_kv {
            m.insert("prev_kv".into(), self.kv(prev));
        }
        Value::Object(m)
    }

    /// A watch response (clientv3's `WatchResponse`, Go field names, nothing omitted).
    pub fn watch(&self, r: &WatchResponse) -> Value {
        json!({
            "Header": self.header(r.header_revision),
            "Events": r.events.iter().map(|e| self.event(e)).collect::<Vec<_>>(),
            "CompactRevision": r.compact_revision,
            "Canceled": r.canceled,
            "Created": false,
        })
    }

    /// A lease response: the header's fields, then `fields`, in one object.
    pub fn lease(&self, revision: i64, fields: Vec<(&str, Value)>) -> Value {
        let mut m = Map::new();
        self.header_fields(&mut m, revision);
        for (k, v) in fields {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    }
}

/// One key as `etch export` writes it: every field present, the lease as a decimal string
/// (this line format is etch's own, read back by `etch import`).
pub fn export_kv(kv: &KeyValue) -> Value {
    json!({
        "key": b64(&kv.key),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "value": b64(&kv.value),
        "lease": kv.lease.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(lease: i64, value: &[u8]) -> KeyValue {
        KeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 1,
            value: value.to_vec(),
            lease,
        }
    }

    #[test]
    fn zero_and_empty_fields_are_left_out() {
        let j = Json::default();
        assert_eq!(
            j.kv(&kv(0, b"")).to_string(),
            r#"{"key":"aw==","create_revision":2,"mod_revision":3,"version":1}"#
        );
        let empty = RangeResponse {
            header_revision: 7,
            kvs: Vec::new(),
            more: false,
            count: 0,
        };
        assert_eq!(j.range(&empty).to_string(), r#"{"header":{"revision":7}}"#);
    }

    #[test]
    fn ids_are_numbers_unless_asked_for_strings() {
        let id = 0x694d77aa9e38260f;
        let number = Json::default().kv(&kv(id, b"v"));
        assert_eq!(number["lease"].as_i64(), Some(id));
        assert!(number.to_string().contains(&format!(r#""lease":{id}}}"#)));
        let string = Json {
            string_ids: true,
            ..Default::default()
        }
        .kv(&kv(id, b"v"));
        assert_eq!(string["lease"], Value::String(id.to_string()));
    }
}
