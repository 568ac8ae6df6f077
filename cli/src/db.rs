//! Opening the database file named by `--db`.

use std::path::Path;

use etch::Store;

use crate::error::{CliError, CliResult};

/// Whether a command may create the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Commands that write create the file if it is missing (as sqlite3 does).
    Create,
    /// Commands that only read refuse a missing file, so a typo in `--db` is an error rather
    /// than an empty result and a stray new file.
    Existing,
}

/// Opens the store at `path`.
pub fn open(path: &Path, mode: Mode) -> CliResult<Store> {
    if mode == Mode::Existing && !path.exists() {
        return Err(CliError::failed(format!(
            "{}: no such database file (set --db or ETCH_DB)",
            path.display()
        )));
    }
    Ok(Store::open(path)?)
}

/// Closes the store, reporting a failed final checkpoint (dropping it would swallow the error).
pub fn close(store: Store) -> CliResult {
    Ok(store.close()?)
}
