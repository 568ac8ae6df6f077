//! etcd's v3 API messages, servers and clients: the `etch-proto` crate, re-exported so the
//! paths `etch_server::proto::...` keep working.

pub use etch_proto::*;
