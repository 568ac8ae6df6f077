//! The file lock of an open store: taking it (waiting up to the lock timeout), and the
//! process-wide registry of files this process holds, which lets a refusal say whether the
//! holder is this process or another one.
//!
//! `flock` locks belong to an open file description, so a second open of the same file in one
//! process conflicts with the first exactly as another process would; the lock alone cannot
//! tell the two apart. The registry, keyed by the file's identity (device, inode), can.

use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, OpenAction, Result};
use crate::storage::StorageFile;

/// First pause between attempts; it doubles up to [`MAX_PAUSE`]. Short enough that a lock
/// released between attempts costs a waiter little, long enough not to spin.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Which lock an open needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// A writer: excludes every other holder.
    Exclusive,
    /// A read-only store: shares with other read-only stores, excludes writers.
    Shared,
}

/// Files this process holds locked, by identity, with how many stores hold each. A process
/// holds a handful of files at most, so a list is enough; it frees its memory when it empties,
/// so a program that closed every store ends with nothing allocated here (valgrind-clean).
static HELD: Mutex<Vec<((u64, u64), usize)>> = Mutex::new(Vec::new());

/// This process's claim on a locked file: registered while alive, unregistered on drop. Drop it
/// only after releasing the lock, so a refusal never names this process for a lock it has
/// already given up.
#[derive(Debug)]
pub(crate) struct Registration {
    identity: Option<(u64, u64)>,
}

impl Registration {
    /// Registers `file`, which this process has just locked.
    pub(crate) fn new(file: &dyn StorageFile) -> Registration {
        // Without an identity the registry cannot help; the refusal then says "another process".
        let identity = file.identity().ok().flatten();
        if let Some(id) = identity {
            let mut held = HELD.lock();
            match held.iter_mut().find(|(held_id, _)| *held_id == id) {
                Some((_, count)) => *count += 1,
                None => held.push((id, 1)),
            }
        }
        Registration { identity }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(id) = self.identity {
            let mut held = HELD.lock();
            if let Some(i) = held.iter().position(|(held_id, _)| *held_id == id) {
                held[i].1 -= 1;
                if held[i].1 == 0 {
                    held.swap_remove(i);
                }
            }
            if held.is_empty() {
                held.shrink_to_fit();
            }
        }
    }
}

/// Whether this process holds `file` (through another handle).
fn held_here(file: &dyn StorageFile) -> bool {
    match file.identity() {
        Ok(Some(id)) => HELD.lock().iter().any(|(held_id, _)| *held_id == id),
        _ => false,
    }
}

/// Locks `file` (at `path`) in `mode`, retrying with a growing pause until `timeout` has passed;
/// then [`Error::Locked`]. A zero timeout tries once.
pub(crate) fn lock(
    file: &dyn StorageFile,
    path: &Path,
    mode: LockMode,
    timeout: Duration,
) -> Result<Registration> {
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let taken = match mode {
            LockMode::Exclusive => file.try_lock(),
            LockMode::Shared => file.try_lock_shared(),
        }
        .map_err(|e| Error::from(e).opening(path, OpenAction::Lock))?;
        if taken {
            return Ok(Registration::new(file));
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::Locked {
                path: path.to_path_buf(),
                in_this_process: held_here(file),
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
