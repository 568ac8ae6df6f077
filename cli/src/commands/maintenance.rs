//! `compaction`, `defrag`, `status`, `check`.

use super::Ctx;
use crate::args::{CheckArgs, CompactionArgs};
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult};
use crate::output::json::ServerIds;
use crate::output::EndpointStatus;
use crate::progress;

/// `compaction REV`.
pub fn compaction(ctx: &mut Ctx, a: &CompactionArgs) -> CliResult {
    let store = db::open(ctx.cli, Mode::Existing)?;
    store.compact(a.rev)?;
    db::close(store)?;
    Ok(ctx.printer.compaction(a.rev)?)
}

/// `defrag`.
pub fn defrag(ctx: &mut Ctx) -> CliResult {
    let store = db::open(ctx.cli, Mode::Existing)?;
    let (before, after) = progress::spin("defragmenting", || store.defrag())?;
    db::close(store)?;
    Ok(ctx.printer.defrag(&ctx.cli.db, before, after)?)
}

/// `status`.
pub fn status(ctx: &mut Ctx) -> CliResult {
    let store = db::open(ctx.cli, Mode::ReadOnly)?;
    let status = store.status()?;
    db::close(store)?;
    Ok(ctx.printer.status(&ctx.cli.db, &status)?)
}

/// `endpoint status`.
pub fn endpoint_status(ctx: &mut Ctx) -> CliResult {
    let store = db::open(ctx.cli, Mode::ReadOnly)?;
    let status = store.status()?;
    db::close(store)?;
    // A file is a cluster of one member without an id: member id, leader and raft term are 0
    // (so it is its own leader), the raft index is the applied WAL index.
    let row = EndpointStatus {
        endpoint: ctx.cli.db.display().to_string(),
        revision: status.revision,
        server: ServerIds::default(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        db_size: status.file_size as i64,
        db_size_in_use: status.size_in_use as i64,
        leader: 0,
        is_learner: false,
        raft_index: status.applied_index,
        raft_term: 0,
        raft_applied_index: status.applied_index,
        errors: Vec::new(),
    };
    Ok(ctx.printer.endpoint_status(&[row])?)
}

/// `check`: opening the file already verifies its meta pages and replays its WAL; the check
/// then walks every page. Any problem is an error (exit 1).
///
/// With `--repair`, a WAL damaged before acknowledged records is copied aside and recovered up
/// to the damage (the records after it are dropped and counted on stderr) before the check.
pub fn check(ctx: &mut Ctx, a: &CheckArgs) -> CliResult {
    let store = if a.repair {
        let store = db::open_with(ctx.cli, Mode::Recover, |o| o.repair_wal(true))?;
        match store.wal_repair() {
            Some(r) => eprintln!(
                "repaired: the WAL was damaged at offset {} after sequence number {}; \
                 recovered up to it and dropped {} record(s) after it; the damaged WAL is kept \
                 as {}",
                r.damage.offset,
                r.damage.last_good_seq,
                r.damage.records_after,
                r.copy.display()
            ),
            None => eprintln!("nothing to repair: the WAL is intact"),
        }
        store
    } else {
        db::open(ctx.cli, Mode::ReadOnly)?
    };
    let report = progress::counted("checking", |tick| store.check_with_progress(tick))
        .map_err(|e| CliError::failed(format!("check failed: {e}")))?;
    db::close(store)?;
    Ok(ctx.printer.check(&ctx.cli.db, &report)?)
}
