//! Client mode: every command against a server named by `--endpoints` (see [`crate::client`]).
//! The commands parse and validate their arguments as on a file and print through the same
//! printers; commands that only make sense on a file say so.

pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod perf;
pub mod transfer;
pub mod watch;

use super::Ctx;
use crate::args::{
    AlarmCommand, CheckArgs, CheckCommand, Command, EndpointCommand, MemberCommand, SnapshotCommand,
};
use crate::client::{Client, ConnArgs};
use crate::error::{CliError, CliResult, EXIT_OK};

/// A command that works on the file alone, given `--endpoints`.
fn file_only(what: &str, instead: &str) -> CliError {
    CliError::bad_args(format!(
        "{what} works on a database file (--db), not on a server (--endpoints){instead}"
    ))
}

/// Runs `command` against the server; `None` when the command does not involve a server
/// (serve, completion, snapshot restore and status of a local file).
pub fn run(ctx: &mut Ctx, conn: &ConnArgs, command: &Command) -> Option<CliResult<u8>> {
    let ok = |r: CliResult| r.map(|_| EXIT_OK);
    // Commands that address each endpoint on its own connect themselves.
    match command {
        Command::Endpoint(EndpointCommand::Status) => {
            return Some(ok(maintenance::endpoint_status(ctx, conn)))
        }
        Command::Endpoint(EndpointCommand::Health) => {
            return Some(ok(maintenance::endpoint_health(ctx, conn)))
        }
        Command::Defrag => return Some(ok(maintenance::defrag(conn))),
        Command::Status => {
            return Some(Err(file_only(
                "status",
                "; for a server use `endpoint status`",
            )))
        }
        Command::Check(CheckArgs { perf: None, .. }) => {
            return Some(Err(file_only(
                "check",
                "; for a server use `endpoint health` or `check perf`",
            )))
        }
        Command::Snapshot(SnapshotCommand::Restore { .. } | SnapshotCommand::Status { .. })
        | Command::Serve(_)
        | Command::Cert(_)
        | Command::Completion(_) => return None,
        _ => {}
    }
    let c = match Client::connect(conn) {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    let r = match command {
        Command::Put(a) => ok(kv::put(ctx, &c, a)),
        Command::Get(a) => ok(kv::get(ctx, &c, a)),
        Command::Del(a) => ok(kv::del(ctx, &c, a)),
        Command::Txn(a) => ok(kv::txn(ctx, &c, a)),
        Command::Watch(a) => ok(watch::run(ctx, &c, a)),
        Command::Lease(l) => ok(lease::run(ctx, &c, l)),
        Command::Compaction(a) => ok(maintenance::compaction(ctx, &c, a)),
        Command::Snapshot(SnapshotCommand::Save { file }) => {
            ok(maintenance::snapshot_save(ctx, &c, file))
        }
        Command::Member(MemberCommand::List) => ok(maintenance::member_list(ctx, &c)),
        Command::Alarm(AlarmCommand::List) => ok(maintenance::alarm(ctx, &c, false)),
        Command::Alarm(AlarmCommand::Disarm) => ok(maintenance::alarm(ctx, &c, true)),
        Command::Check(CheckArgs {
            perf: Some(CheckCommand::Perf(a)),
            ..
        }) => ok(perf::run(&c, a)),
        Command::Lock(a) => lock::lock(ctx, &c, a),
        Command::Elect(a) => ok(lock::elect(ctx, &c, a)),
        Command::Import(a) => ok(transfer::import(ctx, &c, a)),
        Command::Export(a) => ok(transfer::export(&c, a)),
        // Answered before connecting, above; listed so that a new command must be placed.
        Command::Endpoint(_)
        | Command::Defrag
        | Command::Status
        | Command::Check(_)
        | Command::Snapshot(_)
        | Command::Serve(_)
        | Command::Cert(_)
        | Command::Completion(_) => Err(CliError::failed("this command does not use a server")),
    };
    Some(r)
}
