//! The remote client's integration tests (against `etch serve`, etcd 3.4 and a 3-process
//! cluster), one module each, in one test binary. Run one module with a filter:
//! `cargo test --release --workspace --test client failover::`.

#[path = "support/serve.rs"]
mod serve;

mod cluster_failover;
mod failover;
mod recipes;
mod tls;
