//! The replication crate's integration tests, one module per concept, in one test binary (the
//! simulations, the QUIC transport, the blocking API, the log flusher, ...): linking ~25
//! binaries against openraft, quinn and tokio cost most of CI's test build. Run one module with
//! a filter: `cargo test --release --workspace --test replication sim_cluster::`.
//! `quic_frame` stays a binary of its own: it installs a counting global allocator.

mod support;

#[path = "support/blocking_members.rs"]
#[allow(dead_code)] // each test module uses some of its helpers
mod blocking_members;

mod apply_lag;
mod blocking;
mod check_leases;
mod codec;
mod engine_log;
mod flush;
mod flush_power;
mod forward_retry;
mod lease_barrier;
mod linearizability;
mod local_network;
mod log_admission;
mod log_space;
mod member_forward;
mod openraft_suite;
mod optimistic_write;
mod promotion;
mod quic;
mod quic_fuzz;
mod quic_listen;
mod quota;
mod sim_clocks;
mod sim_cluster;
mod sim_history;
mod sim_membership;
mod sim_network;
mod sim_power;
mod store_api;
