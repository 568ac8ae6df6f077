//! `snapshot save | restore | status`.

use super::Ctx;
use crate::args::SnapshotCommand;
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult};
use crate::output::SnapshotStatus;
use crate::progress;

/// Runs one `snapshot` subcommand.
pub fn run(ctx: &mut Ctx, c: &SnapshotCommand) -> CliResult {
    match c {
        SnapshotCommand::Save { file } => {
            let store = db::open(ctx.cli, Mode::ReadOnly)?;
            let (revision, size) = progress::spin("saving snapshot", || store.snapshot(file))?;
            db::close(store)?;
            Ok(ctx.printer.snapshot_saved(file, revision, size)?)
        }
        SnapshotCommand::Restore { file, output } => {
            require_file(file)?;
            let store = progress::spin("restoring snapshot", || {
                etch::Store::restore(file, output, etch::Options::new())
            })?;
            let revision = store.revision();
            db::close(store)?;
            Ok(ctx.printer.snapshot_restored(file, output, revision)?)
        }
        SnapshotCommand::Status { file } => {
            require_file(file)?;
            let size = std::fs::metadata(file)?.len();
            // Opening a file may write to it (WAL, checkpoint on close), so the snapshot is
            // inspected through a verified copy that is thrown away: the file is only read.
            let dir = tempfile::tempdir()?;
            let copy = dir.path().join("snapshot.etch");
            let store = progress::spin("reading snapshot", || {
                etch::Store::restore(file, &copy, etch::Options::new())
            })?;
            let status = store.status()?;
            let hash = store.hash_kv(0)?;
            db::close(store)?;
            Ok(ctx.printer.snapshot_status(&SnapshotStatus {
                hash,
                revision: status.revision,
                keys: status.key_count,
                size,
            })?)
        }
    }
}

fn require_file(path: &std::path::Path) -> CliResult {
    if !path.is_file() {
        return Err(CliError::failed(format!(
            "{}: no such snapshot file",
            path.display()
        )));
    }
    Ok(())
}
