//! The storage seam: everything the engine asks of the file system, as a trait.
//!
//! The engine reaches files only through [`Storage`] and [`StorageFile`]. The default,
//! [`FsStorage`], is the real file system (`pread`/`pwrite`/`fdatasync`, `flock`, and a read-only
//! `mmap` for readers). Tests substitute [`crate::sim::SimDisk`], which keeps synced and unsynced
//! bytes apart so it can produce the disk image a power cut would leave, and can fail any chosen
//! operation — as SQLite's test VFS and redb's fault-injecting backend do.
//!
//! A read-only store reaches its files through `ReadOnlyStorage`, which opens them with
//! [`Storage::open_read_only`] and refuses every change, so nothing it does can write.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

/// A file system: opens files, removes them, makes directory changes durable.
pub trait Storage: Send + Sync {
    /// Opens `path` for reading and writing; with `create`, creates it if missing. A missing
    /// file without `create` is an `io::ErrorKind::NotFound` error.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Opens an existing `path` for reading only (`O_RDONLY` on a real file system, so it works
    /// on a file of mode 0444 or in a read-only directory). A missing file is an
    /// `io::ErrorKind::NotFound` error. The default opens it as [`Storage::open`] does without
    /// `create`, for storages with no read-only mode (the simulated disk); the engine never
    /// writes through a file opened for a read-only store either way.
    fn open_read_only(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.open(path, false)
    }
    /// Removes `path` (not durable until [`Storage::sync_dir`]).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations and removals in the directory holding `path` durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Atomically replaces `to` with `from` (not durable until [`Storage::sync_dir`]).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

/// How much [`StorageFile::prefault`] reads per call by default.
const PREFAULT_CHUNK: u64 = 1 << 20;

/// An open file.
#[allow(clippy::len_without_is_empty)] // `len` is an I/O call; emptiness is never asked
pub trait StorageFile: Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Grows or shrinks the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset` (not durable until a sync).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data (and the metadata needed to read it) durable: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and all metadata durable: `fsync`.
    fn sync_all(&self) -> io::Result<()>;
    /// Starts writing the file's dirty pages to the device without waiting for them: a hint
    /// that makes the next sync cheaper, promising no durability. The default does nothing.
    fn start_writeback(&self) -> io::Result<()> {
        Ok(())
    }
    /// Brings the bytes `[offset, offset + len)` into the page cache without changing them: a
    /// hint, so that the writes that later fill a region the file just grew into find its
    /// pages in memory instead of allocating them while a commit waits. The default reads the
    /// range a mebibyte at a time into a scratch buffer and discards it.
    fn prefault(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut buf = vec![0u8; PREFAULT_CHUNK.min(len) as usize];
        let end = offset.saturating_add(len);
        let mut at = offset;
        while at < end {
            let n = (end - at).min(PREFAULT_CHUNK) as usize;
            self.read_exact_at(&mut buf[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }
    /// Takes an exclusive lock; `Ok(false)` if someone else holds it (shared or exclusive).
    fn try_lock(&self) -> io::Result<bool>;
    /// Takes a shared lock, which any number of holders may share; `Ok(false)` if someone holds
    /// the exclusive lock. The default takes the exclusive lock, which is correct but lets only
    /// one reader in at a time.
    fn try_lock_shared(&self) -> io::Result<bool> {
        self.try_lock()
    }
    /// Releases the lock (shared or exclusive).
    fn unlock(&self) -> io::Result<()>;
    /// What identifies the underlying file across handles, such as (device, inode); `None` if
    /// the storage cannot tell. Used to say "already open in this process" when a lock is
    /// refused.
    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        Ok(None)
    }
    /// A read-only view of bytes `[0, len)` that reflects every later write through this file.
    /// `len` may exceed the file's length; the engine never reads past the end of the file.
    fn map(&self, len: usize, random_access: bool) -> io::Result<Box<dyn Mapping>>;
}

impl std::fmt::Debug for dyn StorageFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageFile")
    }
}

/// A read-only view of a file (see [`StorageFile::map`]).
pub trait Mapping: Send + Sync {
    /// All mapped bytes.
    fn bytes(&self) -> &[u8];
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

impl Storage for FsStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(FsFile(file)))
    }

    fn open_read_only(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).open(path)?;
        // O_RDONLY opens a directory without complaint (unlike O_RDWR); say what it is now
        // rather than fail on the first read.
        if file.metadata()?.is_dir() {
            return Err(io::Error::from(io::ErrorKind::IsADirectory));
        }
        Ok(Arc::new(FsFile(file)))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
}

/// A file of [`FsStorage`].
#[derive(Debug)]
pub struct FsFile(File);

impl FsFile {
    /// Wraps an open file.
    pub fn from_file(file: File) -> FsFile {
        FsFile(file)
    }
}

impl StorageFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: `sync_file_range` takes a descriptor and integers and touches no memory of
        // ours; the descriptor stays open as long as `self.0` lives, which outlasts the call.
        let rc =
            unsafe { libc::sync_file_range(self.0.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn try_lock(&self) -> io::Result<bool> {
        match self.0.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        match self.0.try_lock_shared() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn unlock(&self) -> io::Result<()> {
        self.0.unlock()
    }

    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        use std::os::unix::fs::MetadataExt;
        let meta = self.0.metadata()?;
        Ok(Some((meta.dev(), meta.ino())))
    }

    fn map(&self, len: usize, random_access: bool) -> io::Result<Box<dyn Mapping>> {
        // SAFETY: the map is read-only and the file is locked by this process (exclusively by a
        // writer; shared by read-only stores, which never write), so no other etch process writes
        // or truncates it while mapped (the lock is advisory: a process ignoring it is outside
        // what etch can defend against, as with LMDB and SQLite). This process never
        // truncates a mapped file and writes only pages that no live snapshot can reach
        // (alloc.rs), so bytes a reader looks at do not change under it. Readers touch only
        // pages below their snapshot's page count, which lie inside the file, so the part of the
        // mapping beyond the end of the file is never accessed.
        let map = unsafe { MmapOptions::new().len(len).map(&self.0)? };
        if random_access {
            // Only a hint; a kernel that ignores it changes nothing but speed.
            let _ = map.advise(memmap2::Advice::Random);
        }
        Ok(Box::new(FsMapping(map)))
    }
}

struct FsMapping(Mmap);

impl Mapping for FsMapping {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The view of a [`Storage`] that a read-only store uses: files open with
/// [`Storage::open_read_only`], and every call that would change a file or directory fails with
/// `io::ErrorKind::ReadOnlyFilesystem`. So a read-only store cannot write, whatever the storage
/// under it would allow.
pub(crate) struct ReadOnlyStorage(pub(crate) Arc<dyn Storage>);

fn refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::ReadOnlyFilesystem,
        "the store is open read-only: nothing may be written",
    )
}

impl Storage for ReadOnlyStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        if create {
            return Err(refused());
        }
        self.open_read_only(path)
    }

    fn open_read_only(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(ReadOnlyFile(self.0.open_read_only(path)?)))
    }

    fn remove(&self, _path: &Path) -> io::Result<()> {
        Err(refused())
    }

    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        Err(refused())
    }

    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(refused())
    }
}

/// A file of [`ReadOnlyStorage`]: reads and locks pass through, changes fail.
struct ReadOnlyFile(Arc<dyn StorageFile>);

impl StorageFile for ReadOnlyFile {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(refused())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(refused())
    }

    fn sync_data(&self) -> io::Result<()> {
        Err(refused())
    }

    fn sync_all(&self) -> io::Result<()> {
        Err(refused())
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.0.try_lock()
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        self.0.try_lock_shared()
    }

    fn unlock(&self) -> io::Result<()> {
        self.0.unlock()
    }

    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        self.0.identity()
    }

    fn map(&self, len: usize, random_access: bool) -> io::Result<Box<dyn Mapping>> {
        self.0.map(len, random_access)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Which 4 KiB pages of `bytes` (page-aligned, as a mapping is) the page cache holds.
    fn resident(bytes: &[u8]) -> Vec<bool> {
        let pages = bytes.len().div_ceil(4096);
        let mut vec = vec![0u8; pages];
        // SAFETY: `bytes` is a whole mapping, so its start is page-aligned and its range mapped;
        // `vec` has one byte for each of its 4 KiB pages, all `mincore` writes.
        let rc = unsafe {
            libc::mincore(
                bytes.as_ptr() as *mut libc::c_void,
                bytes.len(),
                vec.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
        vec.iter().map(|v| v & 1 == 1).collect()
    }

    /// A prefault brings exactly the asked region of a just-grown (sparse) file into the page
    /// cache, from its start, and changes no byte of the file.
    #[test]
    fn prefault_brings_the_region_into_the_page_cache_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let file = FsStorage.open(&dir.path().join("grown"), true).unwrap();
        file.write_all_at(b"etch", 0).unwrap();
        file.set_len(4 << 20).unwrap();
        file.write_all_at(b"tail", (3 << 20) + 100).unwrap();
        let map = file.map(4 << 20, true).unwrap();
        let before = resident(map.bytes());
        let region = 256..768; // pages: bytes [1 MiB, 3 MiB)
        assert!(
            before[region.clone()].iter().all(|&r| !r),
            "a hole the file grew into is not cached before the prefault"
        );
        file.prefault(1 << 20, 2 << 20).unwrap();
        let after = resident(map.bytes());
        assert!(after[region].iter().all(|&r| r), "the region is cached");
        assert_eq!(
            after[1..256],
            before[1..256],
            "nothing before the region is read"
        );
        assert_eq!(&map.bytes()[..4], b"etch");
        assert_eq!(&map.bytes()[(3 << 20) + 100..(3 << 20) + 104], b"tail");
        assert!(map.bytes()[4..(3 << 20) + 100].iter().all(|&b| b == 0));
    }
}
