//! openraft 0.9's own storage test suite (`openraft::testing::Suite`) over a member's storage:
//! the Raft log in the WAL of one replicated store (`RaftLog` over `EngineLog`) and the state
//! machine on the same store (`StateMachine` over `Machine`), a fresh store on a temporary file
//! for every case, as a member opens it.
//!
//! The suite treats the log and the state machine as independent stores; in etch they are one
//! store whose applied index is the engine's sequence, so the cases that assume independence do
//! not fit and are not run here. docs/testing.md ("openraft's storage suite") names them and
//! says why. Every case that uses only the log, or uses both the way a member does, runs here
//! as its own test.

use std::sync::Arc;

use etch_replication::engine_log::EngineLog;
use etch_replication::raft_log::RaftLog;
use etch_replication::state_machine::{Machine, StateMachine};
use etch_replication::types::{NodeId, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

type Log = RaftLog<EngineLog>;

/// Builds a member's log and state machine on one new store in a temporary directory (the
/// guard keeps the directory).
struct Builder;

impl StoreBuilder<TypeConfig, Log, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, Log, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("member.etch");
        let store = etch_engine::Options::new()
            .replicated(true)
            .background_writes(false)
            .wal_capacity(4 << 20)
            .open(&path)
            .unwrap();
        let log = RaftLog::new(Arc::new(EngineLog::new(store.clone())));
        let machine = Machine::new(1, &path, store).unwrap();
        Ok((dir, log, StateMachine::new(machine)))
    }
}

type S = Suite<TypeConfig, Log, StateMachine, Builder, tempfile::TempDir>;

/// Runs one suite case on a fresh log and state machine, in a fresh runtime (as the suite's
/// own `test_all` does).
fn run<F, Fu>(case: F)
where
    F: FnOnce(Log, StateMachine) -> Fu,
    Fu: std::future::Future<Output = Result<(), StorageError<NodeId>>>,
{
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_dir, log, sm) = Builder.build().await.unwrap();
        case(log, sm).await.unwrap();
    });
}

macro_rules! suite_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                run(S::$case);
            }
        )*
    };
}

suite_cases!(
    last_membership_in_log_initial,
    get_membership_initial,
    get_initial_state_without_init,
    save_vote,
    get_log_entries,
    limited_get_log_entries,
    initial_logs,
    delete_logs_since_11,
    delete_logs_since_0,
);
