//! How a member turns its store into a snapshot file and a snapshot file back into a store: the
//! [`SnapshotFiles`] trait and [`CopySnapshots`], its implementation on today's engine API.
//!
//! [`CopySnapshots`] uses `Store::snapshot` (an online, compact copy that gets a *new* database
//! id and applied position (0, 0)) and `Store::restore` (copy, open, full `check()`). Because the
//! copy forgets its applied position, the state machine keeps the mapping from Raft indexes to
//! the store's own indexes in its sidecar ([`crate::state_machine`]), and an install opens the
//! copy as a new file generation instead of replacing the member's file in place.
//!
//! When the engine's `Store::snapshot_to` / `Store::install_snapshot` land (identity and applied
//! position kept, the file replaced atomically under the same name), an implementation of this
//! trait over them lets the state machine drop the generation files and the index mapping
//! (the mapping becomes the identity).

use std::path::Path;

use etch_engine as engine;

/// Makes snapshot files from stores and stores from snapshot files.
pub trait SnapshotFiles: Send + Sync + 'static {
    /// Writes a consistent copy of `store`'s published state to `path` (which must not exist)
    /// while writers go on.
    fn save(&self, store: &engine::Store, path: &Path) -> engine::Result<()>;
    /// Makes a new store at `target` (which must not exist) from the snapshot at `snapshot`,
    /// verifies it and opens it with `opts`.
    fn install(
        &self,
        snapshot: &Path,
        target: &Path,
        opts: engine::Options,
    ) -> engine::Result<engine::Store>;
}

/// [`SnapshotFiles`] over `Store::snapshot` and `Store::restore`; see the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopySnapshots;

impl SnapshotFiles for CopySnapshots {
    fn save(&self, store: &engine::Store, path: &Path) -> engine::Result<()> {
        store.snapshot(path).map(|_| ())
    }

    fn install(
        &self,
        snapshot: &Path,
        target: &Path,
        opts: engine::Options,
    ) -> engine::Result<engine::Store> {
        engine::Store::restore(snapshot, target, opts)
    }
}
