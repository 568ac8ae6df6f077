//! `compaction`, `defrag`, `status`, `check`.

use super::Ctx;
use crate::args::CompactionArgs;
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult};
use crate::progress;

/// `compaction REV`.
pub fn compaction(ctx: &mut Ctx, a: &CompactionArgs) -> CliResult {
    let store = db::open(&ctx.cli.db, Mode::Existing)?;
    store.compact(a.rev)?;
    db::close(store)?;
    Ok(ctx.printer.compaction(a.rev)?)
}

/// `defrag`.
pub fn defrag(ctx: &mut Ctx) -> CliResult {
    let store = db::open(&ctx.cli.db, Mode::Existing)?;
    let (before, after) = progress::spin("defragmenting", || store.defrag())?;
    db::close(store)?;
    Ok(ctx.printer.defrag(&ctx.cli.db, before, after)?)
}

/// `status`.
pub fn status(ctx: &mut Ctx) -> CliResult {
    let store = db::open(&ctx.cli.db, Mode::Existing)?;
    let status = store.status()?;
    db::close(store)?;
    Ok(ctx.printer.status(&ctx.cli.db, &status)?)
}

/// `endpoint status`.
pub fn endpoint_status(ctx: &mut Ctx) -> CliResult {
    let store = db::open(&ctx.cli.db, Mode::Existing)?;
    let status = store.status()?;
    db::close(store)?;
    Ok(ctx.printer.endpoint_status(&ctx.cli.db, &status)?)
}

/// `check`: opening the file already verifies its meta pages and replays its WAL; the check
/// then walks every page. Any problem is an error (exit 1).
pub fn check(ctx: &mut Ctx) -> CliResult {
    let store = db::open(&ctx.cli.db, Mode::Existing)?;
    let report = progress::spin("checking", || store.check())
        .map_err(|e| CliError::failed(format!("check failed: {e}")))?;
    db::close(store)?;
    Ok(ctx.printer.check(&ctx.cli.db, &report)?)
}
