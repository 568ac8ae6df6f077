//! File-system helpers: locking, directory sync, random identifiers.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// Takes an exclusive lock on the main file, failing at once if another process (or another
/// open handle in this process) holds it.
pub(crate) fn lock_exclusive(file: &File, path: &Path) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Syncs the directory holding `path`, so that a file created or removed there survives a
/// power cut.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// A random 64-bit value, from the OS-seeded hasher keys of the standard library, mixed with
/// the time and process id. Used for database ids and WAL salts, which need to differ between
/// files and generations, not to be secret.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}
