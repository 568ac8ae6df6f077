//! `etch serve`'s integration tests (the gRPC API, watches, TLS, etcdctl, a server as a cluster
//! member), one module each, in one test binary. Run one module with a filter:
//! `cargo test --release --workspace --test server watch::`.

mod common;

mod cluster_member;
mod etcdctl;
mod grpc;
mod tls;
mod units;
mod watch;
mod watch_fanout;
