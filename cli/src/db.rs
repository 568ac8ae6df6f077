//! Opening the database file named by `--db`.

use etch::{Options, Store};

use crate::args::Cli;
use crate::error::{CliError, CliResult};

/// How a command opens the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Commands that write create the file if it is missing (as sqlite3 does).
    Create,
    /// Commands that write but make no sense on a new file refuse a missing one, so a typo in
    /// `--db` is an error rather than an empty result and a stray new file.
    Existing,
    /// Commands that only read open the file read-only: nothing is written (a crashed writer's
    /// WAL is replayed into memory), the file may be read-only, and any number of them share it
    /// at once (a writer waits for them, and they for a writer, up to `--lock-timeout`).
    ReadOnly,
}

/// Opens the store named by `--db`, waiting up to `--lock-timeout` for the file lock.
pub fn open(cli: &Cli, mode: Mode) -> CliResult<Store> {
    open_with(cli, mode, |o| o)
}

/// As [`open`], with further options (e.g. `repair_wal`).
pub fn open_with(cli: &Cli, mode: Mode, more: impl FnOnce(Options) -> Options) -> CliResult<Store> {
    let path = &cli.db;
    // `try_exists` rather than `exists`: a file we may not look at (an unreadable directory) is
    // not "missing"; the open then reports what failed, naming the path.
    if mode != Mode::Create && matches!(path.try_exists(), Ok(false)) {
        return Err(CliError::failed(format!(
            "{}: no such database file (set --db or ETCH_DB)",
            path.display()
        )));
    }
    let opts = Options::new()
        .lock_timeout(cli.lock_timeout)
        .read_only(mode == Mode::ReadOnly);
    Ok(more(opts).open(path)?)
}

/// Closes the store, reporting a failed final checkpoint (dropping it would swallow the error).
pub fn close(store: Store) -> CliResult {
    Ok(store.close()?)
}
