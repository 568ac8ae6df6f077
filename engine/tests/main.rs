//! The engine's integration tests, one module per concept, in one test binary: linking ~30
//! binaries against the engine cost most of CI's test build. Run one module with a filter:
//! `cargo test --release --workspace --test engine crash::` (a test's name is its module
//! path: `txn::compare_on_missing_key`).

mod common;

mod admit;
mod api_edges;
mod apply;
mod background;
mod borrowed_reads;
mod checkpoint_concurrent;
mod compaction;
mod compaction_incremental;
mod concurrency;
mod corruption;
mod crash;
mod defrag;
mod freelist_order;
mod fuzz_open;
mod fuzz_read_only;
mod lease;
mod lock;
mod lock_timeout;
mod maintenance_profile;
mod member_defrag;
mod model;
mod model_etcd;
mod open_errors;
mod open_profile;
mod open_unsynced_wal;
mod raftlog;
mod read_only;
mod read_profile;
mod recipes;
mod sim_crash;
mod snapshot;
mod snapshot_install;
mod stm;
mod tree_shape;
mod txn;
mod wal_damage;
mod watch;
