//! The `etch` command line's integration tests, one module per command family, in one test
//! binary (linking ~15 binaries cost CI's test build more than running them). Run one module
//! with a filter: `cargo test --release --workspace --test cli kv::`. The etcdctl parity suite
//! (`tests/etcdctl_parity/`) is a binary of its own.

mod common;

mod cert;
mod cli;
mod client;
mod client_tls;
mod formats;
mod kv;
mod lease;
mod lock_elect;
mod maintenance;
mod member_file;
mod serve;
mod sharing;
mod transfer;
mod txn;
mod watch;
