//! Between the engine's request and response types (what the command line builds and the
//! printers print) and etcd's protobuf messages, so client mode reuses both unchanged. The
//! conversions are etch-client's; this module only adds what a command line asks for and the
//! client does not (`--consistency s`).

use etch::{Range, RangeOptions};
use etch_server::proto::etcdserverpb as pb;

pub use etch_client::convert::{
    delete_request, delete_response, key_value as kv, put_request, put_response, range_response,
    txn_request, txn_response, watch_response,
};

/// A range request for `range` with `opts`; `serializable` for `--consistency s`.
pub fn range_request(range: &Range, opts: &RangeOptions, serializable: bool) -> pb::RangeRequest {
    pb::RangeRequest {
        serializable,
        ..etch_client::convert::range_request(range, opts)
    }
}
