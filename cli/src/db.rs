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
    /// `check --repair`: an existing file opened writable to recover a damaged WAL; a
    /// cluster member's file too (its log is recovered the same way).
    Recover,
}

/// Opens the store named by `--db`, waiting up to `--lock-timeout` for the file lock.
pub fn open(cli: &Cli, mode: Mode) -> CliResult<Store> {
    open_with(cli, mode, |o| o)
}

/// As [`open`], with further options (e.g. `repair_wal`).
///
/// A cluster member's file (its WAL is the Raft log) cannot be opened read-only: reading it
/// means recovering that log, which only a replicated open does. Read commands (and `check
/// --repair`) on such a file therefore open it ([`open_member_file`]) as a replicated
/// store with no Raft running, so that `etch --db DATA_DIR/member.etch check` works on a
/// stopped member. Commands that write are refused with a message saying where writes go.
pub fn open_with(cli: &Cli, mode: Mode, more: impl Fn(Options) -> Options) -> CliResult<Store> {
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
    match more(opts).open(path) {
        Ok(store) => Ok(store),
        Err(etch::Error::NotReplicated(_)) if matches!(mode, Mode::ReadOnly | Mode::Recover) => {
            open_member_file(cli, more)
        }
        Err(etch::Error::NotReplicated(_)) => Err(CliError::failed(format!(
            "{}: a cluster member's file: its writes go through the cluster (give              --endpoints); read commands (get, status, check, snapshot save, ...) work on it              while the member is stopped",
            path.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Opens a cluster member's file (found to be one) for a command that changes none of its
/// data: as a replicated store, with no background writes and no Raft. The trees open at
/// the member's last checkpoint and the log (with the vote) is kept as it is; closing
/// writes a checkpoint at the same applied index, so the member restarts from the same
/// state. The member holds the file lock while it runs: this waits `--lock-timeout` for it.
fn open_member_file(cli: &Cli, more: impl Fn(Options) -> Options) -> CliResult<Store> {
    let opts = Options::new()
        .lock_timeout(cli.lock_timeout)
        .replicated(true)
        .background_writes(false);
    Ok(more(opts).open(&cli.db)?)
}

/// Closes the store, reporting a failed final checkpoint (dropping it would swallow the error).
pub fn close(store: Store) -> CliResult {
    Ok(store.close()?)
}
