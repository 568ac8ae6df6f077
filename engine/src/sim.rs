//! A simulated disk for crash and fault-injection tests (SQLite's crash VFS, in spirit).
//!
//! [`SimDisk`] implements [`Storage`]. The bytes the engine sees live in real files under a
//! scratch directory (so the engine's memory map works unchanged), but the simulator also tracks,
//! per file, what is *durable* (as of the last sync) and the *pending* writes since. From that it
//! produces the image a power cut would leave ([`SimDisk::crash_image`]): unsynced writes dropped,
//! kept, torn at sector granularity, or applied out of order, chosen by a seed. Creating or
//! removing a file is durable only after [`Storage::sync_dir`].
//!
//! It also injects faults: fail the n-th mutating operation with an I/O error, `ENOSPC`, or a
//! failed sync ([`SimDisk::fail_op`]); or die at the k-th sync ([`SimDisk::crash_at_sync`]), after
//! which every mutating operation fails, as if the machine had lost power at that instant.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::{FsFile, Mapping, Storage, StorageFile};

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with `EIO`.
    Io,
    /// The operation fails with `ENOSPC`.
    NoSpace,
}

/// How unsynced writes fare in a crash image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPolicy {
    /// Every unsynced write is lost.
    DropUnsynced,
    /// Every unsynced write survives (what a process crash leaves).
    KeepUnsynced,
    /// Each unsynced write survives, vanishes, or survives in part (whole `sector`-byte sectors),
    /// and they land in a shuffled order; decided by `seed`.
    Torn {
        /// Seed of the choices (the same seed gives the same image).
        seed: u64,
        /// Sector size in bytes (512 or 4096).
        sector: usize,
    },
}

/// The durable contents of a simulated disk: file path -> bytes.
#[derive(Clone, Debug, Default)]
pub struct SimImage {
    /// Files that exist durably, with their bytes.
    pub files: HashMap<PathBuf, Vec<u8>>,
}

#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

struct SimFileState {
    real: Arc<File>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// The file exists in the current view.
    present: bool,
    /// The file's directory entry is durable.
    entry_durable: bool,
    locked: bool,
}

struct SimState {
    root: PathBuf,
    files: HashMap<PathBuf, SimFileState>,
    next_real: u64,
    ops: u64,
    syncs: u64,
    fail_at: Option<(u64, Fault)>,
    crash_at_sync: Option<u64>,
    crash_at_op: Option<u64>,
    dead: bool,
    faults_injected: u64,
}

/// A simulated disk; cheap to clone (clones share state).
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<SimState>>,
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn apply(bytes: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => {
            let end = *offset as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*offset as usize..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

impl SimDisk {
    /// An empty disk whose working files live under `scratch` (an existing, empty directory).
    pub fn new(scratch: &Path) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(SimState {
                root: scratch.to_path_buf(),
                files: HashMap::new(),
                next_real: 0,
                ops: 0,
                syncs: 0,
                fail_at: None,
                crash_at_sync: None,
                crash_at_op: None,
                dead: false,
                faults_injected: 0,
            })),
        }
    }

    /// A disk holding `image` as its durable contents, working under `scratch`.
    pub fn from_image(scratch: &Path, image: &SimImage) -> io::Result<SimDisk> {
        let disk = SimDisk::new(scratch);
        {
            let mut st = disk.state.lock();
            for (path, bytes) in &image.files {
                let real = st.new_real_file()?;
                real.write_all_at(bytes, 0)?;
                st.files.insert(
                    path.clone(),
                    SimFileState {
                        real: Arc::new(real),
                        durable: bytes.clone(),
                        pending: Vec::new(),
                        present: true,
                        entry_durable: true,
                        locked: false,
                    },
                );
            }
        }
        Ok(disk)
    }

    /// Fails the `n`-th mutating operation (write, set_len, sync; counted from 1) with `fault`.
    pub fn fail_op(&self, n: u64, fault: Fault) {
        self.state.lock().fail_at = Some((n, fault));
    }

    /// Loses power at the `k`-th sync (counted from 1): that sync and every later mutating
    /// operation fail; the durable state is what it was just before.
    pub fn crash_at_sync(&self, k: u64) {
        self.state.lock().crash_at_sync = Some(k);
    }

    /// Loses power at the `n`-th mutating operation (counted from 1), which does not happen.
    pub fn crash_at_op(&self, n: u64) {
        self.state.lock().crash_at_op = Some(n);
    }

    /// Mutating operations so far.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Syncs so far (file syncs and directory syncs).
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Faults injected so far (including the crash).
    pub fn faults_injected(&self) -> u64 {
        self.state.lock().faults_injected
    }

    /// True once the disk has lost power.
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// The image a power cut now would leave, under `policy`.
    pub fn crash_image(&self, policy: CrashPolicy) -> SimImage {
        let st = self.state.lock();
        let mut image = SimImage::default();
        let mut rng = match policy {
            CrashPolicy::Torn { seed, .. } => seed | 1,
            _ => 1,
        };
        let mut paths: Vec<&PathBuf> = st.files.keys().collect();
        paths.sort();
        for path in paths {
            let f = &st.files[path];
            if !f.entry_durable {
                continue;
            }
            let mut bytes = f.durable.clone();
            match policy {
                CrashPolicy::DropUnsynced => {}
                CrashPolicy::KeepUnsynced => f.pending.iter().for_each(|op| apply(&mut bytes, op)),
                CrashPolicy::Torn { sector, .. } => {
                    let mut ops: Vec<&Pending> = f.pending.iter().collect();
                    // Shuffle: unsynced writes may reach the disk in any order.
                    for i in (1..ops.len()).rev() {
                        let j = (xorshift(&mut rng) % (i as u64 + 1)) as usize;
                        ops.swap(i, j);
                    }
                    for op in ops {
                        match op {
                            Pending::SetLen(_) => {
                                if xorshift(&mut rng).is_multiple_of(2) {
                                    apply(&mut bytes, op);
                                }
                            }
                            Pending::Write { offset, data } => match xorshift(&mut rng) % 3 {
                                0 => apply(&mut bytes, op),
                                1 => {}
                                _ => {
                                    // Torn: each sector of the write lands or not.
                                    let start = *offset as usize;
                                    let mut at = start;
                                    while at < start + data.len() {
                                        let end =
                                            ((at / sector + 1) * sector).min(start + data.len());
                                        if xorshift(&mut rng).is_multiple_of(2) {
                                            let piece = Pending::Write {
                                                offset: at as u64,
                                                data: data[at - start..end - start].to_vec(),
                                            };
                                            apply(&mut bytes, &piece);
                                        }
                                        at = end;
                                    }
                                }
                            },
                        }
                    }
                }
            }
            image.files.insert(path.clone(), bytes);
        }
        image
    }
}

impl SimState {
    fn new_real_file(&mut self) -> io::Result<File> {
        self.next_real += 1;
        let path = self.root.join(format!("sim-{}", self.next_real));
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Counts a mutating operation and decides whether it fails.
    fn mutate(&mut self, is_sync: bool) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other("simulated power loss"));
        }
        self.ops += 1;
        if self.crash_at_op == Some(self.ops) {
            self.dead = true;
            self.faults_injected += 1;
            return Err(io::Error::other("simulated power loss"));
        }
        if is_sync {
            self.syncs += 1;
            if self.crash_at_sync == Some(self.syncs) {
                self.dead = true;
                self.faults_injected += 1;
                return Err(io::Error::other("simulated power loss"));
            }
        }
        if let Some((n, fault)) = self.fail_at {
            if n == self.ops {
                self.faults_injected += 1;
                return Err(match fault {
                    Fault::Io => io::Error::from_raw_os_error(5),
                    Fault::NoSpace => io::Error::from_raw_os_error(28),
                });
            }
        }
        Ok(())
    }
}

struct SimFile {
    disk: SimDisk,
    path: PathBuf,
    real: Arc<File>,
    fs: FsFile,
}

impl Storage for SimDisk {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut st = self.state.lock();
        let exists = st.files.get(path).is_some_and(|f| f.present);
        if !exists {
            if !create {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            st.mutate(false)?;
            let real = Arc::new(st.new_real_file()?);
            let entry_durable = st.files.get(path).is_some_and(|f| f.entry_durable);
            st.files.insert(
                path.to_path_buf(),
                SimFileState {
                    real,
                    durable: Vec::new(),
                    pending: Vec::new(),
                    present: true,
                    entry_durable,
                    locked: false,
                },
            );
        }
        let real = st.files[path].real.clone();
        let fs = FsFile::from_file(real.try_clone()?);
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            path: path.to_path_buf(),
            real,
            fs,
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.mutate(false)?;
        match st.files.get_mut(path) {
            Some(f) if f.present => {
                f.present = false;
                // A later create starts from an empty file.
                f.pending.clear();
                Ok(())
            }
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    /// Moves the entry; simplification: the move is as durable as the source entry was (the
    /// engine syncs the directory right after renaming).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.mutate(false)?;
        let f = match st.files.remove(from) {
            Some(f) if f.present => f,
            _ => return Err(io::Error::from(io::ErrorKind::NotFound)),
        };
        st.files.insert(to.to_path_buf(), f);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.mutate(true)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut gone = Vec::new();
        for (p, f) in st.files.iter_mut() {
            if p.parent().map(Path::to_path_buf).unwrap_or_default() == dir {
                f.entry_durable = f.present;
                if !f.present {
                    gone.push(p.clone());
                }
            }
        }
        for p in gone {
            st.files.remove(&p);
        }
        Ok(())
    }
}

impl SimFile {
    fn with_state<T>(&self, f: impl FnOnce(&mut SimFileState) -> T) -> io::Result<T> {
        let mut st = self.disk.state.lock();
        match st.files.get_mut(&self.path) {
            Some(fs) if Arc::ptr_eq(&fs.real, &self.real) => Ok(f(fs)),
            _ => Err(io::Error::other("simulated file was removed")),
        }
    }

    fn mutate(&self, is_sync: bool) -> io::Result<()> {
        self.disk.state.lock().mutate(is_sync)
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.real.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.mutate(false)?;
        self.real.set_len(len)?;
        self.with_state(|f| f.pending.push(Pending::SetLen(len)))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.real.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.mutate(false)?;
        self.real.write_all_at(buf, offset)?;
        self.with_state(|f| {
            f.pending.push(Pending::Write {
                offset,
                data: buf.to_vec(),
            })
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.mutate(true)?;
        self.with_state(|f| {
            for op in std::mem::take(&mut f.pending) {
                apply(&mut f.durable, &op);
            }
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.with_state(|f| {
            if f.locked {
                false
            } else {
                f.locked = true;
                true
            }
        })
    }

    fn unlock(&self) -> io::Result<()> {
        self.with_state(|f| f.locked = false)
    }

    fn map(&self, len: usize, random_access: bool) -> io::Result<Box<dyn Mapping>> {
        self.fs.map(len, random_access)
    }
}
